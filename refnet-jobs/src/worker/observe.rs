//! Telling the embedding service how each attempt ended, for metrics and alerts.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::job::JobState;

/// One attempt that has ended, once its outcome is recorded.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AttemptEnded {
    /// The job.
    pub id: Uuid,
    /// Its task.
    pub task: String,
    /// The attempt's number, from 1.
    pub attempt: i32,
    /// The job's state after this attempt: `completed`, `retryable` (it
    /// runs again), `failed` (for good), `cancelled`, or `available` (put
    /// back at shutdown).
    pub state: JobState,
    /// The attempt's error, if it failed.
    pub error: Option<String>,
    /// How long the handler ran.
    pub duration: Duration,
}

/// Called for each [`AttemptEnded`], on the worker's completer: it must
/// return quickly (count, or hand the event to a task of your own).
pub type Observer = Arc<dyn Fn(&AttemptEnded) + Send + Sync>;
