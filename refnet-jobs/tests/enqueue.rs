//! Enqueueing: options, unique keys, bulk inserts, bad input.

#![allow(clippy::unwrap_used)]

mod common;

use refnet_jobs::{Error, JobState, NewJob, enqueue, enqueue_many, get_job, migrate};
use sqlx::PgPool;

#[sqlx::test(migrations = false)]
async fn a_live_unique_key_returns_the_existing_job_and_inserts_nothing(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let job = NewJob::new("t", serde_json::json!({"paper_id": "p1"})).unique_key("crawl:p1");
    let first = enqueue(&pool, &job).await.unwrap();
    let second = enqueue(&pool, &job).await.unwrap();
    assert!(first.inserted);
    assert!(!second.inserted);
    assert_eq!(first.id, second.id);
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM refnet_jobs.jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(total, 1);

    // A finished job frees its key.
    sqlx::query("UPDATE refnet_jobs.jobs SET state = 'completed', finished_at = now()")
        .execute(&pool)
        .await
        .unwrap();
    let third = enqueue(&pool, &job).await.unwrap();
    assert!(third.inserted);
    assert_ne!(third.id, first.id);
}

#[sqlx::test(migrations = false)]
async fn bulk_enqueue_skips_live_and_repeated_unique_keys(pool: PgPool) {
    migrate(&pool).await.unwrap();
    enqueue(
        &pool,
        &NewJob::new("t", serde_json::json!({})).unique_key("k1"),
    )
    .await
    .unwrap();
    let jobs = vec![
        NewJob::new("t", serde_json::json!({})).unique_key("k1"),
        NewJob::new("t", serde_json::json!({})).unique_key("k2"),
        NewJob::new("t", serde_json::json!({})).unique_key("k2"),
        NewJob::new("t", serde_json::json!({})).tag("bulk"),
    ];
    let inserted = enqueue_many(&pool, &jobs).await.unwrap();
    assert_eq!(inserted.len(), 2);
    let tags: Vec<Vec<String>> =
        sqlx::query_scalar("SELECT tags FROM refnet_jobs.jobs WHERE unique_key IS NULL")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(tags, vec![vec!["bulk".to_string()]]);
}

#[sqlx::test(migrations = false)]
async fn options_are_stored_and_future_jobs_wait(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let e = enqueue(
        &pool,
        &NewJob::new("t", serde_json::json!({"a": 1}))
            .queue("crawl")
            .priority(5)
            .max_attempts(7)
            .run_at(later),
    )
    .await
    .unwrap();
    let job = get_job(&pool, e.id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Scheduled);
    assert_eq!(job.queue, "crawl");
    assert_eq!(job.priority, 5);
    assert_eq!(job.max_attempts, 7);
    assert_eq!(job.run_at.timestamp_micros(), later.timestamp_micros());
}

#[sqlx::test(migrations = false)]
async fn bad_options_are_refused_before_anything_is_written(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let cases = [
        NewJob::new("", serde_json::json!({})),
        NewJob::new("t", serde_json::json!({})).queue(" "),
        NewJob::new("t", serde_json::json!({})).max_attempts(0),
    ];
    for job in &cases {
        let err = enqueue(&pool, job).await.unwrap_err();
        assert!(matches!(err, Error::InvalidOption(_)), "{err}");
    }
    assert!(enqueue_many(&pool, &cases).await.is_err());
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM refnet_jobs.jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(total, 0);
}

#[sqlx::test(migrations = false)]
async fn migrations_live_in_their_own_schema_and_table_and_rerun_cleanly(pool: PgPool) {
    migrate(&pool).await.unwrap();
    migrate(&pool).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables
         WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        tables,
        vec![
            "refnet_jobs._migrations",
            "refnet_jobs.jobs",
            "refnet_jobs.queues",
            "refnet_jobs.schedules",
            "refnet_jobs.tasks",
            "refnet_jobs.workers"
        ]
    );
    let non_tz: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.columns
         WHERE table_schema = 'refnet_jobs' AND table_name <> '_migrations'
           AND data_type LIKE 'timestamp%' AND data_type <> 'timestamp with time zone'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(non_tz, 0, "every time column is timestamptz");
}
