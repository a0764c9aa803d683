//! Tasks: the code a job runs, its options, and the registry workers look them up in.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::enqueue::{DEFAULT_MAX_ATTEMPTS, DEFAULT_QUEUE};
use crate::limits::TimeLimits;
use crate::retry::RetryPolicy;

/// Per-task settings: where its jobs wait, how they retry, how long they may run.
#[derive(Debug, Clone)]
pub struct TaskOptions {
    /// The queue typed enqueues go to.
    pub queue: String,
    /// Attempts allowed in all (typed enqueues and the catalogue use it).
    pub max_attempts: i32,
    /// Backoff between attempts.
    pub retry: RetryPolicy,
    /// Short names the CLI accepts for this task (e.g. `collect-papers`).
    pub aliases: Vec<String>,
    /// One line shown by the CLI.
    pub description: String,
    /// How long one attempt may run (a job's own limits, set at enqueue, win).
    pub time_limits: TimeLimits,
}

impl Default for TaskOptions {
    fn default() -> Self {
        TaskOptions {
            queue: DEFAULT_QUEUE.to_string(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry: RetryPolicy::default(),
            aliases: Vec::new(),
            description: String::new(),
            time_limits: TimeLimits::NONE,
        }
    }
}

/// What a running job knows about itself.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The job's id.
    pub id: Uuid,
    /// The task name.
    pub task: String,
    /// This attempt's number, from 1.
    pub attempt: i32,
    /// Attempts allowed in all.
    pub max_attempts: i32,
    /// Fires when the job should stop: the worker is shutting down (the job
    /// is put back in line after the grace period), the job was revoked (it
    /// ends `cancelled` after the cancel grace), its soft time limit passed,
    /// or its hard limit is being enforced. Long tasks should watch it.
    pub cancel: CancellationToken,
}

impl JobContext {
    /// True on the job's last allowed attempt.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// Runs blocking code (CPU-bound work, a blocking client) on tokio's
    /// blocking threads, so it neither stalls other jobs nor outlives its
    /// attempt unnoticed. `work` gets the job's cancel token and should check
    /// [`CancellationToken::is_cancelled`] between steps: a hard time limit
    /// or a revoke drops the attempt at once, but a thread cannot be stopped
    /// from outside, so code that never checks runs on until it returns.
    ///
    /// Fails with a retryable [`TaskError`] when `work` panics.
    pub async fn run_blocking<T, F>(&self, work: F) -> Result<T, TaskError>
    where
        F: FnOnce(&CancellationToken) -> T + Send + 'static,
        T: Send + 'static,
    {
        let token = self.cancel.clone();
        tokio::task::spawn_blocking(move || work(&token))
            .await
            .map_err(|e| TaskError::retryable(format!("blocking work failed: {e}")))
    }
}

/// Why an attempt failed. Any `std::error::Error` converts into a retryable
/// one, so `?` works in task bodies.
#[derive(Debug)]
pub struct TaskError {
    message: String,
    permanent: bool,
}

impl TaskError {
    /// A failure worth retrying (network, a locked row, ...).
    pub fn retryable(message: impl Into<String>) -> Self {
        TaskError {
            message: storable(message.into()),
            permanent: false,
        }
    }

    /// A failure no retry can fix (bad arguments, a missing row): the job fails at once.
    pub fn permanent(message: impl Into<String>) -> Self {
        TaskError {
            message: storable(message.into()),
            permanent: true,
        }
    }

    /// The message stored with the attempt.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True when the job must not be retried.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The same error with `prefix` before its message.
    pub(crate) fn with_prefix(self, prefix: &str) -> Self {
        TaskError {
            message: format!("{prefix}{}", self.message),
            ..self
        }
    }
}

