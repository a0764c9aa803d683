//! Putting jobs in the queue: options, typed and untyped, one or many.
//!
//! Every function takes any sqlx executor — a pool, a connection or the
//! caller's open transaction — so a job can be enqueued atomically with the
//! caller's own writes: it exists if and only if that transaction commits.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::db::jobs::{self, InsertRow};
use crate::limits::TimeLimits;
use crate::task::Task;
use crate::{Error, Result};

/// The default queue.
pub const DEFAULT_QUEUE: &str = "default";
/// The default number of attempts (the first run and two retries).
pub const DEFAULT_MAX_ATTEMPTS: i32 = 3;
/// The largest arguments a job may carry, as JSON text: 16 MiB. Bigger
/// payloads belong in a table or a file the job names; PostgreSQL would
/// take up to 255 MiB, but every claim and history query would carry them.
pub const MAX_ARGS_BYTES: usize = 16 * 1024 * 1024;
/// The longest task or queue name, in bytes (queue names travel in NOTIFY
/// payloads, which PostgreSQL caps at 8000 bytes).
pub const MAX_NAME_BYTES: usize = 200;

/// A job to enqueue: task name, JSON arguments and options.
///
/// ```
/// use refnet_jobs::NewJob;
/// let job = NewJob::new("refnet.crawler.crawl_paper", serde_json::json!({"paper_id": "ab12"}))
///     .queue("crawl")
///     .max_attempts(4)
///     .unique_key("crawl:ab12");
/// assert_eq!(job.task_name(), "refnet.crawler.crawl_paper");
/// ```
#[derive(Debug, Clone)]
pub struct NewJob {
    task: String,
    args: serde_json::Value,
    queue: String,
    priority: i16,
    max_attempts: i32,
    run_at: Option<DateTime<Utc>>,
    unique_key: Option<String>,
    tags: Vec<String>,
    time_limits: TimeLimits,
}

impl NewJob {
    /// An untyped job: a task name (which may live in another service) and its JSON arguments,
    /// on the default queue with default options.
    pub fn new(task: impl Into<String>, args: serde_json::Value) -> Self {
        NewJob {
            task: task.into(),
            args,
            queue: DEFAULT_QUEUE.to_string(),
            priority: 0,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            run_at: None,
            unique_key: None,
            tags: Vec::new(),
            time_limits: TimeLimits::NONE,
        }
    }

    /// A typed job for task `T`, with `T`'s queue and attempts as defaults.
    ///
    /// Fails with [`Error::InvalidArgs`] when the arguments do not serialize to JSON.
    pub fn typed<T: Task>(args: &T::Args) -> Result<Self> {
        let args = serde_json::to_value(args).map_err(|e| Error::InvalidArgs(e.to_string()))?;
        let options = T::options();
        Ok(NewJob::new(T::NAME, args)
            .queue(options.queue)
            .max_attempts(options.max_attempts))
    }

    /// The queue to wait in.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Higher priorities are claimed first (default 0).
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    /// Attempts allowed in all, at least 1.
    pub fn max_attempts(mut self, max_attempts: i32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Do not run before this instant.
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }

    /// Do not run before this delay has passed (measured from the caller's clock).
    pub fn run_in(self, delay: std::time::Duration) -> Self {
        let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        self.run_at(Utc::now() + delay)
    }

    /// While a live job with this key exists, enqueueing another inserts nothing
    /// and returns the existing job's id.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// Adds a free-form label.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Time limits of this job's attempts, replacing its task's own.
    pub fn time_limits(mut self, limits: TimeLimits) -> Self {
        self.time_limits = limits;
        self
    }

    /// The task this job runs.
    pub fn task_name(&self) -> &str {
        &self.task
    }

