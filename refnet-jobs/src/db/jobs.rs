//! Statements on `refnet_jobs.jobs`.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, types::Json};
use uuid::Uuid;

use crate::Result;
use crate::job::{AttemptError, Job, JobState};

/// The columns every job query returns, in `JobRow`'s order.
pub(crate) const JOB_COLUMNS: &str = "id, task, queue, args, state, priority, attempt, max_attempts, \
    run_at, created_at, started_at, finished_at, worker_id, errors, result, unique_key, \
    schedule_name, scheduled_for, tags";

/// A job row as decoded from the database.
#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    id: Uuid,
    task: String,
    queue: String,
    args: serde_json::Value,
    state: String,
    priority: i16,
    attempt: i32,
    max_attempts: i32,
    run_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    worker_id: Option<String>,
    errors: Json<Vec<AttemptError>>,
    result: Option<serde_json::Value>,
    unique_key: Option<String>,
    schedule_name: Option<String>,
    scheduled_for: Option<DateTime<Utc>>,
    tags: Vec<String>,
}

impl JobRow {
    pub(crate) fn into_job(self) -> Result<Job> {
        Ok(Job {
            id: self.id,
            task: self.task,
            queue: self.queue,
            args: self.args,
            state: self.state.parse()?,
            priority: self.priority,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            run_at: self.run_at,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            worker_id: self.worker_id,
            errors: self.errors.0,
            result: self.result,
            unique_key: self.unique_key,
            schedule_name: self.schedule_name,
            scheduled_for: self.scheduled_for,
            tags: self.tags,
        })
    }
}

/// The values of one row to insert.
pub(crate) struct InsertRow<'a> {
    pub(crate) id: Uuid,
    pub(crate) task: &'a str,
    pub(crate) queue: &'a str,
    pub(crate) args: &'a serde_json::Value,
    pub(crate) priority: i16,
    pub(crate) max_attempts: i32,
    /// `None`: now (database clock).
    pub(crate) run_at: Option<DateTime<Utc>>,
    pub(crate) unique_key: Option<&'a str>,
    pub(crate) schedule_name: Option<&'a str>,
    pub(crate) scheduled_for: Option<DateTime<Utc>>,
    pub(crate) tags: &'a [String],
}

/// Inserts one job. With a unique key held by a live job, inserts nothing and
/// returns that job's id; `inserted` tells which happened. `DO NOTHING` takes
/// no lock on the existing job (a `DO UPDATE` would hold it until the caller's
/// transaction ends, stalling its worker's heartbeats and completion).
/// `None` when the live job finished between the conflict and the lookup.
pub(crate) async fn insert_one<'e>(
    executor: impl PgExecutor<'e>,
    row: &InsertRow<'_>,
) -> Result<Option<(Uuid, bool)>> {
    let found: Option<(Option<Uuid>, bool)> = sqlx::query_as(
        "WITH ins AS (
             INSERT INTO refnet_jobs.jobs
                 (id, task, queue, args, state, priority, max_attempts, run_at, unique_key,
                  schedule_name, scheduled_for, tags)
             VALUES ($1, $2, $3, $4,
                     CASE WHEN coalesce($7, now()) > now() THEN 'scheduled' ELSE 'available' END,
                     $5, $6, coalesce($7, now()), $8, $9, $10, $11)
             ON CONFLICT (unique_key)
                 WHERE unique_key IS NOT NULL
                   AND state IN ('scheduled', 'available', 'running', 'retryable')
             DO NOTHING
             RETURNING id
         )
         SELECT id, true FROM ins
         UNION ALL
         SELECT refnet_jobs.live_job_with_key($8), false
         WHERE NOT EXISTS (SELECT 1 FROM ins)",
    )
    .bind(row.id)
    .bind(row.task)
    .bind(row.queue)
    .bind(row.args)
    .bind(row.priority)
    .bind(row.max_attempts)
    .bind(row.run_at)
    .bind(row.unique_key)
    .bind(row.schedule_name)
    .bind(row.scheduled_for)
    .bind(row.tags)
    .fetch_optional(executor)
    .await?;
    Ok(found.and_then(|(id, inserted)| id.map(|id| (id, inserted))))
}