/// `message` with NUL characters replaced: PostgreSQL cannot store them,
/// and an error message must never be what makes its job's record fail.
fn storable(message: String) -> String {
    if message.contains('\0') {
        message.replace('\0', "\u{FFFD}")
    } else {
        message
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for TaskError {
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        TaskError::retryable(message)
    }
}

/// A kind of job: a name, typed arguments, and the code that runs it.
///
/// ```
/// use refnet_jobs::{JobContext, Task, TaskError};
///
/// struct Greet;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct GreetArgs { name: String }
///
/// impl Task for Greet {
///     const NAME: &'static str = "example.greet";
///     type Args = GreetArgs;
///     type Output = String;
///     async fn run(&self, _ctx: JobContext, args: GreetArgs) -> Result<String, TaskError> {
///         Ok(format!("hello, {}", args.name))
///     }
/// }
/// ```
pub trait Task: Send + Sync + 'static {
    /// The task name stored on each job, e.g. `refnet.crawler.crawl_paper`.
    const NAME: &'static str;
    /// The job's arguments, stored as JSON.
    type Args: Serialize + DeserializeOwned + Send + 'static;
    /// What a successful run returns, stored as the job's JSON result.
    type Output: Serialize + Send + 'static;

    /// Queue, attempts, retry policy and aliases; defaults to [`TaskOptions::default`].
    fn options() -> TaskOptions {
        TaskOptions::default()
    }

    /// Checks argument values beyond their type (ranges, non-empty lists).
    /// Called before each run, where a refusal fails the job permanently,
    /// and by [`Registry::check_args`], so a runner can refuse a schedule
    /// whose arguments would fail every tick. Defaults to accepting all.
    fn validate(_args: &Self::Args) -> Result<(), String> {
        Ok(())
    }

    /// Runs one attempt.
    fn run(
        &self,
        ctx: JobContext,
        args: Self::Args,
    ) -> impl Future<Output = Result<Self::Output, TaskError>> + Send;
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<serde_json::Value, TaskError>> + Send>>;

/// A task with its types erased, as the worker calls it.
pub(crate) trait ErasedTask: Send + Sync {
    fn call(self: Arc<Self>, ctx: JobContext, args: serde_json::Value) -> BoxFuture;
    /// Whether `args` deserialize into the task's argument type and pass its
    /// [`Task::validate`].
    fn check_args(&self, args: &serde_json::Value) -> Result<(), String>;
}

struct Typed<T>(T);

impl<T: Task> ErasedTask for Typed<T> {
    fn check_args(&self, args: &serde_json::Value) -> Result<(), String> {
        let args = T::Args::deserialize(args)
            .map_err(|e| format!("invalid arguments for task {}: {e}", T::NAME))?;
        T::validate(&args).map_err(|e| format!("invalid arguments for task {}: {e}", T::NAME))
    }

    fn call(self: Arc<Self>, ctx: JobContext, args: serde_json::Value) -> BoxFuture {
        Box::pin(async move {
            let args: T::Args = serde_json::from_value(args).map_err(|e| {
                TaskError::permanent(format!("invalid arguments for task {}: {e}", T::NAME))
            })?;
            T::validate(&args).map_err(|e| {
                TaskError::permanent(format!("invalid arguments for task {}: {e}", T::NAME))
            })?;
            let output = self.0.run(ctx, args).await?;
            serde_json::to_value(output).map_err(|e| {
                TaskError::permanent(format!(
                    "task {} returned a result that is not JSON: {e}",
                    T::NAME
                ))
            })
        })
    }
}

/// A registered task: its handler and options.
#[derive(Clone)]
pub(crate) struct Registered {
    pub(crate) handler: Arc<dyn ErasedTask>,
    pub(crate) options: TaskOptions,
}

/// The tasks a worker can run, by name.
#[derive(Clone, Default)]
pub struct Registry {
    tasks: HashMap<String, Registered>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Adds task `T` with its own [`Task::options`].
    pub fn register<T: Task>(&mut self, task: T) -> &mut Self {
        self.register_with(task, T::options())
    }

    /// Adds task `T` with options given here (for options read from configuration).
    pub fn register_with<T: Task>(&mut self, task: T, options: TaskOptions) -> &mut Self {
        self.tasks.insert(
            T::NAME.to_string(),
            Registered {
                handler: Arc::new(Typed(task)),
                options,
            },
        );
        self
    }

    /// The registered task names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tasks.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The options of a registered task.
    pub fn options(&self, name: &str) -> Option<&TaskOptions> {
        self.tasks.get(name).map(|t| &t.options)
    }

    /// Checks `args` against registered task `name`'s argument type and its
    /// [`Task::validate`], without
    /// running anything: `None` when no such task is registered here.
    pub fn check_args(&self, name: &str, args: &serde_json::Value) -> Option<Result<(), String>> {
        self.tasks.get(name).map(|t| t.handler.check_args(args))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Registered> {
        self.tasks.get(name)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Registered)> {
        self.tasks.iter().map(|(k, v)| (k.as_str(), v))
    }
}
