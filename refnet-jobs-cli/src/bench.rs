//! `refnet-jobs bench`: runs the library's benchmark workloads, repeats them,
//! and prints each run and the median/min/max of each figure.

use std::time::Duration;

use clap::{Args, ValueEnum};
use refnet_jobs::WorkerConfig;
use refnet_jobs::bench::{self, BloatOptions, DrainOptions, LatencyOptions, ScaleOptions, Summary};
use serde_json::{Value, json};
use sqlx::PgPool;

/// Which workload to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Workload {
    /// Drain, latency and insert (not scale or bloat, which take minutes).
    All,
    /// N no-op jobs in bulk, then one worker drains them.
    Drain,
    /// Enqueue → handler start on an idle worker, jobs at a fixed interval.
    Latency,
    /// One client, one job per commit.
    Insert,
    /// Claim round trip with large history and a large backlog.
    Scale,
    /// The drain while a transaction holds the xmin horizon, and while pruning.
    Bloat,
}

/// Options of `refnet-jobs bench`; defaults follow WORKLOAD.md.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Workload to run.
    #[arg(value_enum, default_value = "all")]
    workload: Workload,
    /// Repetitions of each workload (scale runs once).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    reps: u32,
    /// Drain: jobs to insert and drain.
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Drain and latency: jobs run at once by the worker.
    #[arg(long, default_value_t = 10)]
    concurrency: usize,
    /// Drain and latency: jobs the worker claims ahead of free slots.
    #[arg(long, default_value_t = WorkerConfig::throughput().prefetch)]
    prefetch: usize,
    /// Drain and latency: most jobs per claim.
    #[arg(long, default_value_t = WorkerConfig::throughput().batch_size)]
    batch: usize,
    /// Drain and latency: claims wait for their disk flush, as default
    /// workers' do (the benchmark otherwise uses `WorkerConfig::throughput()`,
    /// whose claims do not).
    #[arg(long)]
    sync_claims: bool,
    /// Latency: jobs enqueued one at a time.
    #[arg(long, default_value_t = 500)]
    latency_jobs: usize,
    /// Latency: milliseconds between enqueues.
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
    /// Insert: seconds to run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Scale: history sizes to test, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [0i64, 1_000_000, 5_000_000])]
    history: Vec<i64>,
    /// Scale: waiting jobs of the backlog scenario (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    backlog: i64,
    /// Scale: claims timed per scenario.
    #[arg(long, default_value_t = 500)]
    claims: usize,
    /// Scale: jobs per timed claim.
    #[arg(long, default_value_t = 10)]
    claim_batch: usize,
    /// Bloat: old finished jobs pruned during the third drain.
    #[arg(long, default_value_t = 1_000_000)]
    prune_rows: i64,
}

impl BenchArgs {
    fn worker(&self) -> WorkerConfig {
        WorkerConfig {
            batch_size: self.batch,
            prefetch: self.prefetch,
            async_claims: !self.sync_claims,
            ..WorkerConfig::throughput()
        }
    }

    /// Checks the options before anything touches the database.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.jobs == 0 || self.concurrency == 0 || self.batch == 0 || self.latency_jobs == 0 {
            return Err(
                "--jobs, --concurrency, --batch and --latency-jobs must be at least 1".into(),
            );
        }
        if self.seconds == 0 || self.interval_ms == 0 || self.claims == 0 || self.claim_batch == 0 {
            return Err(
                "--seconds, --interval-ms, --claims and --claim-batch must be at least 1".into(),
            );
        }
        if self.history.iter().any(|&h| h < 0) || self.backlog < 0 || self.prune_rows < 0 {
            return Err("--history, --backlog and --prune-rows take counts of 0 or more".into());
        }
        Ok(())
    }
}

