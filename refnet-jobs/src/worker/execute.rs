//! Runs one claimed job: its handler in its own tokio task (so a panic is
//! caught), under its time limits, stoppable by shutdown, revoke or a lost
//! lease; then hands the outcome to the completer and frees its slot at
//! once, before the outcome is written.

use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;

use super::Shared;
use super::complete::Finished;
use super::held::Stop;
use crate::job::Job;
use crate::limits::{TimeLimits, secs};
use crate::task::{JobContext, TaskError};

/// What became of one attempt.
pub(crate) enum Outcome {
    Completed(serde_json::Value),
    Failed(TaskError),
    /// Stopped by shutdown before it finished: it goes back in line.
    Interrupted,
    /// Revoked: it ends `cancelled`; `started` is false when it never ran.
    Revoked {
        started: bool,
        message: String,
    },
    /// Its lease was taken over: nothing is written.
    Lost,
}

pub(crate) async fn run(shared: Arc<Shared>, job: Job, permit: OwnedSemaphorePermit) {
    let started = Instant::now();
    let registered = shared.registry.get(&job.task);
    let outcome = match shared.held.start(job.id, job.attempt) {
        Err(Stop::Revoked) => Outcome::Revoked {
            started: false,
            message: "revoked before it started".into(),
        },
        Err(_) => Outcome::Lost,
        Ok(tokens) => match registered {
            None => Outcome::Failed(TaskError::retryable(format!(
                "no handler for task {:?} on worker {} (it knows: {})",
                job.task,
                shared.id,
                shared.registry.names().join(", ")
            ))),
            Some(task) => {
                tracing::info!(job = %job.id, task = %job.task, attempt = job.attempt, "job started");
                let limits = limits_of(&job, task.options.time_limits);
                let ctx = JobContext {
                    id: job.id,
                    task: job.task.clone(),
                    attempt: job.attempt,
                    max_attempts: job.max_attempts,
                    cancel: tokens.cancel.clone(),
                };
                let handle = tokio::spawn(task.handler.clone().call(ctx, job.args.clone()));
                let ran = supervise(&job, handle, limits, &tokens.interrupt, &tokens.cancel).await;
                match (ran, shared.held.stop_reason(job.id, job.attempt)) {
                    (Ran::Returned(Ok(value)), _) => Outcome::Completed(value),
                    (Ran::Returned(Err(error)), Some(Stop::Revoked)) => Outcome::Revoked {
                        started: true,
                        message: format!("revoked; the task stopped with: {error}"),
                    },
                    // Stopped on its own because the worker is shutting down:
                    // an interruption, never recorded as a failure.
                    (Ran::Returned(Err(_)), None) if shared.stopping.is_cancelled() => {
                        Outcome::Interrupted
                    }
                    (Ran::Returned(Err(error)), _) => Outcome::Failed(error),
                    (Ran::HardLimit(limit), Some(Stop::Revoked)) => Outcome::Revoked {
                        started: true,
                        message: format!(
                            "revoked; stopped at its hard time limit of {}",
                            secs(limit)
                        ),
                    },
                    (Ran::HardLimit(limit), _) => Outcome::Failed(TaskError::retryable(format!(
                        "hard time limit of {} exceeded; the attempt was stopped",
                        secs(limit)
                    ))),
                    (Ran::Interrupted, Some(Stop::Revoked)) => Outcome::Revoked {
                        started: true,
                        message: if shared.held.was_terminated(job.id, job.attempt) {
                            "revoked with terminate; stopped at once".to_string()
                        } else {
                            format!(
                                "revoked; stopped after the cancel grace of {}",
                                secs(shared.config.cancel_grace)
                            )
                        },
                    },
                    (Ran::Interrupted, Some(Stop::LeaseLost)) => Outcome::Lost,
                    (Ran::Interrupted, _) => Outcome::Interrupted,
                }
            }
        },
    };
    let retry = registered.map(|t| t.options.retry).unwrap_or_default();
    let retry_in = retry.delay(job.attempt);
    shared.held.finish(job.id, job.attempt);
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

/// How the handler's run ended.
enum Ran {
    Returned(Result<serde_json::Value, TaskError>),
    /// Dropped at the hard limit.
    HardLimit(Duration),
    /// Dropped by its interrupt token (shutdown, revoke, lost lease).
    Interrupted,
}

/// Waits for the handler, firing its cancel token at the soft limit and
/// dropping it at the hard limit or when `interrupt` fires.
async fn supervise(
    job: &Job,
    mut handle: tokio::task::JoinHandle<Result<serde_json::Value, TaskError>>,
    limits: TimeLimits,
    interrupt: &tokio_util::sync::CancellationToken,
    cancel: &tokio_util::sync::CancellationToken,
) -> Ran {
    let far = Duration::from_secs(100 * 365 * 24 * 3600);
    let mut soft = pin!(tokio::time::sleep(limits.soft().unwrap_or(far)));
    let mut hard = pin!(tokio::time::sleep(limits.hard().unwrap_or(far)));
    let mut soft_passed = false;
    loop {
        tokio::select! {
            joined = &mut handle => {
                let returned = match joined {
                    Ok(result) => result,
                    Err(join_error) => Err(TaskError::retryable(panic_message(join_error))),
                };
                return Ran::Returned(match (returned, soft_passed, limits.soft()) {
                    (Err(error), true, Some(limit)) => Err(error.with_prefix(&format!(
                        "soft time limit of {} passed; ", secs(limit)))),
                    (returned, _, _) => returned,
                });
            }
            _ = interrupt.cancelled() => {
                handle.abort();
                return Ran::Interrupted;
            }
            _ = &mut soft, if !soft_passed && limits.soft().is_some() => {
                soft_passed = true;
                tracing::warn!(job = %job.id, task = %job.task, limit = ?limits.soft(),
                    "soft time limit passed; asking the job to stop");
                cancel.cancel();
            }
            _ = &mut hard, if limits.hard().is_some() => {
                let limit = limits.hard().unwrap_or(far);
                tracing::warn!(job = %job.id, task = %job.task, ?limit,
                    "hard time limit passed; stopping the job");
                cancel.cancel();
                handle.abort();
                return Ran::HardLimit(limit);
            }
        }
    }
}

/// The job's own limits when it has any, else its task's.
fn limits_of(job: &Job, task: TimeLimits) -> TimeLimits {
    if job.soft_limit_secs.is_none() && job.hard_limit_secs.is_none() {
        return task;
    }
    // Checked at enqueue; a row written by hand that fails the check falls back to the task's.
    TimeLimits::from_secs(job.soft_limit_secs, job.hard_limit_secs).unwrap_or(task)
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
