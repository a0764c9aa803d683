//! The worker's failure guarantees, end to end: real `refnet-jobs-runner`
//! processes on a real PostgreSQL, killed with SIGKILL, stopped with SIGTERM,
//! revoked without NOTIFY, held to time limits, and left running while their
//! PostgreSQL server restarts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "runner_process.rs"]
mod runner_process;
#[path = "support.rs"]
mod support;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use refnet_jobs::{NewJob, TimeLimits};
use runner_process::{Runner, logs, ready};
use serde_json::{Value, json};
use sqlx::PgPool;
use support::*;
use uuid::Uuid;

const SLEEP: &str = "refnet.diag.sleep";

// ---------------------------------------------------------------------------
// Runner configuration and processes
// ---------------------------------------------------------------------------

/// The `[workers]` settings a test runs its runners with.
#[derive(Debug, Clone)]
struct Settings {
    concurrency: usize,
    shutdown_grace_secs: u64,
    lease_secs: f64,
    heartbeat_secs: f64,
    rescue_secs: f64,
    cancel_grace_secs: f64,
    listen: bool,
    /// Extra lines appended to `[workers]`.
    extra: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            concurrency: 1,
            shutdown_grace_secs: 2,
            lease_secs: 3.0,
            heartbeat_secs: 0.5,
            rescue_secs: 0.5,
            cancel_grace_secs: 1.0,
            listen: true,
            extra: String::new(),
        }
    }
}

impl Settings {
    fn toml(&self) -> String {
        format!(
            "timezone = \"UTC\"\nenvironment = \"test\"\n\n[workers]\n\
             queues = {{ default = {} }}\n\
             shutdown_grace_secs = {}\n\
             lease_secs = {:?}\n\
             heartbeat_secs = {:?}\n\
             rescue_secs = {:?}\n\
             cancel_grace_secs = {:?}\n\
             listen = {}\n\
             diagnostic_tasks = true\n{}",
            self.concurrency,
            self.shutdown_grace_secs,
            self.lease_secs,
            self.heartbeat_secs,
            self.rescue_secs,
            self.cancel_grace_secs,
            self.listen,
            self.extra,
        )
    }

    /// Writes the config file into `dir` and returns its path.
    fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("refnet-jobs.toml");
        std::fs::write(&path, self.toml()).unwrap();
        path
    }
}

/// Polls `check` every 100 ms until it yields a value; `None` after `limit`.
async fn until<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------

/// A job as the tests look at it.
#[derive(Debug, Clone, sqlx::FromRow)]
struct JobRow {
    #[allow(dead_code)] // shown in failure messages
    id: Uuid,
    state: String,
    attempt: i32,
    max_attempts: i32,
    worker_id: Option<String>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    /// `run_at <= now()` by the database clock.
    due: bool,
    errors: Value,
    result: Option<Value>,
    cancel_requested: bool,
    /// `finished_at - started_at` in seconds.
    run_secs: Option<f64>,
}

const JOB_QUERY: &str =
    "SELECT id, state, attempt, max_attempts, worker_id, started_at, finished_at,
        run_at <= now() AS due, errors, result, cancel_requested_at IS NOT NULL AS cancel_requested,
        extract(epoch FROM finished_at - started_at)::float8 AS run_secs
     FROM refnet_jobs.jobs";

