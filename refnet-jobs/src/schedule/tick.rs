//! The tick loop. Any number of schedulers may run: each locks due schedule
//! rows with `SKIP LOCKED`, and in one transaction inserts the tick's job and
//! advances the row, so every tick is enqueued exactly once. The unique index
//! on (schedule, tick) backs this even against a stale row.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{CronSchedule, MisfirePolicy};
use crate::Result;
use crate::db::{self, jobs::InsertRow, schedules::DueRow};

/// A tick later than this is a misfire (the scheduler was down); `skip` drops it.
pub const MISFIRE_GRACE: Duration = Duration::from_secs(60);
/// Most due schedules handled in one transaction.
const BATCH: i64 = 100;
/// Most missed ticks walked for the `all` policy before settling for the latest ones.
const MAX_SCAN: usize = 100_000;

/// One tick enqueued by [`fire_due`].
#[derive(Debug, Clone, Serialize)]
pub struct FiredTick {
    /// The schedule.
    pub schedule: String,
    /// The tick's instant.
    pub scheduled_for: DateTime<Utc>,
    /// The job made for it.
    pub job_id: Uuid,
    /// True for a tick fired late, after downtime (older than [`MISFIRE_GRACE`]);
    /// its job carries the tag [`CATCH_UP_TAG`].
    pub catch_up: bool,
}

/// The tag of a job made for a tick fired late, after downtime.
pub const CATCH_UP_TAG: &str = "catch-up";

/// Fires every due tick once: one transaction, due rows locked, jobs inserted,
/// rows advanced. A schedule whose stored expression no longer parses is logged
/// and parked (no next tick) so the others keep firing.
///
/// Fails with [`crate::Error::Database`] when the transaction fails; nothing is
/// fired then, and the next call tries again.
pub async fn fire_due(pool: &PgPool) -> Result<Vec<FiredTick>> {
    let mut tx = pool.begin().await?;
    let due = db::schedules::lock_due(&mut *tx, BATCH).await?;
    let mut fired = Vec::new();
    for row in &due {
        // Each schedule in its own savepoint: a row the database refuses (say,
        // a queue name the jobs table rejects) is parked, not allowed to roll
        // back every other schedule's tick again and again.
        let mut savepoint = sqlx::Acquire::begin(&mut tx).await?;
        match fire_one(&mut savepoint, row).await {
            Ok(ticks) => {
                savepoint.commit().await?;
                fired.extend(ticks);
            }
            Err(error) => {
                savepoint.rollback().await?;
                tracing::error!(schedule = %row.name, %error, "schedule cannot fire; parked until fixed");
                db::schedules::advance(&mut *tx, &row.name, None, None).await?;
            }
        }
    }
    tx.commit().await?;
    for tick in &fired {
        tracing::info!(schedule = %tick.schedule, tick = %tick.scheduled_for, job = %tick.job_id,
            catch_up = tick.catch_up, "cron tick enqueued");
    }
    Ok(fired)
}

/// Enqueues the ticks of one due schedule and advances it.
async fn fire_one(conn: &mut sqlx::PgConnection, row: &DueRow) -> Result<Vec<FiredTick>> {
    let cron = CronSchedule::parse(&row.cron, &row.timezone)?;
    let ticks = ticks_to_fire(&cron, row)?;
    let next = cron.next_after(row.db_now)?;
    let mut fired = Vec::new();
    let grace = chrono::Duration::from_std(MISFIRE_GRACE).unwrap_or_default();
    let catch_up_tags = [CATCH_UP_TAG.to_string()];
    for tick in &ticks {
        let catch_up = row.db_now - *tick > grace;
        let insert = InsertRow {
            id: Uuid::now_v7(),
            task: &row.task,
            queue: &row.queue,
            args: &row.args,
            priority: row.priority,
            max_attempts: row.max_attempts,
            run_at: None,
            unique_key: None,
            schedule_name: Some(&row.name),
            scheduled_for: Some(*tick),
            tags: if catch_up { &catch_up_tags } else { &[] },
            soft_limit_secs: None,
            hard_limit_secs: None,
        };
        if let Some(job_id) = db::jobs::insert_tick(&mut *conn, &insert).await? {
            fired.push(FiredTick {
                schedule: row.name.clone(),
                scheduled_for: *tick,
                job_id,
                catch_up,
            });
        }
    }
    if ticks.is_empty() {
        tracing::info!(schedule = %row.name, missed_since = %row.next_fire_at,
            "missed ticks skipped (misfire policy skip)");
    }
    db::schedules::advance(&mut *conn, &row.name, ticks.last().copied(), Some(next)).await?;
    Ok(fired)
}

/// The ticks of a due schedule to enqueue now, per its misfire policy.
fn ticks_to_fire(cron: &CronSchedule, row: &DueRow) -> Result<Vec<DateTime<Utc>>> {
    let policy: MisfirePolicy = row.misfire_policy.parse()?;
    let latest = cron.latest_at_or_before(row.db_now)?.max(row.next_fire_at);
    let grace = chrono::Duration::from_std(MISFIRE_GRACE).unwrap_or_default();
    Ok(match policy {
        MisfirePolicy::Once => vec![latest],
        MisfirePolicy::Skip if row.db_now - latest <= grace => vec![latest],
        MisfirePolicy::Skip => Vec::new(),
        MisfirePolicy::All => {
            let cap = usize::try_from(row.misfire_cap).unwrap_or(1).max(1);
            let mut ticks = std::collections::VecDeque::with_capacity(cap);
            let mut tick = row.next_fire_at;
            for _ in 0..MAX_SCAN {
                if tick > row.db_now {
                    break;
                }
                if ticks.len() == cap {
                    ticks.pop_front();
                }
                ticks.push_back(tick);
                tick = cron.next_after(tick)?;
            }
            if ticks.back() != Some(&latest) {
                ticks.push_back(latest);
                if ticks.len() > cap {
                    ticks.pop_front();
                }
            }
            ticks.into()
        }
    })
}

/// Runs [`fire_due`] every `poll_interval` until shut down.
pub struct Scheduler {
    pool: PgPool,
    poll_interval: Duration,
}

impl Scheduler {
    /// A scheduler on `pool`, checking for due ticks every second.
    pub fn new(pool: PgPool) -> Self {
        Scheduler {
            pool,
            poll_interval: Duration::from_secs(1),
        }
    }

    /// How often due ticks are looked for (at least 10 ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Fires due ticks until `shutdown` fires. Database errors are logged and
    /// retried with backoff; they never stop the loop.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut pause = self.poll_interval;
        loop {
            match fire_due(&self.pool).await {
                Ok(_) => pause = self.poll_interval,
                Err(error) => {
                    pause = (pause * 2).min(Duration::from_secs(30));
                    tracing::warn!(%error, ?pause, "scheduler could not fire due ticks; retrying");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}
