//! The `refnet-jobs-runner` binary for real: RefNet's schedule and tasks on a
//! real PostgreSQL, steered through the `refnet-jobs` CLI, stopped by SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support.rs"]
mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::PgPool;
use support::*;

fn shipped_config() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../refnet-jobs.toml")
}

/// A runner process that is stopped (SIGTERM, then SIGKILL) if the test fails
/// midway, so no runner or throwaway server outlives its test.
struct Runner(Option<Child>);

impl Drop for Runner {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        terminate(child.id());
        for _ in 0..100 {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        child.kill().ok();
        child.wait().ok();
    }
}

/// Starts the runner in `dir` with the shipped config; `url` None = embedded database.
fn start_runner(dir: &Path, url: Option<&str>) -> Runner {
    start_runner_with(dir, url, &shipped_config())
}

/// Starts the runner in `dir` with the config file at `config`.
fn start_runner_with(dir: &Path, url: Option<&str>, config: &Path) -> Runner {
    let mut command = Command::new(env!("CARGO_BIN_EXE_refnet-jobs-runner"));
    command
        .current_dir(dir)
        .arg("--config")
        .arg(config)
        .env_remove("DATABASE_URL")
        .env_remove("DATABASE__HOST")
        .env_remove("DATABASE__DATABASE")
        .env("RUST_LOG", "info")
        // Tests run side by side: each endpoint on a port of its own.
        .env("REFNET_JOBS_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("runner.log")).unwrap(),
        ));
    if let Some(url) = url {
        command.env("DATABASE_URL", url);
    }
    Runner(Some(command.spawn().unwrap()))
}

/// SIGTERM, then the exit status within `limit`.
async fn stop(mut runner: Runner, limit: Duration) -> std::process::ExitStatus {
    let mut child = runner.0.take().unwrap();
    terminate(child.id());
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            child.kill().ok();
            panic!("runner did not stop within {limit:?} of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn cli_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(binary("refnet-jobs"))
        .current_dir(dir)
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("DATABASE__HOST")
        .env_remove("DATABASE__DATABASE")
        .output()
        .unwrap()
}

async fn finished_collections(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM refnet_jobs.jobs
         WHERE task = 'refnet.scheduled.collect_new_papers' AND state = 'completed'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn the_runner_hosts_refnets_tasks_and_the_cli_steers_it(pool: PgPool) {
    load_fixture(&pool).await;
    let url = url_of(&pool).await;
    let dir = temp_dir("runner");
    let runner = start_runner(&dir, Some(&url));
    wait_for(Duration::from_secs(60), "the runner to register its tasks", || async {
        let tasks: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_tables t WHERE schemaname = 'refnet_jobs' AND tablename = 'tasks'
               AND EXISTS (SELECT 1 FROM refnet_jobs.tasks)",
        )
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
        tasks == 1
    })
    .await;

    let schedules: Vec<(String, bool, String)> =
        sqlx::query_as("SELECT name, enabled, timezone FROM refnet_jobs.schedules ORDER BY name")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(schedules.len(), 8, "{schedules:?}");
    assert!(schedules.iter().all(|(_, _, tz)| tz == "Asia/Tokyo"));
    let backup = schedules.iter().find(|s| s.0 == "daily-backup").unwrap();
    assert!(!backup.1, "backup is production only");

    for _ in 0..2 {
        let out = cli(&url, &["run", "collect-papers"]);
        assert!(out.status.success(), "{}", stderr(&out));
        // One after the other, as an operator would.
        let before = finished_collections(&pool).await;
        wait_for(
            Duration::from_secs(60),
            "the collection to complete",
            || async { finished_collections(&pool).await > before },
        )
        .await;
    }
    let (jobs, papers): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT args->>'paper_id') FROM refnet_jobs.jobs
         WHERE task = 'refnet.crawler.crawl_paper'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (jobs, papers),
        (200, 200),
        "one crawl job per paper, none twice"
    );

    let out = cli(&url, &["history", "--days", "7"]);
    let text = stdout(&out);
    assert_eq!(
        text.matches("refnet.scheduled.collect_new_papers").count(),
        2,
        "{text}"
    );
    assert_eq!(text.matches("completed").count(), 2, "{text}");
    let out = cli(&url, &["history", "--days", "7", "--json"]);
    let jobs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        jobs.iter().all(|j| j["result"]["queued"] == 100),
        "{jobs:?}"
    );

    let status = stop(runner, Duration::from_secs(40)).await;
    assert!(status.success(), "runner exit status {status:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Runs the runner to completion with `config` as its file; it is expected to refuse to start.
fn run_with_config(url: &str, config: &str) -> std::process::Output {
    let dir = temp_dir("config");
    let path = dir.join("refnet-jobs.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_refnet-jobs-runner"))
        .arg("--config")
        .arg(&path)
        .env("DATABASE_URL", url)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    out
}