/// Inserts many jobs in one statement; rows whose unique key is held by a live
/// job are skipped. Returns the ids actually inserted.
pub(crate) async fn insert_many<'e>(
    executor: impl PgExecutor<'e>,
    rows: &[InsertRow<'_>],
) -> Result<Vec<Uuid>> {
    let mut ids = Vec::with_capacity(rows.len());
    let mut tasks = Vec::with_capacity(rows.len());
    let mut queues = Vec::with_capacity(rows.len());
    let mut args = Vec::with_capacity(rows.len());
    let mut priorities = Vec::with_capacity(rows.len());
    let mut max_attempts = Vec::with_capacity(rows.len());
    let mut run_ats = Vec::with_capacity(rows.len());
    let mut unique_keys = Vec::with_capacity(rows.len());
    let mut tags = Vec::with_capacity(rows.len());
    for row in rows {
        ids.push(row.id);
        tasks.push(row.task);
        queues.push(row.queue);
        args.push(row.args);
        priorities.push(row.priority);
        max_attempts.push(row.max_attempts);
        run_ats.push(row.run_at);
        unique_keys.push(row.unique_key);
        tags.push(serde_json::json!(row.tags));
    }
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO refnet_jobs.jobs
             (id, task, queue, args, state, priority, max_attempts, run_at, unique_key, tags)
         SELECT id, task, queue, args,
                CASE WHEN coalesce(run_at, now()) > now() THEN 'scheduled' ELSE 'available' END,
                priority, max_attempts, coalesce(run_at, now()), unique_key,
                ARRAY(SELECT jsonb_array_elements_text(tags))
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::smallint[],
                     $6::int[], $7::timestamptz[], $8::text[], $9::jsonb[])
              AS t(id, task, queue, args, priority, max_attempts, run_at, unique_key, tags)
         ON CONFLICT (unique_key)
             WHERE unique_key IS NOT NULL
               AND state IN ('scheduled', 'available', 'running', 'retryable')
         DO NOTHING
         RETURNING id",
    )
    .bind(&ids)
    .bind(&tasks)
    .bind(&queues)
    .bind(&args)
    .bind(&priorities)
    .bind(&max_attempts)
    .bind(&run_ats)
    .bind(&unique_keys)
    .bind(&tags)
    .fetch_all(executor)
    .await?;
    Ok(inserted)
}

/// Claims up to `limit` runnable jobs of `queue` for `worker_id`, oldest of the
/// highest priority first, skipping rows other workers hold. Only jobs of
/// `tasks` are taken: a job for a task this worker cannot run waits for one
/// that can (another service may share the queue name).
pub(crate) async fn claim<'e>(
    executor: impl PgExecutor<'e>,
    queue: &str,
    limit: i64,
    worker_id: &str,
    lease_secs: f64,
    tasks: &[String],
) -> Result<Vec<Job>> {
    static CLAIM: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH picked AS (
             SELECT id FROM refnet_jobs.jobs
             WHERE queue = $1
               AND state IN ('scheduled', 'available', 'retryable')
               AND run_at <= now()
               AND task = ANY($5)
             ORDER BY priority DESC, run_at, id
             LIMIT $2
             FOR UPDATE SKIP LOCKED
         )
         UPDATE refnet_jobs.jobs j
         SET state = 'running', attempt = j.attempt + 1, started_at = now(),
             heartbeat_at = now(), worker_id = $3,
             lease_expires_at = now() + make_interval(secs => $4)
         FROM picked WHERE j.id = picked.id
         RETURNING {}",
            prefixed_columns("j")
        )
    });
    let rows: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(CLAIM.as_str()))
        .bind(queue)
        .bind(limit)
        .bind(worker_id)
        .bind(lease_secs)
        .bind(tasks)
        .fetch_all(executor)
        .await?;
    rows.into_iter().map(JobRow::into_job).collect()
}

fn prefixed_columns(alias: &str) -> String {
    JOB_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Marks a running job completed with its result. Returns false when this
/// worker no longer holds the job (fencing).
pub(crate) async fn complete<'e>(
    executor: impl PgExecutor<'e>,
    id: Uuid,
    worker_id: &str,
    result: &serde_json::Value,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE refnet_jobs.jobs
         SET state = 'completed', result = $3, finished_at = now(), lease_expires_at = NULL
         WHERE id = $1 AND worker_id = $2 AND state = 'running'",
    )
    .bind(id)
    .bind(worker_id)
    .bind(result)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a failed attempt: back to `retryable` after `retry_in_secs`, or
/// `failed` when `permanent` or out of attempts. Returns the new state, or
/// `None` when this worker no longer holds the job.
pub(crate) async fn fail<'e>(
    executor: impl PgExecutor<'e>,
    id: Uuid,
    worker_id: &str,
    error: &str,
    permanent: bool,
    retry_in_secs: f64,
) -> Result<Option<JobState>> {
    let state: Option<String> = sqlx::query_scalar(
        "UPDATE refnet_jobs.jobs
         SET errors = errors || jsonb_build_array(jsonb_build_object(
                 'attempt', attempt, 'at', now(), 'error', $3::text)),
             state = CASE WHEN $4 OR attempt >= max_attempts THEN 'failed' ELSE 'retryable' END,
             finished_at = CASE WHEN $4 OR attempt >= max_attempts THEN now() END,
             run_at = CASE WHEN $4 OR attempt >= max_attempts THEN run_at
                           ELSE now() + make_interval(secs => $5) END,
             lease_expires_at = NULL
         WHERE id = $1 AND worker_id = $2 AND state = 'running'
         RETURNING state",
    )
    .bind(id)
    .bind(worker_id)
    .bind(error)
    .bind(permanent)
    .bind(retry_in_secs)
    .fetch_optional(executor)
    .await?;
    state.map(|s| s.parse()).transpose()
}

