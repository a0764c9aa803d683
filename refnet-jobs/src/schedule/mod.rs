//! Cron schedules stored as rows: definitions, seeding from configuration,
//! listing, and the tick loop that enqueues each due tick exactly once.

mod cron;
mod tick;

pub use cron::CronSchedule;
pub use tick::{CATCH_UP_TAG, FiredTick, MISFIRE_GRACE, Scheduler, fire_due};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::enqueue::{DEFAULT_MAX_ATTEMPTS, DEFAULT_QUEUE};
use crate::{Error, Result, db};

/// What to do with ticks missed while no scheduler ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MisfirePolicy {
    /// Fire none of them; wait for the next tick.
    Skip,
    /// Fire the latest missed tick once (the default).
    #[default]
    Once,
    /// Fire every missed tick, oldest first, up to the schedule's cap (the latest ones).
    All,
}

impl MisfirePolicy {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            MisfirePolicy::Skip => "skip",
            MisfirePolicy::Once => "once",
            MisfirePolicy::All => "all",
        }
    }
}

impl std::str::FromStr for MisfirePolicy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "skip" => Ok(MisfirePolicy::Skip),
            "once" => Ok(MisfirePolicy::Once),
            "all" => Ok(MisfirePolicy::All),
            other => Err(Error::InvalidOption(format!(
                "unknown misfire policy {other:?}; expected skip, once or all"
            ))),
        }
    }
}

/// A schedule's definition: when, in which zone, and what job to enqueue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// Unique name, e.g. `daily-paper-collection`.
    pub name: String,
    /// Cron expression, 5 fields or 6 with seconds first.
    pub cron: String,
    /// IANA time zone the expression is read in.
    pub timezone: String,
    /// Task to enqueue at each tick.
    pub task: String,
    /// Arguments of each job.
    pub args: serde_json::Value,
    /// Queue of each job.
    pub queue: String,
    /// Priority of each job.
    pub priority: i16,
    /// Attempts allowed for each job.
    pub max_attempts: i32,
    /// Disabled schedules never fire.
    pub enabled: bool,
    /// Catch-up behaviour after downtime.
    pub misfire: MisfirePolicy,
    /// Most ticks fired at once under [`MisfirePolicy::All`].
    pub misfire_cap: i32,
    /// Why it is disabled, shown by the CLI (e.g. gated to another environment).
    #[serde(default)]
    pub disabled_reason: Option<String>,
}

impl ScheduleSpec {
    /// A schedule with default options: UTC, queue `default`, enabled, misfire `once`.
    pub fn new(name: impl Into<String>, cron: impl Into<String>, task: impl Into<String>) -> Self {
        ScheduleSpec {
            name: name.into(),
            cron: cron.into(),
            timezone: "UTC".to_string(),
            task: task.into(),
            args: serde_json::json!({}),
            queue: DEFAULT_QUEUE.to_string(),
            priority: 0,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            enabled: true,
            misfire: MisfirePolicy::Once,
            misfire_cap: 10,
            disabled_reason: None,
        }
    }

    /// Checks the definition and returns its parsed cron expression.
    ///
    /// Fails with [`Error::InvalidSchedule`] naming the schedule and the problem
    /// (bad cron, unknown zone, empty task, attempts or cap below 1).
    pub fn validate(&self) -> Result<CronSchedule> {
        let invalid = |reason: String| Error::InvalidSchedule {
            name: self.name.clone(),
            reason,
        };
        if self.name.trim().is_empty() {
            return Err(Error::InvalidOption("a schedule needs a name".into()));
        }
        if self.task.trim().is_empty() {
            return Err(invalid("task is empty".into()));
        }
        if self.queue.trim().is_empty() {
            return Err(invalid("queue is empty".into()));
        }
        if self.max_attempts < 1 {
            return Err(invalid(format!(
                "max_attempts must be at least 1, got {}",
                self.max_attempts
            )));
        }
        if self.misfire_cap < 1 {
            return Err(invalid(format!(
                "misfire_cap must be at least 1, got {}",
                self.misfire_cap
            )));
        }
        CronSchedule::parse(&self.cron, &self.timezone).map_err(|e| invalid(e.to_string()))
    }
}

/// A stored schedule with its firing state, as listed by the CLI.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleInfo {
    /// The definition.
    #[serde(flatten)]
    pub spec: ScheduleSpec,
    /// Who wrote it: `config` (the runner's file) or `code`.
    pub source: String,
    /// The latest tick fired.
    pub last_fire_at: Option<DateTime<Utc>>,
    /// The next tick due (none for a disabled or broken schedule).
    pub next_fire_at: Option<DateTime<Utc>>,
    /// State of the job made for the latest fired tick, if it still exists.
    pub last_job_state: Option<String>,
    /// When an operator paused it (`refnet-jobs schedule disable`), if paused.
    pub paused_at: Option<DateTime<Utc>>,
}

impl ScheduleInfo {
    /// True when its next tick will fire: enabled and not paused.
    pub fn is_active(&self) -> bool {
        self.spec.enabled && self.paused_at.is_none()
    }
}

/// Creates or updates one schedule. A new schedule, a changed expression or
/// zone, or a re-enabled schedule gets its next tick computed from now, so no
/// stale tick ever fires.
///
/// Fails with [`Error::InvalidSchedule`] for a bad definition; nothing is written then.
pub async fn upsert(pool: &PgPool, spec: &ScheduleSpec, source: &str) -> Result<()> {
    let cron = spec.validate()?;
    let now = db::schedules::now(pool).await?;
    let next = spec.enabled.then(|| cron.next_after(now)).transpose()?;
    db::schedules::upsert(pool, spec, source, next).await
}