#[sqlx::test(migrations = false)]
async fn a_bad_cron_expression_stops_the_runner_at_start_naming_the_schedule(pool: PgPool) {
    let url = url_of(&pool).await;
    let out = run_with_config(
        &url,
        "[[schedules]]\nname = \"nightly-crawl\"\ncron = \"0 26 * * *\"\ntask = \"x\"\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("nightly-crawl") && err.contains("0 26 * * *"),
        "{err}"
    );
    let schema: Option<String> = sqlx::query_scalar("SELECT to_regnamespace('refnet_jobs')::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(schema, None, "nothing was written");
}

/// Starts the runner with one collection schedule whose args are `args`, and
/// checks it refused to start, naming the schedule and `problem`, and wrote
/// no schedule.
async fn assert_collection_args_refused(pool: &PgPool, args: &str, problem: &str) {
    let url = url_of(pool).await;
    let out = run_with_config(
        &url,
        &format!(
            "[[schedules]]\nname = \"daily-paper-collection\"\ncron = \"0 2 * * *\"\n\
             task = \"refnet.scheduled.collect_new_papers\"\nargs = {args}\n"
        ),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("daily-paper-collection") && err.contains(problem),
        "{err}"
    );
    let schedules: i64 = sqlx::query_scalar("SELECT count(*) FROM refnet_jobs.schedules")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(schedules, 0, "no schedule was written");
}

#[sqlx::test(migrations = false)]
async fn schedule_args_that_do_not_fit_the_task_stop_the_runner_at_start(pool: PgPool) {
    assert_collection_args_refused(&pool, r#"{ max_papers = "ten" }"#, "\"ten\"").await;
}

/// A value of the right type but out of range (a page of 0 papers) would fail
/// every tick: the runner refuses it at start, as it does a wrong type.
#[sqlx::test(migrations = false)]
async fn schedule_args_out_of_range_stop_the_runner_at_start(pool: PgPool) {
    assert_collection_args_refused(&pool, "{ max_papers = 0 }", "max_papers must be at least 1")
        .await;
}

/// The README's first command: no database configured, so the runner starts a
/// throwaway PostgreSQL with RefNet's sample, and the CLI finds it from the
/// same directory.
#[tokio::test]
async fn with_no_database_the_runner_starts_a_throwaway_one_the_cli_finds() {
    let dir = temp_dir("embedded");
    // The server runs as the postgres user when we are root: let it in.
    let mut perms = std::fs::metadata(&dir).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&dir, perms).unwrap();
    let runner = start_runner(&dir, None);
    let url_file = dir.join(".refnet-jobs/database-url");
    wait_for(
        Duration::from_secs(120),
        "the throwaway database",
        || async {
            url_file.exists() && stdout(&cli_in(&dir, &["tasks"])).contains("collect-papers")
        },
    )
    .await;
    // A second runner in the same directory must not restart the first one's server.
    let second = Command::new(env!("CARGO_BIN_EXE_refnet-jobs-runner"))
        .current_dir(&dir)
        .arg("--config")
        .arg(shipped_config())
        .env_remove("DATABASE_URL")
        .env_remove("DATABASE__HOST")
        .env_remove("DATABASE__DATABASE")
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stderr(&second).contains("already runs the throwaway PostgreSQL"),
        "{}",
        stderr(&second)
    );

    let out = cli_in(&dir, &["run", "collect-papers"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for(
        Duration::from_secs(60),
        "the collection in history",
        || async {
            let out = cli_in(&dir, &["history", "--days", "7", "--json"]);
            let jobs: Vec<serde_json::Value> =
                serde_json::from_slice(&out.stdout).unwrap_or_default();
            jobs.iter()
                .any(|j| j["state"] == "completed" && j["result"]["queued"] == 100)
        },
    )
    .await;
    let status = stop(runner, Duration::from_secs(40)).await;
    assert!(
        status.success(),
        "runner exit status {status:?}; log:\n{}",
        std::fs::read_to_string(dir.join("runner.log")).unwrap_or_default()
    );
    assert!(!url_file.exists(), "the URL file goes with the server");
    std::fs::remove_dir_all(&dir).ok();
}

/// The stored schedules; none before the runner has migrated.
async fn schedule_state(pool: &PgPool) -> Vec<(String, String, bool)> {
    sqlx::query_as("SELECT name, cron, enabled FROM refnet_jobs.schedules ORDER BY name")
        .fetch_all(pool)
        .await
        .unwrap_or_default()
}

#[sqlx::test(migrations = false)]
async fn a_changed_config_is_reloaded_without_a_restart_and_a_broken_one_ignored(pool: PgPool) {
    load_fixture(&pool).await;
    let url = url_of(&pool).await;
    let dir = temp_dir("reload");
    let config = dir.join("refnet-jobs.toml");
    let header =
        "timezone = \"UTC\"\nenvironment = \"test\"\n[workers]\nqueues = { default = 1 }\n";
    let entry = |name: &str, cron: &str| {
        format!(
            "[[schedules]]\nname = \"{name}\"\ncron = \"{cron}\"\ntask = \"refnet.scheduled.system_health_check\"\n"
        )
    };
    std::fs::write(
        &config,
        format!(
            "{header}{}{}",
            entry("a", "0 1 * * *"),
            entry("b", "0 2 * * *")
        ),
    )
    .unwrap();
    let runner = start_runner_with(&dir, Some(&url), &config);
    wait_for(Duration::from_secs(60), "the first sync", || async {
        schedule_state(&pool).await.len() == 2
    })
    .await;

    // a changes, b goes, c comes: picked up from the file, no restart.
    std::fs::write(
        &config,
        format!(
            "{header}{}{}",
            entry("a", "30 1 * * *"),
            entry("c", "0 3 * * *")
        ),
    )
    .unwrap();
    let expected = vec![
        ("a".to_string(), "30 1 * * *".to_string(), true),
        ("b".to_string(), "0 2 * * *".to_string(), false),
        ("c".to_string(), "0 3 * * *".to_string(), true),
    ];
    wait_for(Duration::from_secs(30), "the reload", || async {
        schedule_state(&pool).await == expected
    })
    .await;

    // A broken file changes nothing and the runner keeps going.
    std::fs::write(&config, format!("{header}{}", entry("a", "not a cron"))).unwrap();
    let log = dir.join("runner.log");
    wait_for(
        Duration::from_secs(30),
        "the refusal in the log",
        || async {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("config not reloaded")
        },
    )
    .await;
    assert_eq!(schedule_state(&pool).await, expected);
    let status = stop(runner, Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}");
    std::fs::remove_dir_all(&dir).ok();
}
