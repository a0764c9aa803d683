//! Purge: deleting waiting jobs an operator no longer wants (never running
//! or finished ones).

use serde::Serialize;
use sqlx::PgPool;

use crate::{Result, db};

/// Jobs deleted per statement.
const BATCH: i64 = 10_000;

/// Waiting jobs of one queue and task, as [`purge`] counts them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeGroup {
    /// The queue.
    pub queue: String,
    /// The task.
    pub task: String,
    /// How many jobs.
    pub count: i64,
}

/// What [`purge`] deleted, or with `dry_run` would delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Purged {
    /// True when nothing was deleted (a dry run).
    pub dry_run: bool,
    /// Jobs deleted (or that would be).
    pub total: i64,
    /// The same, per queue and task.
    pub groups: Vec<PurgeGroup>,
}

/// Deletes waiting jobs (scheduled, available or retryable) of `queue` and
/// `task` (`None`: any). Running jobs are never touched — revoke those — and
/// a job a worker is claiming at that instant is skipped. With `dry_run`,
/// only counts.
///
/// Fails with [`crate::Error::Database`] when a statement fails; nothing is
/// deleted then.
pub async fn purge(
    pool: &PgPool,
    queue: Option<&str>,
    task: Option<&str>,
    dry_run: bool,
) -> Result<Purged> {
    let rows: Vec<(String, String, i64)> = if dry_run {
        db::jobs::count_waiting(pool, queue, task).await?
    } else {
        // In batches, each its own short transaction, so a large backlog
        // never holds one huge delete (or its rows in memory).
        let mut counts = std::collections::BTreeMap::<(String, String), i64>::new();
        loop {
            let batch = db::jobs::purge_waiting(pool, queue, task, BATCH).await?;
            let deleted: i64 = batch.iter().map(|(_, _, n)| n).sum();
            for (q, t, n) in batch {
                *counts.entry((q, t)).or_default() += n;
            }
            if deleted < BATCH {
                break;
            }
        }
        counts.into_iter().map(|((q, t), n)| (q, t, n)).collect()
    };
    let groups: Vec<PurgeGroup> = rows
        .into_iter()
        .map(|(queue, task, count)| PurgeGroup { queue, task, count })
        .collect();
    Ok(Purged {
        dry_run,
        total: groups.iter().map(|g| g.count).sum(),
        groups,
    })
}
