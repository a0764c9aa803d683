//! Maintenance services against a real database: pruning old history.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use refnet_jobs::{Error, NewJob, enqueue, migrate, prune};
use sqlx::PgPool;

const DAY: Duration = Duration::from_secs(86_400);

/// Inserts a finished job of `state` that finished `days_ago` days ago.
async fn finished(pool: &PgPool, state: &str, days_ago: f64) {
    sqlx::query(
        "INSERT INTO refnet_jobs.jobs (id, task, state, attempt, started_at, finished_at)
         VALUES (gen_random_uuid(), 'test.old', $1, 1,
                 now() - make_interval(secs => $2 * 86400.0),
                 now() - make_interval(secs => $2 * 86400.0))",
    )
    .bind(state)
    .bind(days_ago)
    .execute(pool)
    .await
    .unwrap();
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn prune_deletes_only_finished_jobs_older_than_the_retention(pool: PgPool) {
    migrate(&pool).await.unwrap();
    for _ in 0..5 {
        finished(&pool, "completed", 40.0).await;
    }
    finished(&pool, "failed", 31.0).await;
    finished(&pool, "cancelled", 90.0).await;
    finished(&pool, "completed", 29.0).await;
    finished(&pool, "failed", 1.0).await;
    // Waiting jobs, however old, are never history.
    let old = NewJob::new("test.wait", serde_json::json!({}))
        .run_at(chrono::Utc::now() - chrono::Duration::days(60));
    enqueue(&pool, &old).await.unwrap();
    enqueue(&pool, &NewJob::new("test.wait", serde_json::json!({})))
        .await
        .unwrap();
    // Live rows are never pruned, even carrying an old finish time (a job
    // retried by hand after it had failed, say).
    finished(&pool, "running", 50.0).await;
    finished(&pool, "retryable", 50.0).await;

    let pruned = prune(&pool, 30 * DAY, 2).await.unwrap();
    assert_eq!(pruned.deleted, 7, "5 completed, 1 failed, 1 cancelled");
    assert_eq!(pruned.batches, 4, "batches of 2: 2 + 2 + 2 + 1");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM refnet_jobs.jobs WHERE finished_at IS NOT NULL"
        )
        .await,
        4,
        "the two recent finished jobs and the two live ones stay"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM refnet_jobs.jobs WHERE state = 'available'"
        )
        .await,
        2,
        "waiting jobs stay"
    );
    let again = prune(&pool, 30 * DAY, 2).await.unwrap();
    assert_eq!((again.deleted, again.batches), (0, 1));
}

#[sqlx::test(migrations = false)]
async fn a_prune_batch_of_zero_is_refused(pool: PgPool) {
    migrate(&pool).await.unwrap();
    finished(&pool, "completed", 40.0).await;
    let err = prune(&pool, 30 * DAY, 0).await.unwrap_err();
    assert!(matches!(err, Error::InvalidOption(_)), "{err:?}");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM refnet_jobs.jobs").await,
        1,
        "nothing deleted"
    );
}

#[sqlx::test(migrations = false)]
async fn pruners_running_at_once_delete_each_row_once(pool: PgPool) {
    migrate(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO refnet_jobs.jobs (id, task, state, attempt, finished_at)
         SELECT gen_random_uuid(), 'test.old', 'completed', 1, now() - make_interval(days => 40)
         FROM generate_series(1, 20000)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (a, b) = tokio::join!(prune(&pool, 30 * DAY, 500), prune(&pool, 30 * DAY, 500));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.deleted + b.deleted, 20000, "{a:?} {b:?}");
    assert_eq!(
        count(&pool, "SELECT count(*) FROM refnet_jobs.jobs").await,
        0
    );
}

#[sqlx::test(migrations = false)]
async fn purge_deletes_a_large_backlog_in_batches_and_counts_it_all(pool: PgPool) {
    refnet_jobs::migrate(&pool).await.unwrap();
    let jobs: Vec<refnet_jobs::NewJob> = (0..25_001)
        .map(|i| {
            refnet_jobs::NewJob::new(if i % 2 == 0 { "a" } else { "b" }, serde_json::json!({}))
        })
        .collect();
    refnet_jobs::enqueue_many(&pool, &jobs).await.unwrap();
    let purged = refnet_jobs::purge(&pool, None, None, false).await.unwrap();
    assert_eq!(purged.total, 25_001);
    let by_task: Vec<(String, i64)> = purged
        .groups
        .iter()
        .map(|g| (g.task.clone(), g.count))
        .collect();
    assert_eq!(
        by_task,
        vec![("a".to_string(), 12_501), ("b".to_string(), 12_500)]
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM refnet_jobs.jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}
