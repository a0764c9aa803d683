//! `refnet-jobs bench-peer VERB`: the adapter verbs of the peer benchmark
//! harness (`shared/bench/harness`), so refnet-jobs runs through the very
//! same harness as the queues it is compared with. `scripts/bench-adapter.sh`
//! is the adapter script that calls it.

use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use refnet_jobs::WorkerConfig;
use refnet_jobs::bench::{self, LatencySink};

/// One adapter verb.
#[derive(Debug, Subcommand)]
pub(crate) enum Verb {
    /// Empty the benchmark queue.
    Reset,
    /// Insert N no-op jobs in bulk.
    EnqueueBulk {
        /// Jobs to insert.
        jobs: usize,
    },
    /// Run one worker with concurrency C until SIGTERM or SIGINT; latency
    /// jobs append to the file named by BENCH_LAT_FILE.
    Worker {
        /// Jobs run at once.
        concurrency: usize,
    },
    /// Enqueue N latency jobs one at a time, one every MS milliseconds.
    EnqueueTimed {
        /// Jobs to enqueue.
        jobs: usize,
        /// Milliseconds between enqueues.
        interval_ms: u64,
    },
    /// One client, one job per commit, for SECS seconds.
    InsertLoop {
        /// Seconds to run.
        seconds: f64,
    },
}

/// Runs `verb` against `url`, printing what the harness reads.
pub(crate) async fn run(url: &str, verb: Verb) -> refnet_jobs::Result<()> {
    match verb {
        Verb::Reset => {
            let pool = bench::open(url, 1).await?;
            refnet_jobs::migrate(&pool).await?;
            bench::reset(&pool).await?;
        }
        Verb::EnqueueBulk { jobs } => {
            let pool = bench::open(url, 1).await?;
            bench::enqueue_noops(&pool, jobs).await?;
            println!(
                r#"{{"method":"enqueue_many (one INSERT ... SELECT FROM unnest per 50,000 jobs)"}}"#
            );
        }
        Verb::Worker { concurrency } => {
            let pool = bench::open(url, 8).await?;
            let sink = match std::env::var_os("BENCH_LAT_FILE") {
                Some(path) => {
                    let file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .map_err(|e| {
                            refnet_jobs::Error::InvalidOption(format!(
                                "BENCH_LAT_FILE {}: {e}",
                                path.to_string_lossy()
                            ))
                        })?;
                    LatencySink::File(std::sync::Mutex::new(file))
                }
                None => LatencySink::memory(),
            };
            let worker = bench::worker(
                &pool,
                concurrency,
                &WorkerConfig::throughput(),
                Arc::new(sink),
            )?;
            let shutdown = refnet_jobs::CancellationToken::new();
            let signals = shutdown.clone();
            tokio::spawn(async move {
                stop_signal().await;
                signals.cancel();
            });
            worker.run(shutdown).await?;
        }
        Verb::EnqueueTimed { jobs, interval_ms } => {
            let pool = bench::open(url, 1).await?;
            bench::enqueue_timed(&pool, jobs, Duration::from_millis(interval_ms)).await?;
        }
        Verb::InsertLoop { seconds } => {
            let pool = bench::open(url, 1).await?;
            let duration = Duration::try_from_secs_f64(seconds).map_err(|_| {
                refnet_jobs::Error::InvalidOption(format!("insert-loop: bad duration {seconds}"))
            })?;
            let run = bench::insert_loop(&pool, duration).await?;
            println!(
                r#"{{"count": {}, "seconds": {:.3}}}"#,
                run.count, run.seconds
            );
        }
    }
    Ok(())
}

async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
