//! RefNet's scheduled tasks, run by this runner against RefNet's own tables.

pub(crate) mod fan_out;
mod health;
mod papers;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use refnet_jobs::{Registry, RetryPolicy, TaskOptions};
use sqlx::PgPool;

pub(crate) use fan_out::{CollectNewPapers, GenerateMarkdownFiles, ProcessPendingSummaries};
pub(crate) use health::SystemHealthCheck;
pub(crate) use stats::GenerateStatsReport;

/// What the tasks need from the runner.
pub(crate) struct TaskEnv {
    /// RefNet's database (which also holds the `refnet_jobs` schema).
    pub(crate) pool: PgPool,
    /// Where stats reports are written.
    pub(crate) reports_dir: PathBuf,
}

/// Options shared by RefNet's scheduled tasks: queue `default`, 3 attempts a
/// minute apart then longer, plus the CLI's short name.
fn options(alias: &str, description: &str) -> TaskOptions {
    TaskOptions {
        queue: "default".into(),
        max_attempts: 3,
        retry: RetryPolicy::exponential(Duration::from_secs(60), Duration::from_secs(900)),
        aliases: vec![alias.to_string()],
        description: description.to_string(),
    }
}

/// Every task this runner can run.
pub(crate) fn registry(env: Arc<TaskEnv>) -> Registry {
    let mut registry = Registry::new();
    registry
        .register(CollectNewPapers(env.clone()))
        .register(ProcessPendingSummaries(env.clone()))
        .register(GenerateMarkdownFiles(env.clone()))
        .register(SystemHealthCheck(env.clone()))
        .register(GenerateStatsReport(env));
    registry
}

#[cfg(test)]
mod tests;
