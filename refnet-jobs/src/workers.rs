//! The worker registry: which workers run, where, and whether they are alive.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;

use crate::{Result, db};

/// One worker as it recorded itself.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerInfo {
    /// Its id, as stored on the jobs it runs.
    pub id: String,
    /// The machine it runs on.
    pub host: String,
    /// Its process id there.
    pub pid: i32,
    /// The queues it works.
    pub queues: Vec<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its latest heartbeat.
    pub last_seen_at: DateTime<Utc>,
    /// When it counts as dead without another heartbeat.
    pub expires_at: DateTime<Utc>,
    /// True while `expires_at` is ahead (database clock). A worker that
    /// stopped cleanly removes itself; a dead one stays listed as not alive
    /// for a day.
    pub alive: bool,
}

/// Every recorded worker, live ones first.
///
/// Fails with [`crate::Error::Database`] when the query fails.
pub async fn list_workers<'e>(executor: impl PgExecutor<'e>) -> Result<Vec<WorkerInfo>> {
    Ok(db::workers::list(executor)
        .await?
        .into_iter()
        .map(|w| WorkerInfo {
            id: w.id,
            host: w.host,
            pid: w.pid,
            queues: w.queues,
            started_at: w.started_at,
            last_seen_at: w.last_seen_at,
            expires_at: w.expires_at,
            alive: w.alive,
        })
        .collect())
}
