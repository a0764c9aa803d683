//! `refnet-jobs run`: enqueue a task now, later, or once; with `--wait`,
//! follow the job to its end.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use refnet_jobs::{JobState, NewJob};
use sqlx::PgPool;

use crate::{Failure, Output, duration};

/// Exit code when `--wait` gives up before the job ends.
const WAIT_TIMED_OUT: u8 = 3;

/// `run`'s options.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// Task name or alias.
    task: String,
    /// Arguments as a JSON object, or @FILE to read them from a file (@- for stdin).
    #[arg(long, default_value = "{}")]
    args: String,
    /// One argument, KEY=VALUE (VALUE read as JSON when it is, else as text); repeatable,
    /// and added to --args.
    #[arg(long = "arg", value_name = "KEY=VALUE")]
    arg: Vec<String>,
    /// Queue (default: the task's own).
    #[arg(long)]
    queue: Option<String>,
    /// Higher runs first.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    priority: i16,
    /// Run after this delay (e.g. 30s, 10m).
    #[arg(long = "in", value_name = "DURATION", value_parser = duration::parse, conflicts_with = "at")]
    delay: Option<Duration>,
    /// Run at this instant (RFC 3339, e.g. 2026-12-05T02:00:00+09:00).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// While a live job with this key exists, enqueue nothing and report that job.
    #[arg(long)]
    unique_key: Option<String>,
    /// Soft time limit in seconds: the job is asked to stop (default: the task's).
    #[arg(long, value_name = "SECS")]
    soft_limit: Option<f64>,
    /// Hard time limit in seconds: the attempt is stopped and fails (default: the task's).
    #[arg(long, value_name = "SECS")]
    hard_limit: Option<f64>,
    /// Follow the job to its end; the exit code tells how it ended (0 completed,
    /// 1 failed or cancelled, 3 still not done at --timeout).
    #[arg(long)]
    wait: bool,
    /// With --wait, give up after this long (e.g. 10m; default: wait for ever).
    #[arg(long, value_parser = duration::parse, requires = "wait")]
    timeout: Option<Duration>,
}

/// The job `run` will enqueue, checked before the database is touched.
pub(crate) struct Checked {
    args: serde_json::Value,
    run_at: Option<DateTime<Utc>>,
    limits: refnet_jobs::TimeLimits,
}

/// Checks everything `run` can check without the database.
pub(crate) fn check(run: &RunArgs) -> Result<Checked, Failure> {
    let mut args = crate::parse_args(&run.args)?;
    for pair in &run.arg {
        let (key, value) = pair
            .split_once('=')
            .filter(|(key, _)| !key.trim().is_empty())
            .ok_or_else(|| Failure::usage(format!("--arg {pair:?}: write KEY=VALUE")))?;
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        args[key.trim()] = value;
    }
    if run.queue.as_deref().is_some_and(|q| q.trim().is_empty()) {
        return Err(Failure::usage("--queue needs a queue name"));
    }
    let limits = refnet_jobs::TimeLimits::from_secs(run.soft_limit, run.hard_limit)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let run_at = match (&run.at, run.delay) {
        (Some(at), _) => Some(
            DateTime::parse_from_rfc3339(at)
                .map_err(|e| Failure::usage(format!("--at {at:?} is not an RFC 3339 time: {e}")))?
                .with_timezone(&Utc),
        ),
        (None, Some(delay)) => Some(
            chrono::Duration::from_std(delay)
                .ok()
                .and_then(|delay| Utc::now().checked_add_signed(delay))
                .ok_or_else(|| Failure::usage("--in is too long"))?,
        ),
        (None, None) => None,
    };
    Ok(Checked {
        args,
        run_at,
        limits,
    })
}

/// Enqueues the job, and with `--wait` follows it.
pub(crate) async fn run(
    pool: &PgPool,
    run: RunArgs,
    checked: Checked,
    out: &Output,
) -> Result<(), Failure> {
    let info = refnet_jobs::resolve_task(pool, &run.task).await?;
    let queue = run.queue.unwrap_or(info.queue.clone());
    let mut job = NewJob::new(&info.name, checked.args)
        .queue(&queue)
        .priority(run.priority)
        .max_attempts(info.max_attempts)
        .time_limits(checked.limits);
    if let Some(at) = checked.run_at {
        job = job.run_at(at);
    }
    if let Some(key) = &run.unique_key {
        job = job.unique_key(key);
    }
    let enqueued = refnet_jobs::enqueue(pool, &job).await?;
    let what = if enqueued.inserted {
        "enqueued"
    } else {
        "already queued (same unique key)"
    };
    if !run.wait {
        out.print(
            &serde_json::json!({"id": enqueued.id, "task": info.name, "queue": queue,
                                "inserted": enqueued.inserted, "run_at": checked.run_at}),
            &format!(
                "{what} {} on queue {queue}: job {}\n",
                info.name, enqueued.id
            ),
        );
        return Ok(());
    }
    if !out.json {
        eprintln!(
            "{what} {} on queue {queue}: job {}; waiting for it to finish",
            info.name, enqueued.id
        );
    }
    wait(pool, enqueued.id, run.timeout, out).await
}

/// Polls job `id` until it finishes (or `timeout`), then prints its outcome.
async fn wait(
    pool: &PgPool,
    id: uuid::Uuid,
    timeout: Option<Duration>,
    out: &Output,
) -> Result<(), Failure> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        let job = refnet_jobs::get_job(pool, id)
            .await?
            .ok_or_else(|| Failure::failed(format!("job {id} disappeared (purged?)")))?;
        if job.state.is_finished() {
            let text = match job.state {
                JobState::Completed => format!(
                    "job {id} completed: {}\n",
                    job.result
                        .as_ref()
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "null".into())
                ),
                state => format!(
                    "job {id} {state} after {} attempt(s): {}\n",
                    job.attempt,
                    job.last_error().unwrap_or("no error recorded")
                ),
            };
            let failed = job.state != JobState::Completed;
            if out.json {
                out.print(&job, "");
            } else if failed {
                eprint!("{text}");
            } else {
                print!("{text}");
            }
            return if failed {
                Err(Failure::silent(1))
            } else {
                Ok(())
            };
        }
        if timeout.is_some_and(|limit| started.elapsed() >= limit) {
            if out.json {
                out.print(&job, "");
            }
            return Err(Failure {
                message: format!(
                    "job {id} is still {} after {}; it goes on (see `refnet-jobs show {id}`)",
                    job.state,
                    crate::views::human_secs(started.elapsed().as_secs_f64())
                ),
                code: WAIT_TIMED_OUT,
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}
