//! The worker: claims jobs from its queues and runs them.
//!
//! One fetch loop per queue claims batches with `FOR UPDATE SKIP LOCKED` as
//! slots free up, woken by NOTIFY (one listener per process) or, failing that,
//! by a poll. Each job runs in its own tokio task; its outcome is written back
//! only while this worker still holds the job.

mod complete;
mod execute;
mod fetch;
mod heartbeat;
mod held;
mod observe;

pub use observe::{AttemptEnded, Observer};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::task::{Registry, Task, TaskOptions};
use crate::{Error, Result, catalogue};

/// Tunables of a [`Worker`]; the defaults suit long-running tasks.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Poll for due jobs this often even without a notification (delayed jobs, lost NOTIFYs).
    pub poll_interval: Duration,
    /// Most jobs claimed in one round trip.
    pub batch_size: usize,
    /// Jobs claimed ahead of a free slot and held per queue, so a slot that
    /// frees up starts its next job without a round trip. 0 (the default)
    /// claims only for free slots, as long-running tasks want (Celery's
    /// prefetch of 1); short, high-volume jobs want tens.
    pub prefetch: usize,
    /// How long a claimed job's lease lasts without a heartbeat. Once it
    /// expires (its worker was killed or lost), any worker's rescue takes the
    /// job back: `retryable`, or `failed` on its last attempt.
    pub lease: Duration,
    /// How often running jobs' leases are renewed, and revokes looked up
    /// should their NOTIFY be lost.
    pub heartbeat_interval: Duration,
    /// How often this worker looks for expired leases of any worker.
    pub rescue_interval: Duration,
    /// On shutdown, how long running jobs may take to finish before they are interrupted.
    pub shutdown_grace: Duration,
    /// After a revoke, how long a running job may take to stop on its own
    /// (its cancel token has fired) before its future is dropped.
    pub cancel_grace: Duration,
    /// Listen for NOTIFY; turn off behind poolers that break LISTEN (poll only).
    pub listen: bool,
    /// Commit claims without waiting for their disk flush, which saves a
    /// flush between enqueue and start. The price: if the PostgreSQL server
    /// crashes in the fraction of a second after a claim, the claim is
    /// forgotten and another worker may run the job while this one still
    /// does (this worker's outcome is then refused). Off by default; on in
    /// [`WorkerConfig::throughput`].
    pub async_claims: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            poll_interval: Duration::from_secs(1),
            batch_size: 10,
            prefetch: 0,
            lease: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(5),
            rescue_interval: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            cancel_grace: Duration::from_secs(3),
            listen: true,
            async_claims: false,
        }
    }
}

impl WorkerConfig {
    /// Settings for many short jobs: claims of up to 200 and 200 jobs held
    /// ahead per queue, enough to cover a claim's round trip at tens of
    /// thousands of jobs a second, so slots never wait for the database; and
    /// claims committed without waiting for their flush ([`Self::async_claims`]).
    pub fn throughput() -> Self {
        WorkerConfig {
            batch_size: 200,
            prefetch: 200,
            async_claims: true,
            ..WorkerConfig::default()
        }
    }
}

/// Builds a [`Worker`].
///
/// Besides its pool (claims, outcomes, and whatever your tasks use), a
/// running worker opens up to two connections of its own, with the pool's
/// settings: one LISTENs (unless [`WorkerConfig::listen`] is off), one renews
/// leases and rescues, so tasks holding every pool connection can never
/// starve the heartbeats.
///
/// ```no_run
/// # async fn demo(pool: sqlx::PgPool) -> refnet_jobs::Result<()> {
/// # struct Greet;
/// # impl refnet_jobs::Task for Greet {
/// #     const NAME: &'static str = "greet"; type Args = (); type Output = ();
/// #     async fn run(&self, _: refnet_jobs::JobContext, _: ()) -> Result<(), refnet_jobs::TaskError> { Ok(()) }
/// # }
/// let shutdown = tokio_util::sync::CancellationToken::new();
/// refnet_jobs::Worker::builder(pool)
///     .register(Greet)
///     .queue("default", 4)
///     .build()?
///     .run(shutdown)
///     .await
/// # }
/// ```
pub struct WorkerBuilder {
    pool: PgPool,
    registry: Registry,
    queues: Vec<(String, usize)>,
    config: WorkerConfig,
    id: Option<String>,
    observer: Option<Observer>,
}

