//! `refnet.scheduled.system_health_check`: is the database up, how deep are
//! the queues, how many papers are in each status. Stored as the job's result.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use refnet_jobs::{JobContext, Task, TaskError, TaskOptions};
use serde::{Deserialize, Serialize};

use super::{TaskEnv, options};

/// No arguments.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HealthArgs {}

/// The health report.
#[derive(Debug, Serialize)]
pub(crate) struct HealthReport {
    database: DatabaseHealth,
    /// Live jobs per queue and state.
    queues: BTreeMap<String, BTreeMap<String, i64>>,
    /// Running jobs whose lease ran out (their worker is likely gone).
    stuck_jobs: i64,
    /// Paper counts per status column and value.
    papers: BTreeMap<String, BTreeMap<String, i64>>,
    papers_total: i64,
}

#[derive(Debug, Serialize)]
struct DatabaseHealth {
    reachable: bool,
    latency_ms: f64,
    server_version: String,
}

/// See the module docs.
pub(crate) struct SystemHealthCheck(pub(crate) Arc<TaskEnv>);

impl Task for SystemHealthCheck {
    const NAME: &'static str = "refnet.scheduled.system_health_check";
    type Args = HealthArgs;
    type Output = HealthReport;

    fn options() -> TaskOptions {
        options(
            "health-check",
            "check the database, queue depths and paper counts",
        )
    }

    async fn run(&self, _ctx: JobContext, _args: HealthArgs) -> Result<HealthReport, TaskError> {
        let pool = &self.0.pool;
        let started = Instant::now();
        let server_version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(pool)
            .await
            .map_err(|e| TaskError::retryable(format!("database unreachable: {e}")))?;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;

        let mut queues: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for count in refnet_jobs::live_counts(pool).await? {
            queues
                .entry(count.queue)
                .or_default()
                .insert(count.state, count.count);
        }
        let stuck_jobs = refnet_jobs::expired_lease_count(pool).await?;

        let papers = super::papers::status_counts(pool).await?;
        let papers_total = papers
            .get("crawl_status")
            .map(|m| m.values().sum())
            .unwrap_or(0);
        // For /metrics, which must not search history for it.
        *self
            .0
            .latest_papers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(papers.clone());
        Ok(HealthReport {
            database: DatabaseHealth {
                reachable: true,
                latency_ms,
                server_version,
            },
            queues,
            stuck_jobs,
            papers,
            papers_total,
        })
    }
}
