//! Statements on `refnet_jobs.jobs`.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, types::Json};
use uuid::Uuid;

use crate::Result;
use crate::job::{AttemptError, Job};

/// The columns every job query returns, in `JobRow`'s order.
pub(crate) const JOB_COLUMNS: &str = "id, task, queue, args, state, priority, attempt, max_attempts, \
    run_at, created_at, started_at, finished_at, worker_id, errors, result, unique_key, \
    schedule_name, scheduled_for, tags, soft_limit_secs, hard_limit_secs, cancel_requested_at, \
    heartbeat_at, lease_expires_at";

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
    soft_limit_secs: Option<f64>,
    hard_limit_secs: Option<f64>,
    cancel_requested_at: Option<DateTime<Utc>>,
    heartbeat_at: Option<DateTime<Utc>>,
    lease_expires_at: Option<DateTime<Utc>>,
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
            soft_limit_secs: self.soft_limit_secs,
            hard_limit_secs: self.hard_limit_secs,
            cancel_requested_at: self.cancel_requested_at,
            heartbeat_at: self.heartbeat_at,
            lease_expires_at: self.lease_expires_at,
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
    /// The job's own time limits, in seconds (`None`: its task's).
    pub(crate) soft_limit_secs: Option<f64>,
    pub(crate) hard_limit_secs: Option<f64>,
}

/// The tail of a statement whose CTE `changed` (an INSERT or UPDATE) returns
/// `id, queue, state`: one NOTIFY per queue that got an available job, folded per transaction by
/// PostgreSQL. Sent by the statement itself, which costs a fraction of a
/// statement trigger with a transition table.
macro_rules! wake_available {
    () => {
        "woken AS (
             SELECT count(pg_notify('refnet_jobs', queue)) AS n
             FROM (SELECT DISTINCT queue FROM changed WHERE state = 'available') AS q
         )"
    };
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
    if row.unique_key.is_none() {
        // The common case, kept to one plain INSERT whose RETURNING sends the
        // NOTIFY: the conflict handling below, and even the `woken` CTE, cost
        // a fifth each of a single-job enqueue.
        let (id, _): (Uuid, Option<bool>) = sqlx::query_as(
            "INSERT INTO refnet_jobs.jobs
                 (id, task, queue, args, state, priority, max_attempts, run_at,
                  schedule_name, scheduled_for, tags, soft_limit_secs, hard_limit_secs)
             VALUES ($1, $2, $3, $4,
                     CASE WHEN coalesce($7, now()) > now() THEN 'scheduled' ELSE 'available' END,
                     $5, $6, coalesce($7, now()), $8, $9, $10, $11, $12)
             RETURNING id,
                 CASE WHEN state = 'available' THEN pg_notify('refnet_jobs', queue) IS NULL END",
        )
        .bind(row.id)
        .bind(row.task)
        .bind(row.queue)
        .bind(row.args)
        .bind(row.priority)
        .bind(row.max_attempts)
        .bind(row.run_at)
        .bind(row.schedule_name)
        .bind(row.scheduled_for)
        .bind(row.tags)
        .bind(row.soft_limit_secs)
        .bind(row.hard_limit_secs)
        .fetch_one(executor)
        .await?;
        return Ok(Some((id, true)));
    }
    let found: Option<(Option<Uuid>, bool)> = sqlx::query_as(concat!(
        "WITH changed AS (
             INSERT INTO refnet_jobs.jobs
                 (id, task, queue, args, state, priority, max_attempts, run_at, unique_key,
                  schedule_name, scheduled_for, tags, soft_limit_secs, hard_limit_secs)
             VALUES ($1, $2, $3, $4,
                     CASE WHEN coalesce($7, now()) > now() THEN 'scheduled' ELSE 'available' END,
                     $5, $6, coalesce($7, now()), $8, $9, $10, $11, $12, $13)
             ON CONFLICT (unique_key)
                 WHERE unique_key IS NOT NULL
                   AND state IN ('scheduled', 'available', 'running', 'retryable')
             DO NOTHING
             RETURNING id, queue, state
         ), ",
        wake_available!(),
        " SELECT changed.id, true FROM changed, woken
         UNION ALL
         SELECT refnet_jobs.live_job_with_key($8), false
         WHERE NOT EXISTS (SELECT 1 FROM changed)"
    ))
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
    .bind(row.soft_limit_secs)
    .bind(row.hard_limit_secs)
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
    let mut soft = Vec::with_capacity(rows.len());
    let mut hard = Vec::with_capacity(rows.len());
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
        soft.push(row.soft_limit_secs);
        hard.push(row.hard_limit_secs);
    }
    let inserted: Vec<Uuid> = sqlx::query_scalar(concat!(
        "WITH changed AS (
         INSERT INTO refnet_jobs.jobs
             (id, task, queue, args, state, priority, max_attempts, run_at, unique_key, tags,
              soft_limit_secs, hard_limit_secs)
         SELECT id, task, queue, args,
                CASE WHEN coalesce(run_at, now()) > now() THEN 'scheduled' ELSE 'available' END,
                priority, max_attempts, coalesce(run_at, now()), unique_key,
                ARRAY(SELECT jsonb_array_elements_text(tags)), soft, hard
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::smallint[],
                     $6::int[], $7::timestamptz[], $8::text[], $9::jsonb[],
                     $10::float8[], $11::float8[])
              AS t(id, task, queue, args, priority, max_attempts, run_at, unique_key, tags,
                   soft, hard)
         ON CONFLICT (unique_key)
             WHERE unique_key IS NOT NULL
               AND state IN ('scheduled', 'available', 'running', 'retryable')
         DO NOTHING
         RETURNING id, queue, state
         ), ",
        wake_available!(),
        " SELECT changed.id FROM changed, woken"
    ))
    .bind(&ids)
    .bind(&tasks)
    .bind(&queues)
    .bind(&args)
    .bind(&priorities)
    .bind(&max_attempts)
    .bind(&run_ats)
    .bind(&unique_keys)
    .bind(&tags)
    .bind(&soft)
    .bind(&hard)
    .fetch_all(executor)
    .await?;
    Ok(inserted)
}

