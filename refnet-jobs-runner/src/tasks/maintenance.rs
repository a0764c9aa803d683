//! `refnet.scheduled.database_maintenance`: RefNet's weekly clean-up. Old
//! finished `processing_queue` rows and old job history are deleted in small
//! batches (each its own transaction), then the tables are vacuumed and
//! analysed — each `VACUUM` on its own, outside any transaction, which
//! PostgreSQL requires (RefNet's Python version ran it inside one).

use std::sync::Arc;
use std::time::{Duration, Instant};

use refnet_jobs::{JobContext, Task, TaskError, TaskOptions};
use serde::{Deserialize, Serialize};

use super::{TaskEnv, options};

/// Rows deleted per statement.
const BATCH: i64 = 5_000;

/// The tables vacuumed, RefNet's then the job queue's.
const VACUUMED: [&str; 6] = [
    "public.papers",
    "public.authors",
    "public.paper_authors",
    "public.paper_relations",
    "public.processing_queue",
    "refnet_jobs.jobs",
];

/// How much history to keep; both default to 30 days.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MaintenanceArgs {
    /// Finished `processing_queue` rows older than this many days are deleted.
    #[serde(default = "thirty")]
    pub(crate) queue_days_to_keep: u32,
    /// Finished jobs older than this many days are deleted.
    #[serde(default = "thirty")]
    pub(crate) history_days_to_keep: u32,
}

fn thirty() -> u32 {
    30
}

/// What one run did.
#[derive(Debug, Serialize)]
pub(crate) struct MaintenanceOutcome {
    processing_queue_deleted: u64,
    job_history_deleted: u64,
    vacuumed: Vec<String>,
    seconds: f64,
}

/// See the module docs.
pub(crate) struct DatabaseMaintenance(pub(crate) Arc<TaskEnv>);

impl Task for DatabaseMaintenance {
    const NAME: &'static str = "refnet.scheduled.database_maintenance";
    type Args = MaintenanceArgs;
    type Output = MaintenanceOutcome;

    fn options() -> TaskOptions {
        TaskOptions {
            queue: "maintenance".into(),
            ..options(
                "db-maintenance",
                "delete old processing_queue rows and job history, then VACUUM (ANALYZE)",
            )
        }
    }

    fn validate(args: &MaintenanceArgs) -> Result<(), String> {
        if args.queue_days_to_keep == 0 || args.history_days_to_keep == 0 {
            return Err("days to keep must be at least 1".into());
        }
        Ok(())
    }

    async fn run(
        &self,
        ctx: JobContext,
        args: MaintenanceArgs,
    ) -> Result<MaintenanceOutcome, TaskError> {
        let pool = &self.0.pool;
        let started = Instant::now();
        let mut processing_queue_deleted = 0;
        // Walk forward by id, so each batch starts where the last stopped
        // instead of re-reading the rows it kept (or has not vacuumed yet).
        let mut after_id = 0i32;
        loop {
            // RefNet's timestamps are UTC without a zone.
            let (deleted, last): (i64, Option<i32>) = sqlx::query_as(
                "WITH batch AS (
                     SELECT id FROM public.processing_queue
                     WHERE id > $3 AND status IN ('completed', 'failed')
                       AND coalesce(completed_at, updated_at)
                           < (now() AT TIME ZONE 'UTC') - make_interval(days => $1)
                     ORDER BY id
                     LIMIT $2
                 ), gone AS (
                     DELETE FROM public.processing_queue
                     WHERE id IN (SELECT id FROM batch)
                     RETURNING id
                 )
                 SELECT count(*), max(id) FROM gone",
            )
            .bind(args.queue_days_to_keep as i32)
            .bind(BATCH)
            .bind(after_id)
            .fetch_one(pool)
            .await?;
            processing_queue_deleted += deleted as u64;
            match last {
                Some(last) if deleted == BATCH => after_id = last,
                _ => break,
            }
            if ctx.cancel.is_cancelled() {
                return Err(TaskError::retryable(
                    "stopped while deleting processing_queue rows",
                ));
            }
        }
        let history = Duration::from_secs(u64::from(args.history_days_to_keep) * 86_400);
        let pruned = refnet_jobs::prune(pool, history, refnet_jobs::DEFAULT_PRUNE_BATCH).await?;
        let mut vacuumed = Vec::new();
        for table in VACUUMED {
            if ctx.cancel.is_cancelled() {
                return Err(TaskError::retryable(format!(
                    "stopped before vacuuming {table} (vacuumed: {})",
                    vacuumed.join(", ")
                )));
            }
            // One statement per call, simple protocol, no transaction: VACUUM refuses any other way.
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("VACUUM (ANALYZE) {table}")))
                .execute(pool)
                .await
                .map_err(|e| {
                    TaskError::retryable(format!("VACUUM (ANALYZE) {table} failed: {e}"))
                })?;
            vacuumed.push(table.to_string());
        }
        let outcome = MaintenanceOutcome {
            processing_queue_deleted,
            job_history_deleted: pruned.deleted,
            vacuumed,
            seconds: started.elapsed().as_secs_f64(),
        };
        tracing::info!(
            processing_queue_deleted,
            job_history_deleted = pruned.deleted,
            seconds = outcome.seconds,
            "database maintenance done"
        );
        Ok(outcome)
    }
}
