//! Bloat resistance: the drain of [`super::drain`] three ways — on a clean
//! table, while a long transaction holds back the xmin horizon (so no dead
//! row can be cleaned up), and over and over while [`crate::prune`] deletes a
//! large old history in batches. Each figure should stay within 2× the clean
//! one.

use std::time::Duration;

use serde::Serialize;
use sqlx::{Connection, PgPool};

use super::drain::{DrainOptions, DrainRun, fill_queue, time_drain};
use super::{Noop, QUEUE, pool_like};
use crate::{Pruned, Result, Task, db};

/// How to run [`bloat`].
#[derive(Debug, Clone)]
pub struct BloatOptions {
    /// The drain run in each scenario.
    pub drain: DrainOptions,
    /// Old finished jobs pruned during the third drain.
    pub prune_rows: i64,
}

impl Default for BloatOptions {
    fn default() -> Self {
        BloatOptions {
            drain: DrainOptions::default(),
            prune_rows: 1_000_000,
        }
    }
}

/// The three drains' figures.
#[derive(Debug, Clone, Serialize)]
pub struct BloatRun {
    /// The drain on a freshly emptied table.
    pub clean: DrainRun,
    /// The same drain with a transaction holding the xmin horizon throughout.
    pub held_xmin: DrainRun,
    /// The same drain, repeated for as long as the prune of old history ran
    /// (the last one may end after it).
    pub pruning: Vec<DrainRun>,
    /// Median jobs per second of the drains in `pruning`.
    pub pruning_jobs_per_sec: f64,
    /// What the concurrent prune did.
    pub pruned: Pruned,
    /// held_xmin / clean jobs per second.
    pub held_xmin_ratio: f64,
    /// pruning_jobs_per_sec / clean jobs per second.
    pub pruning_ratio: f64,
}

/// Runs the three scenarios in turn.
///
/// Fails when the database refuses a statement.
pub async fn bloat(pool: &PgPool, options: &BloatOptions) -> Result<BloatRun> {
    let clean = super::drain(pool, &options.drain).await?;

    // A REPEATABLE READ transaction with an xid, open from before the jobs are
    // inserted until the drain ends: every row version the drain leaves
    // behind stays visible to it, so neither vacuum nor index cleanup may
    // remove any.
    super::reset(pool).await?;
    let mut holder = pool.acquire().await?.detach();
    let mut snapshot = holder.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *snapshot)
        .await?;
    sqlx::query("SELECT txid_current()")
        .execute(&mut *snapshot)
        .await?;
    let enqueue_secs = fill_queue(pool, options.drain.jobs).await?;
    let held_xmin = time_drain(pool, &options.drain, enqueue_secs).await;
    snapshot.rollback().await?;
    holder.close().await?;
    let held_xmin = held_xmin?;

    // Old history to prune, finished 31 to 61 days ago, vacuumed as
    // autovacuum would have done long before.
    super::reset(pool).await?;
    let mut left = options.prune_rows;
    while left > 0 {
        let chunk = left.min(1_000_000);
        db::bench::fill_history(pool, QUEUE, Noop::NAME, chunk, 30.0, 31.0).await?;
        left -= chunk;
    }
    db::bench::vacuum_analyze(pool).await?;
    let pruner_pool = pool_like(pool, 1).await?;
    let month = Duration::from_secs(30 * 86_400);
    let pruner = tokio::spawn(async move {
        let pruned = crate::prune(&pruner_pool, month, crate::DEFAULT_PRUNE_BATCH).await;
        pruner_pool.close().await;
        pruned
    });
    let mut pruning = Vec::new();
    while pruning.is_empty() || !pruner.is_finished() {
        let started = std::time::Instant::now();
        super::enqueue_noops(pool, options.drain.jobs).await?;
        let enqueue_secs = started.elapsed().as_secs_f64();
        pruning.push(time_drain(pool, &options.drain, enqueue_secs).await?);
    }
    let pruned = pruner
        .await
        .map_err(|e| crate::Error::Bench(format!("the pruner crashed: {e}")))??;
    let rates: Vec<f64> = pruning.iter().map(|r| r.jobs_per_sec).collect();
    let pruning_jobs_per_sec = super::summarize(&rates).map_or(0.0, |s| s.median);

    let ratio = |rate: f64| rate / clean.jobs_per_sec.max(1e-9);
    Ok(BloatRun {
        held_xmin_ratio: ratio(held_xmin.jobs_per_sec),
        pruning_ratio: ratio(pruning_jobs_per_sec),
        pruning_jobs_per_sec,
        clean,
        held_xmin,
        pruning,
        pruned,
    })
}
