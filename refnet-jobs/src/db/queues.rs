//! Statements on `refnet_jobs.queues` (paused queues) and per-queue counts.

use sqlx::PgExecutor;

use crate::Result;
use crate::queues::QueueInfo;

/// Pauses or resumes `queue`; resuming removes its row (a queue needs none)
/// and wakes its workers.
pub(crate) async fn set_paused<'e>(
    executor: impl PgExecutor<'e>,
    queue: &str,
    paused: bool,
) -> Result<()> {
    let sql = if paused {
        "INSERT INTO refnet_jobs.queues (name, paused_at) VALUES ($1, now())
         ON CONFLICT (name) DO UPDATE
         SET paused_at = coalesce(refnet_jobs.queues.paused_at, now())"
    } else {
        "WITH gone AS (DELETE FROM refnet_jobs.queues WHERE name = $1 RETURNING name)
         SELECT pg_notify('refnet_jobs', $1) FROM (SELECT count(*) FROM gone) AS done"
    };
    sqlx::query(sql).bind(queue).execute(executor).await?;
    Ok(())
}

/// Every queue with live jobs or a row, with its counts. Served by the two
/// partial indexes (runnable, running), so history does not slow it.
pub(crate) async fn list<'e>(executor: impl PgExecutor<'e>) -> Result<Vec<QueueInfo>> {
    Ok(sqlx::query_as::<
        _,
        (
            String,
            Option<chrono::DateTime<chrono::Utc>>,
            i64,
            i64,
            Option<f64>,
        ),
    >(
        "WITH waiting AS (
             SELECT queue, count(*) AS n,
                    extract(epoch FROM now() - min(run_at) FILTER (WHERE run_at <= now()))::float8
                        AS oldest
             FROM refnet_jobs.jobs
             WHERE state IN ('scheduled', 'available', 'retryable')
             GROUP BY queue
         ), running AS (
             SELECT queue, count(*) AS n FROM refnet_jobs.jobs WHERE state = 'running'
             GROUP BY queue
         ), names AS (
             SELECT queue AS name FROM waiting UNION SELECT queue FROM running
             UNION SELECT name FROM refnet_jobs.queues
         )
         SELECT names.name, q.paused_at, coalesce(w.n, 0), coalesce(r.n, 0), w.oldest
         FROM names
         LEFT JOIN refnet_jobs.queues q ON q.name = names.name
         LEFT JOIN waiting w ON w.queue = names.name
         LEFT JOIN running r ON r.queue = names.name
         ORDER BY names.name",
    )
    .fetch_all(executor)
    .await?
    .into_iter()
    .map(
        |(name, paused_at, waiting, running, oldest_waiting_secs)| QueueInfo {
            name,
            paused_at,
            waiting,
            running,
            oldest_waiting_secs,
        },
    )
    .collect())
}