/// What [`sync_config`] changed.
#[derive(Debug, Default, Clone, Serialize)]
pub struct SyncReport {
    /// Schedules created or updated.
    pub upserted: Vec<String>,
    /// Config schedules no longer in the config, now disabled.
    pub disabled: Vec<String>,
}

/// Makes the stored config schedules match `specs`: each is upserted (source
/// `config`) and config schedules missing from `specs` are disabled.
/// Everything is validated first, so one bad entry writes nothing.
///
/// Fails with [`Error::InvalidSchedule`] naming the first bad schedule.
pub async fn sync_config(pool: &PgPool, specs: &[ScheduleSpec]) -> Result<SyncReport> {
    let mut seen = std::collections::HashSet::new();
    for spec in specs {
        spec.validate()?;
        if !seen.insert(spec.name.as_str()) {
            return Err(Error::InvalidSchedule {
                name: spec.name.clone(),
                reason: "defined twice".into(),
            });
        }
    }
    let mut report = SyncReport::default();
    for spec in specs {
        upsert(pool, spec, "config").await?;
        report.upserted.push(spec.name.clone());
    }
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    report.disabled = db::schedules::disable_config_except(pool, &names).await?;
    Ok(report)
}

/// Every stored schedule, by name.
pub async fn list(pool: &PgPool) -> Result<Vec<ScheduleInfo>> {
    db::schedules::list(pool).await
}

/// One stored schedule.
///
/// Fails with [`Error::NotFound`] when there is none of that name.
pub async fn get(pool: &PgPool, name: &str) -> Result<ScheduleInfo> {
    list(pool)
        .await?
        .into_iter()
        .find(|s| s.spec.name == name)
        .ok_or_else(|| not_found(name))
}

fn not_found(name: &str) -> Error {
    Error::NotFound(format!(
        "schedule {name:?} (see `refnet-jobs schedule` for the names)"
    ))
}

/// Deletes a schedule; the jobs it made stay in history. A schedule from the
/// runner's config comes back at the runner's next config sync.
///
/// Fails with [`Error::NotFound`] for an unknown name.
pub async fn remove(pool: &PgPool, name: &str) -> Result<()> {
    if db::schedules::remove(pool, name).await? {
        Ok(())
    } else {
        Err(not_found(name))
    }
}

/// Pauses a schedule: it fires no tick until [`resume`], whatever its
/// config says (a config sync keeps the pause). Pausing twice is harmless.
///
/// Fails with [`Error::NotFound`] for an unknown name.
pub async fn pause(pool: &PgPool, name: &str) -> Result<()> {
    if db::schedules::pause(pool, name).await? {
        Ok(())
    } else {
        Err(not_found(name))
    }
}

/// Resumes a paused schedule. Its next tick is the first one after now:
/// ticks that fell while it was paused are never fired. Returns that tick,
/// or `None` when the pause is lifted but its definition keeps it disabled
/// (gated to another environment, or `enabled = false`).
///
/// Fails with [`Error::NotFound`] for an unknown name, and with
/// [`Error::WrongState`] when it is not paused.
pub async fn resume(pool: &PgPool, name: &str) -> Result<Option<DateTime<Utc>>> {
    let info = get(pool, name).await?;
    if info.paused_at.is_none() {
        // Resetting its next tick would drop ticks that are due.
        let why = match (&info.spec.enabled, &info.spec.disabled_reason) {
            (true, _) => String::new(),
            (false, Some(reason)) => format!("; it is disabled by its definition: {reason}"),
            (false, None) => "; it is disabled by its definition".into(),
        };
        return Err(Error::WrongState(format!(
            "schedule {name:?} is not paused{why}"
        )));
    }
    if !info.spec.enabled {
        db::schedules::unpause_only(pool, name).await?;
        return Ok(None);
    }
    let cron = info.spec.validate()?;
    let now = db::schedules::now(pool).await?;
    let next = cron.next_after(now)?;
    db::schedules::resume(pool, name, next).await?;
    Ok(Some(next))
}

/// Enqueues a schedule's job now, outside its cron (Celery's "run now"):
/// same task, arguments, queue and attempts, tagged `triggered`, with the
/// schedule's name and the database's now as its tick. The schedule's own
/// ticks are unchanged. Works on paused and disabled schedules too.
///
/// Fails with [`Error::NotFound`] for an unknown name.
pub async fn trigger(pool: &PgPool, name: &str) -> Result<uuid::Uuid> {
    let info = get(pool, name).await?;
    let spec = &info.spec;
    let tags = vec!["triggered".to_string()];
    let row = db::jobs::InsertRow {
        id: uuid::Uuid::now_v7(),
        task: &spec.task,
        queue: &spec.queue,
        args: &spec.args,
        priority: spec.priority,
        max_attempts: spec.max_attempts,
        run_at: None,
        unique_key: None,
        schedule_name: Some(&spec.name),
        scheduled_for: Some(db::schedules::now(pool).await?),
        tags: &tags,
        soft_limit_secs: None,
        hard_limit_secs: None,
    };
    db::jobs::insert_tick(pool, &row)
        .await?
        .ok_or_else(|| Error::InvalidSchedule {
            name: name.to_string(),
            reason: "a job for this very instant exists already; trigger again".into(),
        })
}
