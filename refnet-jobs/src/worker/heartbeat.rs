//! The worker's upkeep loop: it renews the leases of the jobs held here,
//! picks up revokes (should their NOTIFY have been lost), stops jobs whose
//! lease was taken over, keeps this worker's registry row fresh, and rescues
//! jobs of dead workers. It runs on a connection of the worker's own small
//! pool (`Shared::control`), so tasks holding every connection of the main
//! pool cannot starve the heartbeats, even after a reconnect.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres};
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::db;

/// Rescued per statement; more wait for the next round.
const RESCUE_BATCH: i32 = 1000;
/// Registry rows of workers dead this long are deleted.
const FORGET_DEAD_WORKERS: Duration = Duration::from_secs(24 * 3600);

/// This loop's own pool connection, taken again after an error.
struct Control {
    pool: sqlx::PgPool,
    conn: Option<PoolConnection<Postgres>>,
}

impl Control {
    async fn get(&mut self) -> crate::Result<&mut PgConnection> {
        if self.conn.is_none() {
            self.conn = Some(self.pool.acquire().await?);
        }
        Ok(self.conn.as_mut().expect("just set"))
    }

    /// Drops the connection after an error: the next round takes a fresh one.
    fn reset(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            conn.close_on_drop();
        }
    }
}

/// Runs every `heartbeat_interval` (rescue every `rescue_interval`) until `stop` fires.
pub(crate) async fn run(shared: Arc<Shared>, queues: Vec<String>, stop: CancellationToken) {
    let mut control = Control {
        pool: shared.control.clone(),
        conn: None,
    };
    let mut last_rescue: Option<Instant> = None;
    loop {
        if let Err(error) = beat(&shared, &queues, &mut control).await {
            tracing::warn!(%error, "heartbeat failed; retrying");
            control.reset();
        }
        if last_rescue.is_none_or(|at| at.elapsed() >= shared.config.rescue_interval) {
            last_rescue = Some(Instant::now());
            if let Err(error) = rescue(&mut control).await {
                tracing::warn!(%error, "rescue of expired leases failed; retrying");
                control.reset();
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(shared.config.heartbeat_interval) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// One heartbeat: the registry row, then the leases.
async fn beat(shared: &Shared, queues: &[String], control: &mut Control) -> crate::Result<()> {
    let conn = control.get().await?;
    let lease = shared.config.lease.as_secs_f64();
    db::workers::touch(
        &mut *conn,
        &shared.id,
        &shared.host,
        std::process::id() as i32,
        queues,
        lease,
    )
    .await?;
    let held = shared.held.attempts();
    if held.is_empty() {
        return Ok(());
    }
    let renewed = db::jobs::heartbeat(&mut *conn, &held, &shared.id, lease).await?;
    let still: HashSet<uuid::Uuid> = renewed.iter().map(|(id, _, _)| *id).collect();
    for (id, revoked, terminate) in renewed {
        if revoked
            && shared
                .held
                .revoke(id, shared.config.cancel_grace, terminate)
        {
            tracing::info!(job = %id, "revoke found by heartbeat; cancelling the job");
        }
    }
    for (id, attempt) in held {
        if !still.contains(&id) && shared.held.lose(id, attempt) {
            tracing::warn!(job = %id, attempt, worker = %shared.id,
                "lost the job's lease (another worker rescued it); stopping this attempt");
        }
    }
    Ok(())
}

/// Takes back jobs whose worker stopped renewing their lease.
async fn rescue(control: &mut Control) -> crate::Result<()> {
    let conn = control.get().await?;
    for job in db::jobs::rescue(&mut *conn, RESCUE_BATCH).await? {
        tracing::warn!(job = %job.id, task = %job.task, queue = %job.queue,
            attempt = job.attempt, worker = job.worker_id.as_deref().unwrap_or("?"),
            state = %job.state, "rescued a job whose worker stopped renewing its lease");
    }
    db::workers::forget_dead(&mut *conn, FORGET_DEAD_WORKERS.as_secs_f64()).await?;
    Ok(())
}
