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
              misfire_policy, misfire_cap, source, next_fire_at, disabled_reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (name) DO UPDATE SET
             cron = EXCLUDED.cron, timezone = EXCLUDED.timezone, task = EXCLUDED.task,
             args = EXCLUDED.args, queue = EXCLUDED.queue, priority = EXCLUDED.priority,
             max_attempts = EXCLUDED.max_attempts, enabled = EXCLUDED.enabled,
             misfire_policy = EXCLUDED.misfire_policy, misfire_cap = EXCLUDED.misfire_cap,
             source = EXCLUDED.source, disabled_reason = EXCLUDED.disabled_reason,
             updated_at = now(),
             next_fire_at = CASE
                 WHEN NOT EXCLUDED.enabled OR s.paused_at IS NOT NULL THEN NULL
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
    .bind(spec.disabled_reason.as_deref().filter(|_| !spec.enabled))
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
         SET enabled = false, next_fire_at = NULL, updated_at = now(),
             disabled_reason = 'no longer in the runner''s config'
         WHERE source = 'config' AND enabled AND NOT (name = ANY($1))
         RETURNING name",
    )
    .bind(keep)
    .fetch_all(executor)
    .await?)
}

/// A schedule row with the state of its latest tick's job.
#[derive(sqlx::FromRow)]
struct ScheduleRow {
    name: String,
    cron: String,
    timezone: String,
    task: String,
    args: serde_json::Value,
    queue: String,
    priority: i16,
    max_attempts: i32,
    enabled: bool,
    misfire_policy: String,
    misfire_cap: i32,
    source: String,
    last_fire_at: Option<DateTime<Utc>>,
    next_fire_at: Option<DateTime<Utc>>,
    last_job_state: Option<String>,
    paused_at: Option<DateTime<Utc>>,
    disabled_reason: Option<String>,
}

/// Every schedule with the state of the job of its latest tick.
pub(crate) async fn list<'e>(executor: impl PgExecutor<'e>) -> Result<Vec<ScheduleInfo>> {
    let rows: Vec<ScheduleRow> = sqlx::query_as(
        "SELECT s.name, s.cron, s.timezone, s.task, s.args, s.queue, s.priority, s.max_attempts,
                s.enabled, s.misfire_policy, s.misfire_cap, s.source, s.last_fire_at,
                s.next_fire_at, j.state AS last_job_state, s.paused_at, s.disabled_reason
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
                    name: r.name,
                    cron: r.cron,
                    timezone: r.timezone,
                    task: r.task,
                    args: r.args,
                    queue: r.queue,
                    priority: r.priority,
                    max_attempts: r.max_attempts,
                    enabled: r.enabled,
                    misfire: r.misfire_policy.parse()?,
                    misfire_cap: r.misfire_cap,
                    disabled_reason: r.disabled_reason,
                },
                source: r.source,
                last_fire_at: r.last_fire_at,
                next_fire_at: r.next_fire_at,
                last_job_state: r.last_job_state,
                paused_at: r.paused_at,
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
         WHERE enabled AND paused_at IS NULL AND next_fire_at <= now()
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

/// Pauses schedule `name`; false when there is none.
pub(crate) async fn pause<'e>(executor: impl PgExecutor<'e>, name: &str) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE refnet_jobs.schedules
         SET paused_at = coalesce(paused_at, now()), next_fire_at = NULL, updated_at = now()
         WHERE name = $1",
    )
    .bind(name)
    .execute(executor)
    .await?
    .rows_affected()
        == 1)
}

/// Resumes schedule `name` with `next` as its next tick.
pub(crate) async fn resume<'e>(
    executor: impl PgExecutor<'e>,
    name: &str,
    next: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "UPDATE refnet_jobs.schedules
         SET paused_at = NULL, next_fire_at = $2, updated_at = now()
         WHERE name = $1",
    )
    .bind(name)
    .bind(next)
    .execute(executor)
    .await?;
    Ok(())
}

/// Deletes schedule `name`; false when there is none.
pub(crate) async fn remove<'e>(executor: impl PgExecutor<'e>, name: &str) -> Result<bool> {
    Ok(
        sqlx::query("DELETE FROM refnet_jobs.schedules WHERE name = $1")
            .bind(name)
            .execute(executor)
            .await?
            .rows_affected()
            == 1,
    )
}

/// Lifts the pause of schedule `name` without giving it a next tick (its
/// definition keeps it disabled).
pub(crate) async fn unpause_only<'e>(executor: impl PgExecutor<'e>, name: &str) -> Result<()> {
    sqlx::query(
        "UPDATE refnet_jobs.schedules SET paused_at = NULL, updated_at = now() WHERE name = $1",
    )
    .bind(name)
    .execute(executor)
    .await?;
    Ok(())
}
