//! Claim cost against a large history or backlog: the claim must not slow
//! down as finished jobs pile up, nor with a million jobs waiting.

use std::time::Instant;

use serde::Serialize;
use sqlx::PgPool;

use super::{Noop, QUEUE};
use crate::{Result, Task, db};

/// How to run [`scale`].
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    /// Finished jobs in history, one scenario each (with a small backlog).
    pub history_sizes: Vec<i64>,
    /// Waiting jobs of one more scenario (with no history); 0 to skip it.
    pub backlog: i64,
    /// Claims timed per scenario.
    pub claims: usize,
    /// Jobs per claim.
    pub batch: usize,
}

impl Default for ScaleOptions {
    fn default() -> Self {
        ScaleOptions {
            history_sizes: vec![0, 1_000_000, 5_000_000],
            backlog: 1_000_000,
            claims: 500,
            batch: 10,
        }
    }
}

/// One scenario's claim round-trip times.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleRun {
    /// Finished jobs in the table.
    pub history: i64,
    /// Waiting jobs before the first claim.
    pub waiting: i64,
    /// Claims timed.
    pub claims: usize,
    /// Jobs per claim.
    pub batch: usize,
    /// Seconds spent building the scenario.
    pub setup_secs: f64,
    /// Median claim round trip.
    pub p50_ms: f64,
    /// 95th percentile claim round trip.
    pub p95_ms: f64,
    /// Slowest claim.
    pub max_ms: f64,
}

/// Runs every scenario of `options` in turn and returns their figures. Each
/// builds its table (history finished over the last 30 days, vacuumed and
/// analyzed as autovacuum would), then times `claims` claims of `batch` jobs,
/// completing each batch in one statement as the worker does.
///
/// Fails when the database refuses a statement.
pub async fn scale(pool: &PgPool, options: &ScaleOptions) -> Result<Vec<ScaleRun>> {
    let needed = (options.claims * options.batch) as i64;
    let mut scenarios: Vec<(i64, i64)> = options
        .history_sizes
        .iter()
        .map(|&history| (history, needed))
        .collect();
    if options.backlog > 0 {
        scenarios.push((0, options.backlog.max(needed)));
    }
    let mut runs = Vec::with_capacity(scenarios.len());
    for (history, waiting) in scenarios {
        tracing::info!(history, waiting, "building scale scenario");
        let setup = Instant::now();
        super::reset(pool).await?;
        let mut left = history;
        while left > 0 {
            let chunk = left.min(500_000);
            db::bench::fill_history(pool, QUEUE, Noop::NAME, chunk, 30.0, 0.0).await?;
            left -= chunk;
        }
        super::enqueue_noops(pool, waiting as usize).await?;
        db::bench::vacuum_analyze(pool).await?;
        super::checkpoint(pool).await;
        let setup_secs = setup.elapsed().as_secs_f64();
        let times = time_claims(pool, options.claims, options.batch).await?;
        let pick = |p| super::percentile(&times, p).unwrap_or(0.0);
        runs.push(ScaleRun {
            history,
            waiting,
            claims: options.claims,
            batch: options.batch,
            setup_secs,
            p50_ms: pick(50.0),
            p95_ms: pick(95.0),
            max_ms: pick(100.0),
        });
    }
    super::reset(pool).await?;
    Ok(runs)
}

/// Claims `claims` batches, timing each claim, and completes each batch, on
/// one held connection (a pooled one would add sqlx's ping on release).
async fn time_claims(pool: &PgPool, claims: usize, batch: usize) -> Result<Vec<f64>> {
    let mut conn = pool.acquire().await?;
    let worker = "bench-scale";
    let tasks = vec![Noop::NAME.to_string()];
    let null = serde_json::Value::Null;
    let mut times = Vec::with_capacity(claims);
    for _ in 0..claims {
        let started = Instant::now();
        let jobs =
            db::jobs::claim(&mut *conn, QUEUE, batch as i64, worker, 30.0, &tasks, false).await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        let held: Vec<(uuid::Uuid, i32)> = jobs.iter().map(|j| (j.id, j.attempt)).collect();
        let results = vec![&null; held.len()];
        let secs = vec![0.0; held.len()];
        db::jobs::complete_many(&mut *conn, worker, &held, &results, &secs).await?;
    }
    Ok(times)
}
