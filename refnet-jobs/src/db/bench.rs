//! Statements the benchmark needs beyond the ordinary ones: emptying its
//! queue, counting what it finished, and filling history in bulk.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::Result;

/// Removes every job of `queue`. When the table holds nothing else it is
/// truncated (no dead rows left behind for the next repetition); otherwise only
/// the queue's rows are deleted and the table is vacuumed.
pub(crate) async fn reset(pool: &sqlx::PgPool, queue: &str) -> Result<()> {
    let others: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM refnet_jobs.jobs WHERE queue <> $1)")
            .bind(queue)
            .fetch_one(pool)
            .await?;
    if others {
        sqlx::query("DELETE FROM refnet_jobs.jobs WHERE queue = $1")
            .bind(queue)
            .execute(pool)
            .await?;
        sqlx::query("VACUUM refnet_jobs.jobs").execute(pool).await?;
    } else {
        sqlx::query("TRUNCATE refnet_jobs.jobs")
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Jobs of `queue` completed since `since`: a range of the finished index,
/// however much older history the table holds.
pub(crate) async fn completed<'e>(
    executor: impl PgExecutor<'e>,
    queue: &str,
    since: DateTime<Utc>,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM refnet_jobs.jobs
         WHERE finished_at IS NOT NULL AND finished_at >= $2
           AND queue = $1 AND state = 'completed'",
    )
    .bind(queue)
    .bind(since)
    .fetch_one(executor)
    .await?)
}

/// The database clock.
pub(crate) async fn clock<'e>(executor: impl PgExecutor<'e>) -> Result<DateTime<Utc>> {
    Ok(sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(executor)
        .await?)
}

/// Inserts `count` completed jobs of `queue` in one statement, finished
/// evenly over `days` days ending `age_days` ago, as history accumulated by
/// ordinary work would be.
pub(crate) async fn fill_history<'e>(
    executor: impl PgExecutor<'e>,
    queue: &str,
    task: &str,
    count: i64,
    days: f64,
    age_days: f64,
) -> Result<u64> {
    let done = sqlx::query(
        "INSERT INTO refnet_jobs.jobs
             (id, task, queue, args, state, attempt, run_at, created_at, started_at,
              finished_at, result)
         SELECT gen_random_uuid(), $2, $1, '{}', 'completed', 1, t, t, t, t, 'null'
         FROM (SELECT now() - make_interval(secs => ($5 + $4 * g / $3) * 86400.0) AS t
               FROM generate_series(1, $3) AS g) AS s",
    )
    .bind(queue)
    .bind(task)
    .bind(count)
    .bind(days)
    .bind(age_days)
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// Asks the server to write a checkpoint; needs superuser or `pg_checkpoint`.
pub(crate) async fn checkpoint<'e>(executor: impl PgExecutor<'e>) -> Result<()> {
    sqlx::query("CHECKPOINT").execute(executor).await?;
    Ok(())
}

/// Vacuums and analyzes the jobs table, as autovacuum would over time.
pub(crate) async fn vacuum_analyze<'e>(executor: impl PgExecutor<'e>) -> Result<()> {
    sqlx::query("VACUUM (ANALYZE) refnet_jobs.jobs")
        .execute(executor)
        .await?;
    Ok(())
}
