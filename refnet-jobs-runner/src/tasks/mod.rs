//! RefNet's scheduled tasks, run by this runner against RefNet's own tables.

mod diag;
pub(crate) mod fan_out;
mod health;
mod papers;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use refnet_jobs::{Registry, RetryPolicy, TaskOptions, TimeLimits};
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

/// RefNet's Celery time limits: asked to stop after 55 minutes, stopped at 60.
pub(crate) const TIME_LIMITS: TimeLimits = {
    match TimeLimits::const_new(Duration::from_secs(3300), Duration::from_secs(3600)) {
        Some(limits) => limits,
        None => panic!("soft limit below hard"),
    }
};

/// Options shared by RefNet's scheduled tasks: queue `default`, 3 attempts a
/// minute apart then longer, RefNet's time limits, plus the CLI's short name.
fn options(alias: &str, description: &str) -> TaskOptions {
    TaskOptions {
        queue: "default".into(),
        max_attempts: 3,
        retry: RetryPolicy::exponential(Duration::from_secs(60), Duration::from_secs(900)),
        aliases: vec![alias.to_string()],
        description: description.to_string(),
        time_limits: TIME_LIMITS,
    }
}

/// Every task this runner can run; RefNet's tasks get `limits` (RefNet's
/// [`TIME_LIMITS`] unless the config says otherwise). With `diagnostics`,
/// the diagnostic tasks too.
pub(crate) fn registry(env: Arc<TaskEnv>, limits: TimeLimits, diagnostics: bool) -> Registry {
    fn with<T: refnet_jobs::Task>(registry: &mut Registry, task: T, limits: TimeLimits) {
        let options = TaskOptions {
            time_limits: limits,
            ..T::options()
        };
        registry.register_with(task, options);
    }
    let mut registry = Registry::new();
    with(&mut registry, CollectNewPapers(env.clone()), limits);
    with(&mut registry, ProcessPendingSummaries(env.clone()), limits);
    with(&mut registry, GenerateMarkdownFiles(env.clone()), limits);
    with(&mut registry, SystemHealthCheck(env.clone()), limits);
    with(&mut registry, GenerateStatsReport(env), limits);
    if diagnostics {
        registry
            .register(diag::DiagSleep)
            .register(diag::DiagEchoLen);
    }
    registry
}

#[cfg(test)]
mod tests;
