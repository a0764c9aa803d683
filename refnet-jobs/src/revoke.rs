//! Revoking a job: durable, so a lost notification delays it but never drops it.

use serde::Serialize;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::job::JobState;
use crate::{Error, Result, db};

/// What [`revoke`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Revoked {
    /// The job was waiting: it is `cancelled` now and will never run.
    Cancelled {
        /// Its state before.
        was: JobState,
    },
    /// The job is running, or claimed by a worker that has not started it
    /// yet (it then ends `cancelled` without running): the request is stored
    /// and sent to its worker,
    /// which fires the job's cancel token, drops it after its cancel grace
    /// and records it `cancelled` (no retry). Should the worker be dead, the
    /// rescue of its lease ends the job `cancelled` too.
    Stopping {
        /// The worker running it.
        worker: Option<String>,
    },
}

/// Revokes job `id`.
///
/// A job that a worker claimed but has not started yet is `running` in the
/// database; its worker sees the request before starting it and records it
/// `cancelled` without running it.
///
/// Fails with [`Error::NotFound`] for an unknown id and
/// [`Error::AlreadyFinished`] for a job that has finished (its state is left
/// as it was).
pub async fn revoke<'e>(executor: impl PgExecutor<'e>, id: Uuid) -> Result<Revoked> {
    revoke_with(executor, id, false).await
}

/// [`revoke`], and with `terminate` a running job is dropped at once,
/// without the cancel grace in which it may stop on its own (Celery's
/// `revoke(terminate=True)`).
///
/// Fails as [`revoke`] does.
pub async fn revoke_with<'e>(
    executor: impl PgExecutor<'e>,
    id: Uuid,
    terminate: bool,
) -> Result<Revoked> {
    let row = db::jobs::revoke(executor, id, "revoked before it started", terminate)
        .await?
        .ok_or_else(|| Error::NotFound(format!("job {id}")))?;
    let before: JobState = row.before.parse()?;
    match before {
        JobState::Running => Ok(Revoked::Stopping {
            worker: row.worker_id,
        }),
        state if state.is_finished() => Err(Error::AlreadyFinished { id, state }),
        was => Ok(Revoked::Cancelled { was }),
    }
}

/// Re-runs a `failed` or `cancelled` job as a new attempt: it goes back in
/// line now, keeping its errors, with one more attempt allowed if it had
/// used them all. Returns the state it had.
///
/// Fails with [`Error::NotFound`] for an unknown id, with
/// [`Error::WrongState`] for a job that is waiting, running or completed,
/// and when another live job now holds its unique key.
pub async fn retry<'e>(executor: impl PgExecutor<'e>, id: Uuid) -> Result<JobState> {
    let found = db::jobs::retry(executor, id)
        .await
        .map_err(|error| match &error {
            Error::Database(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23505") => {
                Error::WrongState(format!(
                    "job {id} cannot be retried: another live job holds its unique key"
                ))
            }
            _ => error,
        })?;
    let (state, changed) = found.ok_or_else(|| Error::NotFound(format!("job {id}")))?;
    let state: JobState = state.parse()?;
    if !changed {
        return Err(Error::WrongState(format!(
            "job {id} is {state}; only failed or cancelled jobs can be retried"
        )));
    }
    Ok(state)
}