/// Runs the chosen workloads; prints progress lines on stderr, and the
/// report (text or JSON) on stdout.
pub(crate) async fn run(pool: &PgPool, args: &BenchArgs, json: bool) -> refnet_jobs::Result<()> {
    let mut report = serde_json::Map::new();
    let mut text = String::new();
    let wants = |w: Workload| {
        args.workload == w
            || (args.workload == Workload::All && !matches!(w, Workload::Scale | Workload::Bloat))
    };
    let drain_options = DrainOptions {
        jobs: args.jobs,
        concurrency: args.concurrency,
        worker: args.worker(),
        ..DrainOptions::default()
    };
    if wants(Workload::Drain) {
        let options = drain_options.clone();
        let mut runs = Vec::new();
        for rep in 1..=args.reps {
            let run = bench::drain(pool, &options).await?;
            eprintln!(
                "drain rep {rep}/{}: {:.0} jobs/s ({} jobs in {:.2} s; steady {:.0} jobs/s; first completion after {:.3} s)",
                args.reps,
                run.jobs_per_sec,
                run.completed,
                run.elapsed_secs,
                run.steady_jobs_per_sec,
                run.startup_secs
            );
            runs.push(run);
        }
        let rate = summary(runs.iter().map(|r| r.jobs_per_sec));
        let steady = summary(runs.iter().map(|r| r.steady_jobs_per_sec));
        text.push_str(&format!(
            "drain    {} jobs, concurrency {}, prefetch {}, batch {}: {} jobs/s (steady {})\n",
            args.jobs,
            args.concurrency,
            args.prefetch,
            args.batch,
            show(rate, 0),
            show(steady, 0)
        ));
        report.insert(
            "drain".into(),
            json!({"jobs": args.jobs, "concurrency": args.concurrency, "prefetch": args.prefetch,
                   "batch": args.batch, "jobs_per_sec": rate, "steady_jobs_per_sec": steady, "runs": runs}),
        );
    }
    if wants(Workload::Latency) {
        let options = LatencyOptions {
            jobs: args.latency_jobs,
            interval: Duration::from_millis(args.interval_ms),
            concurrency: args.concurrency,
            worker: args.worker(),
        };
        let mut runs = Vec::new();
        for rep in 1..=args.reps {
            let run = bench::latency(pool, &options).await?;
            eprintln!(
                "latency rep {rep}/{}: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} of {} jobs)",
                args.reps, run.p50_ms, run.p95_ms, run.p99_ms, run.max_ms, run.received, run.jobs
            );
            runs.push(run);
        }
        let p50 = summary(runs.iter().map(|r| r.p50_ms));
        let p95 = summary(runs.iter().map(|r| r.p95_ms));
        let p99 = summary(runs.iter().map(|r| r.p99_ms));
        let max = summary(runs.iter().map(|r| r.max_ms));
        text.push_str(&format!(
            "latency  {} jobs every {} ms: p50 {} ms, p95 {} ms, p99 {} ms, max {} ms\n",
            args.latency_jobs,
            args.interval_ms,
            show(p50, 2),
            show(p95, 2),
            show(p99, 2),
            show(max, 2)
        ));
        report.insert(
            "latency".into(),
            json!({"jobs": args.latency_jobs, "interval_ms": args.interval_ms,
                   "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "max_ms": max, "runs": runs}),
        );
    }
    if wants(Workload::Insert) {
        let mut runs = Vec::new();
        for rep in 1..=args.reps {
            let run = bench::insert(pool, Duration::from_secs(args.seconds)).await?;
            eprintln!(
                "insert rep {rep}/{}: {:.0} jobs/s ({} in {:.1} s)",
                args.reps, run.jobs_per_sec, run.count, run.seconds
            );
            runs.push(run);
        }
        let rate = summary(runs.iter().map(|r| r.jobs_per_sec));
        text.push_str(&format!(
            "insert   one client, one job per commit, {} s: {} jobs/s\n",
            args.seconds,
            show(rate, 0)
        ));
        report.insert(
            "insert".into(),
            json!({"seconds": args.seconds, "jobs_per_sec": rate, "runs": runs}),
        );
    }
    if wants(Workload::Scale) {
        let options = ScaleOptions {
            history_sizes: args.history.clone(),
            backlog: args.backlog,
            claims: args.claims,
            batch: args.claim_batch,
        };
        let runs = bench::scale(pool, &options).await?;
        let base = runs.first().map(|r| r.p95_ms).filter(|p| *p > 0.0);
        for run in &runs {
            let ratio = base
                .map(|b| format!(" ({:.2}× the first)", run.p95_ms / b))
                .unwrap_or_default();
            text.push_str(&format!(
                "scale    history {:>9}, waiting {:>9}: claim of {} p50 {:.2} ms, p95 {:.2} ms{ratio}, max {:.2} ms (built in {:.0} s)\n",
                run.history, run.waiting, run.batch, run.p50_ms, run.p95_ms, run.max_ms, run.setup_secs
            ));
        }
        report.insert("scale".into(), json!(runs));
    }
    if wants(Workload::Bloat) {
        let options = BloatOptions {
            drain: drain_options.clone(),
            prune_rows: args.prune_rows,
        };
        let mut runs = Vec::new();
        for rep in 1..=args.reps {
            let run = bench::bloat(pool, &options).await?;
            eprintln!(
                "bloat rep {rep}/{}: clean {:.0} jobs/s, xmin held {:.0} ({:.2}×), pruning {:.0} ({:.2}×; median of {} drains while {} rows were pruned in {:.1} s)",
                args.reps,
                run.clean.jobs_per_sec,
                run.held_xmin.jobs_per_sec,
                run.held_xmin_ratio,
                run.pruning_jobs_per_sec,
                run.pruning_ratio,
                run.pruning.len(),
                run.pruned.deleted,
                run.pruned.seconds
            );
            runs.push(run);
        }
        let clean = summary(runs.iter().map(|r| r.clean.jobs_per_sec));
        let held = summary(runs.iter().map(|r| r.held_xmin_ratio));
        let pruning = summary(runs.iter().map(|r| r.pruning_ratio));
        text.push_str(&format!(
            "bloat    {} jobs: clean {} jobs/s; xmin held {} of clean; pruning {} rows {} of clean\n",
            args.jobs,
            show(clean, 0),
            show(held, 2),
            args.prune_rows,
            show(pruning, 2)
        ));
        report.insert(
            "bloat".into(),
            json!({"jobs": args.jobs, "prune_rows": args.prune_rows, "clean_jobs_per_sec": clean,
                   "held_xmin_ratio": held, "pruning_ratio": pruning, "runs": runs}),
        );
    }
    bench::finish(pool).await?;
    if json {
        let out = serde_json::to_string_pretty(&Value::Object(report)).unwrap_or_default();
        println!("{out}");
    } else {
        print!("{text}");
    }
    Ok(())
}

fn summary(values: impl Iterator<Item = f64>) -> Option<Summary> {
    bench::summarize(&values.collect::<Vec<_>>())
}

fn show(summary: Option<Summary>, decimals: usize) -> String {
    match summary {
        Some(s) => format!(
            "{:.d$} (min {:.d$}, max {:.d$})",
            s.median,
            s.min,
            s.max,
            d = decimals
        ),
        None => "-".into(),
    }
}