/// Claims up to `limit` runnable jobs of `queue` for `worker_id`, oldest of the
/// highest priority first, skipping rows other workers hold. Only jobs of
/// `tasks` are taken: a job for a task this worker cannot run waits for one
/// that can (another service may share the queue name). With `async_commit`
/// the claim commits without waiting for its WAL flush (see the migration);
/// `executor` must then not be inside a transaction of the caller's.
pub(crate) async fn claim<'e>(
    executor: impl PgExecutor<'e>,
    queue: &str,
    limit: i64,
    worker_id: &str,
    lease_secs: f64,
    tasks: &[String],
    async_commit: bool,
) -> Result<Vec<Job>> {
    // refnet_jobs.claim (migrations) holds the statement, planned with
    // sequential scans and sorts priced out so that stale statistics cannot
    // turn a claim into a scan of the whole table.
    static CLAIM: LazyLock<String> = LazyLock::new(|| {
        format!("SELECT {JOB_COLUMNS} FROM refnet_jobs.claim($1, $2::int, $3, $4, $5, $6)")
    });
    let rows: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(CLAIM.as_str()))
        .bind(queue)
        .bind(limit)
        .bind(worker_id)
        .bind(lease_secs)
        .bind(tasks)
        .bind(async_commit)
        .fetch_all(executor)
        .await?;
    rows.into_iter().map(JobRow::into_job).collect()
}

/// Marks running jobs completed with their results, in one statement.
/// `secs[i]` is how long job `i` ran: `started_at` becomes its finish time
/// minus that (by the database clock), so a job that waited in a worker's
/// prefetch buffer is not charged for the wait. Returns the ids written; a
/// job this worker no longer holds at that attempt is left alone (fencing:
/// once a lease was rescued, the old attempt's outcome is refused).
pub(crate) async fn complete_many<'e>(
    executor: impl PgExecutor<'e>,
    worker_id: &str,
    held: &[(Uuid, i32)],
    results: &[&serde_json::Value],
    secs: &[f64],
) -> Result<Vec<Uuid>> {
    let (ids, attempts): (Vec<Uuid>, Vec<i32>) = held.iter().copied().unzip();
    Ok(sqlx::query_scalar(
        "UPDATE refnet_jobs.jobs j
         SET state = 'completed', result = c.result, finished_at = now(),
             started_at = now() - make_interval(secs => c.secs), lease_expires_at = NULL
         FROM unnest($2::uuid[], $3::int[], $4::jsonb[], $5::float8[])
              AS c(id, attempt, result, secs)
         WHERE j.id = c.id AND j.attempt = c.attempt AND j.worker_id = $1
           AND j.state = 'running'
         RETURNING j.id",
    )
    .bind(worker_id)
    .bind(&ids)
    .bind(&attempts)
    .bind(results)
    .bind(secs)
    .fetch_all(executor)
    .await?)
}

