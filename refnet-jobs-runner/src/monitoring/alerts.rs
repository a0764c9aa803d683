//! Alerts: a failure that matters is POSTed as JSON to the configured webhook,
//! or logged at CRITICAL level when there is none. Sending happens on a task
//! of its own, so a slow or failing webhook never holds up a worker and never
//! fails a job (a failed send is logged, with the alert, and dropped).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc;
use uuid::Uuid;

/// What an alert says.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Alert {
    pub(crate) task: String,
    pub(crate) job_id: Uuid,
    pub(crate) attempt: i32,
    /// `failed` (for good) or `retryable` (a critical task's failed attempt).
    pub(crate) state: String,
    pub(crate) error: String,
    pub(crate) time: DateTime<Utc>,
}

impl Alert {
    /// The alert for an ended attempt.
    pub(crate) fn from_attempt(ended: &refnet_jobs::AttemptEnded) -> Alert {
        Alert {
            task: ended.task.clone(),
            job_id: ended.id,
            attempt: ended.attempt,
            state: ended.state.to_string(),
            error: ended.error.clone().unwrap_or_default(),
            time: Utc::now(),
        }
    }
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub(crate) struct Alerter {
    tx: mpsc::UnboundedSender<Alert>,
}

impl Alerter {
    /// An alerter posting to `webhook` (or logging when `None`), and the
    /// loop that sends; spawn the loop.
    pub(crate) fn new(webhook: Option<String>) -> (Alerter, impl Future<Output = ()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Alerter { tx }, send_loop(webhook, rx))
    }

    /// Queues an alert.
    pub(crate) fn send(&self, alert: Alert) {
        if self.tx.send(alert).is_err() {
            tracing::error!("alert loop stopped; alert dropped");
        }
    }
}

async fn send_loop(webhook: Option<String>, mut rx: mpsc::UnboundedReceiver<Alert>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build();
    while let Some(alert) = rx.recv().await {
        tracing::error!(target: "refnet_jobs_runner::alert", level = "CRITICAL",
            task = %alert.task, job = %alert.job_id, attempt = alert.attempt,
            state = %alert.state, error = %alert.error, "CRITICAL: job failed");
        let (Some(url), Ok(client)) = (&webhook, &client) else {
            continue;
        };
        match client.post(url).json(&alert).send().await {
            Ok(response) if response.status().is_success() => {
                tracing::info!(job = %alert.job_id, "alert sent to the webhook");
            }
            Ok(response) => tracing::error!(job = %alert.job_id, status = %response.status(),
                "the alert webhook refused the alert"),
            // Without the URL: it may carry a token.
            Err(error) => tracing::error!(job = %alert.job_id, error = %error.without_url(),
                "could not reach the alert webhook"),
        }
    }
}
