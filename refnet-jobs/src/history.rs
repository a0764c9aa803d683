//! Queries over jobs: finished history, one job, live counts.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::job::{Job, JobState};
use crate::{Result, db};

/// Which finished jobs [`finished`] returns.
#[derive(Debug, Clone)]
pub struct HistoryFilter {
    /// Finished at or after this instant.
    pub since: DateTime<Utc>,
    /// Only this task.
    pub task: Option<String>,
    /// Only this final state.
    pub state: Option<JobState>,
    /// Only this queue.
    pub queue: Option<String>,
    /// At most this many, newest first.
    pub limit: i64,
}

impl HistoryFilter {
    /// Jobs finished in the last `days` days, at most 100.
    pub fn last_days(days: u32) -> Self {
        HistoryFilter {
            since: Utc::now() - chrono::Duration::days(i64::from(days)),
            task: None,
            state: None,
            queue: None,
            limit: 100,
        }
    }
}

/// Finished jobs (completed, failed, cancelled), newest first.
pub async fn finished(pool: &PgPool, filter: &HistoryFilter) -> Result<Vec<Job>> {
    db::jobs::finished(
        pool,
        filter.since,
        filter.task.as_deref(),
        filter.state.map(JobState::as_str),
        filter.queue.as_deref(),
        filter.limit,
    )
    .await
}

/// One job by id, or `None`.
pub async fn job(pool: &PgPool, id: Uuid) -> Result<Option<Job>> {
    db::jobs::get(pool, id).await
}

/// How many live jobs one queue holds in one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueCount {
    /// The queue.
    pub queue: String,
    /// The state (waiting or running ones only).
    pub state: String,
    /// How many.
    pub count: i64,
}

/// Counts of waiting and running jobs per queue and state.
pub async fn live_counts(pool: &PgPool) -> Result<Vec<QueueCount>> {
    Ok(db::jobs::live_counts(pool)
        .await?
        .into_iter()
        .map(|(queue, state, count)| QueueCount {
            queue,
            state,
            count,
        })
        .collect())
}

/// How many running jobs have an expired lease (their worker likely died).
pub async fn expired_lease_count(pool: &PgPool) -> Result<i64> {
    db::jobs::expired_lease_count(pool).await
}

/// One task's finished jobs over a period, as `history --summary` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct TaskSummary {
    /// The task.
    pub task: String,
    /// Jobs finished.
    pub runs: i64,
    /// Of which failed.
    pub failures: i64,
    /// Of which cancelled.
    pub cancelled: i64,
    /// Completed share of the runs, 0 to 1.
    pub success_rate: f64,
    /// Median duration of the last attempt, in seconds.
    pub median_secs: Option<f64>,
    /// 95th percentile of that duration, in seconds.
    pub p95_secs: Option<f64>,
    /// When the latest failure finished.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Its last error.
    pub last_error: Option<String>,
}

/// Per task, the jobs of `filter` (its state and limit aside): runs,
/// failures, success rate, median and p95 duration, latest failure.
///
/// Fails with [`crate::Error::Database`] when the query fails.
pub async fn summary(pool: &PgPool, filter: &HistoryFilter) -> Result<Vec<TaskSummary>> {
    Ok(db::jobs::summary(
        pool,
        filter.since,
        filter.task.as_deref(),
        filter.queue.as_deref(),
    )
    .await?
    .into_iter()
    .map(|row| TaskSummary {
        success_rate: if row.runs == 0 {
            0.0
        } else {
            (row.runs - row.failures - row.cancelled) as f64 / row.runs as f64
        },
        task: row.task,
        runs: row.runs,
        failures: row.failures,
        cancelled: row.cancelled,
        median_secs: row.median_secs,
        p95_secs: row.p95_secs,
        last_failure_at: row.last_failure_at,
        last_error: row.last_error,
    })
    .collect())
}
