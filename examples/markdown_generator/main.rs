//! A Markdown-generator service that embeds refnet-jobs.
//!
//! It runs RefNet's `refnet.generator.generate_markdown` task (see `note.rs`):
//! every job `{"paper_id": "..."}` on queue `generate` becomes the note
//! `{paper_id}.md` in an Obsidian vault. Whoever enqueues those jobs (RefNet, the
//! runner's `generate_markdown_files` schedule, `--enqueue-stale` below) needs no
//! code from here: the task name and arguments are the whole contract.
//!
//! ```text
//! DATABASE_URL=postgres://localhost/refnet VAULT_DIR=./vault \
//!     cargo run -p refnet-jobs --example markdown_generator -- [--enqueue-stale N]
//! ```
//!
//! `--enqueue-stale N` first queues up to N papers whose note is missing or older
//! than their summary. Ctrl-C stops claiming jobs and lets running ones finish.

mod note;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use note::{GenerateArgs, GenerateMarkdown};
use refnet_jobs::{CancellationToken, NewJob, Task, Worker};
use sqlx::PgPool;

const USAGE: &str = "usage: markdown_generator [--enqueue-stale N]
environment: DATABASE_URL (required), VAULT_DIR (default ./vault), RUST_LOG (default info)";

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=error"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let enqueue_stale = parse_args()?;
    let database_url = std::env::var("DATABASE_URL")
        .map_err(|_| format!("DATABASE_URL is not set (the RefNet database)\n{USAGE}"))?;
    let vault =
        std::env::var_os("VAULT_DIR").map_or_else(|| PathBuf::from("./vault"), PathBuf::from);

    // One direct attempt first, so a refused or misaddressed server is reported at
    // once. 8 connections: 4 jobs, plus the worker's listener, claims and heartbeats.
    let pool = refnet_jobs::connect::pool(&database_url, 8, Duration::from_secs(10)).await?;
    // Creates or upgrades the `refnet_jobs` schema; safe at every start.
    refnet_jobs::migrate(&pool).await?;

    if let Some(limit) = enqueue_stale {
        let (picked, queued) = enqueue_stale_notes(&pool, limit).await?;
        tracing::info!(
            picked,
            queued,
            "queued generate jobs for stale or missing notes"
        );
    }

    // Ctrl-C or SIGTERM cancels the token; `run` then stops claiming, waits for
    // running jobs (within the worker's grace period) and returns.
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = sigterm.recv() => {}
        }
        on_signal.cancel();
        tracing::info!("shutting down");
    });

    tracing::info!(vault = %vault.display(), "writing notes");
    Worker::builder(pool.clone())
        .register(GenerateMarkdown::new(pool, vault))
        .queue("generate", 4)
        .build()?
        .run(shutdown)
        .await?;
    Ok(())
}

/// Reads `--enqueue-stale N` (the only flag).
fn parse_args() -> Result<Option<i64>, String> {
    let mut args = std::env::args().skip(1);
    let mut enqueue_stale = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--enqueue-stale" => {
                let n = args.next().unwrap_or_default();
                let n = n.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    format!("--enqueue-stale needs a positive number, got {n:?}\n{USAGE}")
                })?;
                enqueue_stale = Some(n);
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(enqueue_stale)
}

/// Queues a job for up to `limit` papers needing a note: summary completed and no
/// note yet, or a note older than the summary. The unique key (the same one the
/// runner's schedule uses) skips papers whose job is still waiting or running;
/// those are not replaced by others (the runner's fan-out pages past them).
/// Returns (papers picked, jobs inserted).
async fn enqueue_stale_notes(pool: &PgPool, limit: i64) -> refnet_jobs::Result<(usize, usize)> {
    let paper_ids: Vec<String> = sqlx::query_scalar(
        "SELECT paper_id FROM papers
         WHERE summary_status = 'completed'
           AND (generated_at IS NULL OR markdown_path IS NULL OR generated_at < summary_created_at)
         ORDER BY paper_id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut jobs = Vec::with_capacity(paper_ids.len());
    for paper_id in &paper_ids {
        // `typed` takes the queue and max_attempts from GenerateMarkdown::options().
        let args = GenerateArgs {
            paper_id: paper_id.clone(),
        };
        jobs.push(
            NewJob::typed::<GenerateMarkdown>(&args)?
                .unique_key(format!("{}:{paper_id}", GenerateMarkdown::NAME)),
        );
    }
    let inserted = refnet_jobs::enqueue_many(pool, &jobs).await?;
    Ok((paper_ids.len(), inserted.len()))
}
