//! The completer: writes attempt outcomes back in batches. Finished jobs queue
//! up while a write is in flight and go out together in the next one, so
//! under load one statement records hundreds of outcomes and an idle worker
//! adds no delay at all. A write is retried while the database is unreachable
//! (a restart, a failover), so a finished job is not left `running`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Shared;
use super::execute::Outcome;
use crate::db;

/// Most outcomes written in one statement.
const MAX_BATCH: usize = 1000;
/// Retries of a write: with the 5 s cap, about ten minutes in all.
const WRITE_ATTEMPTS: u32 = 125;

/// One attempt that has ended, waiting to be written.
pub(crate) struct Finished {
    pub(crate) id: Uuid,
    pub(crate) task: String,
    pub(crate) attempt: i32,
    pub(crate) outcome: Outcome,
    /// Backoff before the next attempt, should this one have failed.
    pub(crate) retry_in: Duration,
    /// How long the handler ran.
    pub(crate) elapsed: Duration,
}

/// The sending side, held by every running job.
#[derive(Clone)]
pub(crate) struct Completer {
    tx: mpsc::UnboundedSender<Finished>,
}

impl Completer {
    /// A completer handle and the queue its loop reads.
    pub(crate) fn channel() -> (Completer, mpsc::UnboundedReceiver<Finished>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Completer { tx }, rx)
    }

    /// Queues an outcome for the next write.
    pub(crate) fn send(&self, finished: Finished) {
        if let Err(lost) = self.tx.send(finished) {
            // Only after the loop ended, which waits for every job: a bug if seen.
            tracing::error!(job = %lost.0.id, "completer already stopped; the job's lease will expire and it will run again");
        }
    }
}

/// Writes outcomes until `flush` fires and the queue is empty. `abandon`
/// fires when shutdown can wait no longer for an unreachable database.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Finished>,
    flush: CancellationToken,
    abandon: CancellationToken,
) {
    loop {
        let mut batch = Vec::new();
        tokio::select! {
            biased;
            got = rx.recv() => match got {
                Some(finished) => batch.push(finished),
                None => return,
            },
            _ = flush.cancelled() => {}
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(finished) => batch.push(finished),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            return;
        }
        write_batch(&shared, &batch, &abandon).await;
    }
}

/// The kinds of outcome, each written by its own statement.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Completed,
    Failed,
    Interrupted,
    Revoked,
    Lost,
}

fn kind(outcome: &Outcome) -> Kind {
    match outcome {
        Outcome::Completed(_) => Kind::Completed,
        Outcome::Failed(_) => Kind::Failed,
        Outcome::Interrupted => Kind::Interrupted,
        Outcome::Revoked { .. } => Kind::Revoked,
        Outcome::Lost => Kind::Lost,
    }
}

async fn write_batch(shared: &Shared, batch: &[Finished], abandon: &CancellationToken) {
    for wanted in [
        Kind::Completed,
        Kind::Failed,
        Kind::Interrupted,
        Kind::Revoked,
    ] {
        let jobs: Vec<&Finished> = batch
            .iter()
            .filter(|f| kind(&f.outcome) == wanted)
            .collect();
        if !jobs.is_empty() {
            write_kind(shared, wanted, &jobs, abandon).await;
            // Forgotten as soon as written, so a new claim of the same job
            // (a retry due at once) is not mistaken for this attempt.
            for f in &jobs {
                shared.held.remove(f.id, f.attempt);
            }
        }
    }
    for f in batch.iter().filter(|f| kind(&f.outcome) == Kind::Lost) {
        tracing::warn!(job = %f.id, attempt = f.attempt, worker = %shared.id,
            "attempt stopped after its lease was taken over; its outcome is not recorded");
        shared.held.remove(f.id, f.attempt);
    }
}

/// Writes outcomes of one kind in one statement. Should the database refuse
/// the statement for good (not a lost connection: bad data, say a NUL in a
/// result), each job is written alone, so one bad outcome neither holds up
/// the others nor makes them run again.
async fn write_kind(shared: &Shared, kind: Kind, jobs: &[&Finished], abandon: &CancellationToken) {
    match with_retries(abandon, || write(shared, kind, jobs)).await {
        None => {}
        Some(Ok(written)) => report(shared, jobs, Some(&written)),
        Some(Err(error)) if jobs.len() > 1 => {
            tracing::warn!(%error, jobs = jobs.len(), "outcomes refused together; writing them one by one");
            for job in jobs {
                let one = [*job];
                match with_retries(abandon, || write(shared, kind, &one)).await {
                    None => {}
                    Some(Ok(written)) => report(shared, &one, Some(&written)),
                    Some(Err(error)) => salvage(shared, job, &error, abandon).await,
                }
            }
        }
        Some(Err(error)) => salvage(shared, jobs[0], &error, abandon).await,
    }
}

