//! Runs one claimed job: its handler in its own tokio task (so a panic is
//! caught), interruptible at shutdown, then hands the outcome to the
//! completer and frees its slot at once, before the outcome is written.

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use super::Shared;
use super::complete::Finished;
use crate::job::Job;
use crate::task::{JobContext, TaskError};

/// What became of one attempt.
pub(crate) enum Outcome {
    Completed(serde_json::Value),
    Failed(TaskError),
    /// Stopped by shutdown before it finished.
    Interrupted,
}

pub(crate) async fn run(shared: Arc<Shared>, job: Job, permit: OwnedSemaphorePermit) {
    let interrupt = shared.running.token(job.id);
    let started = std::time::Instant::now();
    tracing::info!(job = %job.id, task = %job.task, attempt = job.attempt, "job started");
    let registered = shared.registry.get(&job.task);
    let outcome = match registered {
        None => Outcome::Failed(TaskError::retryable(format!(
            "no handler for task {:?} on worker {} (it knows: {})",
            job.task,
            shared.id,
            shared.registry.names().join(", ")
        ))),
        Some(task) => {
            let ctx = JobContext {
                id: job.id,
                task: job.task.clone(),
                attempt: job.attempt,
                max_attempts: job.max_attempts,
                cancel: shared.stopping.child_token(),
            };
            let mut handle = tokio::spawn(task.handler.clone().call(ctx, job.args.clone()));
            tokio::select! {
                joined = &mut handle => match joined {
                    Ok(Ok(value)) => Outcome::Completed(value),
                    Ok(Err(error)) => Outcome::Failed(error),
                    Err(join_error) => Outcome::Failed(TaskError::retryable(panic_message(join_error))),
                },
                _ = interrupt.cancelled() => {
                    handle.abort();
                    Outcome::Interrupted
                }
            }
        }
    };
    let retry = registered.map(|t| t.options.retry).unwrap_or_default();
    let retry_in = retry.delay(job.attempt);
    drop(permit);
    shared.completer.send(Finished {
        id: job.id,
        task: job.task,
        attempt: job.attempt,
        outcome,
        retry_in,
        elapsed: started.elapsed(),
    });
}

fn panic_message(error: tokio::task::JoinError) -> String {
    if !error.is_panic() {
        return "task was cancelled".to_string();
    }
    let payload = error.into_panic();
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".to_string());
    format!("task panicked: {text}")
}
