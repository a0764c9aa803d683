//! The job row and its states.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a job is in its life.
///
/// `scheduled` → `available` → `running` → `completed` | `retryable` | `failed` | `cancelled`;
/// a `retryable` job runs again once its backoff has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its `run_at` time.
    Scheduled,
    /// Ready to be claimed.
    Available,
    /// Claimed by a worker and running.
    Running,
    /// An attempt failed; it runs again after its backoff.
    Retryable,
    /// Finished successfully.
    Completed,
    /// Attempts exhausted or a permanent error.
    Failed,
    /// Revoked before it finished.
    Cancelled,
}

impl JobState {
    /// Every state, in life-cycle order.
    pub const ALL: [JobState; 7] = [
        JobState::Scheduled,
        JobState::Available,
        JobState::Running,
        JobState::Retryable,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Celery's name for the state, for operators used to it.
    pub fn celery_name(self) -> &'static str {
        match self {
            JobState::Scheduled | JobState::Available => "PENDING",
            JobState::Running => "STARTED",
            JobState::Retryable => "RETRY",
            JobState::Completed => "SUCCESS",
            JobState::Failed => "FAILURE",
            JobState::Cancelled => "REVOKED",
        }
    }

    /// True once the job will never run again.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobState {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(s) || state.celery_name() == s)
            .ok_or_else(|| {
                crate::Error::InvalidOption(format!(
                    "unknown job state {s:?}; expected one of scheduled, available, running, retryable, completed, failed, cancelled"
                ))
            })
    }
}

/// One failed attempt, as kept in the job's `errors` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptError {
    /// The attempt number (1-based).
    pub attempt: i32,
    /// When the attempt failed (database clock).
    pub at: DateTime<Utc>,
    /// The error message.
    pub error: String,
}

/// A job as stored in `refnet_jobs.jobs`.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// Time-ordered id (UUID v7), also the public task id.
    pub id: Uuid,
    /// The task name, e.g. `refnet.crawler.crawl_paper`.
    pub task: String,
    /// The queue it waits in.
    pub queue: String,
    /// The task's arguments.
    pub args: serde_json::Value,
    /// Where it is in its life.
    pub state: JobState,
    /// Higher runs first.
    pub priority: i16,
    /// Attempts started so far.
    pub attempt: i32,
    /// Attempts allowed in all.
    pub max_attempts: i32,
    /// Not run before this instant.
    pub run_at: DateTime<Utc>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When its latest attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished for good.
    pub finished_at: Option<DateTime<Utc>>,
    /// The worker that ran (or runs) its latest attempt.
    pub worker_id: Option<String>,
    /// One entry per failed attempt.
    pub errors: Vec<AttemptError>,
    /// What the task returned.
    pub result: Option<serde_json::Value>,
    /// De-duplication key while the job is live.
    pub unique_key: Option<String>,
    /// The schedule that made it, if any.
    pub schedule_name: Option<String>,
    /// The cron tick it was made for, if any.
    pub scheduled_for: Option<DateTime<Utc>>,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// The job's own soft time limit in seconds (`None`: its task's).
    pub soft_limit_secs: Option<f64>,
    /// The job's own hard time limit in seconds (`None`: its task's).
    pub hard_limit_secs: Option<f64>,
    /// When a revoke was asked for, if one was.
    pub cancel_requested_at: Option<DateTime<Utc>>,
    /// The latest heartbeat of the worker running it.
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// When its worker's lease runs out without another heartbeat.
    pub lease_expires_at: Option<DateTime<Utc>>,
}

impl Job {
    /// How long the latest attempt ran, for finished jobs.
    pub fn duration(&self) -> Option<chrono::Duration> {
        Some(self.finished_at? - self.started_at?)
    }

    /// The message of the latest failed attempt, if any.
    pub fn last_error(&self) -> Option<&str> {
        self.errors.last().map(|e| e.error.as_str())
    }
}
