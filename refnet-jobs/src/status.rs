//! `status`: what runs, what waits, who works and what fires next, in one call.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::job::Job;
use crate::queues::QueueInfo;
use crate::workers::WorkerInfo;
use crate::{Result, db};

/// Most running jobs listed.
const RUNNING_SHOWN: i64 = 50;
/// Most upcoming ticks listed.
const TICKS_SHOWN: usize = 10;

/// The state of the whole system.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The database's clock when this was read.
    pub now: DateTime<Utc>,
    /// Workers, live ones first (dead ones stay listed for a day).
    pub workers: Vec<WorkerInfo>,
    /// Running jobs, oldest first (at most 50).
    pub running: Vec<Job>,
    /// Running jobs whose lease ran out (their worker is likely gone; rescue
    /// takes them back within seconds if any worker lives).
    pub expired_leases: i64,
    /// Queues with their counts, oldest waiting job and pause.
    pub queues: Vec<QueueInfo>,
    /// The next ticks of active schedules, soonest first (at most 10).
    pub next_ticks: Vec<NextTick>,
}

/// A schedule's next tick.
#[derive(Debug, Clone, Serialize)]
pub struct NextTick {
    /// The schedule.
    pub schedule: String,
    /// Its task.
    pub task: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The schedule's zone.
    pub timezone: String,
}

/// Reads [`Status`]. Each part is served by an index over live rows, so the
/// cost does not grow with history.
///
/// Fails with [`crate::Error::Database`] when a query fails.
pub async fn status(pool: &PgPool) -> Result<Status> {
    let now = db::schedules::now(pool).await?;
    let mut next_ticks: Vec<NextTick> = db::schedules::list(pool)
        .await?
        .into_iter()
        .filter(|s| s.is_active())
        .filter_map(|s| {
            Some(NextTick {
                at: s.next_fire_at?,
                schedule: s.spec.name,
                task: s.spec.task,
                timezone: s.spec.timezone,
            })
        })
        .collect();
    next_ticks.sort_by_key(|t| t.at);
    next_ticks.truncate(TICKS_SHOWN);
    Ok(Status {
        now,
        workers: crate::workers::list_workers(pool).await?,
        running: db::jobs::running(pool, RUNNING_SHOWN).await?,
        expired_leases: db::jobs::expired_lease_count(pool).await?,
        queues: db::queues::list(pool).await?,
        next_ticks,
    })
}
