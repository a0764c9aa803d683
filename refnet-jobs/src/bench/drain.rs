//! W1, drain throughput: N no-op jobs in bulk, then one worker drains them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::PgPool;

use super::{LatencySink, QUEUE, RunningWorker, pool_like};
use crate::{Result, WorkerConfig, db};

/// How to run [`drain`].
#[derive(Debug, Clone)]
pub struct DrainOptions {
    /// Jobs to insert and drain.
    pub jobs: usize,
    /// Jobs run at once by the one worker.
    pub concurrency: usize,
    /// The worker's tunables (batch size, prefetch, …).
    pub worker: WorkerConfig,
    /// Give up after this long and report what was done.
    pub timeout: Duration,
}

impl Default for DrainOptions {
    fn default() -> Self {
        DrainOptions {
            jobs: 20_000,
            concurrency: 10,
            worker: WorkerConfig::throughput(),
            timeout: Duration::from_secs(300),
        }
    }
}

/// One drain run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct DrainRun {
    /// Jobs inserted.
    pub jobs: usize,
    /// Jobs completed before the end (all of them unless timed out).
    pub completed: i64,
    /// Seconds to insert the jobs in bulk (not part of the figure).
    pub enqueue_secs: f64,
    /// Seconds from the worker's start to the last completion seen.
    pub elapsed_secs: f64,
    /// completed / elapsed: the figure.
    pub jobs_per_sec: f64,
    /// Seconds from the worker's start to the first completion seen.
    pub startup_secs: f64,
    /// Rate from the first completion seen to the last.
    pub steady_jobs_per_sec: f64,
}

/// Inserts `jobs` no-op jobs in one statement, then times one worker draining
/// them, polling the completed count every 50 ms (completions are counted only
/// once written to the database).
///
/// Fails when the database refuses a statement.
pub async fn drain(pool: &PgPool, options: &DrainOptions) -> Result<DrainRun> {
    super::reset(pool).await?;
    let enqueue_secs = fill_queue(pool, options.jobs).await?;
    time_drain(pool, options, enqueue_secs).await
}

/// Inserts `jobs` no-op jobs in bulk, then writes a checkpoint and pauses
/// 1 s, as WORKLOAD.md asks before a drain. Returns the insert's seconds.
pub(super) async fn fill_queue(pool: &PgPool, jobs: usize) -> Result<f64> {
    let started = Instant::now();
    super::enqueue_noops(pool, jobs).await?;
    let enqueue_secs = started.elapsed().as_secs_f64();
    super::checkpoint(pool).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(enqueue_secs)
}

/// Starts one worker and times it until `options.jobs` jobs finished since
/// its start (history older than that is not counted).
pub(super) async fn time_drain(
    pool: &PgPool,
    options: &DrainOptions,
    enqueue_secs: f64,
) -> Result<DrainRun> {
    let since = db::bench::clock(pool).await?;
    let worker_pool = pool_like(pool, 8).await?;
    let sink = Arc::new(LatencySink::memory());
    let worker = super::worker(&worker_pool, options.concurrency, &options.worker, sink)?;
    let start = Instant::now();
    let running = RunningWorker::start(worker);
    let target = options.jobs as i64;
    let mut first: Option<(Instant, i64)> = None;
    let mut completed = 0;
    let mut last_change = start;
    loop {
        let now_done = db::bench::completed(pool, QUEUE, since).await?;
        let now = Instant::now();
        if now_done > completed {
            last_change = now;
        }
        completed = now_done;
        if completed > 0 && first.is_none() {
            first = Some((now, completed));
        }
        if completed >= target || now - start > options.timeout {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.stop().await?;
    worker_pool.close().await;
    let elapsed = last_change.duration_since(start).as_secs_f64().max(1e-9);
    let (startup_secs, steady) = match first {
        Some((at, count)) if last_change > at => (
            at.duration_since(start).as_secs_f64(),
            (completed - count) as f64 / last_change.duration_since(at).as_secs_f64(),
        ),
        Some((at, _)) => (at.duration_since(start).as_secs_f64(), 0.0),
        None => (elapsed, 0.0),
    };
    Ok(DrainRun {
        jobs: options.jobs,
        completed,
        enqueue_secs,
        elapsed_secs: elapsed,
        jobs_per_sec: completed as f64 / elapsed,
        startup_secs,
        steady_jobs_per_sec: steady,
    })
}
