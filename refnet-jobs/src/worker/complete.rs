//! Writes an attempt's outcome back, retrying the write while the database is
//! unreachable (a restart, a failover) so a finished job is not left `running`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Shared;
use super::execute::Outcome;
use crate::db;
use crate::job::{Job, JobState};
use crate::retry::RetryPolicy;

/// Retries of an outcome write: with the 5 s cap, about ten minutes in all.
const WRITE_ATTEMPTS: u32 = 125;

pub(crate) async fn record(
    shared: &Shared,
    job: &Job,
    outcome: Outcome,
    retry: RetryPolicy,
    elapsed: Duration,
    interrupt: &CancellationToken,
) {
    let ms = elapsed.as_millis() as u64;
    let mut pause = Duration::from_millis(100);
    for write in 1..=WRITE_ATTEMPTS {
        let written = write_once(shared, job, &outcome, retry).await;
        match written {
            Ok(Some(state)) => {
                match &outcome {
                    Outcome::Failed(error) => tracing::warn!(
                        job = %job.id, task = %job.task, attempt = job.attempt, duration_ms = ms,
                        %state, error = %error, "job attempt failed"
                    ),
                    _ => tracing::info!(
                        job = %job.id, task = %job.task, attempt = job.attempt, duration_ms = ms,
                        %state, "job finished"
                    ),
                }
                return;
            }
            Ok(None) => {
                tracing::warn!(job = %job.id, worker = %shared.id,
                    "job is no longer held by this worker; outcome discarded");
                return;
            }
            Err(error) if write < WRITE_ATTEMPTS => {
                tracing::warn!(job = %job.id, %error, ?pause, "cannot record job outcome; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    // Shutdown's grace period is over: stop waiting for the database.
                    _ = interrupt.cancelled() => {
                        tracing::error!(job = %job.id, "shutting down before the job outcome could be recorded; the job stays running with its lease");
                        return;
                    }
                }
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(error) => {
                tracing::error!(job = %job.id, %error,
                    "giving up recording job outcome after ten minutes; the job stays running with an expired lease");
            }
        }
    }
}

async fn write_once(
    shared: &Shared,
    job: &Job,
    outcome: &Outcome,
    retry: RetryPolicy,
) -> crate::Result<Option<JobState>> {
    match outcome {
        Outcome::Completed(value) => {
            let held = db::jobs::complete(&shared.pool, job.id, &shared.id, value).await?;
            Ok(held.then_some(JobState::Completed))
        }
        Outcome::Failed(error) => {
            let delay = retry.delay(job.attempt).as_secs_f64();
            db::jobs::fail(
                &shared.pool,
                job.id,
                &shared.id,
                error.message(),
                error.is_permanent(),
                delay,
            )
            .await
        }
        Outcome::Interrupted => {
            let released = db::jobs::release(
                &shared.pool,
                &[job.id],
                &shared.id,
                "interrupted: worker shut down before the job finished",
            )
            .await?;
            Ok((released == 1).then_some(JobState::Available))
        }
    }
}
