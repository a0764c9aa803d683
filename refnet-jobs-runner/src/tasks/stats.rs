//! `refnet.scheduled.generate_stats_report`: RefNet's figures as a JSON file,
//! timestamped and written atomically (temporary file, fsync, rename).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use refnet_jobs::{JobContext, Task, TaskError, TaskOptions};
use serde::{Deserialize, Serialize};

use super::{TaskEnv, options};

/// No arguments.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatsArgs {}

/// The report written to disk.
#[derive(Debug, Serialize)]
pub(crate) struct StatsReport {
    generated_at: chrono::DateTime<chrono::Utc>,
    totals: BTreeMap<String, i64>,
    /// Percentage of papers whose crawl / pdf / summary is completed.
    completion_rates: BTreeMap<String, f64>,
    papers_added_this_week: i64,
    /// Year → number of papers published that year.
    papers_per_year: BTreeMap<i32, i64>,
    processing_status: BTreeMap<String, BTreeMap<String, i64>>,
    /// `processing_queue` rows per task type and status.
    processing_queue: BTreeMap<String, BTreeMap<String, i64>>,
}

/// What the job stores: where the report went and its headline figures.
#[derive(Debug, Serialize)]
pub(crate) struct StatsOutcome {
    path: PathBuf,
    bytes: usize,
    papers: i64,
    years: usize,
}

/// See the module docs.
pub(crate) struct GenerateStatsReport(pub(crate) Arc<TaskEnv>);

impl Task for GenerateStatsReport {
    const NAME: &'static str = "refnet.scheduled.generate_stats_report";
    type Args = StatsArgs;
    type Output = StatsOutcome;

    fn options() -> TaskOptions {
        options("stats-report", "write RefNet's statistics report as JSON")
    }

    async fn run(&self, _ctx: JobContext, _args: StatsArgs) -> Result<StatsOutcome, TaskError> {
        let report = collect(&self.0.pool).await?;
        let json = serde_json::to_vec_pretty(&report)?;
        let name = format!(
            "stats_report_{}.json",
            report.generated_at.format("%Y%m%dT%H%M%S%.3fZ")
        );
        let path = self.0.reports_dir.join(name);
        let dir = self.0.reports_dir.clone();
        let target = path.clone();
        let bytes = json.len();
        tokio::task::spawn_blocking(move || write_atomically(&dir, &target, &json))
            .await?
            .map_err(|e| TaskError::retryable(format!("cannot write {}: {e}", path.display())))?;
        Ok(StatsOutcome {
            path,
            bytes,
            papers: report.totals.get("papers").copied().unwrap_or(0),
            years: report.papers_per_year.len(),
        })
    }
}

async fn collect(pool: &sqlx::PgPool) -> Result<StatsReport, TaskError> {
    let generated_at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT now()").fetch_one(pool).await?;
    let mut totals = BTreeMap::new();
    for (name, sql) in [
        ("papers", "SELECT count(*) FROM papers"),
        ("authors", "SELECT count(*) FROM authors"),
        ("paper_relations", "SELECT count(*) FROM paper_relations"),
        ("venues", "SELECT count(*) FROM venues"),
        ("journals", "SELECT count(*) FROM journals"),
    ] {
        let count: i64 = sqlx::query_scalar(sql).fetch_one(pool).await?;
        totals.insert(name.to_string(), count);
    }
    let processing_status = super::papers::status_counts(pool).await?;
    let papers = totals.get("papers").copied().unwrap_or(0);
    let mut completion_rates = BTreeMap::new();
    for column in ["crawl_status", "pdf_status", "summary_status"] {
        let done = processing_status
            .get(column)
            .and_then(|m| m.get("completed"))
            .copied()
            .unwrap_or(0);
        let rate = if papers == 0 {
            0.0
        } else {
            done as f64 * 100.0 / papers as f64
        };
        completion_rates.insert(
            column.trim_end_matches("_status").to_string(),
            (rate * 100.0).round() / 100.0,
        );
    }
    // RefNet's timestamps are UTC without a zone: compare against UTC now.
    let papers_added_this_week: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM papers
         WHERE created_at >= (now() AT TIME ZONE 'UTC') - interval '7 days'",
    )
    .fetch_one(pool)
    .await?;
    // One row per year with the number of papers in it (the Python version
    // selected the year twice and reported the year as its own count).
    let per_year: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT year, count(*) FROM papers WHERE year IS NOT NULL GROUP BY year ORDER BY year",
    )
    .fetch_all(pool)
    .await?;
    let processing_queue = grouped(
        pool,
        "SELECT task_type, status, count(*) FROM processing_queue GROUP BY 1, 2",
    )
    .await?;
    Ok(StatsReport {
        generated_at,
        totals,
        completion_rates,
        papers_added_this_week,
        papers_per_year: per_year.into_iter().collect(),
        processing_status,
        processing_queue,
    })
}

async fn grouped(
    pool: &sqlx::PgPool,
    sql: &'static str,
) -> Result<BTreeMap<String, BTreeMap<String, i64>>, TaskError> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(sql).fetch_all(pool).await?;
    let mut map: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for (group, key, count) in rows {
        map.entry(group).or_default().insert(key, count);
    }
    Ok(map)
}

/// Writes `bytes` to `target` so a reader sees either no file or the whole one.
fn write_atomically(dir: &Path, target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report.json".into());
    let temp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, target)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}
