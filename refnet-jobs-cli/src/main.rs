//! `refnet-jobs`: the operator's CLI. It parses, calls the library, and prints
//! a table or, with `--json`, JSON. Exit codes: 0 ok, 1 failed operation,
//! 2 bad usage.

mod bench;
mod bench_peer;
mod duration;
mod purge;
mod run;
mod table;
mod views;

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clap::{Parser, Subcommand};
use refnet_jobs::{HistoryFilter, Job};

/// Inspect and steer refnet-jobs: run tasks, list schedules, read history.
#[derive(Debug, Parser)]
#[command(name = "refnet-jobs", version, about)]
struct Cli {
    /// PostgreSQL URL; defaults to DATABASE_URL, RefNet's DATABASE__* variables,
    /// or the throwaway database of a runner started in this directory.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// Time zone for displayed times (IANA name).
    #[arg(long, global = true, default_value = "UTC", env = "REFNET_JOBS_TZ")]
    tz: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or upgrade the refnet_jobs schema.
    Migrate,
    /// Enqueue a task now, by full name or short name (e.g. collect-papers).
    Run(run::RunArgs),
    /// List the known tasks (what runners and services have registered).
    Tasks,
    /// Check cron expressions without a database.
    Cron {
        #[command(subcommand)]
        verb: CronVerb,
    },
    /// Schedules: list them (the default), pause, resume, trigger, preview.
    Schedule {
        #[command(subcommand)]
        action: Option<ScheduleAction>,
    },
    /// Finished jobs, newest first.
    History {
        /// How many days back.
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=36_500))]
        days: u32,
        /// Only this task.
        #[arg(long)]
        task: Option<String>,
        /// Only this final state: completed, failed or cancelled.
        #[arg(long)]
        state: Option<String>,
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Per task instead: runs, failures, success rate, median and p95 duration, last failure.
        #[arg(long)]
        summary: bool,
    },
    /// Revoke a job: a waiting one is cancelled at once, a running one is
    /// stopped by its worker (after its cancel grace) and ends cancelled.
    Revoke {
        /// The job's id.
        id: uuid::Uuid,
        /// Drop a running job at once, without the grace in which it may stop on its own.
        #[arg(long)]
        terminate: bool,
    },
    /// Re-run a failed or cancelled job as a new attempt (its errors are kept).
    Retry {
        /// The job's id.
        id: uuid::Uuid,
    },
    /// One job: every attempt with its error, its result, timings, lease holder.
    Show {
        /// The job's id.
        id: uuid::Uuid,
    },
    /// Workers, running jobs, queues and the next ticks, in one view.
    Status,
    /// Queues: list them (the default), pause or resume one.
    Queue {
        #[command(subcommand)]
        action: Option<QueueAction>,
    },
    /// Delete waiting jobs (never running ones); asks first unless --yes.
    Purge {
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Only this task (name or alias).
        #[arg(long)]
        task: Option<String>,
        /// Only count what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask (needed when not on a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Workers that recorded themselves, live ones first.
    Workers,
    /// Delete finished jobs older than the retention, in small batches.
    Prune {
        /// Delete jobs that finished longer ago than this (e.g. 7d, 12h; default 30d).
        #[arg(long, value_name = "DURATION", value_parser = duration::parse,
              conflicts_with = "older_than_days")]
        older_than: Option<std::time::Duration>,
        /// The same in days (kept for scripts written before --older-than).
        #[arg(long, hide = true, value_parser = clap::value_parser!(u32).range(1..=36_500))]
        older_than_days: Option<u32>,
        /// Only count what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Rows deleted per transaction.
        #[arg(long, default_value_t = refnet_jobs::DEFAULT_PRUNE_BATCH as u32,
              value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        batch: u32,
    },
    /// Measure drain, latency and insert rate (see refnet-jobs/docs/performance.md) on the
    /// database's `bench` queue, which it empties first.
    Bench(bench::BenchArgs),
    /// The peer benchmark harness's adapter verbs (see scripts/bench-adapter.sh).
    #[command(hide = true)]
    BenchPeer {
        #[command(subcommand)]
        verb: bench_peer::Verb,
    },
}

