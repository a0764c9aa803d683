//! RefNet's scheduled tasks, run by this runner against RefNet's own tables.

mod backup;
mod diag;
pub(crate) mod fan_out;
mod health;
mod logs;
mod maintenance;
mod papers;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use refnet_jobs::{Registry, RetryPolicy, TaskOptions, TimeLimits};
use sqlx::PgPool;

pub(crate) use fan_out::{CollectNewPapers, GenerateMarkdownFiles, ProcessPendingSummaries};
pub(crate) use health::SystemHealthCheck;
pub(crate) use maintenance::DatabaseMaintenance;
pub(crate) use stats::GenerateStatsReport;

/// What the tasks need from the runner.
pub(crate) struct TaskEnv {
    /// RefNet's database (which also holds the `refnet_jobs` schema).
    pub(crate) pool: PgPool,
    /// Where stats reports are written.
    pub(crate) reports_dir: PathBuf,
    /// Directories the log cleanup works in, and whether it descends.
    pub(crate) log_dirs: Vec<PathBuf>,
    pub(crate) log_recursive: bool,
    /// Backups: where, how many, and of which database.
    pub(crate) backup: BackupEnv,
    /// Paper counts per status column and value from this runner's latest
    /// health check, for `/metrics`.
    pub(crate) latest_papers: std::sync::Mutex<Option<PaperCounts>>,
}

/// Status column → value → papers.
pub(crate) type PaperCounts =
    std::collections::BTreeMap<String, std::collections::BTreeMap<String, i64>>;

/// What the backup task needs.
pub(crate) struct BackupEnv {
    pub(crate) dir: PathBuf,
    pub(crate) keep: usize,
    pub(crate) max_age_days: u32,
    /// The database to dump (its password reaches `pg_dump` only through its environment).
    pub(crate) database_url: String,
    /// Backups run only in production; elsewhere the task reports it skipped.
    pub(crate) production: bool,
}

impl TaskEnv {
    /// An environment for tests: files under `dir`, no backups outside production.
    #[cfg(test)]
    pub(crate) fn for_tests(pool: PgPool, dir: &std::path::Path, database_url: &str) -> TaskEnv {
        TaskEnv {
            pool,
            reports_dir: dir.join("reports"),
            log_dirs: vec![dir.join("logs")],
            log_recursive: false,
            backup: BackupEnv {
                dir: dir.join("backups"),
                keep: 3,
                max_age_days: 30,
                database_url: database_url.to_string(),
                production: true,
            },
            latest_papers: std::sync::Mutex::new(None),
        }
    }
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
    with(&mut registry, GenerateStatsReport(env.clone()), limits);
    with(&mut registry, logs::CleanupOldLogs(env.clone()), limits);
    with(&mut registry, DatabaseMaintenance(env.clone()), limits);
    with(&mut registry, backup::BackupDatabase(env), limits);
    if diagnostics {
        registry
            .register(diag::DiagSleep)
            .register(diag::DiagEchoLen);
    }
    registry
}

#[cfg(test)]
mod tests;
