//! Task outcome counters kept by this runner, and the Prometheus text
//! `/metrics` serves (counters here, queue figures read from the database).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, PoisonError};

use refnet_jobs::{AttemptEnded, JobState};
use sqlx::PgPool;

/// Per task: attempts by outcome, and the time they took.
#[derive(Default)]
pub(crate) struct TaskCounters {
    tasks: Mutex<BTreeMap<String, TaskCount>>,
}

#[derive(Default, Clone)]
struct TaskCount {
    /// Outcome (`completed`, `failed`, `retried`, `cancelled`, `interrupted`) → attempts.
    outcomes: BTreeMap<&'static str, u64>,
    seconds_sum: f64,
    attempts: u64,
}

impl TaskCounters {
    /// Counts one ended attempt.
    pub(crate) fn record(&self, ended: &AttemptEnded) {
        let outcome = match ended.state {
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Retryable => "retried",
            JobState::Cancelled => "cancelled",
            _ => "interrupted",
        };
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        let count = tasks.entry(ended.task.clone()).or_default();
        *count.outcomes.entry(outcome).or_default() += 1;
        count.seconds_sum += ended.duration.as_secs_f64();
        count.attempts += 1;
    }

    fn snapshot(&self) -> BTreeMap<String, TaskCount> {
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A Prometheus label value, escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The `/metrics` page: this runner's task counters, and from the database
/// the live jobs per queue and state, each queue's oldest wait, and RefNet's
/// paper counts from this runner's latest health check.
///
/// Fails when the database cannot be read (the page is then a 503).
pub(crate) async fn render(
    pool: &PgPool,
    counters: &TaskCounters,
    env: &crate::tasks::TaskEnv,
) -> Result<String, refnet_jobs::Error> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP refnet_jobs_task_attempts_total Attempts this runner finished, by task and outcome."
    );
    let _ = writeln!(out, "# TYPE refnet_jobs_task_attempts_total counter");
    let tasks = counters.snapshot();
    for (task, count) in &tasks {
        for (outcome, n) in &count.outcomes {
            let _ = writeln!(
                out,
                "refnet_jobs_task_attempts_total{{task=\"{}\",outcome=\"{outcome}\"}} {n}",
                label(task)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP refnet_jobs_task_duration_seconds Time this runner's attempts took, by task."
    );
    let _ = writeln!(out, "# TYPE refnet_jobs_task_duration_seconds summary");
    for (task, count) in &tasks {
        let task = label(task);
        let _ = writeln!(
            out,
            "refnet_jobs_task_duration_seconds_sum{{task=\"{task}\"}} {}",
            count.seconds_sum
        );
        let _ = writeln!(
            out,
            "refnet_jobs_task_duration_seconds_count{{task=\"{task}\"}} {}",
            count.attempts
        );
    }
    let _ = writeln!(
        out,
        "# HELP refnet_jobs_jobs Live jobs, by queue and state."
    );
    let _ = writeln!(out, "# TYPE refnet_jobs_jobs gauge");
    for count in refnet_jobs::live_counts(pool).await? {
        let _ = writeln!(
            out,
            "refnet_jobs_jobs{{queue=\"{}\",state=\"{}\"}} {}",
            label(&count.queue),
            count.state,
            count.count
        );
    }
    // Each family's samples together, right after its HELP and TYPE.
    let queues = refnet_jobs::list_queues(pool).await?;
    let _ = writeln!(
        out,
        "# HELP refnet_jobs_oldest_waiting_seconds How long each queue's oldest runnable job has waited."
    );
    let _ = writeln!(out, "# TYPE refnet_jobs_oldest_waiting_seconds gauge");
    for queue in &queues {
        let _ = writeln!(
            out,
            "refnet_jobs_oldest_waiting_seconds{{queue=\"{}\"}} {}",
            label(&queue.name),
            queue.oldest_waiting_secs.unwrap_or(0.0)
        );
    }
    let _ = writeln!(
        out,
        "# HELP refnet_jobs_queue_paused 1 when the queue is paused."
    );
    let _ = writeln!(out, "# TYPE refnet_jobs_queue_paused gauge");
    for queue in &queues {
        let _ = writeln!(
            out,
            "refnet_jobs_queue_paused{{queue=\"{}\"}} {}",
            label(&queue.name),
            u8::from(queue.paused_at.is_some())
        );
    }
    let _ = writeln!(
        out,
        "# HELP refnet_papers RefNet's papers by status column and value, from the latest health check."
    );
    let _ = writeln!(out, "# TYPE refnet_papers gauge");
    let papers = env
        .latest_papers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if let Some(papers) = papers {
        for (column, values) in papers {
            for (value, n) in values {
                let _ = writeln!(
                    out,
                    "refnet_papers{{column=\"{}\",status=\"{}\"}} {n}",
                    label(&column),
                    label(&value)
                );
            }
        }
    }
    Ok(out)
}
