//! `refnet-jobs-runner`: RefNet's automation host. Reads `refnet-jobs.toml`,
//! connects (or starts a throwaway PostgreSQL with RefNet's sample data),
//! migrates, seeds the schedules, and runs the cron scheduler and workers
//! until SIGINT or SIGTERM.

mod config;
mod database;
mod embedded_pg;
mod logging;
mod monitoring;
mod reload;
mod tasks;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use refnet_jobs::{CancellationToken, Scheduler, Worker};

use config::Config;

/// RefNet's automation host: cron scheduler and workers on PostgreSQL alone.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Configuration file.
    #[arg(
        long,
        short,
        default_value = "refnet-jobs.toml",
        env = "REFNET_JOBS_CONFIG"
    )]
    config: PathBuf,
    /// PostgreSQL URL. Without it (and without RefNet's DATABASE__* variables)
    /// a throwaway local PostgreSQL is started under ./.refnet-jobs.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "REFNET_JOBS_LOG_JSON", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    log_json: bool,
    /// Do not run the cron scheduler in this runner (workers only).
    #[arg(long)]
    no_scheduler: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let json = args.log_json;
    logging::init(json);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            logging::fatal(json, &message);
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let config = Config::load(&args.config).map_err(|e| e.to_string())?;
    let url = args
        .database_url
        .or_else(refnet_jobs::connect::database_url_from_env);
    let mut database = match url {
        Some(url) => database::Database {
            url,
            embedded: None,
        },
        None => {
            let work_dir =
                std::env::current_dir().map_err(|e| format!("no working directory: {e}"))?;
            tracing::info!(
                "no DATABASE_URL: starting a throwaway PostgreSQL under {}/.refnet-jobs",
                work_dir.display()
            );
            let started = tokio::task::spawn_blocking(move || database::start_embedded(&work_dir))
                .await
                .map_err(|e| e.to_string())?;
            started?
        }
    };
    // Shared with the signal handler, which stops the throwaway server itself
    // when a second signal makes the runner exit at once.
    let throwaway = Arc::new(std::sync::Mutex::new(database.embedded.take()));
    let result = serve(
        &config,
        &args.config,
        &database,
        throwaway.clone(),
        args.no_scheduler,
    )
    .await;
    let embedded = throwaway
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(embedded) = embedded {
        tokio::task::spawn_blocking(move || embedded.stop())
            .await
            .ok();
    }
    result
}

async fn serve(
    config: &Config,
    config_path: &std::path::Path,
    database: &database::Database,
    throwaway: Throwaway,
    no_scheduler: bool,
) -> Result<(), String> {
    let embedded = throwaway
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .is_some();
    // The worker opens two connections of its own (LISTEN, heartbeats) next
    // to this pool: a configured total includes them.
    let max_connections = config
        .workers
        .max_connections
        .map(|total| total - 2)
        .unwrap_or(config.workers.queues.values().sum::<usize>() as u32 + 4);
    let pool = refnet_jobs::connect::pool(&database.url, max_connections, Duration::from_secs(30))
        .await
        .map_err(|e| e.to_string())?;
    refnet_jobs::migrate(&pool)
        .await
        .map_err(|e| e.to_string())?;
    if embedded {
        tracing::info!("loading RefNet's schema and sample data if missing");
        if database::load_fixture_if_missing(&pool)
            .await
            .map_err(|e| format!("cannot load RefNet's sample data: {e}"))?
        {
            tracing::info!("RefNet sample data loaded");
        }
        tracing::info!(url = %database.url, "throwaway database ready; the refnet-jobs CLI finds it from this directory");
    }
    let env = Arc::new(tasks::TaskEnv {
        pool: pool.clone(),
        reports_dir: config.paths.reports_dir.clone(),
        log_dirs: config.paths.log_dirs.clone(),
        log_recursive: config.paths.log_recursive,
        backup: tasks::BackupEnv {
            dir: config.paths.backup_dir.clone(),
            keep: config.backup.keep,
            max_age_days: config.backup.max_age_days,
            database_url: database.url.clone(),
            production: config.environment == "production",
        },
        latest_papers: std::sync::Mutex::new(None),
    });
    let limits = config.workers.time_limits()?;
    let registry = tasks::registry(env.clone(), limits, config.workers.diagnostic_tasks);
    apply_schedules(&pool, config, &registry).await?;

    let counters = Arc::new(monitoring::TaskCounters::default());
    let (alerter, alert_loop) = monitoring::Alerter::new(config.monitoring.webhook_url.clone());
    tokio::spawn(alert_loop);
    let mut builder = Worker::builder(pool.clone())
        .on_attempt_end(monitoring::observer(
            counters.clone(),
            alerter,
            config.monitoring.critical_tasks.clone(),
        ))
        .registry(registry.clone())
        .config(config.workers.worker_config()?);
    for (queue, concurrency) in &config.workers.queues {
        builder = builder.queue(queue.clone(), *concurrency);
    }
    let worker = builder.build().map_err(|e| e.to_string())?;

    let shutdown = CancellationToken::new();
    tokio::spawn(wait_for_signal(shutdown.clone(), throwaway));
    if !config.monitoring.listen.is_empty() {
        let address = config
            .monitoring
            .listen
            .parse()
            .map_err(|e| format!("[monitoring] listen: {e}"))?;
        let endpoint = monitoring::serve(
            address,
            pool.clone(),
            counters,
            env.clone(),
            shutdown.clone(),
        )
        .await
        .map_err(|e| format!("cannot serve /healthz and /metrics on {address}: {e}"))?;
        tokio::spawn(endpoint);
    }
    tokio::spawn(reload::watch(
        config_path.to_path_buf(),
        config.clone(),
        pool.clone(),
        registry,
        shutdown.clone(),
    ));
    let scheduler =
        (!no_scheduler).then(|| tokio::spawn(Scheduler::new(pool.clone()).run(shutdown.clone())));
    tracing::info!(environment = %config.environment, schedules = config.schedules.len(), "runner started; Ctrl-C to stop");
    let outcome = worker.run(shutdown.clone()).await;
    shutdown.cancel();
    if let Some(scheduler) = scheduler {
        scheduler.await.ok();
    }
    pool.close().await;
    outcome.map_err(|e| e.to_string())
}

