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
        for finished in &batch {
            shared.held.remove(finished.id);
        }
    }
}

async fn write_batch(shared: &Shared, batch: &[Finished], abandon: &CancellationToken) {
    let of_kind = |kind: fn(&Outcome) -> bool| -> Vec<&Finished> {
        batch.iter().filter(|f| kind(&f.outcome)).collect()
    };
    let completed = of_kind(|o| matches!(o, Outcome::Completed(_)));
    let failed = of_kind(|o| matches!(o, Outcome::Failed(_)));
    let interrupted = of_kind(|o| matches!(o, Outcome::Interrupted));
    let revoked = of_kind(|o| matches!(o, Outcome::Revoked { .. }));
    if !completed.is_empty() {
        let written = with_retries(abandon, || write_completed(shared, &completed)).await;
        report(shared, &completed, written.as_deref());
    }
    if !failed.is_empty() {
        let written = with_retries(abandon, || write_failed(shared, &failed)).await;
        report(shared, &failed, written.as_deref());
    }
    if !interrupted.is_empty() {
        let written = with_retries(abandon, || write_interrupted(shared, &interrupted)).await;
        report(shared, &interrupted, written.as_deref());
    }
    if !revoked.is_empty() {
        let written = with_retries(abandon, || write_revoked(shared, &revoked)).await;
        report(shared, &revoked, written.as_deref());
    }
    for f in batch.iter().filter(|f| matches!(f.outcome, Outcome::Lost)) {
        tracing::warn!(job = %f.id, attempt = f.attempt, worker = %shared.id,
            "attempt stopped after its lease was taken over; its outcome is not recorded");
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
/// unreachable; `None` when it gave up (after ~10 minutes, or at `abandon`).
async fn with_retries<F, Fut, T>(abandon: &CancellationToken, mut write: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::Result<T>>,
{
    let mut pause = Duration::from_millis(100);
    for attempt in 1..=WRITE_ATTEMPTS {
        match write().await {
            Ok(value) => return Some(value),
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
    }
}
