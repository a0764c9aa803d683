//! The benchmark behind `refnet-jobs bench`: the workloads of the project's
//! `WORKLOAD.md`, run against a real database with this crate's own worker.
//!
//! - [`drain`]: N no-op jobs inserted in bulk, then one worker drains them;
//! - [`latency`]: an idle worker, jobs enqueued one at a time at a fixed
//!   interval; enqueue → handler start;
//! - [`insert`]: one client, one job per commit;
//! - [`scale`]: claim round-trip time with large history or backlog;
//! - [`bloat`]: the drain with the xmin horizon held, and while pruning.
//!
//! Every workload works on queue [`QUEUE`] only and empties it first (the
//! table is truncated when it holds nothing else). Run it on a database of
//! its own: the figures mean little on a busy one.

mod bloat;
mod drain;
mod insert;
mod latency;
mod scale;
mod stats;
mod tasks;

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::{Result, Task, db};

pub use bloat::{BloatOptions, BloatRun, bloat};
pub use drain::{DrainOptions, DrainRun, drain};
pub use insert::{InsertRun, insert, insert_loop};
pub use latency::{LatencyOptions, LatencyRun, enqueue_timed, latency};
pub use scale::{ScaleOptions, ScaleRun, scale};
pub use stats::{Summary, percentile, summarize};
pub use tasks::{Lat, LatArgs, LatencySink, Noop, epoch_ms};

/// The queue every benchmark job goes to.
pub const QUEUE: &str = "bench";

/// Empties the benchmark queue and writes a checkpoint, so no repetition
/// starts with the previous one's checkpoint debt. A checkpoint refused for
/// lack of privilege is logged and skipped.
pub async fn reset(pool: &PgPool) -> Result<()> {
    db::bench::reset(pool, QUEUE).await?;
    checkpoint(pool).await;
    Ok(())
}

/// Leaves nothing behind: empties the benchmark queue and removes the
/// benchmark's tasks from the task catalogue.
pub async fn finish(pool: &PgPool) -> Result<()> {
    db::bench::reset(pool, QUEUE).await?;
    db::tasks::remove(pool, &[Noop::NAME, Lat::NAME]).await
}

async fn checkpoint(pool: &PgPool) {
    if let Err(error) = db::bench::checkpoint(pool).await {
        tracing::warn!(%error, "CHECKPOINT refused; figures may carry checkpoint noise");
    }
}

/// A second pool to the same database, so the worker under test does not
/// share connections with the benchmark's own bookkeeping.
async fn pool_like(pool: &PgPool, max_connections: u32) -> Result<PgPool> {
    let options = (*pool.connect_options()).clone();
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .test_before_acquire(false)
        .connect_with(options)
        .await?)
}

/// Waits until `done` returns true, checking every `every`, for at most `limit`.
async fn wait_until<F, Fut>(every: Duration, limit: Duration, mut done: F) -> Result<bool>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if done().await? {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(every).await;
    }
}

/// Shared handle to a running benchmark worker, stopped on drop of the token.
struct RunningWorker {
    shutdown: crate::CancellationToken,
    handle: tokio::task::JoinHandle<Result<()>>,
}

impl RunningWorker {
    fn start(worker: crate::Worker) -> Self {
        let shutdown = crate::CancellationToken::new();
        let handle = tokio::spawn(worker.run(shutdown.clone()));
        RunningWorker { shutdown, handle }
    }

    async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        match self.handle.await {
            Ok(result) => result,
            Err(join) => Err(crate::Error::Bench(format!("its worker crashed: {join}"))),
        }
    }
}

/// Inserts `jobs` no-op jobs in bulk (one statement per 50,000).
///
/// Fails when the database refuses the insert.
pub async fn enqueue_noops(pool: &PgPool, jobs: usize) -> Result<()> {
    let job = crate::NewJob::new(Noop::NAME, serde_json::json!({})).queue(QUEUE);
    let mut left = jobs;
    while left > 0 {
        let chunk = left.min(50_000);
        crate::enqueue_many(pool, &vec![job.clone(); chunk]).await?;
        left -= chunk;
    }
    Ok(())
}

/// A worker on the benchmark queue running its two tasks, latencies going to `sink`.
///
/// Fails with [`crate::Error::InvalidOption`] for a concurrency of 0 or bad tunables.
pub fn worker(
    pool: &PgPool,
    concurrency: usize,
    config: &crate::WorkerConfig,
    sink: Arc<LatencySink>,
) -> Result<crate::Worker> {
    crate::Worker::builder(pool.clone())
        .registry(registry(sink))
        .queue(QUEUE, concurrency)
        .config(config.clone())
        .build()
}

/// Opens a pool for a benchmark client or worker (no ping before each use,
/// which would add a round trip to every call).
///
/// Fails when the database cannot be reached.
pub async fn open(url: &str, max_connections: u32) -> Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .test_before_acquire(false)
        .connect(url)
        .await?)
}

/// The benchmark's own tasks, registered on the worker under test.
fn registry(sink: Arc<LatencySink>) -> crate::Registry {
    let mut registry = crate::Registry::new();
    let options = crate::TaskOptions {
        queue: QUEUE.to_string(),
        ..crate::TaskOptions::default()
    };
    registry.register_with(Noop, options.clone());
    registry.register_with(Lat::new(sink), options);
    registry
}
