//! Read-only views for operators: `show`, `status`, `queue list`,
//! `history --summary`. Each prints a table, or JSON with `--json`.

use chrono::{DateTime, Utc};
use refnet_jobs::{Job, Status};

use crate::{Output, shorten, table};

/// Seconds as an operator reads them: `850ms`, `42s`, `3m12s`, `5h04m`, `2d03h`.
pub(crate) fn human_secs(secs: f64) -> String {
    if secs < 1.0 {
        return format!("{:.0}ms", secs * 1000.0);
    }
    let whole = secs as u64;
    match whole {
        0..60 => format!("{secs:.1}s"),
        60..3600 => format!("{}m{:02}s", whole / 60, whole % 60),
        3600..86_400 => format!("{}h{:02}m", whole / 3600, whole % 3600 / 60),
        _ => format!("{}d{:02}h", whole / 86_400, whole % 86_400 / 3600),
    }
}

fn age(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    human_secs((now - then).num_milliseconds().max(0) as f64 / 1000.0)
}

/// `show ID`: one job, every field an operator asks about.
pub(crate) fn show(job: &Job, now: DateTime<Utc>, out: &Output) {
    let time = |t: Option<DateTime<Utc>>| t.map(|t| out.time(t)).unwrap_or_else(|| "-".into());
    let mut text = String::new();
    let mut line = |label: &str, value: String| text.push_str(&format!("{label:<14}{value}\n"));
    line("id", job.id.to_string());
    line("task", job.task.clone());
    line("queue", job.queue.clone());
    line(
        "state",
        format!("{} ({})", job.state, job.state.celery_name()),
    );
    line(
        "attempts",
        format!("{} of {}", job.attempt, job.max_attempts),
    );
    line("priority", job.priority.to_string());
    line("args", shorten(&job.args.to_string(), 2000));
    line("created", time(Some(job.created_at)));
    line("run at", time(Some(job.run_at)));
    line("started", time(job.started_at));
    line("finished", time(job.finished_at));
    if let Some(duration) = job.duration() {
        line(
            "duration",
            human_secs(duration.num_milliseconds() as f64 / 1000.0),
        );
    } else if let (Some(started), None) = (job.started_at, job.finished_at) {
        line("running for", age(now, started));
    }
    line(
        "worker",
        job.worker_id.clone().unwrap_or_else(|| "-".into()),
    );
    if job.state == refnet_jobs::JobState::Running {
        line(
            "lease until",
            job.lease_expires_at
                .map(|t| out.time(t))
                .unwrap_or_else(|| "-".into()),
        );
        line("heartbeat", time(job.heartbeat_at));
    }
    if let Some(at) = job.cancel_requested_at {
        line("revoked at", out.time(at));
    }
    if let Some(key) = &job.unique_key {
        line("unique key", key.clone());
    }
    if let (Some(schedule), Some(tick)) = (&job.schedule_name, job.scheduled_for) {
        line("schedule", format!("{schedule} (tick {})", out.time(tick)));
    }
    if !job.tags.is_empty() {
        line("tags", job.tags.join(", "));
    }
    if job.soft_limit_secs.is_some() || job.hard_limit_secs.is_some() {
        let secs = |s: Option<f64>| s.map(|s| format!("{s}s")).unwrap_or_else(|| "-".into());
        line(
            "time limits",
            format!(
                "soft {} / hard {}",
                secs(job.soft_limit_secs),
                secs(job.hard_limit_secs)
            ),
        );
    }
    if let Some(result) = &job.result {
        line("result", shorten(&result.to_string(), 2000));
    }
    if job.errors.is_empty() {
        line("errors", "none".into());
    } else {
        text.push_str("errors:\n");
        for error in &job.errors {
            text.push_str(&format!(
                "  attempt {} at {}: {}\n",
                error.attempt,
                out.time(error.at),
                error.error
            ));
        }
    }
    out.print(job, &text);
}