/// Ends revoked jobs `cancelled`, in one statement, with `reason` in their
/// errors. `secs[i]` is how long job `i` ran, `None` when it never started
/// (`started_at` is then cleared). Fenced as [`complete_many`] is.
pub(crate) async fn cancel_many<'e>(
    executor: impl PgExecutor<'e>,
    worker_id: &str,
    held: &[(Uuid, i32)],
    reasons: &[&str],
    secs: &[Option<f64>],
) -> Result<Vec<Uuid>> {
    let (ids, attempts): (Vec<Uuid>, Vec<i32>) = held.iter().copied().unzip();
    Ok(sqlx::query_scalar(
        "UPDATE refnet_jobs.jobs j
         SET state = 'cancelled', finished_at = now(), lease_expires_at = NULL,
             started_at = now() - make_interval(secs => c.secs),
             errors = j.errors || jsonb_build_array(jsonb_build_object(
                 'attempt', j.attempt, 'at', now(), 'error', c.reason))
         FROM unnest($2::uuid[], $3::int[], $4::text[], $5::float8[])
              AS c(id, attempt, reason, secs)
         WHERE j.id = c.id AND j.attempt = c.attempt AND j.worker_id = $1
           AND j.state = 'running'
         RETURNING j.id",
    )
    .bind(worker_id)
    .bind(&ids)
    .bind(&attempts)
    .bind(reasons)
    .bind(secs)
    .fetch_all(executor)
    .await?)
}

/// One failed attempt to record.
pub(crate) struct Failure<'a> {
    pub(crate) id: Uuid,
    pub(crate) attempt: i32,
    pub(crate) error: &'a str,
    /// No retry, whatever the attempts left.
    pub(crate) permanent: bool,
    pub(crate) retry_in_secs: f64,
    pub(crate) elapsed_secs: f64,
}

/// Records failed attempts in one statement: each job goes back to
/// `retryable` after its delay, or to `failed` when permanent or out of
/// attempts, or to `cancelled` when a revoke came in meanwhile. Returns each written id with its new state; a job this worker no
/// longer holds is left alone (fencing).
pub(crate) async fn fail_many<'e>(
    executor: impl PgExecutor<'e>,
    worker_id: &str,
    failures: &[Failure<'_>],
) -> Result<Vec<(Uuid, String)>> {
    let ids: Vec<Uuid> = failures.iter().map(|f| f.id).collect();
    let attempts: Vec<i32> = failures.iter().map(|f| f.attempt).collect();
    let errors: Vec<&str> = failures.iter().map(|f| f.error).collect();
    let permanent: Vec<bool> = failures.iter().map(|f| f.permanent).collect();
    let delays: Vec<f64> = failures.iter().map(|f| f.retry_in_secs).collect();
    let secs: Vec<f64> = failures.iter().map(|f| f.elapsed_secs).collect();
    Ok(sqlx::query_as(
        "UPDATE refnet_jobs.jobs j
         SET errors = j.errors || jsonb_build_array(jsonb_build_object(
                 'attempt', j.attempt, 'at', now(), 'error', f.error)),
             state = CASE WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
                          WHEN f.permanent OR j.attempt >= j.max_attempts THEN 'failed'
                          ELSE 'retryable' END,
             started_at = now() - make_interval(secs => f.secs),
             finished_at = CASE WHEN j.cancel_requested_at IS NOT NULL OR f.permanent
                                     OR j.attempt >= j.max_attempts THEN now() END,
             run_at = CASE WHEN j.cancel_requested_at IS NOT NULL OR f.permanent
                                OR j.attempt >= j.max_attempts THEN j.run_at
                           ELSE now() + make_interval(secs => f.delay) END,
             lease_expires_at = NULL
         FROM unnest($2::uuid[], $3::text[], $4::bool[], $5::float8[], $6::float8[], $7::int[])
              AS f(id, error, permanent, delay, secs, attempt)
         WHERE j.id = f.id AND j.attempt = f.attempt AND j.worker_id = $1
           AND j.state = 'running'
         RETURNING j.id, j.state",
    )
    .bind(worker_id)
    .bind(&ids)
    .bind(&errors)
    .bind(&permanent)
    .bind(&delays)
    .bind(&secs)
    .bind(&attempts)
    .fetch_all(executor)
    .await?)
}

