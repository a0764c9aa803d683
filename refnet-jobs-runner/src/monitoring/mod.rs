//! Monitoring: per-task counters, alerts for failures that matter, and the
//! `/healthz` and `/metrics` endpoints.

mod alerts;
mod http;
mod metrics;

pub(crate) use alerts::{Alert, Alerter};
pub(crate) use http::serve;
pub(crate) use metrics::TaskCounters;

use std::sync::Arc;

use refnet_jobs::{AttemptEnded, JobState};

/// The worker's observer: counts every attempt and sends the ones that
/// warrant it to the alerter (a failed critical task, any task's last
/// attempt). Never blocks: alerts go through a channel.
pub(crate) fn observer(
    counters: Arc<TaskCounters>,
    alerter: Alerter,
    critical: Vec<String>,
) -> impl Fn(&AttemptEnded) + Send + Sync + 'static {
    move |ended| {
        counters.record(ended);
        let failed = matches!(ended.state, JobState::Failed | JobState::Retryable);
        let critical_task = critical.iter().any(|t| t == &ended.task);
        if (failed && critical_task) || ended.state == JobState::Failed {
            alerter.send(Alert::from_attempt(ended));
        }
    }
}