async fn write(
    shared: &Shared,
    kind: Kind,
    jobs: &[&Finished],
) -> crate::Result<Vec<(Uuid, String)>> {
    match kind {
        Kind::Completed => write_completed(shared, jobs).await,
        Kind::Failed => write_failed(shared, jobs).await,
        Kind::Interrupted => write_interrupted(shared, jobs).await,
        Kind::Revoked => write_revoked(shared, jobs).await,
        Kind::Lost => Ok(Vec::new()),
    }
}

/// An outcome the database refuses for good: the attempt is recorded as a
/// permanent failure naming the refusal (so the job does not run again for
/// nothing); if even that is refused, the job is left to its lease.
async fn salvage(
    shared: &Shared,
    job: &Finished,
    error: &crate::Error,
    abandon: &CancellationToken,
) {
    let message =
        format!("the attempt's outcome could not be recorded: {error}").replace('\0', "\u{FFFD}");
    // A failure keeps its own fate (retry or not); a refused success or
    // revoke cannot be retried into being stored, so it fails for good.
    let (permanent, retry_in) = match &job.outcome {
        Outcome::Failed(failure) => (failure.is_permanent(), job.retry_in.as_secs_f64()),
        _ => (true, 0.0),
    };
    let failure = db::jobs::Failure {
        id: job.id,
        attempt: job.attempt,
        error: &message,
        permanent,
        retry_in_secs: retry_in,
        elapsed_secs: job.elapsed.as_secs_f64(),
    };
    let failures = [failure];
    match with_retries(abandon, || {
        db::jobs::fail_many(&shared.pool, &shared.id, &failures)
    })
    .await
    {
        Some(Ok(written)) => {
            tracing::error!(job = %job.id, task = %job.task, %error,
                "the database refused this job's outcome; recorded it as a failure");
            let as_failure = Finished {
                id: job.id,
                task: job.task.clone(),
                attempt: job.attempt,
                outcome: Outcome::Failed(crate::TaskError::permanent(message.clone())),
                retry_in: job.retry_in,
                elapsed: job.elapsed,
            };
            report(shared, &[&as_failure], Some(&written));
        }
        _ => tracing::error!(job = %job.id, task = %job.task, %error,
            "cannot record this job's outcome at all; it stays running until its lease expires"),
    }
}

/// Each job's id with the attempt it ran, the key outcomes are fenced by.
fn held(jobs: &[&Finished]) -> Vec<(Uuid, i32)> {
    jobs.iter().map(|f| (f.id, f.attempt)).collect()
}

async fn write_completed(
    shared: &Shared,
    jobs: &[&Finished],
) -> crate::Result<Vec<(Uuid, String)>> {
    let results: Vec<&serde_json::Value> = jobs
        .iter()
        .map(|f| match &f.outcome {
            Outcome::Completed(value) => value,
            _ => &serde_json::Value::Null,
        })
        .collect();
    let secs: Vec<f64> = jobs.iter().map(|f| f.elapsed.as_secs_f64()).collect();
    let done =
        db::jobs::complete_many(&shared.pool, &shared.id, &held(jobs), &results, &secs).await?;
    Ok(done
        .into_iter()
        .map(|id| (id, "completed".to_string()))
        .collect())
}

async fn write_failed(shared: &Shared, jobs: &[&Finished]) -> crate::Result<Vec<(Uuid, String)>> {
    let failures: Vec<db::jobs::Failure<'_>> = jobs
        .iter()
        .filter_map(|f| match &f.outcome {
            Outcome::Failed(error) => Some(db::jobs::Failure {
                id: f.id,
                attempt: f.attempt,
                error: error.message(),
                permanent: error.is_permanent(),
                retry_in_secs: f.retry_in.as_secs_f64(),
                elapsed_secs: f.elapsed.as_secs_f64(),
            }),
            _ => None,
        })
        .collect();
    db::jobs::fail_many(&shared.pool, &shared.id, &failures).await
}