/// Puts jobs interrupted by shutdown back in line, the interrupted attempt
/// recorded in `errors`. An interruption never fails a job, even on its last
/// attempt: a deploy must not cost a job its last chance. Returns the ids
/// put back.
pub(crate) async fn release<'e>(
    executor: impl PgExecutor<'e>,
    held: &[(Uuid, i32)],
    worker_id: &str,
    error: &str,
) -> Result<Vec<Uuid>> {
    let (ids, attempts): (Vec<Uuid>, Vec<i32>) = held.iter().copied().unzip();
    Ok(sqlx::query_scalar(concat!(
        "WITH changed AS (
             UPDATE refnet_jobs.jobs j
             SET errors = j.errors || jsonb_build_array(jsonb_build_object(
                     'attempt', j.attempt, 'at', now(), 'error', $3::text)),
                 state = CASE WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
                              ELSE 'available' END,
                 finished_at = CASE WHEN j.cancel_requested_at IS NOT NULL THEN now() END,
                 run_at = now(), lease_expires_at = NULL
             FROM unnest($1::uuid[], $4::int[]) AS r(id, attempt)
             WHERE j.id = r.id AND j.attempt = r.attempt AND j.worker_id = $2
               AND j.state = 'running'
             RETURNING j.id, j.queue, j.state
         ), ",
        wake_available!(),
        " SELECT changed.id FROM changed, woken"
    ))
    .bind(&ids)
    .bind(worker_id)
    .bind(error)
    .bind(&attempts)
    .fetch_all(executor)
    .await?)
}

/// Puts back every job still running under `worker_id`, as [`release`]
/// does: the last act of a stopping worker, for jobs whose outcome could not
/// be recorded or whose claim answered too late. Returns how many.
pub(crate) async fn release_held<'e>(
    executor: impl PgExecutor<'e>,
    worker_id: &str,
    error: &str,
) -> Result<u64> {
    let ids: Vec<Uuid> = sqlx::query_scalar(concat!(
        "WITH changed AS (
             UPDATE refnet_jobs.jobs
             SET errors = errors || jsonb_build_array(jsonb_build_object(
                     'attempt', attempt, 'at', now(), 'error', $2::text)),
                 state = CASE WHEN cancel_requested_at IS NOT NULL THEN 'cancelled'
                              ELSE 'available' END,
                 finished_at = CASE WHEN cancel_requested_at IS NOT NULL THEN now() END,
                 run_at = now(), lease_expires_at = NULL
             WHERE worker_id = $1 AND state = 'running'
             RETURNING id, queue, state
         ), ",
        wake_available!(),
        " SELECT changed.id FROM changed, woken"
    ))
    .bind(worker_id)
    .bind(error)
    .fetch_all(executor)
    .await?;
    Ok(ids.len() as u64)
}

