//! One queue's claim loop: claim as many jobs as there are free slots, start
//! them, then wait for a slot, a notification or the poll interval.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Shared, execute};
use crate::db;

pub(crate) async fn run(
    shared: Arc<Shared>,
    queue: String,
    concurrency: usize,
    waker: Arc<Notify>,
    jobs: TaskTracker,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    let lease = shared.config.lease.as_secs_f64();
    let tasks: Vec<String> = shared
        .registry
        .names()
        .into_iter()
        .map(String::from)
        .collect();
    let mut failures: u32 = 0;
    loop {
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = stop.cancelled() => return,
        };
        let mut permits: Vec<OwnedSemaphorePermit> = vec![first];
        while permits.len() < shared.config.batch_size {
            match slots.clone().try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        let wanted = permits.len();
        let claimed = match db::jobs::claim(
            &shared.pool,
            &queue,
            wanted as i64,
            &shared.id,
            lease,
            &tasks,
        )
        .await
        {
            Ok(claimed) => {
                failures = 0;
                claimed
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let pause = backoff(failures);
                tracing::warn!(%queue, %error, ?pause, "claim failed; retrying");
                drop(permits);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.cancelled() => return,
                }
                continue;
            }
        };
        let got = claimed.len();
        for job in claimed {
            let Some(permit) = permits.pop() else { break };
            jobs.spawn(execute::run(shared.clone(), job, permit));
        }
        drop(permits);
        if got < wanted {
            // The queue is drained for now: sleep until woken or the next poll.
            tokio::select! {
                _ = waker.notified() => {}
                _ = tokio::time::sleep(shared.config.poll_interval) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.min(7))).min(Duration::from_secs(10))
}
