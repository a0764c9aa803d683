//! Queues as operators see them: what each holds, and pausing one.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::{Error, Result, db};

/// One queue: its live jobs and whether it is paused.
#[derive(Debug, Clone, Serialize)]
pub struct QueueInfo {
    /// The queue's name.
    pub name: String,
    /// When it was paused, if it is.
    pub paused_at: Option<DateTime<Utc>>,
    /// Jobs waiting (scheduled, available or retryable).
    pub waiting: i64,
    /// Jobs running.
    pub running: i64,
    /// How long the oldest job that could run now has waited, in seconds.
    pub oldest_waiting_secs: Option<f64>,
}

/// Every queue that holds live jobs or has been paused, by name.
///
/// Fails with [`Error::Database`] when the query fails.
pub async fn list_queues(pool: &PgPool) -> Result<Vec<QueueInfo>> {
    db::queues::list(pool).await
}

/// Pauses `queue`: workers claim nothing more from it and finish what they
/// hold; enqueueing goes on. A queue needs no other setup to be paused.
///
/// Fails with [`Error::InvalidOption`] for an empty name.
pub async fn pause_queue(pool: &PgPool, queue: &str) -> Result<()> {
    check_name(queue)?;
    db::queues::set_paused(pool, queue, true).await
}

/// Resumes a paused queue and wakes its workers. Resuming a queue that is
/// not paused is harmless.
///
/// Fails with [`Error::InvalidOption`] for an empty name.
pub async fn resume_queue(pool: &PgPool, queue: &str) -> Result<()> {
    check_name(queue)?;
    db::queues::set_paused(pool, queue, false).await
}

fn check_name(queue: &str) -> Result<()> {
    if queue.trim().is_empty() {
        return Err(Error::InvalidOption("queue name is empty".into()));
    }
    Ok(())
}
