//! The three collection tasks: pick papers by status and enqueue one job per
//! paper for the crawler, summarizer or generator, in one transaction, with a
//! unique key per paper so a paper is never queued twice while its job is live.

use std::sync::Arc;

use refnet_jobs::{JobContext, NewJob, Task, TaskError, TaskOptions};
use serde::{Deserialize, Serialize};
use sqlx::Postgres;

use super::{TaskEnv, options};

/// A fan-out: which papers, and what job each gets.
struct FanOut {
    /// Selects `paper_id`s, oldest first, after `$1` (keyset paging), at most `$2`.
    select: &'static str,
    task: &'static str,
    queue: &'static str,
    max_attempts: i32,
    args: fn(&str) -> serde_json::Value,
}

/// The result stored on the job.
#[derive(Debug, Serialize)]
pub(crate) struct FanOutResult {
    /// Task each queued job runs.
    task: &'static str,
    /// Papers newly queued.
    queued: usize,
    /// Papers skipped because a live job for them already exists.
    already_queued: usize,
    /// The ids newly queued.
    paper_ids: Vec<String>,
}

const PAGE: i64 = 500;

impl FanOut {
    async fn run(&self, env: &TaskEnv, limit: i64) -> Result<FanOutResult, TaskError> {
        if limit < 1 {
            return Err(TaskError::permanent(format!(
                "the limit must be at least 1, got {limit}"
            )));
        }
        let mut tx = env.pool.begin().await?;
        // One fan-out of a kind at a time: a second run waits, then sees the
        // first one's jobs and picks the next papers instead of the same ones.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(self.task)
            .execute(&mut *tx)
            .await?;
        let mut picked: Vec<String> = Vec::new();
        let mut already_queued = 0;
        let mut after = String::new();
        while (picked.len() as i64) < limit {
            let page: Vec<String> = sqlx::query_scalar::<Postgres, String>(self.select)
                .bind(&after)
                .bind(PAGE)
                .fetch_all(&mut *tx)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.clone();
            let keys: Vec<String> = page.iter().map(|id| self.key(id)).collect();
            let live = refnet_jobs::live_unique_keys(&mut *tx, &keys).await?;
            for id in page {
                if live.contains(&self.key(&id)) {
                    already_queued += 1;
                } else if (picked.len() as i64) < limit {
                    picked.push(id);
                }
            }
        }
        let jobs: Vec<NewJob> = picked
            .iter()
            .map(|id| {
                NewJob::new(self.task, (self.args)(id))
                    .queue(self.queue)
                    .max_attempts(self.max_attempts)
                    .unique_key(self.key(id))
            })
            .collect();
        let inserted = refnet_jobs::enqueue_many(&mut *tx, &jobs).await?;
        tx.commit().await?;
        Ok(FanOutResult {
            task: self.task,
            queued: inserted.len(),
            already_queued: already_queued + picked.len() - inserted.len(),
            paper_ids: picked,
        })
    }

    fn key(&self, paper_id: &str) -> String {
        format!("{}:{paper_id}", self.task)
    }
}

/// Arguments of `collect_new_papers`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CollectArgs {
    #[serde(default = "default_max_papers")]
    max_papers: i64,
}

fn default_max_papers() -> i64 {
    100
}

/// A fan-out's page size, as a schedule or `run --args` gives it.
fn positive(name: &str, value: i64) -> Result<(), String> {
    if value < 1 {
        return Err(format!("{name} must be at least 1, got {value}"));
    }
    Ok(())
}

/// `refnet.scheduled.collect_new_papers`: pending papers → one crawl job each.
pub(crate) struct CollectNewPapers(pub(crate) Arc<TaskEnv>);

impl Task for CollectNewPapers {
    const NAME: &'static str = "refnet.scheduled.collect_new_papers";
    type Args = CollectArgs;
    type Output = FanOutResult;

    fn options() -> TaskOptions {
        options("collect-papers", "queue a crawl job for each pending paper")
    }

    fn validate(args: &CollectArgs) -> Result<(), String> {
        positive("max_papers", args.max_papers)
    }

    async fn run(&self, _ctx: JobContext, args: CollectArgs) -> Result<FanOutResult, TaskError> {
        FanOut {
            select: "SELECT paper_id FROM papers
                     WHERE crawl_status = 'pending' AND paper_id > $1
                     ORDER BY paper_id LIMIT $2",
            task: "refnet.crawler.crawl_paper",
            queue: "crawl",
            max_attempts: 4,
            args: |id| serde_json::json!({ "paper_id": id, "hop_count": 0, "max_hops": 3 }),
        }
        .run(&self.0, args.max_papers)
        .await
    }
}

/// Arguments of the summary and markdown fan-outs.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchArgs {
    #[serde(default = "default_batch")]
    batch_size: i64,
}

fn default_batch() -> i64 {
    50
}

/// `refnet.scheduled.process_pending_summaries`: crawled, unsummarized papers → summarize jobs.
pub(crate) struct ProcessPendingSummaries(pub(crate) Arc<TaskEnv>);

impl Task for ProcessPendingSummaries {
    const NAME: &'static str = "refnet.scheduled.process_pending_summaries";
    type Args = BatchArgs;
    type Output = FanOutResult;

    fn options() -> TaskOptions {
        options(
            "summarize-papers",
            "queue a summary job for each crawled, unsummarized paper",
        )
    }

    fn validate(args: &BatchArgs) -> Result<(), String> {
        positive("batch_size", args.batch_size)
    }

    async fn run(&self, _ctx: JobContext, args: BatchArgs) -> Result<FanOutResult, TaskError> {
        FanOut {
            select: "SELECT paper_id FROM papers
                     WHERE crawl_status = 'completed' AND summary_status = 'pending'
                       AND paper_id > $1
                     ORDER BY paper_id LIMIT $2",
            task: "refnet.summarizer.summarize_paper",
            queue: "summarize",
            max_attempts: 3,
            args: |id| serde_json::json!({ "paper_id": id }),
        }
        .run(&self.0, args.batch_size)
        .await
    }
}

/// `refnet.scheduled.generate_markdown_files`: papers whose note is missing or
/// older than their summary → generate jobs (never the same notes forever).
pub(crate) struct GenerateMarkdownFiles(pub(crate) Arc<TaskEnv>);

impl Task for GenerateMarkdownFiles {
    const NAME: &'static str = "refnet.scheduled.generate_markdown_files";
    type Args = BatchArgs;
    type Output = FanOutResult;

    fn options() -> TaskOptions {
        options(
            "generate-markdown",
            "queue a note job for each paper whose note is missing or stale",
        )
    }

    fn validate(args: &BatchArgs) -> Result<(), String> {
        positive("batch_size", args.batch_size)
    }

    async fn run(&self, _ctx: JobContext, args: BatchArgs) -> Result<FanOutResult, TaskError> {
        FanOut {
            select: "SELECT paper_id FROM papers
                     WHERE summary_status = 'completed'
                       AND (generated_at IS NULL OR markdown_path IS NULL
                            OR generated_at < summary_created_at)
                       AND paper_id > $1
                     ORDER BY paper_id LIMIT $2",
            task: "refnet.generator.generate_markdown",
            queue: "generate",
            max_attempts: 3,
            args: |id| serde_json::json!({ "paper_id": id }),
        }
        .run(&self.0, args.batch_size)
        .await
    }
}