/// Puts jobs interrupted by shutdown back in line, the interrupted attempt
/// recorded in `errors`. An interruption never fails a job, even on its last
/// attempt: a deploy must not cost a job its last chance.
pub(crate) async fn release<'e>(
    executor: impl PgExecutor<'e>,
    ids: &[Uuid],
    worker_id: &str,
    error: &str,
) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE refnet_jobs.jobs
         SET errors = errors || jsonb_build_array(jsonb_build_object(
                 'attempt', attempt, 'at', now(), 'error', $3::text)),
             state = 'available', run_at = now(), lease_expires_at = NULL
         WHERE id = ANY($1) AND worker_id = $2 AND state = 'running'",
    )
    .bind(ids)
    .bind(worker_id)
    .bind(error)
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// Extends the lease of the jobs this worker runs.
pub(crate) async fn heartbeat<'e>(
    executor: impl PgExecutor<'e>,
    ids: &[Uuid],
    worker_id: &str,
    lease_secs: f64,
) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE refnet_jobs.jobs
         SET heartbeat_at = now(), lease_expires_at = now() + make_interval(secs => $3)
         WHERE id = ANY($1) AND worker_id = $2 AND state = 'running'",
    )
    .bind(ids)
    .bind(worker_id)
    .bind(lease_secs)
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// Fetches one job by id.
pub(crate) async fn get<'e>(executor: impl PgExecutor<'e>, id: Uuid) -> Result<Option<Job>> {
    let row: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM refnet_jobs.jobs WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(executor)
    .await?;
    row.map(JobRow::into_job).transpose()
}

/// Finished jobs since `since`, newest first, with optional filters.
pub(crate) async fn finished<'e>(
    executor: impl PgExecutor<'e>,
    since: DateTime<Utc>,
    task: Option<&str>,
    state: Option<&str>,
    queue: Option<&str>,
    limit: i64,
) -> Result<Vec<Job>> {
    let rows: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM refnet_jobs.jobs
         WHERE finished_at IS NOT NULL AND finished_at >= $1
           AND ($2::text IS NULL OR task = $2)
           AND ($3::text IS NULL OR state = $3)
           AND ($4::text IS NULL OR queue = $4)
         ORDER BY finished_at DESC
         LIMIT $5"
    )))
    .bind(since)
    .bind(task)
    .bind(state)
    .bind(queue)
    .bind(limit)
    .fetch_all(executor)
    .await?;
    rows.into_iter().map(JobRow::into_job).collect()
}

/// Counts of live (waiting or running) jobs per queue and state; history is
/// left out so the cost does not grow with it.
pub(crate) async fn live_counts<'e>(
    executor: impl PgExecutor<'e>,
) -> Result<Vec<(String, String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT queue, state, count(*) FROM refnet_jobs.jobs
         WHERE state IN ('scheduled', 'available', 'running', 'retryable')
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(executor)
    .await?)
}

/// Inserts the job of one cron tick, unless that tick already has one (the
/// unique index on schedule and tick time decides). Returns the new id.
pub(crate) async fn insert_tick<'e>(
    executor: impl PgExecutor<'e>,
    row: &InsertRow<'_>,
) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "INSERT INTO refnet_jobs.jobs
             (id, task, queue, args, state, priority, max_attempts, run_at,
              schedule_name, scheduled_for, tags)
         VALUES ($1, $2, $3, $4, 'available', $5, $6, now(), $7, $8, $9)
         ON CONFLICT (schedule_name, scheduled_for) WHERE schedule_name IS NOT NULL
         DO NOTHING
         RETURNING id",
    )
    .bind(row.id)
    .bind(row.task)
    .bind(row.queue)
    .bind(row.args)
    .bind(row.priority)
    .bind(row.max_attempts)
    .bind(row.schedule_name)
    .bind(row.scheduled_for)
    .bind(row.tags)
    .fetch_optional(executor)
    .await?)
}

/// Which of `keys` are held by a live (waiting or running) job.
pub(crate) async fn live_unique_keys<'e>(
    executor: impl PgExecutor<'e>,
    keys: &[String],
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT unique_key FROM refnet_jobs.jobs
         WHERE unique_key = ANY($1)
           AND state IN ('scheduled', 'available', 'running', 'retryable')",
    )
    .bind(keys)
    .fetch_all(executor)
    .await?)
}

/// Running jobs whose lease has run out.
pub(crate) async fn expired_lease_count<'e>(executor: impl PgExecutor<'e>) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM refnet_jobs.jobs WHERE state = 'running' AND lease_expires_at < now()",
    )
    .fetch_one(executor)
    .await?)
}