/// `refnet-jobs queue …`.
#[derive(Debug, Subcommand)]
enum QueueAction {
    /// Queues with waiting and running jobs, the oldest wait, and pauses.
    List,
    /// Pause a queue: workers take nothing more from it (within a second) and
    /// finish what they hold; enqueueing goes on.
    Pause {
        /// The queue.
        name: String,
    },
    /// Resume a paused queue.
    Resume {
        /// The queue.
        name: String,
    },
}

/// `refnet-jobs schedule …`.
#[derive(Debug, Subcommand)]
enum ScheduleAction {
    /// Schedules with their status, misfire policy, next tick (in their zone and
    /// in UTC), last run and its state.
    List,
    /// Resume a paused schedule; its next tick is the first after now (missed ones never fire).
    Enable {
        /// The schedule's name.
        name: String,
    },
    /// Pause a schedule until `enable`, whatever its config says.
    Disable {
        /// The schedule's name.
        name: String,
    },
    /// Enqueue the schedule's job now, outside its cron; its ticks are unchanged.
    Trigger {
        /// The schedule's name.
        name: String,
    },
    /// Create or replace a schedule from the command line, read in the zone given by
    /// --tz (default UTC); kept across config syncs.
    Add {
        /// The schedule's name.
        name: String,
        /// Cron expression: 5 fields, or 6 with seconds first.
        #[arg(long)]
        cron: String,
        /// Task name or alias.
        #[arg(long)]
        task: String,
        /// Arguments of each job, as a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
        /// Queue of each job (default: the task's).
        #[arg(long)]
        queue: Option<String>,
        /// After downtime: once (the latest missed tick), skip, or all.
        #[arg(long, default_value = "once")]
        misfire: String,
    },
    /// Delete a schedule (its past jobs stay in history).
    Remove {
        /// The schedule's name.
        name: String,
    },
    /// The next ticks of a stored schedule.
    Next {
        /// The schedule's name.
        name: String,
        /// Start after this instant (RFC 3339); default now.
        #[arg(long)]
        after: Option<String>,
        /// How many ticks.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
        count: u32,
    },
}

/// `refnet-jobs cron …`.
#[derive(Debug, Subcommand)]
enum CronVerb {
    /// The next fire instants of EXPR, read in the zone given by --tz (default UTC),
    /// shown in that zone and in UTC; no database needed.
    Next {
        /// A cron expression: 5 fields, or 6 with seconds first.
        expr: String,
        /// Start after this instant (RFC 3339, e.g. 2024-03-08T00:00:00Z); default now.
        #[arg(long)]
        after: Option<String>,
        /// How many fire instants.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
        count: u32,
    },
}

/// A failure: its message and exit code.
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) code: u8,
}

impl Failure {
    /// Bad usage (exit 2).
    fn usage(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: 2,
        }
    }

    /// A failed operation (exit 1).
    fn failed(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: 1,
        }
    }

    /// An exit code whose reason was printed already.
    fn silent(code: u8) -> Self {
        Failure {
            message: String::new(),
            code,
        }
    }
}

