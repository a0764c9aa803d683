//! W2, enqueue → handler start: an idle worker woken by NOTIFY, jobs enqueued
//! one at a time on a fixed schedule.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;

use super::{Lat, LatArgs, LatencySink, Noop, QUEUE, RunningWorker, pool_like};
use crate::{Error, NewJob, Result, Task, WorkerConfig, db};

/// How to run [`latency`].
#[derive(Debug, Clone)]
pub struct LatencyOptions {
    /// Jobs to enqueue.
    pub jobs: usize,
    /// One enqueue every this long (on a fixed schedule, no catch-up bursts).
    pub interval: Duration,
    /// Jobs run at once by the worker.
    pub concurrency: usize,
    /// The worker's tunables.
    pub worker: WorkerConfig,
}

impl Default for LatencyOptions {
    fn default() -> Self {
        LatencyOptions {
            jobs: 500,
            interval: Duration::from_millis(20),
            concurrency: 10,
            worker: WorkerConfig::throughput(),
        }
    }
}

/// One latency run's figures, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyRun {
    /// Jobs enqueued.
    pub jobs: usize,
    /// Latencies recorded (all jobs unless some never started within 60 s).
    pub received: usize,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// Enqueues `jobs` latency jobs one per commit, one every `interval` on a
/// fixed schedule (start + i·interval, no catch-up bursts), each carrying the
/// client's clock right before its enqueue.
///
/// Fails when an enqueue fails.
pub async fn enqueue_timed(client: &PgPool, jobs: usize, interval: Duration) -> Result<()> {
    let begin = tokio::time::Instant::now();
    for i in 0..jobs {
        let at = u32::try_from(i)
            .ok()
            .and_then(|i| interval.checked_mul(i))
            .and_then(|offset| begin.checked_add(offset))
            .ok_or_else(|| Error::InvalidOption("the enqueue schedule overflows".into()))?;
        tokio::time::sleep_until(at).await;
        let args = LatArgs {
            t: super::epoch_ms(),
        };
        let job = NewJob::new(Lat::NAME, serde_json::json!(args)).queue(QUEUE);
        crate::enqueue(client, &job).await?;
    }
    Ok(())
}

/// Starts an idle worker, waits for a readiness job, lets it idle for 3 s,
/// then enqueues `jobs` jobs one per commit, one every `interval`, each
/// carrying the client's clock; the handler records now − then.
///
/// Fails when the database refuses a statement or no latency was recorded.
pub async fn latency(pool: &PgPool, options: &LatencyOptions) -> Result<LatencyRun> {
    super::reset(pool).await?;
    let sink = Arc::new(LatencySink::memory());
    let worker_pool = pool_like(pool, 8).await?;
    let worker = super::worker(
        &worker_pool,
        options.concurrency,
        &options.worker,
        sink.clone(),
    )?;
    let running = RunningWorker::start(worker);

    let client = pool_like(pool, 1).await?;
    let since = db::bench::clock(pool).await?;
    crate::enqueue(
        &client,
        &NewJob::new(Noop::NAME, serde_json::json!({})).queue(QUEUE),
    )
    .await?;
    let ready = super::wait_until(
        Duration::from_millis(20),
        Duration::from_secs(60),
        || async { Ok(db::bench::completed(pool, QUEUE, since).await? >= 1) },
    )
    .await?;
    if !ready {
        running.stop().await?;
        return Err(Error::Bench(
            "the worker did not run its readiness job within 60 s".into(),
        ));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    enqueue_timed(&client, options.jobs, options.interval).await?;
    super::wait_until(
        Duration::from_millis(50),
        Duration::from_secs(60),
        || async { Ok(sink.len() >= options.jobs) },
    )
    .await?;
    running.stop().await?;
    client.close().await;
    worker_pool.close().await;

    let values = sink.values();
    let pick = |p| super::percentile(&values, p);
    match (pick(50.0), pick(95.0), pick(99.0), pick(100.0)) {
        (Some(p50_ms), Some(p95_ms), Some(p99_ms), Some(max_ms)) => Ok(LatencyRun {
            jobs: options.jobs,
            received: values.len(),
            p50_ms,
            p95_ms,
            p99_ms,
            max_ms,
        }),
        _ => Err(Error::Bench(
            "no job started within 60 s of its enqueue".into(),
        )),
    }
}
