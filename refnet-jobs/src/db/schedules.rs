//! Statements on `refnet_jobs.schedules`.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::Result;
use crate::schedule::{ScheduleInfo, ScheduleSpec};

/// The database clock, which judges when ticks are due.
pub(crate) async fn now<'e>(executor: impl PgExecutor<'e>) -> Result<DateTime<Utc>> {
    Ok(sqlx::query_scalar("SELECT now()")
        .fetch_one(executor)
        .await?)
}

/// Inserts or updates a schedule; `next` replaces the stored next tick only when
/// the schedule is new, its timing changed, or it is being re-enabled.
pub(crate) async fn upsert<'e>(
    executor: impl PgExecutor<'e>,
    spec: &ScheduleSpec,
    source: &str,
    next: Option<DateTime<Utc>>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO refnet_jobs.schedules AS s
             (name, cron, timezone, task, args, queue, priority, max_attempts, enabled,
              misfire_policy, misfire_cap, source, next_fire_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT (name) DO UPDATE SET
             cron = EXCLUDED.cron, timezone = EXCLUDED.timezone, task = EXCLUDED.task,
             args = EXCLUDED.args, queue = EXCLUDED.queue, priority = EXCLUDED.priority,
             max_attempts = EXCLUDED.max_attempts, enabled = EXCLUDED.enabled,
             misfire_policy = EXCLUDED.misfire_policy, misfire_cap = EXCLUDED.misfire_cap,
             source = EXCLUDED.source, updated_at = now(),
             next_fire_at = CASE
                 WHEN NOT EXCLUDED.enabled THEN NULL
                 WHEN NOT s.enabled OR s.next_fire_at IS NULL
                      OR s.cron IS DISTINCT FROM EXCLUDED.cron
                      OR s.timezone IS DISTINCT FROM EXCLUDED.timezone
                 THEN EXCLUDED.next_fire_at
                 ELSE s.next_fire_at END",
    )
    .bind(&spec.name)
    .bind(&spec.cron)
    .bind(&spec.timezone)
    .bind(&spec.task)
    .bind(&spec.args)
    .bind(&spec.queue)
    .bind(spec.priority)
    .bind(spec.max_attempts)
    .bind(spec.enabled)
    .bind(spec.misfire.as_str())
    .bind(spec.misfire_cap)
    .bind(source)
    .bind(next)
    .execute(executor)
    .await?;
    Ok(())
}

/// Disables config schedules whose names are not in `keep`; returns their names.
pub(crate) async fn disable_config_except<'e>(
    executor: impl PgExecutor<'e>,
    keep: &[String],
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "UPDATE refnet_jobs.schedules
         SET enabled = false, next_fire_at = NULL, updated_at = now()
         WHERE source = 'config' AND enabled AND NOT (name = ANY($1))
         RETURNING name",
    )
    .bind(keep)
    .fetch_all(executor)
    .await?)
}

type ScheduleRow = (
    String,
    String,
    String,
    String,
    serde_json::Value,
    String,
    i16,
    i32,
    bool,
    String,
    i32,
    String,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<String>,
);

/// Every schedule with the state of the job of its latest tick.
pub(crate) async fn list<'e>(executor: impl PgExecutor<'e>) -> Result<Vec<ScheduleInfo>> {
    let rows: Vec<ScheduleRow> = sqlx::query_as(
        "SELECT s.name, s.cron, s.timezone, s.task, s.args, s.queue, s.priority, s.max_attempts,
                s.enabled, s.misfire_policy, s.misfire_cap, s.source, s.last_fire_at,
                s.next_fire_at, j.state
         FROM refnet_jobs.schedules s
         LEFT JOIN refnet_jobs.jobs j
                ON j.schedule_name = s.name AND j.scheduled_for = s.last_fire_at
         ORDER BY s.name",
    )
    .fetch_all(executor)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(ScheduleInfo {
                spec: ScheduleSpec {
                    name: r.0,
                    cron: r.1,
                    timezone: r.2,
                    task: r.3,
                    args: r.4,
                    queue: r.5,
                    priority: r.6,
                    max_attempts: r.7,
                    enabled: r.8,
                    misfire: r.9.parse()?,
                    misfire_cap: r.10,
                },
                source: r.11,
                last_fire_at: r.12,
                next_fire_at: r.13,
                last_job_state: r.14,
            })
        })
        .collect()
}

/// A due schedule, locked for this transaction.
#[derive(sqlx::FromRow)]
pub(crate) struct DueRow {
    pub(crate) name: String,
    pub(crate) cron: String,
    pub(crate) timezone: String,
    pub(crate) task: String,
    pub(crate) args: serde_json::Value,
    pub(crate) queue: String,
    pub(crate) priority: i16,
    pub(crate) max_attempts: i32,
    pub(crate) misfire_policy: String,
    pub(crate) misfire_cap: i32,
    pub(crate) next_fire_at: DateTime<Utc>,
    pub(crate) db_now: DateTime<Utc>,
}

/// Locks the schedules whose next tick is due by the database clock; rows
/// another scheduler holds are skipped (it is firing them).
pub(crate) async fn lock_due<'e>(executor: impl PgExecutor<'e>, limit: i64) -> Result<Vec<DueRow>> {
    Ok(sqlx::query_as(
        "SELECT name, cron, timezone, task, args, queue, priority, max_attempts,
                misfire_policy, misfire_cap, next_fire_at, now() AS db_now
         FROM refnet_jobs.schedules
         WHERE enabled AND next_fire_at <= now()
         ORDER BY next_fire_at
         LIMIT $1
         FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(executor)
    .await?)
}

/// Moves a schedule past the ticks just handled.
pub(crate) async fn advance<'e>(
    executor: impl PgExecutor<'e>,
    name: &str,
    last_fired: Option<DateTime<Utc>>,
    next: Option<DateTime<Utc>>,
) -> Result<()> {
    sqlx::query(
        "UPDATE refnet_jobs.schedules
         SET last_fire_at = coalesce($2, last_fire_at), next_fire_at = $3
         WHERE name = $1",
    )
    .bind(name)
    .bind(last_fired)
    .bind(next)
    .execute(executor)
    .await?;
    Ok(())
}