/// `status`: workers, running jobs, queues, next ticks.
pub(crate) fn status(status: &Status, out: &Output) {
    let now = status.now;
    let mut text = String::new();
    let live = status.workers.iter().filter(|w| w.alive).count();
    text.push_str(&format!(
        "WORKERS: {live} alive, {} dead (seen within a day)\n",
        status.workers.len() - live
    ));
    let rows: Vec<Vec<String>> = status
        .workers
        .iter()
        .map(|w| {
            vec![
                w.id.clone(),
                if w.alive { "alive" } else { "dead" }.into(),
                w.host.clone(),
                w.pid.to_string(),
                w.queues.join(", "),
                format!("{} ago", age(now, w.last_seen_at)),
            ]
        })
        .collect();
    if !rows.is_empty() {
        text.push_str(&table::render(
            &["WORKER", "STATUS", "HOST", "PID", "QUEUES", "LAST SEEN"],
            &rows,
        ));
    }
    text.push_str(&format!("\nRUNNING: {} shown", status.running.len()));
    if status.expired_leases > 0 {
        text.push_str(&format!(
            " ({} with an expired lease: their worker is gone, rescue takes them back)",
            status.expired_leases
        ));
    }
    text.push('\n');
    let rows: Vec<Vec<String>> = status
        .running
        .iter()
        .map(|j| {
            vec![
                j.id.to_string(),
                j.task.clone(),
                j.queue.clone(),
                j.started_at
                    .map(|s| age(now, s))
                    .unwrap_or_else(|| "-".into()),
                format!("{}/{}", j.attempt, j.max_attempts),
                j.worker_id.clone().unwrap_or_default(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        text.push_str(&table::render(
            &["ID", "TASK", "QUEUE", "AGE", "ATTEMPT", "WORKER"],
            &rows,
        ));
    }
    text.push_str("\nQUEUES\n");
    text.push_str(&queues_table(&status.queues));
    text.push_str("\nNEXT TICKS\n");
    let rows: Vec<Vec<String>> = status
        .next_ticks
        .iter()
        .map(|t| {
            let zone: chrono_tz::Tz = t.timezone.parse().unwrap_or(chrono_tz::UTC);
            vec![
                t.schedule.clone(),
                t.at.with_timezone(&zone)
                    .format("%Y-%m-%d %H:%M %Z")
                    .to_string(),
                out.time(t.at),
                format!("in {}", age(t.at, now)),
                t.task.clone(),
            ]
        })
        .collect();
    text.push_str(&table::render(
        &["SCHEDULE", "NEXT (ZONE)", "NEXT", "", "TASK"],
        &rows,
    ));
    out.print(status, &text);
}

/// The queues table of `status` and `queue list`.
pub(crate) fn queues_table(queues: &[refnet_jobs::QueueInfo]) -> String {
    let rows: Vec<Vec<String>> = queues
        .iter()
        .map(|q| {
            vec![
                q.name.clone(),
                if q.paused_at.is_some() {
                    "paused"
                } else {
                    "active"
                }
                .into(),
                q.waiting.to_string(),
                q.running.to_string(),
                q.oldest_waiting_secs
                    .map(human_secs)
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table::render(
        &["QUEUE", "STATUS", "WAITING", "RUNNING", "OLDEST WAITING"],
        &rows,
    )
}

/// `history --summary`.
pub(crate) fn summary(rows: &[refnet_jobs::TaskSummary], days: u32, out: &Output) {
    let secs = |s: Option<f64>| s.map(human_secs).unwrap_or_else(|| "-".into());
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.task.clone(),
                r.runs.to_string(),
                r.failures.to_string(),
                r.cancelled.to_string(),
                format!("{:.1}%", r.success_rate * 100.0),
                secs(r.median_secs),
                secs(r.p95_secs),
                match (&r.last_failure_at, &r.last_error) {
                    (Some(at), error) => format!(
                        "{}: {}",
                        out.time(*at),
                        shorten(error.as_deref().unwrap_or("-"), 120)
                    ),
                    _ => "-".into(),
                },
            ]
        })
        .collect();
    let text = if rows.is_empty() {
        format!("no finished jobs in the last {days} days\n")
    } else {
        table::render(
            &[
                "TASK",
                "RUNS",
                "FAILED",
                "CANCELLED",
                "SUCCESS",
                "MEDIAN",
                "P95",
                "LAST FAILURE",
            ],
            &table_rows,
        )
    };
    out.print(rows, &text);
}
