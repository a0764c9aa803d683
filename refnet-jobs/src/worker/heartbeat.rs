//! The set of jobs this worker holds, and the loop that renews their leases.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Shared;
use crate::db;

/// Jobs held by this process (claimed, running, or awaiting their outcome's
/// write), each with the token that interrupts it.
#[derive(Default)]
pub(crate) struct RunningSet {
    jobs: Mutex<HashMap<Uuid, CancellationToken>>,
}

impl RunningSet {
    /// Records a job this worker holds (claimed, running, or with its outcome
    /// not yet written), so its lease is renewed; false when it already was.
    pub(crate) fn insert(&self, id: Uuid) -> bool {
        let mut jobs = self.lock();
        if jobs.contains_key(&id) {
            return false;
        }
        jobs.insert(id, CancellationToken::default());
        true
    }

    /// The token that interrupts job `id`, recording the job if needed.
    pub(crate) fn token(&self, id: Uuid) -> CancellationToken {
        self.lock().entry(id).or_default().clone()
    }

    /// Forgets a job that has ended.
    pub(crate) fn remove(&self, id: Uuid) {
        self.lock().remove(&id);
    }

    /// The ids of the running jobs.
    pub(crate) fn ids(&self) -> Vec<Uuid> {
        self.lock().keys().copied().collect()
    }

    /// Interrupts every running job.
    pub(crate) fn cancel_all(&self) {
        self.lock().values().for_each(CancellationToken::cancel);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, CancellationToken>> {
        // The map stays consistent even if a holder panicked: every update is one call.
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Renews the leases of running jobs every `heartbeat_interval` until `stop` fires.
pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let lease = shared.config.lease.as_secs_f64();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(shared.config.heartbeat_interval) => {}
            _ = stop.cancelled() => return,
        }
        let ids = shared.running.ids();
        if ids.is_empty() {
            continue;
        }
        if let Err(error) = db::jobs::heartbeat(&shared.pool, &ids, &shared.id, lease).await {
            tracing::warn!(%error, jobs = ids.len(), "heartbeat failed; will retry");
        }
    }
}