impl From<refnet_jobs::Error> for Failure {
    fn from(error: refnet_jobs::Error) -> Self {
        // A name the user typed that matches nothing is bad usage, not a failed operation.
        let code = match error {
            refnet_jobs::Error::UnknownTask { .. } | refnet_jobs::Error::InvalidArgs(_) => 2,
            _ => 1,
        };
        Failure {
            message: error.to_string(),
            code,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if !failure.message.is_empty() {
                eprintln!("error: {}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let tz: Tz = chrono_tz::TZ_VARIANTS
        .iter()
        .find(|zone| zone.name().eq_ignore_ascii_case(&cli.tz))
        .copied()
        .ok_or(())
        .map_err(|_| Failure::usage(format!("unknown time zone {:?} for --tz", cli.tz)))?;
    let out = Output { json: cli.json, tz };
    // Check input before touching the database, so bad input writes nothing.
    let mut checked_run = None;
    if let Command::Run(run) = &cli.command {
        checked_run = Some(run::check(run)?);
    }
    if let Command::Bench(args) = &cli.command {
        args.validate().map_err(Failure::usage)?;
    }
    if let Command::Cron { verb } = &cli.command {
        return cron(verb, &out);
    }
    let url = database_url(cli.database_url)?;
    if let Command::BenchPeer { verb } = cli.command {
        return Ok(bench_peer::run(&url, verb).await?);
    }
    let pool = refnet_jobs::connect::pool(&url, 2, std::time::Duration::from_secs(10)).await?;
    match cli.command {
        Command::Migrate => {
            refnet_jobs::migrate(&pool).await?;
            out.print(
                &serde_json::json!({"migrated": true}),
                "refnet_jobs schema is up to date\n",
            );
        }
        Command::Prune {
            older_than,
            older_than_days,
            dry_run,
            batch,
        } => {
            let age = older_than.unwrap_or_else(|| {
                let days = older_than_days.unwrap_or(refnet_jobs::DEFAULT_RETENTION_DAYS);
                std::time::Duration::from_secs(u64::from(days) * 86_400)
            });
            // As --older-than-days: at most a century.
            if age > std::time::Duration::from_secs(36_500 * 86_400) {
                return Err(Failure::usage("--older-than is more than 100 years"));
            }
            let older = views::human_secs(age.as_secs_f64());
            if dry_run {
                let count = refnet_jobs::prunable(&pool, age).await?;
                out.print(
                    &serde_json::json!({"dry_run": true, "would_delete": count}),
                    &format!("would delete {count} finished jobs older than {older} (dry run)\n"),
                );
                return Ok(());
            }
            let pruned = refnet_jobs::prune(&pool, age, batch as usize).await?;
            out.print(
                &serde_json::json!(pruned),
                &format!(
                    "deleted {} finished jobs older than {older} ({} batches, {:.1} s)\n",
                    pruned.deleted, pruned.batches, pruned.seconds
                ),
            );
        }
        Command::Run(args) => {
            let checked = match checked_run {
                Some(checked) => checked,
                None => run::check(&args)?,
            };
            run::run(&pool, args, checked, &out).await?;
        }
        Command::Retry { id } => {
            let was = refnet_jobs::retry(&pool, id).await?;
            out.print(
                &serde_json::json!({"id": id, "was": was, "state": "available"}),
                &format!("job {id} ({was}) is back in line for another attempt\n"),
            );
        }
        Command::Show { id } => {
            let job = refnet_jobs::get_job(&pool, id)
                .await?
                .ok_or_else(|| Failure::failed(format!("job {id} not found")))?;
            views::show(&job, Utc::now(), &out);
        }
        Command::Status => views::status(&refnet_jobs::status(&pool).await?, &out),
        Command::Queue { action } => {
            match action.unwrap_or(QueueAction::List) {
                QueueAction::Pause { name } | QueueAction::Resume { name }
                    if name.trim().is_empty() =>
                {
                    return Err(Failure::usage("a queue name is needed"));
                }
                QueueAction::List => {
                    let queues = refnet_jobs::list_queues(&pool).await?;
                    out.print(&queues, &views::queues_table(&queues));
                }
                QueueAction::Pause { name } => {
                    refnet_jobs::pause_queue(&pool, &name).await?;
                    out.print(
                    &serde_json::json!({"queue": name, "paused": true}),
                    &format!("queue {name} paused; workers finish what they hold and take nothing more\n"),
                );
                }
                QueueAction::Resume { name } => {
                    refnet_jobs::resume_queue(&pool, &name).await?;
                    out.print(
                        &serde_json::json!({"queue": name, "paused": false}),
                        &format!("queue {name} resumed\n"),
                    );
                }
            }
        }
        Command::Purge {
            queue,
            task,
            dry_run,
            yes,
        } => purge::purge(&pool, queue, task, dry_run, yes, &out).await?,
        Command::Revoke { id, terminate } => {
            let revoked = refnet_jobs::revoke_with(&pool, id, terminate).await?;
            let text = match &revoked {
                refnet_jobs::Revoked::Cancelled { was } => {
                    format!("job {id} cancelled (it was {was}); it will not run\n")
                }
                refnet_jobs::Revoked::Stopping { worker } => format!(
                    "job {id} is running on {}; revoke sent, it will stop and end cancelled\n",
                    worker.as_deref().unwrap_or("a worker")
                ),
            };
            out.print(&serde_json::json!({"id": id, "revoked": revoked}), &text);
        }
        Command::Workers => {
            let workers = refnet_jobs::list_workers(&pool).await?;
            let rows = workers
                .iter()
                .map(|w| {
                    vec![
                        w.id.clone(),
                        if w.alive { "alive" } else { "dead" }.to_string(),
                        w.host.clone(),
                        w.pid.to_string(),
                        w.queues.join(", "),
                        out.time(w.started_at),
                        out.time(w.last_seen_at),
                    ]
                })
                .collect::<Vec<_>>();
            out.print(
                &workers,
                &table::render(
                    &[
                        "WORKER",
                        "STATUS",
                        "HOST",
                        "PID",
                        "QUEUES",
                        "STARTED",
                        "LAST SEEN",
                    ],
                    &rows,
                ),
            );
        }
        Command::Tasks => {
            let tasks = refnet_jobs::list_tasks(&pool).await?;
            let rows = tasks
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.aliases.join(", "),
                        t.queue.clone(),
                        t.description.clone(),
                    ]
                })
                .collect::<Vec<_>>();
            out.print(
                &tasks,
                &table::render(&["TASK", "ALIASES", "QUEUE", "DESCRIPTION"], &rows),
            );
        }
        Command::Schedule { action } => schedule(&pool, action, &out).await?,
        Command::History {
            days,
            task,
            state,
            queue,
            limit,
            summary,
        } => {
            if limit < 1 {
                return Err(Failure::usage("--limit must be at least 1"));
            }
            let state = state.map(|s| finished_state(&s)).transpose()?;
            // Accept the short names `run` accepts; other names are taken as given.
            let task = match task {
                Some(name) => Some(
                    refnet_jobs::list_tasks(&pool)
                        .await?
                        .into_iter()
                        .find(|t| t.answers_to(&name))
                        .map(|t| t.name)
                        .unwrap_or(name),
                ),
                None => None,
            };
            let filter = HistoryFilter {
                task,
                state,
                queue,
                limit,
                ..HistoryFilter::last_days(days)
            };
            if summary {
                let rows = refnet_jobs::history_summary(&pool, &filter).await?;
                views::summary(&rows, days, &out);
                return Ok(());
            }
            let jobs = refnet_jobs::history(&pool, &filter).await?;
            let rows = jobs
                .iter()
                .map(|j| history_row(j, &out))
                .collect::<Vec<_>>();
            let text = if jobs.is_empty() {
                format!("no finished jobs in the last {days} days\n")
            } else {
                table::render(
                    &[
                        "ID",
                        "TASK",
                        "STATE",
                        "STARTED",
                        "DURATION",
                        "ATTEMPTS",
                        "ERROR / RESULT",
                    ],
                    &rows,
                )
            };
            out.print(&jobs, &text);
        }
        Command::Bench(args) => {
            refnet_jobs::migrate(&pool).await?;
            bench::run(&pool, &args, out.json).await?
        }
        Command::BenchPeer { .. } | Command::Cron { .. } => {
            unreachable!("handled before connecting")
        }
    }
    Ok(())
}

fn history_row(job: &Job, out: &Output) -> Vec<String> {
    let duration = job
        .duration()
        .map(|d| format!("{:.3}s", d.num_milliseconds() as f64 / 1000.0))
        .unwrap_or_else(|| "-".into());
    let detail = match (job.last_error(), &job.result) {
        (Some(error), _) if job.state != refnet_jobs::JobState::Completed => shorten(error, 300),
        (_, Some(result)) => shorten(&result.to_string(), 100),
        _ => String::new(),
    };
    vec![
        job.id.to_string(),
        job.task.clone(),
        job.state.to_string(),
        job.started_at
            .map(|t| out.time(t))
            .unwrap_or_else(|| "-".into()),
        duration,
        format!("{}/{}", job.attempt, job.max_attempts),
        detail,
    ]
}

pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max - 1).collect();
    format!("{cut}…")
}