/// Checks the config's schedules against the tasks and stores them (at start
/// and at each reload).
pub(crate) async fn apply_schedules(
    pool: &sqlx::PgPool,
    config: &Config,
    registry: &refnet_jobs::Registry,
) -> Result<(), String> {
    check_schedule_tasks(pool, config, registry).await?;
    let report = refnet_jobs::schedule::sync_config(pool, &config.schedule_specs())
        .await
        .map_err(|e| e.to_string())?;
    for entry in config.schedules.iter().filter(|e| !config.allows(e)) {
        tracing::info!(schedule = %entry.name, environments = ?entry.environments,
            environment = %config.environment, "schedule gated out in this environment (stored disabled)");
    }
    if !report.disabled.is_empty() {
        tracing::info!(disabled = ?report.disabled, "schedules no longer in the config were disabled");
    }
    Ok(())
}

/// Refuses schedules whose arguments do not fit a task this runner runs, and
/// warns about tasks that neither this runner nor any registered worker knows
/// (a typo, or a service that has not started yet).
async fn check_schedule_tasks(
    pool: &sqlx::PgPool,
    config: &Config,
    registry: &refnet_jobs::Registry,
) -> Result<(), String> {
    let catalogue = refnet_jobs::list_tasks(pool)
        .await
        .map_err(|e| e.to_string())?;
    for spec in config.schedule_specs() {
        match registry.check_args(&spec.task, &spec.args) {
            Some(Err(reason)) => {
                return Err(format!("schedule {:?}: {reason}", spec.name));
            }
            Some(Ok(())) => {}
            None if !spec.enabled || catalogue.iter().any(|t| t.name == spec.task) => {}
            None => tracing::warn!(
                schedule = %spec.name, task = %spec.task,
                "no worker has registered this task; its jobs will wait until one does (typo?)"
            ),
        }
    }
    Ok(())
}

/// The throwaway PostgreSQL, if this runner started one.
type Throwaway = Arc<std::sync::Mutex<Option<database::Embedded>>>;

async fn wait_for_signal(shutdown: CancellationToken, throwaway: Throwaway) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::error!(%error, "cannot watch SIGTERM; only Ctrl-C stops the runner");
            tokio::signal::ctrl_c().await.ok();
            shutdown.cancel();
            return;
        }
    };
    let signal = tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    };
    shutdown.cancel();
    tracing::info!("{signal}: shutting down (send it again to stop at once)");
    let code = tokio::select! {
        _ = tokio::signal::ctrl_c() => 130,
        _ = term.recv() => 143,
    };
    tracing::warn!(
        "second signal: exiting now; running jobs stay running until their leases expire"
    );
    let embedded = throwaway
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(embedded) = embedded {
        // Stopping the server is quick (fast shutdown); a job left running
        // is rescued at the next start.
        tokio::task::spawn_blocking(move || embedded.stop())
            .await
            .ok();
    }
    std::process::exit(code);
}