impl WorkerBuilder {
    /// Calls `observer` as each attempt's outcome is recorded (metrics,
    /// alerts). It runs on the worker's completer, so it must return quickly.
    pub fn on_attempt_end(
        mut self,
        observer: impl Fn(&AttemptEnded) + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// Adds a task with its own options.
    pub fn register<T: Task>(mut self, task: T) -> Self {
        self.registry.register(task);
        self
    }

    /// Adds a task with options given here.
    pub fn register_with<T: Task>(mut self, task: T, options: TaskOptions) -> Self {
        self.registry.register_with(task, options);
        self
    }

    /// Uses a prepared registry (replacing tasks registered so far).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// Works `queue` with at most `concurrency` jobs at once.
    pub fn queue(mut self, queue: impl Into<String>, concurrency: usize) -> Self {
        self.queues.push((queue.into(), concurrency));
        self
    }

    /// Replaces the tunables.
    pub fn config(mut self, config: WorkerConfig) -> Self {
        self.config = config;
        self
    }

    /// Names this worker (default: host, pid and a random suffix). The name
    /// must be unique among live workers: outcomes are fenced by it, and a
    /// stopping worker returns every job still running under it.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Checks the settings.
    ///
    /// Fails with [`Error::InvalidOption`] when no queue is given, a queue
    /// appears twice or has concurrency 0, the batch size or an interval is 0,
    /// or the lease is not longer than the heartbeat interval.
    pub fn build(self) -> Result<Worker> {
        if self.queues.is_empty() {
            return Err(Error::InvalidOption(
                "a worker needs at least one queue".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (queue, concurrency) in &self.queues {
            if !seen.insert(queue) {
                return Err(Error::InvalidOption(format!("queue {queue:?} given twice")));
            }
            if *concurrency == 0 {
                return Err(Error::InvalidOption(format!(
                    "queue {queue:?} needs a concurrency of at least 1"
                )));
            }
        }
        if self.config.batch_size == 0 {
            return Err(Error::InvalidOption("batch_size must be at least 1".into()));
        }
        let c = &self.config;
        if c.poll_interval.is_zero()
            || c.heartbeat_interval.is_zero()
            || c.rescue_interval.is_zero()
        {
            return Err(Error::InvalidOption(
                "poll_interval, heartbeat_interval and rescue_interval must be above zero".into(),
            ));
        }
        if c.lease <= c.heartbeat_interval {
            return Err(Error::InvalidOption(format!(
                "the lease ({:?}) must be longer than the heartbeat interval ({:?})",
                c.lease, c.heartbeat_interval
            )));
        }
        let id = self.id.unwrap_or_else(default_worker_id);
        let (completer, outcomes) = complete::Completer::channel();
        Ok(Worker {
            outcomes,
            shared: Arc::new(Shared {
                // Its own small pool, opened lazily with the same settings:
                // the listener and the upkeep loop never wait behind tasks.
                control: sqlx::postgres::PgPoolOptions::new()
                    .max_connections(2)
                    .min_connections(0)
                    .acquire_timeout(std::time::Duration::from_secs(30))
                    .connect_lazy_with((*self.pool.connect_options()).clone()),
                pool: self.pool,
                registry: self.registry,
                config: self.config,
                id,
                host: host_name(),
                observer: self.observer,
                held: held::Held::default(),
                stopping: CancellationToken::new(),
                completer,
            }),
            queues: self.queues,
        })
    }
}

/// What every part of a running worker shares.
pub(crate) struct Shared {
    pub(crate) pool: PgPool,
    /// Connections of the worker's own (listener, heartbeats), apart from `pool`.
    pub(crate) control: PgPool,
    pub(crate) registry: Registry,
    pub(crate) config: WorkerConfig,
    pub(crate) id: String,
    /// This machine's name, for the worker registry.
    pub(crate) host: String,
    /// Told of each attempt's recorded outcome.
    pub(crate) observer: Option<Observer>,
    pub(crate) held: held::Held,
    /// Fires when shutdown starts: each job's [`crate::JobContext::cancel`] is its child.
    pub(crate) stopping: CancellationToken,
    /// Where finished attempts go to be written in batches.
    pub(crate) completer: complete::Completer,
}

/// Claims and runs jobs from its queues until shut down.
pub struct Worker {
    shared: Arc<Shared>,
    queues: Vec<(String, usize)>,
    outcomes: tokio::sync::mpsc::UnboundedReceiver<complete::Finished>,
}

impl Worker {
    /// Starts building a worker on `pool`.
    pub fn builder(pool: PgPool) -> WorkerBuilder {
        WorkerBuilder {
            pool,
            registry: Registry::new(),
            queues: Vec::new(),
            config: WorkerConfig::default(),
            id: None,
            observer: None,
        }
    }

    /// This worker's id, as stored on the jobs it runs.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Runs until `shutdown` fires, then stops claiming, lets running jobs finish
    /// within the grace period, and puts the rest back in line.
    ///
    /// Fails only when the task catalogue cannot be written at start.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        catalogue::register(&self.shared.pool, &self.shared.registry).await?;
        tracing::info!(
            worker = %self.shared.id,
            queues = ?self.queues,
            tasks = ?self.shared.registry.names(),
            "worker started"
        );
        let stop_claiming = shutdown.child_token();
        let jobs = TaskTracker::new();
        let background = TaskTracker::new();
        let wakers: HashMap<String, Arc<Notify>> = self
            .queues
            .iter()
            .map(|(queue, _)| (queue.clone(), Arc::new(Notify::new())))
            .collect();
        let loops_done = CancellationToken::new();
        if self.shared.config.listen {
            let shared = self.shared.clone();
            let on_revoke: crate::notify::OnRevoke = Arc::new(move |id, terminate| {
                if shared
                    .held
                    .revoke(id, shared.config.cancel_grace, terminate)
                {
                    tracing::info!(job = %id, "job revoked; cancelling it");
                }
            });
            background.spawn(crate::notify::listen(
                self.shared.control.clone(),
                wakers.clone(),
                on_revoke,
                loops_done.clone(),
            ));
        }
        let queue_names: Vec<String> = self.queues.iter().map(|(q, _)| q.clone()).collect();
        background.spawn(heartbeat::run(
            self.shared.clone(),
            queue_names,
            loops_done.clone(),
        ));
        let flush = CancellationToken::new();
        let abandon = CancellationToken::new();
        let completer = tokio::spawn(complete::run(
            self.shared.clone(),
            self.outcomes,
            flush.clone(),
            abandon.clone(),
        ));
        let fetchers = TaskTracker::new();
        for (queue, concurrency) in &self.queues {
            let waker = wakers.get(queue).cloned().unwrap_or_default();
            fetchers.spawn(fetch::run(
                self.shared.clone(),
                queue.clone(),
                *concurrency,
                waker,
                jobs.clone(),
                stop_claiming.clone(),
            ));
        }
        fetchers.close();
        fetchers.wait().await;
        // Tell running jobs to wrap up; they are interrupted only after the grace period.
        self.shared.stopping.cancel();
        jobs.close();
        let grace = self.shared.config.shutdown_grace;
        if tokio::time::timeout(grace, jobs.wait()).await.is_err() {
            tracing::warn!(
                ?grace,
                "shutdown grace period over; interrupting running jobs"
            );
            self.shared.held.interrupt_all();
            jobs.wait().await;
        }
        // Every outcome is queued now: write them, waiting at most one more
        // grace period for an unreachable database.
        flush.cancel();
        let abandon_later = {
            let abandon = abandon.clone();
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                abandon.cancel();
            })
        };
        if let Err(error) = completer.await {
            tracing::error!(%error, "the completer crashed; unwritten jobs come back when their lease expires");
        }
        abandon_later.abort();
        // Anything still running under this worker's id now runs nowhere (an
        // outcome that could not be written, a claim that answered too late):
        // put it back rather than leave it to the lease.
        let held = crate::db::jobs::release_held(
            &self.shared.pool,
            &self.shared.id,
            "interrupted: worker stopped before recording this attempt",
        );
        match tokio::time::timeout(grace, held).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::warn!(jobs = n, "returned jobs this worker still held at exit"),
            Ok(Err(error)) => tracing::warn!(%error,
                "could not return the jobs this worker still holds; they come back when their lease expires"),
            Err(_) => tracing::warn!(
                "the database did not answer; jobs this worker still holds come back when their lease expires"
            ),
        }
        loops_done.cancel();
        background.close();
        background.wait().await;
        let unregister = crate::db::workers::remove(&self.shared.pool, &self.shared.id);
        if let Ok(Err(error)) = tokio::time::timeout(Duration::from_secs(5), unregister).await {
            tracing::warn!(%error, "could not remove this worker from the registry; its row expires");
        }
        self.shared.control.close().await;
        tracing::info!(worker = %self.shared.id, "worker stopped");
        Ok(())
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

fn default_worker_id() -> String {
    format!(
        "{}:{}:{:08x}",
        host_name(),
        std::process::id(),
        rand::random::<u32>()
    )
}
