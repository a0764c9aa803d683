//! W3, single-client insert rate: the ordinary one-job enqueue, one commit each.

use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::PgPool;

use super::{Noop, QUEUE, pool_like};
use crate::{NewJob, Result, Task};

/// One insert run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct InsertRun {
    /// Jobs enqueued.
    pub count: u64,
    /// Seconds the loop ran.
    pub seconds: f64,
    /// count / seconds: the figure.
    pub jobs_per_sec: f64,
}

/// Enqueues no-op jobs one at a time (each its own commit) from one
/// connection for `duration`.
///
/// Fails when the database refuses an insert.
pub async fn insert(pool: &PgPool, duration: Duration) -> Result<InsertRun> {
    super::reset(pool).await?;
    let client = pool_like(pool, 1).await?;
    let run = insert_loop(&client, duration).await;
    client.close().await;
    run
}

/// The loop of [`insert`] on `client`, without emptying the queue first.
///
/// Fails when the database refuses an insert.
pub async fn insert_loop(client: &PgPool, duration: Duration) -> Result<InsertRun> {
    let job = NewJob::new(Noop::NAME, serde_json::json!({})).queue(QUEUE);
    // The client holds its connection, as a service enqueueing at a high
    // rate should: sqlx pings a pooled connection each time it goes back to
    // the pool, a second round trip per enqueue.
    let mut conn = client.acquire().await?;
    let mut count = 0u64;
    let started = Instant::now();
    while started.elapsed() < duration {
        crate::enqueue(&mut *conn, &job).await?;
        count += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(InsertRun {
        count,
        seconds,
        jobs_per_sec: count as f64 / seconds,
    })
}
