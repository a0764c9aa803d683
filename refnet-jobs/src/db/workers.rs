//! Statements on `refnet_jobs.workers`, the worker registry.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::Result;

/// One worker as recorded.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct WorkerRow {
    pub(crate) id: String,
    pub(crate) host: String,
    pub(crate) pid: i32,
    pub(crate) queues: Vec<String>,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) last_seen_at: DateTime<Utc>,
    pub(crate) expires_at: DateTime<Utc>,
    /// `expires_at` is still ahead, by the database clock.
    pub(crate) alive: bool,
}

/// Records a worker, or refreshes its record (it is live for `ttl_secs`).
pub(crate) async fn touch<'e>(
    executor: impl PgExecutor<'e>,
    id: &str,
    host: &str,
    pid: i32,
    queues: &[String],
    ttl_secs: f64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO refnet_jobs.workers (id, host, pid, queues, expires_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
         ON CONFLICT (id) DO UPDATE
         SET last_seen_at = now(), expires_at = EXCLUDED.expires_at,
             host = EXCLUDED.host, queues = EXCLUDED.queues, pid = EXCLUDED.pid,
             -- The same id in a new process (a fixed id after a restart) starts anew.
             started_at = CASE WHEN refnet_jobs.workers.pid = EXCLUDED.pid
                                    AND refnet_jobs.workers.host = EXCLUDED.host
                               THEN refnet_jobs.workers.started_at ELSE now() END",
    )
    .bind(id)
    .bind(host)
    .bind(pid)
    .bind(queues)
    .bind(ttl_secs)
    .execute(executor)
    .await?;
    Ok(())
}

/// Removes a worker's record (it stopped cleanly).
pub(crate) async fn remove<'e>(executor: impl PgExecutor<'e>, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM refnet_jobs.workers WHERE id = $1")
        .bind(id)
        .execute(executor)
        .await?;
    Ok(())
}

/// Forgets workers dead for longer than `age_secs`.
pub(crate) async fn forget_dead<'e>(executor: impl PgExecutor<'e>, age_secs: f64) -> Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM refnet_jobs.workers
         WHERE expires_at < now() - make_interval(secs => $1)",
    )
    .bind(age_secs)
    .execute(executor)
    .await?
    .rows_affected())
}

/// Every recorded worker, live ones first, then by start time.
pub(crate) async fn list<'e>(executor: impl PgExecutor<'e>) -> Result<Vec<WorkerRow>> {
    Ok(sqlx::query_as(
        "SELECT id, host, pid, queues, started_at, last_seen_at, expires_at,
                expires_at > now() AS alive
         FROM refnet_jobs.workers
         ORDER BY expires_at > now() DESC, started_at",
    )
    .fetch_all(executor)
    .await?)
}