    fn validate(&self) -> Result<()> {
        if self.task.trim().is_empty() {
            return Err(Error::InvalidOption("task name is empty".into()));
        }
        if self.queue.trim().is_empty() {
            return Err(Error::InvalidOption("queue name is empty".into()));
        }
        for (what, name) in [("task", &self.task), ("queue", &self.queue)] {
            if name.len() > MAX_NAME_BYTES {
                return Err(Error::InvalidOption(format!(
                    "{what} name is {} bytes long; the limit is {MAX_NAME_BYTES}",
                    name.len()
                )));
            }
        }
        if has_nul(&self.args) {
            return Err(Error::InvalidArgs(
                "the arguments contain a NUL character (\\u0000), which PostgreSQL cannot store"
                    .into(),
            ));
        }
        let size = json_size(&self.args);
        if size > MAX_ARGS_BYTES {
            return Err(Error::InvalidArgs(format!(
                "the arguments are {size} bytes of JSON; the limit is {MAX_ARGS_BYTES} \
                 (store large data elsewhere and pass its key)"
            )));
        }
        if self.max_attempts < 1 {
            return Err(Error::InvalidOption(format!(
                "max_attempts must be at least 1, got {}",
                self.max_attempts
            )));
        }
        Ok(())
    }

    fn row(&self) -> InsertRow<'_> {
        InsertRow {
            id: Uuid::now_v7(),
            task: &self.task,
            queue: &self.queue,
            args: &self.args,
            priority: self.priority,
            max_attempts: self.max_attempts,
            run_at: self.run_at,
            unique_key: self.unique_key.as_deref(),
            schedule_name: None,
            scheduled_for: None,
            tags: &self.tags,
            soft_limit_secs: self.time_limits.soft().map(|d| d.as_secs_f64()),
            hard_limit_secs: self.time_limits.hard().map(|d| d.as_secs_f64()),
        }
    }
}

/// True when a string (or key) in `value` holds a NUL character.
fn has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(text) => text.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(has_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// The length of `value` as JSON text, counted without building the text.
fn json_size(value: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a Value to a counter cannot fail.
    serde_json::to_writer(&mut count, value).ok();
    count.0
}

/// The outcome of [`enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    /// The job's id: the new one, or the live job holding the same unique key.
    pub id: Uuid,
    /// False when a live job with the same unique key already existed.
    pub inserted: bool,
}

/// Enqueues one job on any executor (pool, connection or open transaction).
///
/// Fails with [`Error::InvalidOption`] for an empty or overlong task or
/// queue name or `max_attempts < 1`, with [`Error::InvalidArgs`] for
/// arguments over [`MAX_ARGS_BYTES`], with [`Error::Database`] when the insert fails, and with
/// [`Error::UniqueKeyRace`] in the rare case where the live job holding the
/// key finished while this call looked it up (enqueue again).
pub async fn enqueue<'e>(executor: impl PgExecutor<'e>, job: &NewJob) -> Result<Enqueued> {
    job.validate()?;
    let (id, inserted) = jobs::insert_one(executor, &job.row())
        .await?
        .ok_or_else(|| Error::UniqueKeyRace(job.unique_key.clone().unwrap_or_default()))?;
    Ok(Enqueued { id, inserted })
}

/// Enqueues a typed job for task `T`.
pub async fn enqueue_typed<'e, T: Task>(
    executor: impl PgExecutor<'e>,
    args: &T::Args,
) -> Result<Enqueued> {
    enqueue(executor, &NewJob::typed::<T>(args)?).await
}

/// Enqueues many jobs in one statement. Jobs whose unique key is held by a
/// live job (or repeated within `jobs`) are skipped; returns the ids inserted.
pub async fn enqueue_many<'e>(executor: impl PgExecutor<'e>, jobs: &[NewJob]) -> Result<Vec<Uuid>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    for job in jobs {
        job.validate()?;
    }
    let mut seen = std::collections::HashSet::new();
    let rows: Vec<InsertRow<'_>> = jobs
        .iter()
        .filter(|job| match &job.unique_key {
            Some(key) => seen.insert(key.as_str()),
            None => true,
        })
        .map(NewJob::row)
        .collect();
    jobs::insert_many(executor, &rows).await
}

/// Which of `keys` are held by a live (waiting or running) job, so a fan-out
/// can pick only work that is not queued yet.
pub async fn live_unique_keys<'e>(
    executor: impl PgExecutor<'e>,
    keys: &[String],
) -> Result<Vec<String>> {
    jobs::live_unique_keys(executor, keys).await
}
