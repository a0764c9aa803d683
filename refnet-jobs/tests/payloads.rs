//! Large payloads against the 8000-byte NOTIFY limit (case B27).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use refnet_jobs::{
    Error, JobContext, MAX_ARGS_BYTES, NewJob, Task, TaskError, Worker, enqueue, get_job, migrate,
};
use sqlx::PgPool;
use sqlx::postgres::PgListener;

/// Reports the byte and character length of its `payload`.
struct EchoLen;

impl Task for EchoLen {
    const NAME: &'static str = "test.echo_len";
    type Args = serde_json::Value;
    type Output = serde_json::Value;
    async fn run(&self, _ctx: JobContext, args: Self::Args) -> Result<Self::Output, TaskError> {
        let payload = args["payload"].as_str().unwrap_or_default();
        Ok(serde_json::json!({ "bytes": payload.len(), "chars": payload.chars().count() }))
    }
}

#[sqlx::test(migrations = false)]
async fn payloads_of_any_size_up_to_the_cap_run_and_notifications_stay_tiny(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let mut listener = PgListener::connect_with(&pool).await.unwrap();
    listener.listen("refnet_jobs").await.unwrap();
    let payloads = [
        "a".repeat(7_990),
        "a".repeat(8_000),
        "é".repeat(4_000),
        "a".repeat(100 * 1024),
        "a".repeat(10 * 1024 * 1024),
    ];
    let mut ids = Vec::new();
    for payload in &payloads {
        let job = NewJob::new("test.echo_len", serde_json::json!({ "payload": payload }));
        ids.push(enqueue(&pool, &job).await.unwrap().id);
    }
    let mut seen = 0;
    while let Ok(Ok(notification)) =
        tokio::time::timeout(Duration::from_millis(500), listener.recv()).await
    {
        assert!(notification.payload().len() <= 200, "a payload is tiny");
        seen += 1;
    }
    assert_eq!(
        seen,
        payloads.len(),
        "one notification per committed enqueue"
    );

    let worker = Worker::builder(pool.clone())
        .register(EchoLen)
        .queue("default", 2)
        .config(fast_config())
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(Duration::from_secs(60), "all payload jobs done", || async {
        count_state(&pool, "completed").await == payloads.len() as i64
    })
    .await;
    token.cancel();
    handle.await.unwrap().unwrap();
    for (id, payload) in ids.iter().zip(&payloads) {
        let result = get_job(&pool, *id).await.unwrap().unwrap().result.unwrap();
        assert_eq!(result["bytes"], payload.len());
        assert_eq!(result["chars"], payload.chars().count());
    }

    let too_big = "a".repeat(MAX_ARGS_BYTES);
    let job = NewJob::new("test.echo_len", serde_json::json!({ "payload": too_big }));
    let error = enqueue(&pool, &job).await.unwrap_err();
    assert!(matches!(error, Error::InvalidArgs(_)), "{error}");
    assert!(error.to_string().contains("the limit is"), "{error}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM refnet_jobs.jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, payloads.len() as i64, "the refused job left no row");

    let nul = NewJob::new("test.echo_len", serde_json::json!({ "payload": "a\u{0}b" }));
    let error = enqueue(&pool, &nul).await.unwrap_err();
    assert!(error.to_string().contains("NUL"), "{error}");

    let long_queue = NewJob::new("test.echo_len", serde_json::json!({})).queue("q".repeat(201));
    assert!(matches!(
        enqueue(&pool, &long_queue).await.unwrap_err(),
        Error::InvalidOption(_)
    ));
}
