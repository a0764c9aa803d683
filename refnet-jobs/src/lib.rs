//! # refnet-jobs
//!
//! A job queue and cron scheduler that live in PostgreSQL alone: jobs are rows,
//! enqueueing is an `INSERT` that can ride in your own transaction, workers
//! claim rows with `SELECT … FOR UPDATE SKIP LOCKED` and wake on
//! `LISTEN/NOTIFY`, cron schedules are rows, and finished jobs are history.
//!
//! ## Quick start
//! ```no_run
//! use refnet_jobs::{JobContext, NewJob, Task, TaskError, Worker};
//!
//! struct Crawl;
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct CrawlArgs { paper_id: String }
//!
//! impl Task for Crawl {
//!     const NAME: &'static str = "refnet.crawler.crawl_paper";
//!     type Args = CrawlArgs;
//!     type Output = serde_json::Value;
//!     async fn run(&self, _ctx: JobContext, args: CrawlArgs) -> Result<Self::Output, TaskError> {
//!         Ok(serde_json::json!({ "crawled": args.paper_id }))
//!     }
//! }
//!
//! # async fn demo() -> refnet_jobs::Result<()> {
//! let pool = sqlx::PgPool::connect("postgres://localhost/refnet").await?;
//! refnet_jobs::migrate(&pool).await?;
//!
//! // Enqueue inside your own transaction: the job exists only if it commits.
//! let mut tx = pool.begin().await?;
//! refnet_jobs::enqueue_typed::<Crawl>(&mut *tx, &CrawlArgs { paper_id: "ab12".into() }).await?;
//! tx.commit().await?;
//!
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! Worker::builder(pool).register(Crawl).queue("default", 4).build()?.run(shutdown).await
//! # }
//! ```
//!
//! ## Guarantees
//! - At-least-once: a job is never lost. A claimed job holds a lease renewed
//!   by heartbeats; when its worker dies, any other worker rescues it once the
//!   lease expires (back in line, or `failed` on its last attempt). An
//!   attempt's outcome is only written by the worker holding the job at that
//!   attempt, so a worker presumed dead cannot overwrite the next attempt.
//! - Revoke ([`revoke`]) is stored in the row: a waiting job never runs, a
//!   running one is stopped and ends `cancelled`, even if the NOTIFY is lost.
//! - [`TimeLimits`]: the soft limit fires [`JobContext::cancel`], the hard one
//!   drops the attempt and fails it.
//! - Each cron tick is enqueued exactly once, whatever the number of schedulers.
//! - A failed attempt is retried after a capped exponential backoff with
//!   jitter; every attempt's error is kept on the job.

pub mod bench;
mod catalogue;
pub mod connect;
mod db;
mod enqueue;
mod error;
mod history;
mod job;
mod limits;
mod maintenance;
mod migrate;
mod notify;
mod queues;
mod retry;
mod revoke;
pub mod schedule;
mod status;
mod task;
mod worker;
mod workers;

pub use catalogue::{
    TaskInfo, list as list_tasks, register as register_tasks, resolve as resolve_task,
};
pub use enqueue::{
    DEFAULT_MAX_ATTEMPTS, DEFAULT_QUEUE, Enqueued, MAX_ARGS_BYTES, MAX_NAME_BYTES, NewJob, enqueue,
    enqueue_many, enqueue_typed, live_unique_keys,
};
pub use error::{Error, Result};
pub use history::{
    HistoryFilter, QueueCount, TaskSummary, expired_lease_count, finished as history,
    job as get_job, live_counts, summary as history_summary,
};
pub use job::{AttemptError, Job, JobState};
pub use limits::TimeLimits;
pub use maintenance::{
    DEFAULT_PRUNE_BATCH, DEFAULT_RETENTION_DAYS, Pruned, PurgeGroup, Purged, prunable, prune, purge,
};
pub use migrate::{MIGRATIONS_TABLE, embedded_migrations, migrate};
pub use queues::{QueueInfo, list_queues, pause_queue, resume_queue};
pub use retry::RetryPolicy;
pub use revoke::{Revoked, retry, revoke, revoke_with};
pub use schedule::{CronSchedule, MisfirePolicy, ScheduleSpec, Scheduler};
pub use status::{NextTick, Status, status};
pub use task::{JobContext, Registry, Task, TaskError, TaskOptions};
pub use worker::{AttemptEnded, Observer, Worker, WorkerBuilder, WorkerConfig};
pub use workers::{WorkerInfo, list_workers};

/// Re-exported so users can build shutdown tokens without adding the crate.
pub use tokio_util::sync::CancellationToken;
