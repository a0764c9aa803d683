//! Pruning: finished jobs older than the retention are deleted in small
//! batches, each its own short transaction, so the hot path never waits on a
//! long delete and vacuum can reclaim the space as the prune goes. After each
//! batch the pruner rests as long as the batch took, so it never takes more
//! than half of the database's time from the workers.

use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::PgPool;

use crate::{Error, Result, db};

/// How long finished jobs stay in history by default.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

/// Rows deleted per statement by default: small enough to keep each
/// transaction in the tens of milliseconds.
pub const DEFAULT_PRUNE_BATCH: usize = 10_000;

/// What one [`prune`] did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pruned {
    /// Finished jobs deleted.
    pub deleted: u64,
    /// Statements (batches) it took.
    pub batches: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Deletes finished jobs (completed, failed, cancelled) that finished more
/// than `older_than` ago by the database clock, `batch` rows per
/// transaction, until none is left. Waiting and running jobs are never
/// touched. Safe to run from several processes at once: batches skip rows
/// another pruner holds.
///
/// ```no_run
/// # async fn demo(pool: sqlx::PgPool) -> refnet_jobs::Result<()> {
/// let month = std::time::Duration::from_secs(30 * 86_400);
/// let pruned = refnet_jobs::prune(&pool, month, refnet_jobs::DEFAULT_PRUNE_BATCH).await?;
/// println!("deleted {} finished jobs", pruned.deleted);
/// # Ok(()) }
/// ```
///
/// Fails with [`Error::InvalidOption`] for a batch of 0, and when the
/// database refuses a delete (the batches already done stay deleted).
pub async fn prune(pool: &PgPool, older_than: Duration, batch: usize) -> Result<Pruned> {
    if batch == 0 {
        return Err(Error::InvalidOption(
            "the prune batch must be at least 1".into(),
        ));
    }
    let started = Instant::now();
    let mut pruned = Pruned {
        deleted: 0,
        batches: 0,
        seconds: 0.0,
    };
    loop {
        let batch_started = Instant::now();
        let deleted =
            db::jobs::delete_finished_before(pool, older_than.as_secs_f64(), batch as i64).await?;
        pruned.deleted += deleted;
        pruned.batches += 1;
        if deleted < batch as u64 {
            break;
        }
        tokio::time::sleep(batch_started.elapsed()).await;
    }
    pruned.seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        deleted = pruned.deleted,
        batches = pruned.batches,
        "pruned finished jobs"
    );
    Ok(pruned)
}

/// How many finished jobs a [`prune`] with `older_than` would delete now
/// (for a dry run).
///
/// Fails with [`Error::InvalidOption`] for an age too large to express and
/// [`Error::Database`] when the count fails.
pub async fn prunable(pool: &PgPool, older_than: Duration) -> Result<i64> {
    let age = older_than.as_secs_f64();
    if !age.is_finite() || age > 1e12 {
        return Err(Error::InvalidOption(format!(
            "retention {older_than:?} is out of range"
        )));
    }
    db::jobs::count_finished_before(pool, age).await
}