/// Returns jobs claimed but never started (a worker's prefetch buffer at
/// shutdown) as if never claimed: the attempt is not counted. One revoked
/// meanwhile ends `cancelled` instead, never having run.
pub(crate) async fn unclaim<'e>(
    executor: impl PgExecutor<'e>,
    held: &[(Uuid, i32)],
    worker_id: &str,
) -> Result<u64> {
    let (ids, attempts): (Vec<Uuid>, Vec<i32>) = held.iter().copied().unzip();
    let ids: Vec<Uuid> = sqlx::query_scalar(concat!(
        "WITH changed AS (
             UPDATE refnet_jobs.jobs j
             SET state = CASE WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
                              ELSE 'available' END,
                 finished_at = CASE WHEN j.cancel_requested_at IS NOT NULL THEN now() END,
                 attempt = j.attempt - 1, started_at = NULL,
                 heartbeat_at = NULL, worker_id = NULL, lease_expires_at = NULL
             FROM unnest($1::uuid[], $3::int[]) AS u(id, attempt)
             WHERE j.id = u.id AND j.attempt = u.attempt AND j.worker_id = $2
               AND j.state = 'running'
             RETURNING j.id, j.queue, j.state
         ), ",
        wake_available!(),
        " SELECT changed.id FROM changed, woken"
    ))
    .bind(&ids)
    .bind(worker_id)
    .bind(&attempts)
    .fetch_all(executor)
    .await?;
    Ok(ids.len() as u64)
}

/// Extends the leases of the jobs this worker holds, each at its attempt.
/// Returns the jobs still held, each with whether a revoke is waiting for it
/// and whether that revoke asks to terminate;
/// a job missing from the answer was taken from this worker (rescued after
/// its lease expired, or deleted).
pub(crate) async fn heartbeat<'e>(
    executor: impl PgExecutor<'e>,
    held: &[(Uuid, i32)],
    worker_id: &str,
    lease_secs: f64,
) -> Result<Vec<(Uuid, bool, bool)>> {
    let (ids, attempts): (Vec<Uuid>, Vec<i32>) = held.iter().copied().unzip();
    Ok(sqlx::query_as(
        "UPDATE refnet_jobs.jobs j
         SET heartbeat_at = now(), lease_expires_at = now() + make_interval(secs => $3)
         FROM unnest($1::uuid[], $4::int[]) AS h(id, attempt)
         WHERE j.id = h.id AND j.attempt = h.attempt AND j.worker_id = $2
           AND j.state = 'running'
         RETURNING j.id, j.cancel_requested_at IS NOT NULL, j.cancel_terminate",
    )
    .bind(&ids)
    .bind(worker_id)
    .bind(lease_secs)
    .bind(&attempts)
    .fetch_all(executor)
    .await?)
}

/// A job taken back from a worker whose lease expired.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Rescued {
    pub(crate) id: Uuid,
    pub(crate) task: String,
    pub(crate) queue: String,
    pub(crate) state: String,
    pub(crate) worker_id: Option<String>,
    pub(crate) attempt: i32,
}

/// Rescues up to `limit` running jobs whose lease expired (see
/// `refnet_jobs.rescue` in the migrations).
pub(crate) async fn rescue<'e>(executor: impl PgExecutor<'e>, limit: i32) -> Result<Vec<Rescued>> {
    Ok(sqlx::query_as(
        "SELECT id, task, queue, state, worker_id, attempt FROM refnet_jobs.rescue($1)",
    )
    .bind(limit)
    .fetch_all(executor)
    .await?)
}

/// What a revoke found and did, read back in one statement.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RevokeRow {
    /// The job's state before the revoke.
    pub(crate) before: String,
    pub(crate) worker_id: Option<String>,
}