impl JobRow {
    /// The error message of each recorded attempt, in order.
    fn errors(&self) -> Vec<String> {
        self.errors
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["error"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn finished(&self) -> bool {
        matches!(self.state.as_str(), "completed" | "failed" | "cancelled")
    }
}

async fn job(pool: &PgPool, id: Uuid) -> JobRow {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{JOB_QUERY} WHERE id = $1")))
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn all_jobs(pool: &PgPool) -> Vec<JobRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{JOB_QUERY} ORDER BY id")))
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Polls job `id` until `check` holds; panics with the runners' logs after `limit`.
async fn wait_job(
    pool: &PgPool,
    #[allow(dead_code)] // shown in failure messages
    id: Uuid,
    limit: Duration,
    what: &str,
    runners: &[&Runner],
    check: impl Fn(&JobRow) -> bool,
) -> JobRow {
    let found = until(limit, || async {
        let row = job(pool, id).await;
        check(&row).then_some(row)
    })
    .await;
    match found {
        Some(row) => row,
        None => panic!(
            "timed out after {limit:?} waiting for {what}; job: {:?}\n{}",
            job(pool, id).await,
            logs(runners)
        ),
    }
}

async fn enqueue(pool: &PgPool, job: NewJob) -> Uuid {
    refnet_jobs::enqueue(pool, &job).await.unwrap().id
}

fn sleep_job(secs: f64, ignore_cancel: bool) -> NewJob {
    NewJob::new(
        SLEEP,
        json!({ "secs": secs, "ignore_cancel": ignore_cancel }),
    )
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Running jobs whose heartbeat is older than `secs`.
async fn stale_running(pool: &PgPool, secs: f64) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM refnet_jobs.jobs
         WHERE state = 'running' AND heartbeat_at < now() - make_interval(secs => $1)",
    )
    .bind(secs)
    .fetch_one(pool)
    .await
    .unwrap()
}

// ---------------------------------------------------------------------------
// 1-3: SIGKILL
// ---------------------------------------------------------------------------

#[sqlx::test(migrations = false)]
async fn a_runner_killed_mid_job_loses_nothing(pool: PgPool) {
    refnet_jobs::migrate(&pool).await.unwrap();
    let url = url_of(&pool).await;
    let dir = temp_dir("kill-mid-job");
    let settings = Settings::default();
    let config = settings.write(&dir);
    let mut runners = [
        Runner::workers_only(&dir, "r1", &config, &url),
        Runner::workers_only(&dir, "r2", &config, &url),
    ];
    let ids = [
        ready(&pool, &mut runners[0]).await,
        ready(&pool, &mut runners[1]).await,
    ];

    let id = enqueue(&pool, sleep_job(10.0, false).max_attempts(3)).await;
    let running = wait_job(
        &pool,
        id,
        Duration::from_secs(30),
        "the job to start",
        &[&runners[0], &runners[1]],
        |j| j.state == "running",
    )
    .await;
    let holder = running.worker_id.clone().unwrap();
    let victim = ids
        .iter()
        .position(|w| *w == holder)
        .expect("a runner of ours holds it");
    let survivor = 1 - victim;
    tokio::time::sleep(Duration::from_secs(2)).await;
    runners[victim].kill9();
    let killed = Instant::now();

    let limit = Duration::from_secs_f64(settings.lease_secs + 30.0);
    let done = wait_job(
        &pool,
        id,
        limit,
        "the job to finish on the other runner",
        &[&runners[0], &runners[1]],
        JobRow::finished,
    )
    .await;
    println!(
        "killed {} mid-job; the job completed on {} {:.1} s later",
        runners[victim].name,
        runners[survivor].name,
        killed.elapsed().as_secs_f64()
    );
    assert_eq!(done.state, "completed", "{done:?}");
    assert_eq!(done.attempt, 2, "{done:?}");
    assert_eq!(done.worker_id.as_deref(), Some(ids[survivor].as_str()));
    assert_eq!(done.result.as_ref().unwrap()["attempt"], 2, "{done:?}");
    let errors = done.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("worker lost") && errors[0].contains("lease"),
        "{errors:?}"
    );
    assert!(
        errors[0].contains(&holder),
        "names the lost worker: {errors:?}"
    );
    assert_eq!(stale_running(&pool, settings.lease_secs).await, 0);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM refnet_jobs.jobs WHERE state = 'running'"
        )
        .await,
        0
    );
    assert!(
        runners[survivor]
            .log()
            .contains("rescued a job whose worker stopped renewing its lease"),
        "{}",
        runners[survivor].log()
    );

    // The operator's view: the killed worker is listed dead, the other alive.
    let out = cli(&url, &["workers", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let workers: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let alive = |w: &str| {
        workers
            .iter()
            .find(|x| x["id"] == w)
            .map(|x| x["alive"].clone())
    };
    assert_eq!(alive(&ids[victim]), Some(json!(false)), "{workers:?}");
    assert_eq!(alive(&ids[survivor]), Some(json!(true)), "{workers:?}");

    let status = runners[survivor].terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[sqlx::test(migrations = false)]
async fn a_runner_killed_on_the_last_attempt_fails_the_job_with_the_lost_worker_reason(
    pool: PgPool,
) {
    refnet_jobs::migrate(&pool).await.unwrap();
    let url = url_of(&pool).await;
    let dir = temp_dir("kill-last-attempt");
    let settings = Settings::default();
    let config = settings.write(&dir);
    let mut r1 = Runner::workers_only(&dir, "r1", &config, &url);
    let r1_id = ready(&pool, &mut r1).await;

    let id = enqueue(&pool, sleep_job(10.0, false).max_attempts(1)).await;
    let running = wait_job(
        &pool,
        id,
        Duration::from_secs(30),
        "the job to start",
        &[&r1],
        |j| j.state == "running",
    )
    .await;
    assert_eq!(running.worker_id.as_deref(), Some(r1_id.as_str()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    r1.kill9();

    // Rescue runs in every runner: a new one takes the expired lease back.
    let mut r2 = Runner::workers_only(&dir, "r2", &config, &url);
    ready(&pool, &mut r2).await;
    let limit = Duration::from_secs_f64(settings.lease_secs + 30.0);
    let done = wait_job(
        &pool,
        id,
        limit,
        "the rescue to end the job",
        &[&r1, &r2],
        JobRow::finished,
    )
    .await;
    assert_eq!(done.state, "failed", "{done:?}");
    assert_eq!(done.attempt, 1, "{done:?}");
    assert!(done.finished_at.is_some());
    let errors = done.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("worker lost") && errors[0].contains(&r1_id),
        "{errors:?}"
    );

    // It never runs again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = job(&pool, id).await;
    assert_eq!(
        (later.state.as_str(), later.attempt),
        ("failed", 1),
        "{later:?}"
    );
    assert!(later.result.is_none(), "{later:?}");
    assert!(!r2.log().contains("job started"), "{}", r2.log());

    let status = r2.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[sqlx::test(migrations = false)]
async fn twenty_kills_lose_no_job(pool: PgPool) {
    const JOBS: usize = 40;
    const KILLS: usize = 20;
    const MAX_ATTEMPTS: i32 = 25;
    refnet_jobs::migrate(&pool).await.unwrap();
    let url = url_of(&pool).await;
    let dir = temp_dir("twenty-kills");
    let settings = Settings {
        concurrency: 2,
        lease_secs: 2.0,
        ..Settings::default()
    };
    let config = settings.write(&dir);
    let mut started = 0;
    let spawn = |started: &mut usize| {
        *started += 1;
        Runner::workers_only(&dir, &format!("r{started}"), &config, &url)
    };
    let mut slots = [spawn(&mut started), spawn(&mut started)];
    let mut worker_ids = [
        ready(&pool, &mut slots[0]).await,
        ready(&pool, &mut slots[1]).await,
    ];
    let jobs: Vec<NewJob> = (0..JOBS)
        .map(|_| sleep_job(1.0, false).max_attempts(MAX_ATTEMPTS))
        .collect();
    let ids = refnet_jobs::enqueue_many(&pool, &jobs).await.unwrap();
    assert_eq!(ids.len(), JOBS);

    let begin = Instant::now();
    let mut hits = 0;
    let mut dead = Vec::new();
    for kill in 0..KILLS {
        let victim = kill % 2;
        // Kill it while it holds a job, unless every job is done already.
        let holding = until(Duration::from_secs(5), || async {
            let (held, live): (i64, i64) = sqlx::query_as(
                "SELECT count(*) FILTER (WHERE worker_id = $1 AND state = 'running'),
                        count(*) FILTER (WHERE state NOT IN ('completed', 'failed', 'cancelled'))
                 FROM refnet_jobs.jobs",
            )
            .bind(&worker_ids[victim])
            .fetch_one(&pool)
            .await
            .unwrap();
            (held > 0 || live == 0).then_some(held)
        })
        .await
        .unwrap_or(0);
        // Vary the moment: right after a claim, mid-run, near the end of a job.
        tokio::time::sleep(Duration::from_millis(50 + (kill as u64 * 137) % 900)).await;
        slots[victim].kill9();
        if holding > 0 {
            hits += 1;
        }
        let replacement = spawn(&mut started);
        dead.push(std::mem::replace(&mut slots[victim], replacement));
        worker_ids[victim] = ready(&pool, &mut slots[victim]).await;
    }
    let killing = begin.elapsed();

    let finished = until(Duration::from_secs(120), || async {
        let done = count(
            &pool,
            "SELECT count(*) FROM refnet_jobs.jobs WHERE state IN ('completed', 'failed', 'cancelled')",
        )
        .await;
        (done == JOBS as i64).then_some(())
    })
    .await;
    let rows = all_jobs(&pool).await;
    if finished.is_none() {
        let mut all: Vec<&Runner> = dead.iter().collect();
        all.extend(slots.iter());
        panic!(
            "not every job finished within 120 s: {:?}\n{}",
            rows.iter().filter(|j| !j.finished()).collect::<Vec<_>>(),
            logs(&all)
        );
    }
    let reran = rows.iter().filter(|j| j.attempt > 1).count();
    let most = rows.iter().map(|j| j.attempt).max().unwrap_or(0);
    println!(
        "{KILLS} kills in {:.1} s ({hits} while the victim held a job), all {JOBS} jobs finished \
         {:.1} s after the first kill; {reran} ran more than once (most attempts: {most})",
        killing.as_secs_f64(),
        begin.elapsed().as_secs_f64()
    );
    for row in &rows {
        assert_eq!(row.state, "completed", "{row:?}");
        assert!(row.attempt <= MAX_ATTEMPTS, "{row:?}");
        // Every lost attempt is on record, once.
        assert_eq!(row.errors().len() as i32, row.attempt - 1, "{row:?}");
        assert!(
            row.errors().iter().all(|e| e.contains("worker lost")),
            "{row:?}"
        );
        assert_eq!(
            row.result.as_ref().unwrap()["attempt"],
            row.attempt,
            "{row:?}"
        );
    }
    assert!(
        hits >= KILLS / 2,
        "only {hits} kills hit a runner holding a job"
    );
    assert!(reran > 0, "no kill cost a job its attempt");
    for runner in &mut slots {
        let status = runner.terminate(Duration::from_secs(15)).await;
        assert!(status.success(), "{status:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

// ---------------------------------------------------------------------------
// 4: SIGTERM mid-job
// ---------------------------------------------------------------------------

#[sqlx::test(migrations = false)]
async fn sigterm_mid_job_returns_it_without_losing_its_attempt(pool: PgPool) {
    refnet_jobs::migrate(&pool).await.unwrap();
    let url = url_of(&pool).await;
    let dir = temp_dir("sigterm");
    let settings = Settings {
        concurrency: 1,
        shutdown_grace_secs: 2,
        ..Settings::default()
    };
    let config = settings.write(&dir);
    // A ignores its cancel token, so the grace period runs out; B waits behind it.
    let a = enqueue(&pool, sleep_job(8.0, true).max_attempts(3)).await;
    let b = enqueue(&pool, sleep_job(1.0, false).max_attempts(3)).await;
    let mut r1 = Runner::workers_only(&dir, "r1", &config, &url);
    let r1_id = ready(&pool, &mut r1).await;
    wait_job(
        &pool,
        a,
        Duration::from_secs(30),
        "A to start",
        &[&r1],
        |j| j.state == "running",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let term = Instant::now();
    let status = r1
        .terminate(Duration::from_secs(settings.shutdown_grace_secs + 8))
        .await;
    let took = term.elapsed();
    println!(
        "R1 exited {status} {:.1} s after SIGTERM",
        took.as_secs_f64()
    );
    assert!(status.success(), "{status:?}\n{}", r1.log());
    assert!(
        took < Duration::from_secs(settings.shutdown_grace_secs + 5),
        "{took:?}"
    );
    assert!(
        r1.log().contains("shutdown grace period over"),
        "{}",
        r1.log()
    );

    let a_row = job(&pool, a).await;
    assert!(
        matches!(a_row.state.as_str(), "available" | "retryable"),
        "{a_row:?}"
    );
    assert!(a_row.due, "A may run again at once: {a_row:?}");
    assert_eq!(a_row.attempt, 1, "{a_row:?}");
    let errors = a_row.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("interrupted"), "{errors:?}");
    let b_row = job(&pool, b).await;
    assert_eq!(
        (b_row.state.as_str(), b_row.attempt, b_row.started_at),
        ("available", 0, None),
        "B was never started: {b_row:?}"
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM refnet_jobs.jobs WHERE state = 'running'"
        )
        .await,
        0
    );
    let registered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM refnet_jobs.workers WHERE id = $1")
            .bind(&r1_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(registered, 0, "R1 removed itself from the registry");

    let mut r2 = Runner::workers_only(&dir, "r2", &config, &url);
    ready(&pool, &mut r2).await;
    for (id, name) in [(a, "A"), (b, "B")] {
        wait_job(
            &pool,
            id,
            Duration::from_secs(40),
            &format!("{name} to finish on R2"),
            &[&r1, &r2],
            JobRow::finished,
        )
        .await;
    }
    let a_row = job(&pool, a).await;
    assert_eq!(a_row.state, "completed", "{a_row:?}");
    assert_eq!(
        a_row.attempt, 2,
        "the interrupted attempt counts once: {a_row:?}"
    );
    assert_eq!(a_row.result.as_ref().unwrap()["attempt"], 2);
    let b_row = job(&pool, b).await;
    assert_eq!(
        (b_row.state.as_str(), b_row.attempt),
        ("completed", 1),
        "{b_row:?}"
    );

    // No slot leaked: five quick jobs go through R2's single slot at once.
    let quick = Instant::now();
    let jobs: Vec<NewJob> = (0..5).map(|_| sleep_job(0.1, false)).collect();
    let ids = refnet_jobs::enqueue_many(&pool, &jobs).await.unwrap();
    let all_done = until(Duration::from_secs(5), || async {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM refnet_jobs.jobs WHERE id = ANY($1) AND state = 'completed'",
        )
        .bind(&ids)
        .fetch_one(&pool)
        .await
        .unwrap();
        (done == 5).then_some(())
    })
    .await;
    assert!(
        all_done.is_some(),
        "5 quick jobs not done within 5 s\n{}",
        r2.log()
    );
    println!(
        "5 quick jobs done in {:.1} s",
        quick.elapsed().as_secs_f64()
    );
    let status = r2.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");
    std::fs::remove_dir_all(&dir).ok();
}

// ---------------------------------------------------------------------------
// 5: time limits
// ---------------------------------------------------------------------------

#[sqlx::test(migrations = false)]
async fn a_hard_time_limit_stops_a_task_that_ignores_the_soft_one(pool: PgPool) {
    refnet_jobs::migrate(&pool).await.unwrap();
    let url = url_of(&pool).await;
    let dir = temp_dir("time-limits");

    // Limits the wrong way round stop the runner at start.
    let bad = Settings {
        extra: "soft_limit_secs = 10.0\nhard_limit_secs = 5.0\n".into(),
        ..Settings::default()
    };
    let bad_path = dir.join("bad.toml");
    std::fs::write(&bad_path, bad.toml()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_refnet-jobs-runner"))
        .arg("--config")
        .arg(&bad_path)
        .arg("--no-scheduler")
        .env("DATABASE_URL", &url)
        .env_remove("DATABASE__HOST")
        .env_remove("DATABASE__DATABASE")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{:?} {err}", out.status);
    assert!(
        err.contains("soft_limit_secs") && err.contains("hard_limit_secs") && err.contains("below"),
        "{err}"
    );

    let settings = Settings {
        concurrency: 3,
        ..Settings::default()
    };
    let config = settings.write(&dir);
    let mut runner = Runner::workers_only(&dir, "r1", &config, &url);
    ready(&pool, &mut runner).await;
    let limits =
        TimeLimits::new(Some(Duration::from_secs(2)), Some(Duration::from_secs(5))).unwrap();
    // Ignores its soft limit: stopped at the hard one.
    let once = enqueue(
        &pool,
        sleep_job(60.0, true).time_limits(limits).max_attempts(1),
    )
    .await;
    let twice = enqueue(
        &pool,
        sleep_job(60.0, true).time_limits(limits).max_attempts(2),
    )
    .await;
    // Well-behaved, through the CLI (the task's max_attempts of 3): stops at the soft limit.
    let out = cli(
        &url,
        &[
            "run",
            "diag-sleep",
            "--args",
            r#"{"secs":60,"ignore_cancel":false}"#,
            "--soft-limit",
            "2",
            "--hard-limit",
            "5",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let enqueued: Value = serde_json::from_slice(&out.stdout).unwrap();
    let polite: Uuid = enqueued["id"].as_str().unwrap().parse().unwrap();

    let limit = Duration::from_secs(40);
    let once_row = wait_job(
        &pool,
        once,
        limit,
        "the first job",
        &[&runner],
        JobRow::finished,
    )
    .await;
    let twice_row = wait_job(
        &pool,
        twice,
        limit,
        "the second job",
        &[&runner],
        JobRow::finished,
    )
    .await;
    let polite_row = wait_job(
        &pool,
        polite,
        limit,
        "the polite job",
        &[&runner],
        JobRow::finished,
    )
    .await;
    println!("ignoring the soft limit, 1 attempt: {once_row:?}");
    println!("ignoring the soft limit, 2 attempts: {twice_row:?}");
    println!("watching the token: {polite_row:?}");

    assert_eq!(
        (once_row.state.as_str(), once_row.attempt),
        ("failed", 1),
        "{once_row:?}"
    );
    let secs = once_row.run_secs.unwrap();
    assert!((4.0..=6.5).contains(&secs), "ran {secs} s: {once_row:?}");
    let errors = once_row.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("hard time limit of 5s"), "{errors:?}");

    assert_eq!(
        (twice_row.state.as_str(), twice_row.attempt),
        ("failed", 2),
        "{twice_row:?}"
    );
    let errors = twice_row.errors();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors.iter().all(|e| e.contains("hard time limit of 5s")),
        "{errors:?}"
    );
    let secs = twice_row.run_secs.unwrap();
    assert!(
        (4.0..=6.5).contains(&secs),
        "last attempt ran {secs} s: {twice_row:?}"
    );

    // A task that watches its token stops at the soft limit and fails that
    // attempt (retryable, so it is retried up to its max_attempts).
    assert_eq!(polite_row.state, "failed", "{polite_row:?}");
    assert_eq!(
        polite_row.attempt, polite_row.max_attempts,
        "{polite_row:?}"
    );
    let errors = polite_row.errors();
    assert_eq!(errors.len() as i32, polite_row.attempt, "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|e| e.starts_with("soft time limit of 2s passed") && e.contains("stopped early")),
        "{errors:?}"
    );
    let secs = polite_row.run_secs.unwrap();
    assert!(
        (1.5..=4.0).contains(&secs),
        "last attempt ran {secs} s: {polite_row:?}"
    );

    let log = runner.log();
    assert!(log.contains("soft time limit passed"), "{log}");
    assert!(log.contains("hard time limit passed"), "{log}");
    let status = runner.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");
    std::fs::remove_dir_all(&dir).ok();
}

// ---------------------------------------------------------------------------
// 6: revoke, polling only
// ---------------------------------------------------------------------------

#[sqlx::test(migrations = false)]
async fn revoke_works_even_without_notify(pool: PgPool) {
    refnet_jobs::migrate(&pool).await.unwrap();
    let url = url_of(&pool).await;
    let dir = temp_dir("revoke");
    let settings = Settings {
        listen: false,
        ..Settings::default()
    };
    let config = settings.write(&dir);
    let mut runner = Runner::workers_only(&dir, "r1", &config, &url);
    ready(&pool, &mut runner).await;

    // (a) A running job that ignores its token: stopped after the cancel grace.
    let running = enqueue(&pool, sleep_job(60.0, true).max_attempts(3)).await;
    wait_job(
        &pool,
        running,
        Duration::from_secs(30),
        "the job to start",
        &[&runner],
        |j| j.state == "running",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let id = running.to_string();
    let out = cli(&url, &["revoke", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("revoke sent"), "{}", stdout(&out));
    let revoked_at = Instant::now();
    let row = wait_job(
        &pool,
        running,
        Duration::from_secs(10),
        "the revoked job to end",
        &[&runner],
        JobRow::finished,
    )
    .await;
    println!(
        "running job cancelled {:.1} s after the revoke: {:?}",
        revoked_at.elapsed().as_secs_f64(),
        row.errors()
    );
    assert_eq!(
        (row.state.as_str(), row.attempt),
        ("cancelled", 1),
        "{row:?}"
    );
    assert!(row.cancel_requested && row.finished_at.is_some(), "{row:?}");
    assert!(
        row.errors().last().is_some_and(|e| e.contains("revoked")),
        "{row:?}"
    );
    assert!(
        runner.log().contains("revoke found by heartbeat"),
        "{}",
        runner.log()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = job(&pool, running).await;
    assert_eq!(
        (later.state.as_str(), later.attempt),
        ("cancelled", 1),
        "never retried: {later:?}"
    );

    // (b) A job waiting for its time: cancelled at once, never started.
    let future = enqueue(
        &pool,
        sleep_job(1.0, false).run_at(Utc::now() + chrono::Duration::hours(1)),
    )
    .await;
    assert_eq!(job(&pool, future).await.state, "scheduled");
    let out = cli(&url, &["revoke", &future.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("it was scheduled"),
        "{}",
        stdout(&out)
    );
    let row = job(&pool, future).await;
    assert_eq!(
        (row.state.as_str(), row.attempt),
        ("cancelled", 0),
        "{row:?}"
    );
    assert!(
        row.started_at.is_none() && row.finished_at.is_some(),
        "{row:?}"
    );

    // (c) Claimed but not started: with one slot and one job per claim, a
    // runner claims a job only when it can start it at once, so there is no
    // window to revoke in from outside; not tested here.

    // (d) Finished jobs: refused, left as they were.
    let quick = enqueue(&pool, sleep_job(0.1, false)).await;
    let done = wait_job(
        &pool,
        quick,
        Duration::from_secs(30),
        "the quick job",
        &[&runner],
        JobRow::finished,
    )
    .await;
    assert_eq!(done.state, "completed");
    for (id, state) in [(quick, "completed"), (running, "cancelled")] {
        let before = job(&pool, id).await;
        let out = cli(&url, &["revoke", &id.to_string()]);
        assert!(!out.status.success(), "{}", stdout(&out));
        let err = stderr(&out);
        assert!(
            err.contains("already finished") && err.contains(state),
            "{err}"
        );
        let after = job(&pool, id).await;
        assert_eq!(
            (
                &after.state,
                after.attempt,
                after.finished_at,
                &after.errors,
                after.cancel_requested
            ),
            (
                &before.state,
                before.attempt,
                before.finished_at,
                &before.errors,
                before.cancel_requested
            ),
        );
    }

    // (e) An unknown id.
    let out = cli(&url, &["revoke", &Uuid::now_v7().to_string()]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));

    let status = runner.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The documented fallback of a revoke: should the worker running the job
/// die before it stops it, the rescue of its lease ends the job `cancelled`
/// rather than retrying it.
#[sqlx::test(migrations = false)]
async fn a_revoked_job_whose_runner_dies_ends_cancelled_not_retried(pool: PgPool) {
    refnet_jobs::migrate(&pool).await.unwrap();
    let url = url_of(&pool).await;
    let dir = temp_dir("revoke-then-kill");
    let settings = Settings {
        // Long enough that the runner is killed while the job ignores its token.
        cancel_grace_secs: 20.0,
        ..Settings::default()
    };
    let config = settings.write(&dir);
    let mut r1 = Runner::workers_only(&dir, "r1", &config, &url);
    ready(&pool, &mut r1).await;
    let id = enqueue(&pool, sleep_job(60.0, true).max_attempts(3)).await;
    wait_job(
        &pool,
        id,
        Duration::from_secs(30),
        "the job to start",
        &[&r1],
        |j| j.state == "running",
    )
    .await;
    let out = cli(&url, &["revoke", &id.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Its runner hears of it and fires the token, which the job ignores.
    until(Duration::from_secs(10), || async {
        r1.log()
            .contains("job revoked; cancelling it")
            .then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("the runner never heard of the revoke\n{}", r1.log()));
    r1.kill9();

    let mut r2 = Runner::workers_only(&dir, "r2", &config, &url);
    ready(&pool, &mut r2).await;
    let done = wait_job(
        &pool,
        id,
        Duration::from_secs_f64(settings.lease_secs + 20.0),
        "the rescue to end the revoked job",
        &[&r1, &r2],
        JobRow::finished,
    )
    .await;
    assert_eq!(
        (done.state.as_str(), done.attempt),
        ("cancelled", 1),
        "{done:?}"
    );
    let errors = done.errors();
    assert!(
        errors.len() == 1 && errors[0].contains("worker lost") && errors[0].contains("revoked"),
        "{errors:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = job(&pool, id).await;
    assert_eq!(
        (later.state.as_str(), later.attempt),
        ("cancelled", 1),
        "{later:?}"
    );
    assert!(!r2.log().contains("job started"), "{}", r2.log());
    let status = r2.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");
    std::fs::remove_dir_all(&dir).ok();
}

// ---------------------------------------------------------------------------
// 7: PostgreSQL restarts under a drain
// ---------------------------------------------------------------------------

/// `name` on PATH, else in the newest /usr/lib/postgresql/*/bin (as
/// scripts/pg-throwaway looks for it).
fn find_pg_binary(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    on_path.or_else(|| {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
            .filter(|p| p.is_file())
            .collect();
        dirs.sort_by_key(|p| {
            p.components()
                .nth(4)
                .and_then(|c| c.as_os_str().to_str()?.parse::<u32>().ok())
                .unwrap_or(0)
        });
        dirs.pop()
    })
}

/// A throwaway PostgreSQL server (scripts/pg-throwaway), stopped and its
/// directory removed on drop, whatever the test's outcome.
struct PgServer {
    dir: PathBuf,
    pg_ctl: PathBuf,
    url: String,
}

impl PgServer {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-throwaway")
    }

    fn start(pg_ctl: PathBuf) -> PgServer {
        let dir = temp_dir("pg");
        let mut server = PgServer {
            dir,
            pg_ctl,
            url: String::new(),
        };
        let out = Command::new("bash")
            .arg(PgServer::script())
            .arg("start")
            .arg(&server.dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "pg-throwaway start: {}", stderr(&out));
        server.url = stdout(&out).trim().to_string();
        server
    }

    /// Runs pg_ctl as the server's OS user, as pg-throwaway does: `postgres`
    /// when we are root (PostgreSQL refuses to run as root), with cwd = DIR.
    fn pg_ctl(&self, args: &[&str]) -> std::process::Output {
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| stdout(&o).trim() == "0")
            .unwrap_or(false);
        let mut command = if as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&self.pg_ctl);
            c
        } else {
            Command::new(&self.pg_ctl)
        };
        command
            .current_dir(&self.dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `pg_ctl restart -m fast`, logging where pg-throwaway's server logs.
    fn restart(&self) {
        let data = self.dir.join("data");
        let log = self.dir.join("postgres.log");
        let out = self.pg_ctl(&[
            "restart",
            "-D",
            data.to_str().unwrap(),
            "-m",
            "fast",
            "-w",
            "-t",
            "60",
            "-l",
            log.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "pg_ctl restart: {}{}",
            stdout(&out),
            stderr(&out)
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let stopped = Command::new("bash")
            .arg(PgServer::script())
            .arg("stop")
            .arg(&self.dir)
            .output();
        if !stopped.is_ok_and(|o| o.status.success()) {
            eprintln!("pg-throwaway stop failed; trying pg_ctl stop -m immediate");
            let data = self.dir.join("data");
            self.pg_ctl(&["stop", "-D", data.to_str().unwrap(), "-m", "immediate"]);
        }
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// Counts by state, tolerating a database that is restarting.
async fn state_counts(pool: &PgPool) -> Option<(i64, i64, i64)> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state = 'completed'),
                count(*) FILTER (WHERE state = 'failed'),
                count(*)
         FROM refnet_jobs.jobs",
    )
    .fetch_one(pool)
    .await
    .ok()
}

/// When the server (postmaster) started.
async fn postmaster_start(pool: &PgPool) -> Option<DateTime<Utc>> {
    sqlx::query_scalar("SELECT pg_postmaster_start_time()")
        .fetch_one(pool)
        .await
        .ok()
}

#[tokio::test]
async fn a_postgresql_restart_mid_drain_loses_no_job() {
    const JOBS: i64 = 2000;
    let Some(pg_ctl) = find_pg_binary("pg_ctl") else {
        println!("SKIPPED: pg_ctl is neither on PATH nor in /usr/lib/postgresql/*/bin");
        return;
    };
    if find_pg_binary("initdb").is_none() {
        println!("SKIPPED: initdb is neither on PATH nor in /usr/lib/postgresql/*/bin");
        return;
    }
    let server = PgServer::start(pg_ctl);
    let url = server.url.clone();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&url)
        .await
        .unwrap();
    refnet_jobs::migrate(&pool).await.unwrap();

    let dir = temp_dir("pg-restart-runner");
    let settings = Settings {
        concurrency: 8,
        lease_secs: 5.0,
        rescue_secs: 1.0,
        ..Settings::default()
    };
    let config = settings.write(&dir);
    let mut runner = Runner::workers_only(&dir, "r1", &config, &url);
    ready(&pool, &mut runner).await;

    let jobs: Vec<NewJob> = (0..JOBS)
        .map(|_| sleep_job(0.01, false).max_attempts(5))
        .collect();
    let begin = Instant::now();
    let ids = refnet_jobs::enqueue_many(&pool, &jobs).await.unwrap();
    assert_eq!(ids.len() as i64, JOBS);

    let before = until(Duration::from_secs(60), || async {
        state_counts(&pool).await.filter(|c| c.0 >= 500)
    })
    .await
    .unwrap_or_else(|| panic!("500 jobs not completed within 60 s\n{}", runner.log()));
    let restart_at = begin.elapsed();
    let booted_before = postmaster_start(&pool).await.unwrap();
    server.restart();
    let restarted = begin.elapsed();

    let done = until(Duration::from_secs(120), || async {
        state_counts(&pool).await.filter(|c| c.0 + c.1 >= JOBS)
    })
    .await;
    let counts = state_counts(&pool).await;
    let Some((completed, failed, total)) = done else {
        panic!(
            "not all jobs finished within 120 s of the restart: {counts:?}\n{}",
            runner.log()
        );
    };
    let reran: i64 = sqlx::query_scalar("SELECT count(*) FROM refnet_jobs.jobs WHERE attempt > 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    let log = runner.log();
    println!(
        "restart after {:.1} s with {} completed (took {:.1} s); all {JOBS} finished after {:.1} s; \
         {reran} ran more than once; runner log: {} 'cannot record' retries, {} failed claims, \
         {} failed heartbeats, {} LISTEN reconnects",
        restart_at.as_secs_f64(),
        before.0,
        (restarted - restart_at).as_secs_f64(),
        begin.elapsed().as_secs_f64(),
        log.matches("cannot record job outcomes").count(),
        log.matches("claim failed").count(),
        log.matches("heartbeat failed").count(),
        log.matches("LISTEN connection lost").count(),
    );
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    println!(
        "runner warnings ({}):\n{}",
        warnings.len(),
        warnings
            .iter()
            .take(20)
            .copied()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let booted_after = postmaster_start(&pool).await.unwrap();
    assert!(booted_after > booted_before, "the server did restart");
    assert_eq!(failed, 0, "{log}");
    assert_eq!((completed, total), (JOBS, JOBS), "none lost, none doubled");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM refnet_jobs.jobs WHERE state = 'running'"
        )
        .await,
        0
    );
    assert!(
        runner.exited().is_none(),
        "the runner survived the restart:\n{log}"
    );
    let status = runner.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");
    pool.close().await;
    std::fs::remove_dir_all(&dir).ok();
}