/// Parses `--state` of `history`: only final states are history.
fn finished_state(text: &str) -> Result<refnet_jobs::JobState, Failure> {
    let state: refnet_jobs::JobState = text
        .parse()
        .map_err(|e: refnet_jobs::Error| Failure::usage(e.to_string()))?;
    if !state.is_finished() {
        return Err(Failure::usage(format!(
            "history lists finished jobs only; --state must be completed, failed or cancelled, not {state}"
        )));
    }
    Ok(state)
}

/// Parses `--args`: a JSON object.
/// Schedules from the runner's config are changed there: `add` or `remove`
/// would be undone at the next sync, and meanwhile mislead.
async fn refuse_config_schedule(
    pool: &sqlx::PgPool,
    name: &str,
    verb: &str,
) -> Result<(), Failure> {
    match refnet_jobs::schedule::get(pool, name).await {
        Ok(info) if info.source == "config" => Err(Failure::failed(format!(
            "schedule {name} comes from the runner's config; {verb} it there (or pause it with `schedule disable {name}`)"
        ))),
        Ok(_) | Err(refnet_jobs::Error::NotFound(_)) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// A warning for an expression whose day-of-month and day-of-week are both
/// restricted: cron runs on days matching *either* (`+` before the weekday asks for both).
fn or_warning(expr: &str) -> Option<String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let (dom, dow) = match fields.len() {
        5 => (fields[2], fields[4]),
        6 => (fields[3], fields[5]),
        _ => return None,
    };
    let restricted = |f: &str| !f.contains('*') && !f.contains('?');
    (restricted(dom) && restricted(dow) && !dow.starts_with('+')).then(|| {
        format!(
            "day-of-month {dom:?} and day-of-week {dow:?} are both set, so the schedule runs on days \
             matching either (cron's rule); write +{dow} to require both"
        )
    })
}

/// `--after`, or now.
fn after_or_now(after: Option<&str>) -> Result<DateTime<Utc>, Failure> {
    match after {
        Some(text) => Ok(DateTime::parse_from_rfc3339(text)
            .map_err(|e| {
                Failure::usage(format!("--after {text:?} is not an RFC 3339 instant: {e}"))
            })?
            .with_timezone(&Utc)),
        None => Ok(Utc::now()),
    }
}

/// `refnet-jobs schedule [list|enable|disable|trigger|next]`.
async fn schedule(
    pool: &sqlx::PgPool,
    action: Option<ScheduleAction>,
    out: &Output,
) -> Result<(), Failure> {
    use refnet_jobs::schedule;
    match action.unwrap_or(ScheduleAction::List) {
        ScheduleAction::List => schedule_list(&schedule::list(pool).await?, out),
        ScheduleAction::Enable { name } => {
            let next = schedule::resume(pool, &name).await?;
            let text = match next {
                Some(next) => format!("schedule {name} resumed; next tick {}\n", out.time(next)),
                None => format!(
                    "pause of {name} lifted; it stays disabled by its definition (see `refnet-jobs schedule`)\n"
                ),
            };
            out.print(
                &serde_json::json!({"name": name, "paused": false, "next_fire_at": next}),
                &text,
            );
        }
        ScheduleAction::Disable { name } => {
            schedule::pause(pool, &name).await?;
            out.print(
                &serde_json::json!({"name": name, "paused": true}),
                &format!(
                    "schedule {name} paused; `refnet-jobs schedule enable {name}` resumes it\n"
                ),
            );
        }
        ScheduleAction::Trigger { name } => {
            let id = schedule::trigger(pool, &name).await?;
            out.print(
                &serde_json::json!({"name": name, "id": id}),
                &format!("schedule {name} triggered: job {id}\n"),
            );
        }
        ScheduleAction::Add {
            name,
            cron,
            task,
            args,
            queue,
            misfire,
        } => {
            let args = parse_args(&args)?;
            let misfire = misfire
                .parse()
                .map_err(|e: refnet_jobs::Error| Failure::usage(e.to_string()))?;
            let mut spec = refnet_jobs::ScheduleSpec::new(&name, &cron, &task);
            spec.timezone = out.tz.name().to_string();
            spec.args = args;
            spec.misfire = misfire;
            // Check the definition before touching the catalogue: bad input writes nothing.
            let parsed = spec.validate().map_err(|e| Failure::usage(e.to_string()))?;
            let info = refnet_jobs::resolve_task(pool, &task).await?;
            spec.task = info.name.clone();
            spec.queue = queue.unwrap_or(info.queue);
            spec.max_attempts = info.max_attempts;
            if let Some(warning) = or_warning(&cron) {
                eprintln!("warning: {warning}");
            }
            refuse_config_schedule(pool, &name, "replace").await?;
            schedule::upsert(pool, &spec, "cli").await?;
            let next = parsed.next_after(Utc::now())?;
            out.print(
                &serde_json::json!({"name": name, "task": spec.task, "next_fire_at": next}),
                &format!("schedule {name} saved; next tick {}\n", out.time(next)),
            );
        }
        ScheduleAction::Remove { name } => {
            refuse_config_schedule(pool, &name, "remove").await?;
            schedule::remove(pool, &name).await?;
            out.print(
                &serde_json::json!({"name": name, "removed": true}),
                &format!("schedule {name} removed\n"),
            );
        }
        ScheduleAction::Next { name, after, count } => {
            let info = schedule::get(pool, &name).await?;
            let cron = refnet_jobs::CronSchedule::parse(&info.spec.cron, &info.spec.timezone)?;
            let zone: Tz = info.spec.timezone.parse().unwrap_or(Tz::UTC);
            print_fires(&cron, zone, after_or_now(after.as_deref())?, count, out)?;
        }
    }
    Ok(())
}

fn schedule_list(schedules: &[refnet_jobs::schedule::ScheduleInfo], out: &Output) {
    let rows = schedules
        .iter()
        .map(|s| {
            let zone: Option<Tz> = s.spec.timezone.parse().ok();
            let (local, utc) = match (s.next_fire_at, zone) {
                (Some(at), Some(zone)) => (
                    at.with_timezone(&zone)
                        .format("%Y-%m-%d %H:%M %Z")
                        .to_string(),
                    at.format("%Y-%m-%d %H:%M UTC").to_string(),
                ),
                _ => ("-".into(), "-".into()),
            };
            let status = match (&s.paused_at, s.spec.enabled, &s.spec.disabled_reason) {
                (Some(_), _, _) => "paused".to_string(),
                (None, true, _) => "enabled".to_string(),
                (None, false, Some(reason)) => format!("disabled: {reason}"),
                (None, false, None) => "disabled".to_string(),
            };
            vec![
                s.spec.name.clone(),
                s.spec.cron.clone(),
                s.spec.timezone.clone(),
                status,
                s.spec.misfire.as_str().to_string(),
                local,
                utc,
                s.last_fire_at
                    .map(|t| out.time(t))
                    .unwrap_or_else(|| "-".into()),
                s.last_job_state.clone().unwrap_or_else(|| "-".into()),
                s.spec.task.clone(),
            ]
        })
        .collect::<Vec<_>>();
    out.print(
        &schedules,
        &table::render(
            &[
                "NAME",
                "CRON",
                "ZONE",
                "STATUS",
                "MISFIRE",
                "NEXT (ZONE)",
                "NEXT (UTC)",
                "LAST RUN",
                "LAST STATE",
                "TASK",
            ],
            &rows,
        ),
    );
}

/// `refnet-jobs cron next`: fire times from the library's fire-time function.
fn cron(verb: &CronVerb, out: &Output) -> Result<(), Failure> {
    let CronVerb::Next { expr, after, count } = verb;
    let after = after_or_now(after.as_deref())?;
    let schedule = refnet_jobs::CronSchedule::parse(expr, out.tz.name())
        .map_err(|e| Failure::usage(e.to_string()))?;
    print_fires(&schedule, out.tz, after, *count, out)
}

/// The next `count` fire times of `schedule` after `after`, in `zone` and UTC.
fn print_fires(
    schedule: &refnet_jobs::CronSchedule,
    zone: Tz,
    after: DateTime<Utc>,
    count: u32,
    out: &Output,
) -> Result<(), Failure> {
    let fires = schedule.upcoming(after, count as usize)?;
    let local = |at: &DateTime<Utc>| at.with_timezone(&zone).to_rfc3339();
    let json = serde_json::json!({
        "expr": schedule.expr(),
        "timezone": zone.name(),
        "after": after,
        "specific_time": schedule.is_specific_time(),
        "fires": fires.iter().map(|at| serde_json::json!({"utc": at, "local": local(at)})).collect::<Vec<_>>(),
    });
    let rows: Vec<Vec<String>> = fires
        .iter()
        .map(|at| {
            vec![
                at.with_timezone(&zone)
                    .format("%Y-%m-%d %H:%M:%S %Z (%:z)")
                    .to_string(),
                at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ]
        })
        .collect();
    let heading = format!("LOCAL ({})", zone.name());
    out.print(&json, &table::render(&[heading.as_str(), "UTC"], &rows));
    Ok(())
}

/// `--args`: a JSON object, or `@path` to read one from a file (`@-`: standard input).
pub(crate) fn parse_args(text: &str) -> Result<serde_json::Value, Failure> {
    let read;
    let text = match text.strip_prefix('@') {
        Some("-") => {
            let mut buffer = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut buffer).map_err(|e| {
                Failure::usage(format!("--args @-: cannot read standard input: {e}"))
            })?;
            read = buffer;
            read.as_str()
        }
        Some(path) => {
            read = std::fs::read_to_string(path)
                .map_err(|e| Failure::usage(format!("--args @{path}: {e}")))?;
            read.as_str()
        }
        None => text,
    };
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Failure::usage(format!("--args is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(Failure::usage(
            "--args must be a JSON object, e.g. '{\"max_papers\": 10}'",
        ));
    }
    Ok(value)
}

/// The database URL: `--database-url`, the environment, or a local runner's file.
fn database_url(flag: Option<String>) -> Result<String, Failure> {
    let url = match flag.or_else(refnet_jobs::connect::database_url_from_env) {
        Some(url) => url,
        None => {
            let cwd = std::env::current_dir().map_err(|e| Failure::usage(e.to_string()))?;
            refnet_jobs::connect::discover_local_url(&cwd)
                .map(|(_, url)| url)
                .ok_or_else(|| {
                    Failure::usage(
                        "no database: set DATABASE_URL (or DATABASE__HOST etc.), pass --database-url, \
                         or start refnet-jobs-runner in this directory",
                    )
                })?
        }
    };
    Ok(url)
}

/// How results are printed.
pub(crate) struct Output {
    pub(crate) json: bool,
    pub(crate) tz: Tz,
}

impl Output {
    pub(crate) fn print<T: serde::Serialize + ?Sized>(&self, value: &T, text: &str) {
        if self.json {
            match serde_json::to_string_pretty(value) {
                Ok(json) => println!("{json}"),
                Err(error) => eprintln!("error: cannot encode JSON: {error}"),
            }
        } else {
            print!("{text}");
        }
    }

    pub(crate) fn time(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.tz)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    }
}