/// Revokes job `id`: a waiting job ends `cancelled` at once; a running one
/// gets `cancel_requested_at` and a NOTIFY on the cancel channel (its
/// worker's heartbeat reads the column too, should the NOTIFY be lost). A
/// finished job is left alone. `None` when no such job exists.
pub(crate) async fn revoke<'e>(
    executor: impl PgExecutor<'e>,
    id: Uuid,
    reason: &str,
    terminate: bool,
) -> Result<Option<RevokeRow>> {
    Ok(sqlx::query_as(
        "WITH old AS (
             SELECT id, state FROM refnet_jobs.jobs WHERE id = $1 FOR UPDATE
         ), changed AS (
             UPDATE refnet_jobs.jobs j
             SET cancel_requested_at = coalesce(j.cancel_requested_at, now()),
                 cancel_terminate = j.cancel_terminate OR $3,
                 state = CASE WHEN j.state = 'running' THEN 'running' ELSE 'cancelled' END,
                 finished_at = CASE WHEN j.state = 'running' THEN NULL ELSE now() END,
                 errors = CASE WHEN j.state = 'running' THEN j.errors
                          ELSE j.errors || jsonb_build_array(jsonb_build_object(
                              'attempt', j.attempt, 'at', now(), 'error', $2::text)) END
             FROM old
             WHERE j.id = old.id
               AND old.state IN ('scheduled', 'available', 'retryable', 'running')
             RETURNING j.id, j.state, j.worker_id,
                 CASE WHEN j.state = 'running'
                      THEN pg_notify('refnet_jobs_cancel',
                                     j.id::text || CASE WHEN $3 THEN ' terminate' ELSE '' END)
                           IS NULL END AS notified
         )
         SELECT old.state AS before, changed.worker_id, changed.notified
         FROM old LEFT JOIN changed ON changed.id = old.id",
    )
    .bind(id)
    .bind(reason)
    .bind(terminate)
    .fetch_optional(executor)
    .await?)
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
        // Two halves, each served by its partial index (runnable, running),
        // so the count never reads history.
        "SELECT queue, state, count(*) FROM (
             SELECT queue, state FROM refnet_jobs.jobs
             WHERE state IN ('scheduled', 'available', 'retryable')
             UNION ALL
             SELECT queue, state FROM refnet_jobs.jobs WHERE state = 'running'
         ) AS live
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
    Ok(sqlx::query_scalar(concat!(
        "WITH changed AS (
             INSERT INTO refnet_jobs.jobs
                 (id, task, queue, args, state, priority, max_attempts, run_at,
                  schedule_name, scheduled_for, tags)
             VALUES ($1, $2, $3, $4, 'available', $5, $6, now(), $7, $8, $9)
             ON CONFLICT (schedule_name, scheduled_for) WHERE schedule_name IS NOT NULL
             DO NOTHING
             RETURNING id, queue, state
         ), ",
        wake_available!(),
        " SELECT changed.id FROM changed, woken"
    ))
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

/// Deletes up to `limit` finished jobs that finished more than `age_secs`
/// ago, oldest first, skipping rows locked by another pruner. Returns how
/// many were deleted. The ids are gathered into an array first: with
/// `id IN (subquery)` the planner hash-joins against a scan of the whole
/// table, so each batch would cost as much as the table is big.
pub(crate) async fn delete_finished_before<'e>(
    executor: impl PgExecutor<'e>,
    age_secs: f64,
    limit: i64,
) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM refnet_jobs.jobs
         WHERE id = ANY(ARRAY(
             SELECT id FROM refnet_jobs.jobs
             WHERE finished_at IS NOT NULL
               AND finished_at < now() - make_interval(secs => $1)
               AND state IN ('completed', 'failed', 'cancelled')
             ORDER BY finished_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED
         ))",
    )
    .bind(age_secs)
    .bind(limit)
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// Waiting jobs per queue and task that [`purge_waiting`] would delete.
pub(crate) async fn count_waiting<'e>(
    executor: impl PgExecutor<'e>,
    queue: Option<&str>,
    task: Option<&str>,
) -> Result<Vec<(String, String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT queue, task, count(*) FROM refnet_jobs.jobs
         WHERE state IN ('scheduled', 'available', 'retryable')
           AND ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR task = $2)
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(queue)
    .bind(task)
    .fetch_all(executor)
    .await?)
}

/// Deletes up to `limit` waiting jobs (never running or finished ones),
/// skipping rows a worker is claiming this instant. Returns how many it
/// deleted per queue and task.
pub(crate) async fn purge_waiting<'e>(
    executor: impl PgExecutor<'e>,
    queue: Option<&str>,
    task: Option<&str>,
    limit: i64,
) -> Result<Vec<(String, String, i64)>> {
    Ok(sqlx::query_as(
        "WITH gone AS (
             DELETE FROM refnet_jobs.jobs
             WHERE id = ANY(ARRAY(
                 SELECT id FROM refnet_jobs.jobs
                 WHERE state IN ('scheduled', 'available', 'retryable')
                   AND ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR task = $2)
                 LIMIT $3
                 FOR UPDATE SKIP LOCKED
             ))
               AND state IN ('scheduled', 'available', 'retryable')
             RETURNING queue, task
         )
         SELECT queue, task, count(*) FROM gone GROUP BY 1, 2",
    )
    .bind(queue)
    .bind(task)
    .bind(limit)
    .fetch_all(executor)
    .await?)
}

