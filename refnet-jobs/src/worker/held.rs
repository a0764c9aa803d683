//! The jobs this worker holds — claimed, running, or waiting for their
//! outcome to be written — each at the attempt it was claimed for, with the
//! tokens that stop it and why it was stopped.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Why a held job was stopped before it finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The worker is shutting down: the job goes back in line.
    Shutdown,
    /// The job was revoked: it ends `cancelled`.
    Revoked,
    /// Its lease was taken over (rescued after it expired): the outcome
    /// belongs to nobody any more and is not written.
    LeaseLost,
}

struct Entry {
    attempt: i32,
    /// The job's [`crate::JobContext::cancel`]: asks it to stop.
    cancel: CancellationToken,
    /// Drops the attempt's future at once.
    interrupt: CancellationToken,
    stop: Option<Stop>,
    /// A revoke asked to drop it at once (`--terminate`).
    terminated: bool,
    /// Its outcome went to the completer: nothing is left to stop.
    finished: bool,
}

/// The tokens of one started job.
pub(crate) struct Tokens {
    pub(crate) cancel: CancellationToken,
    pub(crate) interrupt: CancellationToken,
}

/// Jobs held by this process.
#[derive(Default)]
pub(crate) struct Held {
    jobs: Mutex<HashMap<Uuid, Entry>>,
}

impl Held {
    /// Records a job claimed at `attempt`; its cancel token is a child of
    /// `parent` (the worker's shutdown). False when it is already held at a
    /// live attempt (see the fetch loop); an earlier attempt that is over (its
    /// outcome handed over, or its lease lost) gives way to the new one.
    pub(crate) fn insert(&self, id: Uuid, attempt: i32, parent: &CancellationToken) -> bool {
        let mut jobs = self.lock();
        if let Some(old) = jobs.get(&id) {
            let over = old.finished || old.stop == Some(Stop::LeaseLost);
            if !(over && old.attempt < attempt) {
                return false;
            }
        }
        jobs.insert(
            id,
            Entry {
                attempt,
                cancel: parent.child_token(),
                interrupt: CancellationToken::new(),
                stop: None,
                terminated: false,
                finished: false,
            },
        );
        true
    }

    /// The tokens of a job about to start, or why it must not start (it was
    /// revoked or lost while it waited in the buffer).
    pub(crate) fn start(&self, id: Uuid, attempt: i32) -> Result<Tokens, Stop> {
        let jobs = self.lock();
        match jobs.get(&id).filter(|entry| entry.attempt == attempt) {
            None => Err(Stop::LeaseLost),
            Some(entry) => match entry.stop {
                Some(stop @ (Stop::Revoked | Stop::LeaseLost)) => Err(stop),
                _ => Ok(Tokens {
                    cancel: entry.cancel.clone(),
                    interrupt: entry.interrupt.clone(),
                }),
            },
        }
    }

    /// Why attempt `attempt` of job `id` was stopped, if it was. An attempt
    /// no longer held (a newer one replaced it) counts as lost.
    pub(crate) fn stop_reason(&self, id: Uuid, attempt: i32) -> Option<Stop> {
        match self.lock().get(&id) {
            Some(entry) if entry.attempt == attempt => entry.stop,
            _ => Some(Stop::LeaseLost),
        }
    }

    /// True when a revoke with `terminate` dropped this attempt of job `id`.
    pub(crate) fn was_terminated(&self, id: Uuid, attempt: i32) -> bool {
        self.lock()
            .get(&id)
            .is_some_and(|entry| entry.attempt == attempt && entry.terminated)
    }

    /// Notes that this attempt's outcome was handed over for writing.
    pub(crate) fn finish(&self, id: Uuid, attempt: i32) {
        if let Some(entry) = self.lock().get_mut(&id)
            && entry.attempt == attempt
        {
            entry.finished = true;
        }
    }

    /// Forgets attempt `attempt` of a job whose outcome is written (or that
    /// went back); a newer attempt held meanwhile stays.
    pub(crate) fn remove(&self, id: Uuid, attempt: i32) {
        let mut jobs = self.lock();
        if jobs.get(&id).is_some_and(|entry| entry.attempt == attempt) {
            jobs.remove(&id);
        }
    }

    /// Every held job with its attempt, for heartbeats and fencing, sorted
    /// by id so that statements over them lock rows in one order.
    pub(crate) fn attempts(&self) -> Vec<(Uuid, i32)> {
        let mut held: Vec<(Uuid, i32)> = self
            .lock()
            .iter()
            .map(|(id, entry)| (*id, entry.attempt))
            .collect();
        held.sort_unstable();
        held
    }

    /// Revokes a held job: its cancel token fires now and, if it has not
    /// finished after `grace`, its future is dropped (at once with
    /// `terminate`, which also hurries a revoke already under way). False
    /// when the job is not held here or there was nothing more to do.
    pub(crate) fn revoke(&self, id: Uuid, grace: Duration, terminate: bool) -> bool {
        let interrupt = {
            let mut jobs = self.lock();
            let Some(entry) = jobs.get_mut(&id) else {
                return false;
            };
            if entry.finished || entry.stop == Some(Stop::LeaseLost) {
                return false;
            }
            if entry.stop == Some(Stop::Revoked) {
                if terminate && !entry.interrupt.is_cancelled() {
                    entry.terminated = true;
                    entry.interrupt.cancel();
                    return true;
                }
                return false;
            }
            entry.stop = Some(Stop::Revoked);
            entry.cancel.cancel();
            if terminate {
                entry.terminated = true;
                entry.interrupt.cancel();
                return true;
            }
            entry.interrupt.clone()
        };
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            interrupt.cancel();
        });
        true
    }

    /// Stops attempt `attempt` of a job whose lease this worker lost, at
    /// once. False when it had already finished, or a newer attempt is held.
    pub(crate) fn lose(&self, id: Uuid, attempt: i32) -> bool {
        let mut jobs = self.lock();
        let Some(entry) = jobs.get_mut(&id) else {
            return false;
        };
        if entry.finished || entry.attempt != attempt {
            return false;
        }
        entry.stop = Some(Stop::LeaseLost);
        entry.cancel.cancel();
        entry.interrupt.cancel();
        true
    }

    /// Interrupts every unfinished job for shutdown (a revoked one stays revoked).
    pub(crate) fn interrupt_all(&self) {
        for entry in self.lock().values_mut().filter(|e| !e.finished) {
            entry.stop.get_or_insert(Stop::Shutdown);
            entry.interrupt.cancel();
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Entry>> {
        // The map stays consistent even if a holder panicked: every update is one call.
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
