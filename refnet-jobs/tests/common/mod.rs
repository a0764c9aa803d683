//! Helpers shared by the library's integration tests.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use refnet_jobs::{CancellationToken, JobContext, Task, TaskError, TaskOptions, WorkerConfig};
use sqlx::PgPool;
use uuid::Uuid;

/// Counts each real execution per job id.
#[derive(Clone, Default)]
pub struct Audit(pub Arc<Mutex<HashMap<Uuid, u32>>>);

impl Audit {
    pub fn record(&self, id: Uuid) {
        *self.0.lock().unwrap().entry(id).or_default() += 1;
    }
    pub fn runs(&self, id: Uuid) -> u32 {
        self.0.lock().unwrap().get(&id).copied().unwrap_or(0)
    }
    pub fn snapshot(&self) -> HashMap<Uuid, u32> {
        self.0.lock().unwrap().clone()
    }
}

/// A task that records its execution and succeeds.
pub struct Record(pub Audit);

impl Task for Record {
    const NAME: &'static str = "test.record";
    type Args = serde_json::Value;
    type Output = serde_json::Value;
    async fn run(&self, ctx: JobContext, args: Self::Args) -> Result<Self::Output, TaskError> {
        self.0.record(ctx.id);
        Ok(serde_json::json!({ "echo": args }))
    }
}

/// A task that always fails, recording each attempt.
pub struct AlwaysFail(pub Audit);

impl Task for AlwaysFail {
    const NAME: &'static str = "test.always_fail";
    type Args = serde_json::Value;
    type Output = ();
    fn options() -> TaskOptions {
        TaskOptions {
            retry: refnet_jobs::RetryPolicy {
                base: Duration::from_millis(200),
                max: Duration::from_secs(10),
                jitter: 0.0,
            },
            ..TaskOptions::default()
        }
    }
    async fn run(&self, ctx: JobContext, _args: Self::Args) -> Result<(), TaskError> {
        self.0.record(ctx.id);
        Err(TaskError::retryable(format!(
            "boom on attempt {}",
            ctx.attempt
        )))
    }
}

/// Worker settings for fast tests.
pub fn fast_config() -> WorkerConfig {
    WorkerConfig {
        poll_interval: Duration::from_millis(100),
        shutdown_grace: Duration::from_secs(5),
        ..WorkerConfig::default()
    }
}

/// Waits until `check` holds, polling; panics with `what` after `limit`.
pub async fn wait_for<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A pool of its own on `pool`'s database, as each worker process would
/// have: a worker keeps two of its pool's connections (LISTEN, heartbeats).
pub async fn own_pool(pool: &PgPool, max_connections: u32) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(max_connections)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap()
}

/// Count of jobs in `state`.
pub async fn count_state(pool: &PgPool, state: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM refnet_jobs.jobs WHERE state = $1")
        .bind(state.to_string())
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Spawns a worker running `build`'s result until the returned token is cancelled.
pub fn spawn_worker(
    worker: refnet_jobs::Worker,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<refnet_jobs::Result<()>>,
) {
    let token = CancellationToken::new();
    let handle = tokio::spawn(worker.run(token.clone()));
    (token, handle)
}