/// Puts a failed or cancelled job back in line for one more attempt; its
/// errors stay. Returns the state it had, `None` when there is no such job;
/// a job in another state is left alone.
pub(crate) async fn retry<'e>(
    executor: impl PgExecutor<'e>,
    id: Uuid,
) -> Result<Option<(String, bool)>> {
    Ok(sqlx::query_as(concat!(
        "WITH old AS (
             SELECT id, state FROM refnet_jobs.jobs WHERE id = $1 FOR UPDATE
         ), changed AS (
             UPDATE refnet_jobs.jobs j
             SET state = 'available', run_at = now(), finished_at = NULL, result = NULL,
                 cancel_requested_at = NULL, cancel_terminate = false, lease_expires_at = NULL,
                 worker_id = NULL, started_at = NULL, heartbeat_at = NULL,
                 max_attempts = greatest(j.max_attempts, j.attempt + 1)
             FROM old
             WHERE j.id = old.id AND old.state IN ('failed', 'cancelled')
             RETURNING j.id, j.queue, j.state
         ), ",
        wake_available!(),
        " SELECT old.state, EXISTS (SELECT 1 FROM changed) FROM old, woken"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await?)
}

/// Finished jobs that finished more than `age_secs` ago (what a prune would delete).
pub(crate) async fn count_finished_before<'e>(
    executor: impl PgExecutor<'e>,
    age_secs: f64,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM refnet_jobs.jobs
         WHERE finished_at IS NOT NULL
           AND finished_at < now() - make_interval(secs => $1)
           AND state IN ('completed', 'failed', 'cancelled')",
    )
    .bind(age_secs)
    .fetch_one(executor)
    .await?)
}

/// Running jobs, oldest first, at most `limit`.
pub(crate) async fn running<'e>(executor: impl PgExecutor<'e>, limit: i64) -> Result<Vec<Job>> {
    let rows: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM refnet_jobs.jobs WHERE state = 'running'
         ORDER BY started_at LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(executor)
    .await?;
    rows.into_iter().map(JobRow::into_job).collect()
}

/// Per task over jobs finished since `since`: runs, failures, cancellations,
/// median and p95 duration in seconds, and the latest failure.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct SummaryRow {
    pub(crate) task: String,
    pub(crate) runs: i64,
    pub(crate) failures: i64,
    pub(crate) cancelled: i64,
    pub(crate) median_secs: Option<f64>,
    pub(crate) p95_secs: Option<f64>,
    pub(crate) last_failure_at: Option<DateTime<Utc>>,
    pub(crate) last_error: Option<String>,
}

/// See [`SummaryRow`].
pub(crate) async fn summary<'e>(
    executor: impl PgExecutor<'e>,
    since: DateTime<Utc>,
    task: Option<&str>,
    queue: Option<&str>,
) -> Result<Vec<SummaryRow>> {
    Ok(sqlx::query_as(
        "SELECT task, count(*) AS runs,
                count(*) FILTER (WHERE state = 'failed') AS failures,
                count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
                percentile_cont(0.5) WITHIN GROUP (
                    ORDER BY extract(epoch FROM finished_at - started_at))::float8 AS median_secs,
                percentile_cont(0.95) WITHIN GROUP (
                    ORDER BY extract(epoch FROM finished_at - started_at))::float8 AS p95_secs,
                max(finished_at) FILTER (WHERE state = 'failed') AS last_failure_at,
                (array_agg(errors -> -1 ->> 'error' ORDER BY finished_at DESC)
                     FILTER (WHERE state = 'failed'))[1] AS last_error
         FROM refnet_jobs.jobs
         WHERE finished_at IS NOT NULL AND finished_at >= $1
           AND ($2::text IS NULL OR task = $2) AND ($3::text IS NULL OR queue = $3)
         GROUP BY task ORDER BY task",
    )
    .bind(since)
    .bind(task)
    .bind(queue)
    .fetch_all(executor)
    .await?)
}