async fn write_interrupted(
    shared: &Shared,
    jobs: &[&Finished],
) -> crate::Result<Vec<(Uuid, String)>> {
    let done = db::jobs::release(
        &shared.pool,
        &held(jobs),
        &shared.id,
        "interrupted: worker shut down before the job finished",
    )
    .await?;
    Ok(done
        .into_iter()
        .map(|id| (id, "available".to_string()))
        .collect())
}

async fn write_revoked(shared: &Shared, jobs: &[&Finished]) -> crate::Result<Vec<(Uuid, String)>> {
    let mut reasons = Vec::with_capacity(jobs.len());
    let mut secs = Vec::with_capacity(jobs.len());
    for f in jobs {
        if let Outcome::Revoked { started, message } = &f.outcome {
            reasons.push(message.as_str());
            secs.push(started.then(|| f.elapsed.as_secs_f64()));
        }
    }
    let done =
        db::jobs::cancel_many(&shared.pool, &shared.id, &held(jobs), &reasons, &secs).await?;
    Ok(done
        .into_iter()
        .map(|id| (id, "cancelled".to_string()))
        .collect())
}

/// Runs `write` until it succeeds, backing off while the database is
/// unreachable: `None` when it gave up (after ~10 minutes, or at `abandon`),
/// `Some(Err)` at once for an error retrying cannot fix.
async fn with_retries<F, Fut, T>(
    abandon: &CancellationToken,
    mut write: F,
) -> Option<crate::Result<T>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::Result<T>>,
{
    let mut pause = Duration::from_millis(100);
    for attempt in 1..=WRITE_ATTEMPTS {
        match write().await {
            Ok(value) => return Some(Ok(value)),
            Err(error) if !is_transient(&error) => return Some(Err(error)),
            Err(error) if attempt < WRITE_ATTEMPTS => {
                tracing::warn!(%error, ?pause, "cannot record job outcomes; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = abandon.cancelled() => {
                        tracing::error!("shutting down before job outcomes could be recorded; those jobs stay running until their lease expires");
                        return None;
                    }
                }
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(error) => {
                tracing::error!(%error, "giving up recording job outcomes after ten minutes; those jobs stay running until their lease expires");
            }
        }
    }
    None
}

/// True for errors a retry can get past: a lost or refused connection, a
/// server shutting down or short of resources, a deadlock or serialization
/// conflict. Anything else (bad data, a constraint) fails the same way again.
fn is_transient(error: &crate::Error) -> bool {
    let crate::Error::Database(error) = error else {
        return false;
    };
    match error {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") // connection exception
                || code.starts_with("53") // insufficient resources
                || code.starts_with("57") // operator intervention (shutdown, timeouts)
                || code.starts_with("58") // system error (I/O)
                || code == "25006" // read-only transaction: a failover in progress
                || code == "55P03" // lock not available
                || code == "40001" // serialization failure
                || code == "40P01" // deadlock detected
        }),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        // A closed pool never reopens: waiting on it only holds up the rest.
        _ => false,
    }
}

/// Logs each job's end, or that it was no longer ours to record.
fn report(shared: &Shared, jobs: &[&Finished], written: Option<&[(Uuid, String)]>) {
    let Some(written) = written else { return };
    let states: std::collections::HashMap<Uuid, &str> = written
        .iter()
        .map(|(id, state)| (*id, state.as_str()))
        .collect();
    for f in jobs {
        let ms = f.elapsed.as_millis() as u64;
        match (states.get(&f.id), &f.outcome) {
            (None, _) => tracing::warn!(job = %f.id, worker = %shared.id,
                "job is no longer held by this worker; outcome discarded"),
            (Some(state), Outcome::Failed(error)) => tracing::warn!(
                job = %f.id, task = %f.task, attempt = f.attempt, duration_ms = ms,
                state = %state, error = %error, "job attempt failed"),
            (Some(state), _) => tracing::info!(
                job = %f.id, task = %f.task, attempt = f.attempt, duration_ms = ms,
                state = %state, "job finished"),
        }
        if let (Some(observer), Some(state)) = (&shared.observer, states.get(&f.id)) {
            let error = match &f.outcome {
                Outcome::Failed(error) => Some(error.message().to_string()),
                Outcome::Revoked { message, .. } => Some(message.clone()),
                _ => None,
            };
            if let Ok(state) = state.parse() {
                observer(&super::AttemptEnded {
                    id: f.id,
                    task: f.task.clone(),
                    attempt: f.attempt,
                    state,
                    error,
                    duration: f.elapsed,
                });
            }
        }
    }
}
