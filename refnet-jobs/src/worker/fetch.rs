//! One queue's claim loop. It keeps up to `concurrency` jobs running and up
//! to `prefetch` more claimed in a local buffer, so a freed slot takes its
//! next job at once instead of waiting for a round trip. The next claim runs
//! while jobs start; when a claim comes back short the queue is drained, and
//! the loop sleeps until a notification or the poll interval.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Shared, execute};
use crate::db;
use crate::job::Job;

type Claim = Pin<Box<dyn Future<Output = crate::Result<Vec<Job>>> + Send>>;

pub(crate) async fn run(
    shared: Arc<Shared>,
    queue: String,
    concurrency: usize,
    waker: Arc<Notify>,
    jobs: TaskTracker,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    let prefetch = shared.config.prefetch;
    let tasks: Arc<Vec<String>> = Arc::new(
        shared
            .registry
            .names()
            .into_iter()
            .map(String::from)
            .collect(),
    );
    let mut buffer: VecDeque<Job> = VecDeque::new();
    let mut claim: Option<Claim> = None;
    // How many jobs the claim in flight asked for.
    let mut asked = 0;
    // True once a claim came back short: wait for a wake-up before the next.
    let mut idle = false;
    let mut failures: u32 = 0;
    let mut pause: Option<Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        let running = concurrency - slots.available_permits();
        let room = (concurrency + prefetch).saturating_sub(running + buffer.len());
        // Refill when the buffer is at most half full (with no prefetch: when a slot is free).
        let wants_more = room > 0 && buffer.len() <= prefetch / 2;
        if claim.is_none() && pause.is_none() && !idle && wants_more && !stop.is_cancelled() {
            asked = room.min(shared.config.batch_size);
            claim = Some(claim_future(&shared, &queue, asked as i64, &tasks, &stop));
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            permit = slots.clone().acquire_owned(), if !buffer.is_empty() => {
                let Ok(permit) = permit else { break };
                if let Some(job) = buffer.pop_front() {
                    jobs.spawn(execute::run(shared.clone(), job, permit));
                }
            }
            claimed = async { claim.as_mut().expect("guarded by is_some").await }, if claim.is_some() => {
                claim = None;
                match claimed {
                    Ok(claimed) => {
                        failures = 0;
                        // A short claim means the queue is drained for now.
                        idle = claimed.len() < asked;
                        take(&shared, &queue, claimed, &mut buffer);
                    }
                    Err(error) => {
                        failures = failures.saturating_add(1);
                        let wait = backoff(failures);
                        tracing::warn!(%queue, %error, pause = ?wait, "claim failed; retrying");
                        pause = Some(Box::pin(tokio::time::sleep(wait)));
                    }
                }
            }
            _ = async { pause.as_mut().expect("guarded by is_some").await }, if pause.is_some() => {
                pause = None;
            }
            _ = waker.notified(), if idle => idle = false,
            _ = tokio::time::sleep(shared.config.poll_interval), if idle => idle = false,
            // All slots busy and nothing buffered: wait for one to free, then claim.
            permit = slots.clone().acquire_owned(), if buffer.is_empty() && claim.is_none() && !idle && !wants_more => {
                drop(permit);
            }
        }
    }
    // Stop claiming. A claim in flight may already have committed: dropping
    // it would leave its jobs running for nobody, so it is awaited (bounded by
    // the grace period) and its jobs go back with the buffered ones.
    if let Some(in_flight) = claim.take() {
        let wait = shared.config.shutdown_grace.min(Duration::from_secs(5));
        match tokio::time::timeout(wait, in_flight).await {
            Ok(Ok(claimed)) => take(&shared, &queue, claimed, &mut buffer),
            Ok(Err(error)) => tracing::warn!(%queue, %error, "the last claim failed at shutdown"),
            Err(_) => tracing::warn!(%queue,
                "the last claim did not answer in time; the worker returns what it claimed as it stops"),
        }
    }
    // Jobs claimed but never started go back untouched.
    let unstarted: Vec<(uuid::Uuid, i32)> =
        buffer.iter().map(|job| (job.id, job.attempt)).collect();
    if !unstarted.is_empty() {
        match db::jobs::unclaim(&shared.pool, &unstarted, &shared.id).await {
            Ok(n) => tracing::info!(%queue, jobs = n, "returned claimed jobs that never started"),
            Err(error) => tracing::warn!(%queue, %error, jobs = unstarted.len(),
                "could not return claimed jobs; they come back when their lease expires"),
        }
    }
    for (id, attempt) in unstarted {
        shared.held.remove(id, attempt);
    }
}

/// Records claimed jobs as held here and buffers them, except a job this
/// worker is already running: its earlier claim was lost (a server crash
/// after an asynchronous claim) while it ran on, and the run going on records
/// its outcome on the new claim (same attempt number, the lost claim's count
/// was lost too), so it is neither started nor returned twice. A newer
/// attempt (its lease was rescued and this worker claimed it again) replaces
/// an old one that is over; while the old one still runs, the new claim
/// waits for the rescue of its lease.
fn take(shared: &Shared, queue: &str, claimed: Vec<Job>, buffer: &mut VecDeque<Job>) {
    for job in claimed {
        if shared.held.insert(job.id, job.attempt, &shared.stopping) {
            buffer.push_back(job);
        } else {
            tracing::warn!(job = %job.id, %queue,
                "claimed a job this worker is already running; not starting it twice");
        }
    }
}

/// One claim. It waits for a pool connection only until shutdown starts: a
/// claim never sent claims nothing, so dropping it then is safe.
fn claim_future(
    shared: &Arc<Shared>,
    queue: &str,
    limit: i64,
    tasks: &Arc<Vec<String>>,
    stop: &CancellationToken,
) -> Claim {
    let shared = shared.clone();
    let queue = queue.to_string();
    let tasks = tasks.clone();
    let stop = stop.clone();
    Box::pin(async move {
        let mut conn = tokio::select! {
            conn = shared.pool.acquire() => conn?,
            _ = stop.cancelled() => return Ok(Vec::new()),
        };
        let lease = shared.config.lease.as_secs_f64();
        let async_commit = shared.config.async_claims;
        db::jobs::claim(
            &mut *conn,
            &queue,
            limit,
            &shared.id,
            lease,
            &tasks,
            async_commit,
        )
        .await
    })
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.min(7))).min(Duration::from_secs(10))
}
