//! The operator's commands of `refnet-jobs` end to end against a real
//! PostgreSQL and an in-process worker: `run --wait` and its options, `show`,
//! `status`, `history --summary`, `purge`, `prune` (case B31), `retry`,
//! `queue pause|resume|list` and `revoke --terminate`, each in table and JSON
//! form, with their error paths.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support.rs"]
mod support;

use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use refnet_jobs::{
    CancellationToken, JobContext, Registry, Task, TaskError, TaskOptions, Worker, WorkerConfig,
};
use serde_json::{Value, json};
use sqlx::PgPool;
use support::*;
use tokio::sync::Semaphore;
use uuid::Uuid;

/// Stands in for the runner's collection task: `{"queued": 3}`, or a failure
/// when its args have `fail`.
struct Collect;

impl Task for Collect {
    const NAME: &'static str = "refnet.scheduled.collect_new_papers";
    type Args = Value;
    type Output = Value;
    fn options() -> TaskOptions {
        TaskOptions {
            aliases: vec!["collect-papers".into()],
            max_attempts: 1,
            ..TaskOptions::default()
        }
    }
    async fn run(&self, _ctx: JobContext, args: Self::Args) -> Result<Self::Output, TaskError> {
        if args.get("fail").is_some() {
            return Err(TaskError::retryable("the crawler API answered 503"));
        }
        Ok(json!({ "queued": 3 }))
    }
}

/// Known to the catalogue, but no worker of these tests runs it.
struct Orphan;

impl Task for Orphan {
    const NAME: &'static str = "refnet.scheduled.rebuild_index";
    type Args = Value;
    type Output = ();
    fn options() -> TaskOptions {
        TaskOptions {
            aliases: vec!["rebuild-index".into()],
            max_attempts: 1,
            ..TaskOptions::default()
        }
    }
    async fn run(&self, _ctx: JobContext, _args: Self::Args) -> Result<(), TaskError> {
        Ok(())
    }
}

/// Runs until the test adds a permit, then returns `{"released": true}`.
struct Gate(Arc<Semaphore>);

impl Task for Gate {
    const NAME: &'static str = "test.gate";
    type Args = Value;
    type Output = Value;
    fn options() -> TaskOptions {
        TaskOptions {
            aliases: vec!["gate".into()],
            max_attempts: 1,
            ..TaskOptions::default()
        }
    }
    async fn run(&self, _ctx: JobContext, _args: Self::Args) -> Result<Self::Output, TaskError> {
        let permit = self
            .0
            .acquire()
            .await
            .expect("the semaphore is never closed");
        permit.forget();
        Ok(json!({ "released": true }))
    }
}

/// Ignores its cancel token and sleeps a minute.
struct Stubborn;

impl Task for Stubborn {
    const NAME: &'static str = "test.stubborn";
    type Args = Value;
    type Output = ();
    fn options() -> TaskOptions {
        TaskOptions {
            aliases: vec!["stubborn".into()],
            max_attempts: 1,
            ..TaskOptions::default()
        }
    }
    async fn run(&self, _ctx: JobContext, _args: Self::Args) -> Result<(), TaskError> {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(())
    }
}

// ---------------------------------------------------------------- helpers

/// Migrates, puts every fake task in the catalogue, and returns the URL.
async fn setup(pool: &PgPool) -> String {
    refnet_jobs::migrate(pool).await.unwrap();
    let mut registry = Registry::new();
    registry.register(Collect);
    registry.register(Orphan);
    registry.register(Gate(Arc::new(Semaphore::new(0))));
    registry.register(Stubborn);
    refnet_jobs::register_tasks(pool, &registry).await.unwrap();
    url_of(pool).await
}

/// Worker settings for fast tests.
fn fast_config() -> WorkerConfig {
    WorkerConfig {
        poll_interval: Duration::from_millis(100),
        lease: Duration::from_secs(10),
        heartbeat_interval: Duration::from_secs(1),
        shutdown_grace: Duration::from_secs(2),
        ..WorkerConfig::default()
    }
}

/// A worker running in this process until [`Running::stop`].
struct Running {
    id: String,
    token: CancellationToken,
    handle: tokio::task::JoinHandle<refnet_jobs::Result<()>>,
}

impl Running {
    async fn stop(self) {
        self.token.cancel();
        self.handle.await.unwrap().unwrap();
    }
}

/// Starts a worker of its own pool on queue `default`, built by `build`.
async fn start_worker(
    pool: &PgPool,
    config: WorkerConfig,
    build: impl FnOnce(refnet_jobs::WorkerBuilder) -> refnet_jobs::WorkerBuilder,
) -> Running {
    let own = sqlx::postgres::PgPoolOptions::new()
        .max_connections(5)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    let worker = build(Worker::builder(own))
        .queue("default", 2)
        .config(config)
        .build()
        .unwrap();
    let id = worker.id().to_string();
    let token = CancellationToken::new();
    let handle = tokio::spawn(worker.run(token.clone()));
    Running { id, token, handle }
}

/// Runs the CLI asynchronously (the worker of the test keeps running).
async fn run_cli(url: &str, args: &[&str]) -> Output {
    let url = url.to_string();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&url, &args)
    })
    .await
    .unwrap()
}

/// Runs the CLI with standard input explicitly not a terminal.
fn cli_no_stdin(url: &str, args: &[&str]) -> Output {
    Command::new(binary("refnet-jobs"))
        .args(args)
        .env("DATABASE_URL", url)
        .env_remove("REFNET_JOBS_TZ")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The command succeeded; its stdout.
fn ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// The command succeeded; its stdout as JSON.
fn ok_json(out: &Output) -> Value {
    let text = ok(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The command exited with `code`; its stderr.
fn fails(out: &Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    stderr(out)
}

fn uuid_of(value: &Value) -> Uuid {
    value.as_str().expect("an id string").parse().unwrap()
}

async fn job_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM refnet_jobs.jobs")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn state_of(pool: &PgPool, id: Uuid) -> String {
    sqlx::query_scalar("SELECT state FROM refnet_jobs.jobs WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Inserts a bare job row and returns its id.
async fn insert(pool: &PgPool, task: &str, queue: &str, state: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO refnet_jobs.jobs (id, task, queue, state, max_attempts)
         VALUES (gen_random_uuid(), $1, $2, $3, 1) RETURNING id",
    )
    .bind(task)
    .bind(queue)
    .bind(state)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Runs `sql` with `$1` bound to `id`.
async fn exec(pool: &PgPool, sql: &'static str, id: Uuid) {
    let done = sqlx::query(sql).bind(id).execute(pool).await.unwrap();
    assert_eq!(done.rows_affected(), 1, "{sql}");
}

async fn wait_state(pool: &PgPool, id: Uuid, state: &str, limit: Duration) {
    wait_for(limit, &format!("job {id} to be {state}"), || async {
        state_of(pool, id).await == state
    })
    .await;
}

async fn db_now(pool: &PgPool) -> chrono::DateTime<chrono::Utc> {
    sqlx::query_scalar("SELECT now()")
        .fetch_one(pool)
        .await
        .unwrap()
}

// ------------------------------------------------------------------ tests

#[sqlx::test(migrations = false)]
async fn run_wait_follows_the_job_and_its_exit_code_tells_how_it_ended(pool: PgPool) {
    let url = setup(&pool).await;
    let worker = start_worker(&pool, fast_config(), |b| b.register(Collect)).await;

    // Completed: exit 0, the result on stdout.
    let out = run_cli(&url, &["run", "collect-papers", "--wait"]).await;
    let text = ok(&out);
    assert!(
        text.contains("completed") && text.contains(r#"{"queued":3}"#),
        "{text}"
    );
    assert!(stderr(&out).contains("waiting"), "{}", stderr(&out));

    let job = ok_json(&run_cli(&url, &["run", "collect-papers", "--wait", "--json"]).await);
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["result"], json!({"queued": 3}), "{job}");
    assert_eq!(job["task"], Collect::NAME);
    let id = uuid_of(&job["id"]);
    let stored = refnet_jobs::get_job(&pool, id).await.unwrap().unwrap();
    assert_eq!(stored.state, refnet_jobs::JobState::Completed);

    // Failed: exit 1, the error on stderr and nothing on stdout.
    let out = run_cli(
        &url,
        &["run", "collect-papers", "--arg", "fail=true", "--wait"],
    )
    .await;
    let err = fails(&out, 1);
    assert!(
        err.contains("failed") && err.contains("the crawler API answered 503"),
        "{err}"
    );
    assert!(stdout(&out).trim().is_empty(), "{}", stdout(&out));
    let out = run_cli(
        &url,
        &[
            "run",
            "collect-papers",
            "--arg",
            "fail=true",
            "--wait",
            "--json",
        ],
    )
    .await;
    fails(&out, 1);
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["errors"][0]["error"], "the crawler API answered 503");

    // Known to the catalogue, but no worker runs it: exit 3 at the timeout.
    let started = Instant::now();
    let out = run_cli(&url, &["run", "rebuild-index", "--wait", "--timeout", "1s"]).await;
    let err = fails(&out, 3);
    assert!(err.contains("still available"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "--timeout 1s took {:?}",
        started.elapsed()
    );
    let out = run_cli(
        &url,
        &[
            "run",
            "rebuild-index",
            "--wait",
            "--timeout",
            "500ms",
            "--json",
        ],
    )
    .await;
    let err = fails(&out, 3);
    assert!(err.contains("still available"), "{err}");
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["state"], "available", "{job}");
    // The job goes on waiting: --wait giving up does not cancel it.
    assert_eq!(state_of(&pool, uuid_of(&job["id"])).await, "available");

    worker.stop().await;
}

#[sqlx::test(migrations = false)]
async fn run_merges_args_schedules_dedupes_and_refuses_bad_input(pool: PgPool) {
    let url = setup(&pool).await;

    // --arg values are read as JSON when they are, else as text, over --args.
    let value = ok_json(&cli(
        &url,
        &[
            "run",
            "collect-papers",
            "--args",
            r#"{"a":1}"#,
            "--arg",
            "n=5",
            "--arg",
            "name=x",
            "--arg",
            "flag=true",
            "--json",
        ],
    ));
    assert_eq!(value["inserted"], true, "{value}");
    let id = uuid_of(&value["id"]);
    let job = refnet_jobs::get_job(&pool, id).await.unwrap().unwrap();
    assert_eq!(job.args, json!({"a": 1, "n": 5, "name": "x", "flag": true}));
    assert_eq!(job.state, refnet_jobs::JobState::Available);
    // A later --arg overrides a key of --args.
    let value = ok_json(&cli(
        &url,
        &[
            "run",
            "collect-papers",
            "--args",
            r#"{"a":1}"#,
            "--arg",
            "a=2",
            "--json",
        ],
    ));
    let job = refnet_jobs::get_job(&pool, uuid_of(&value["id"]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.args, json!({"a": 2}));

    // --in: scheduled about ten minutes from now.
    let before = db_now(&pool).await;
    let value = ok_json(&cli(
        &url,
        &["run", "collect-papers", "--in", "10m", "--json"],
    ));
    let after = db_now(&pool).await;
    let job = refnet_jobs::get_job(&pool, uuid_of(&value["id"]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.state, refnet_jobs::JobState::Scheduled);
    let ten = chrono::Duration::minutes(10);
    let slack = chrono::Duration::seconds(5);
    assert!(
        job.run_at >= before + ten - slack && job.run_at <= after + ten + slack,
        "run_at {} not about 10 minutes after {before}",
        job.run_at
    );
    assert!(value["run_at"].is_string(), "{value}");
    let text = ok(&cli(&url, &["run", "collect-papers", "--in", "1h30m"]));
    assert!(text.contains("enqueued"), "{text}");

    // --at: exactly that instant.
    let value = ok_json(&cli(
        &url,
        &[
            "run",
            "collect-papers",
            "--at",
            "2030-01-01T00:00:00Z",
            "--json",
        ],
    ));
    let job = refnet_jobs::get_job(&pool, uuid_of(&value["id"]))
        .await
        .unwrap()
        .unwrap();
    let at: chrono::DateTime<chrono::Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
    assert_eq!(job.run_at, at);
    assert_eq!(job.state, refnet_jobs::JobState::Scheduled);
    // An offset is honoured.
    let value = ok_json(&cli(
        &url,
        &[
            "run",
            "collect-papers",
            "--at",
            "2030-01-01T09:00:00+09:00",
            "--json",
        ],
    ));
    let job = refnet_jobs::get_job(&pool, uuid_of(&value["id"]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.run_at, at);

    // --unique-key: the second run reports the first job.
    let first = ok_json(&cli(
        &url,
        &["run", "collect-papers", "--unique-key", "k", "--json"],
    ));
    assert_eq!(first["inserted"], true, "{first}");
    let second = ok_json(&cli(
        &url,
        &["run", "collect-papers", "--unique-key", "k", "--json"],
    ));
    assert_eq!(second["inserted"], false, "{second}");
    assert_eq!(second["id"], first["id"]);
    let text = ok(&cli(&url, &["run", "collect-papers", "--unique-key", "k"]));
    assert!(text.contains("already queued"), "{text}");
    assert!(text.contains(first["id"].as_str().unwrap()), "{text}");
    let keyed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM refnet_jobs.jobs WHERE unique_key = 'k'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(keyed, 1);

    // Bad input: exit 2, and nothing is written.
    let count = job_count(&pool).await;
    let bad: &[(&[&str], &str)] = &[
        (&["run", "collect-papers", "--in", "10x"], "10x"),
        (&["run", "collect-papers", "--in", "10"], "--in"),
        (&["run", "collect-papers", "--arg", "novalue"], "novalue"),
        (&["run", "collect-papers", "--arg", "=5"], "KEY=VALUE"),
        (&["run", "collect-papers", "--args", "not json"], "--args"),
        (&["run", "collect-papers", "--at", "tomorrow"], "tomorrow"),
        (
            &[
                "run",
                "collect-papers",
                "--in",
                "1m",
                "--at",
                "2030-01-01T00:00:00Z",
            ],
            "--at",
        ),
        (&["run", "no-such-task"], "no-such-task"),
        (&["run", "collect-papers", "--timeout", "5s"], "--wait"),
        (
            &["run", "collect-papers", "--wait", "--timeout", "soon"],
            "soon",
        ),
    ];
    for (args, mention) in bad {
        let out = cli(&url, args);
        let err = fails(&out, 2);
        assert!(err.contains(mention), "{args:?}: {err}");
    }
    assert_eq!(job_count(&pool).await, count, "bad input wrote nothing");
}

#[sqlx::test(migrations = false)]
async fn show_lists_every_attempt_with_its_error_and_the_result(pool: PgPool) {
    let url = setup(&pool).await;
    let id = insert(&pool, Collect::NAME, "default", "completed").await;
    exec(
        &pool,
        r#"UPDATE refnet_jobs.jobs
           SET attempt = 3, max_attempts = 3, args = '{"max_papers": 5}',
               started_at = now() - interval '2 seconds', finished_at = now(),
               worker_id = 'w-show', result = '{"queued": 3}',
               errors = jsonb_build_array(
                   jsonb_build_object('attempt', 1, 'at', now() - interval '1 minute',
                                      'error', 'connection reset by peer'),
                   jsonb_build_object('attempt', 2, 'at', now() - interval '30 seconds',
                                      'error', 'the crawler API answered 503'))
           WHERE id = $1"#,
        id,
    )
    .await;
    let ids = id.to_string();

    let text = ok(&cli(&url, &["show", &ids]));
    for needle in [
        ids.as_str(),
        Collect::NAME,
        "completed",
        "3 of 3",
        "max_papers",
        "w-show",
        "attempt 1 at",
        "connection reset by peer",
        "attempt 2 at",
        "the crawler API answered 503",
        r#"{"queued":3}"#,
    ] {
        assert!(text.contains(needle), "{needle:?} missing in:\n{text}");
    }
    let line = |label: &str| {
        text.lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label} line in:\n{text}"))
            .to_string()
    };
    assert!(line("state").contains("completed"), "{text}");
    assert!(line("result").contains(r#"{"queued":3}"#), "{text}");
    assert!(
        line("  attempt 1").contains("connection reset by peer"),
        "{text}"
    );
    assert!(
        line("  attempt 2").contains("the crawler API answered 503"),
        "{text}"
    );

    let value = ok_json(&cli(&url, &["show", &ids, "--json"]));
    assert_eq!(value["id"], ids);
    assert_eq!(value["state"], "completed");
    assert_eq!(value["attempt"], 3);
    assert_eq!(value["result"], json!({"queued": 3}));
    let errors = value["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{value}");
    assert_eq!(errors[0]["attempt"], 1);
    assert_eq!(errors[0]["error"], "connection reset by peer");
    assert_eq!(errors[1]["attempt"], 2);
    assert_eq!(errors[1]["error"], "the crawler API answered 503");
    assert!(errors[1]["at"].is_string());

    // A waiting job without errors says so.
    let waiting = insert(&pool, Collect::NAME, "default", "available").await;
    let text = ok(&cli(&url, &["show", &waiting.to_string()]));
    assert!(text.contains("available"), "{text}");
    assert!(line_of(&text, "errors").contains("none"), "{text}");

    let unknown = Uuid::now_v7().to_string();
    for json_flag in [false, true] {
        let mut args = vec!["show", unknown.as_str()];
        if json_flag {
            args.push("--json");
        }
        let err = fails(&cli(&url, &args), 1);
        assert!(err.contains("not found") && err.contains(&unknown), "{err}");
    }
    let err = fails(&cli(&url, &["show", "not-a-uuid"]), 2);
    assert!(err.contains("not-a-uuid"), "{err}");
}

fn line_of(text: &str, label: &str) -> String {
    text.lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label} line in:\n{text}"))
        .to_string()
}

#[sqlx::test(migrations = false)]
async fn status_shows_workers_running_jobs_queues_and_next_ticks(pool: PgPool) {
    let url = setup(&pool).await;
    let mut spec = refnet_jobs::ScheduleSpec::new("nightly-collection", "0 2 * * *", Collect::NAME);
    spec.timezone = "Asia/Tokyo".into();
    refnet_jobs::schedule::upsert(&pool, &spec, "config")
        .await
        .unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let worker = start_worker(&pool, fast_config(), |b| b.register(Gate(gate.clone()))).await;
    let value = ok_json(&run_cli(&url, &["run", "gate", "--json"]).await);
    let id = uuid_of(&value["id"]);
    wait_state(&pool, id, "running", Duration::from_secs(10)).await;
    // One more waiting in another queue.
    ok(&run_cli(&url, &["run", "collect-papers", "--queue", "slow"]).await);

    let text = ok(&run_cli(&url, &["status"]).await);
    for section in ["WORKERS", "RUNNING", "QUEUES", "NEXT TICKS"] {
        assert!(
            text.lines().any(|l| l.starts_with(section)),
            "no {section} section in:\n{text}"
        );
    }
    assert!(text.contains("WORKERS: 1 alive, 0 dead"), "{text}");
    assert!(text.contains(&worker.id), "{text}");
    assert!(text.contains("RUNNING: 1 shown"), "{text}");
    let running_line = line_of(&text, &id.to_string());
    assert!(
        running_line.contains(Gate::NAME) && running_line.contains(&worker.id),
        "{text}"
    );
    assert!(text.contains("nightly-collection"), "{text}");
    assert!(text.contains("02:00 JST"), "{text}");
    assert!(line_of(&text, "slow").contains("active"), "{text}");

    let value = ok_json(&run_cli(&url, &["status", "--json"]).await);
    for key in [
        "workers",
        "running",
        "queues",
        "next_ticks",
        "expired_leases",
        "now",
    ] {
        assert!(value.get(key).is_some(), "no {key} in {value}");
    }
    let workers = value["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1, "{value}");
    assert_eq!(workers[0]["id"], worker.id.as_str());
    assert_eq!(workers[0]["alive"], true);
    let running = value["running"].as_array().unwrap();
    assert_eq!(running.len(), 1, "{value}");
    assert_eq!(running[0]["id"], id.to_string());
    assert_eq!(running[0]["state"], "running");
    assert_eq!(running[0]["worker_id"], worker.id.as_str());
    assert_eq!(value["expired_leases"], 0);
    let queue = |name: &str| {
        value["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no queue {name} in {value}"))
    };
    assert_eq!(queue("default")["running"], 1);
    assert_eq!(queue("slow")["waiting"], 1);
    assert_eq!(value["next_ticks"][0]["schedule"], "nightly-collection");
    assert!(
        value["next_ticks"][0]["at"]
            .as_str()
            .unwrap()
            .contains("T17:00:00"),
        "{value}"
    );
    assert!(value["now"].is_string());

    gate.add_permits(1);
    wait_state(&pool, id, "completed", Duration::from_secs(10)).await;
    worker.stop().await;

    // A running row whose lease ran out (its worker is gone) is counted.
    let lost = insert(&pool, Gate::NAME, "default", "running").await;
    exec(
        &pool,
        "UPDATE refnet_jobs.jobs
         SET attempt = 1, started_at = now() - interval '1 minute', worker_id = 'gone',
             lease_expires_at = now() - interval '10 seconds'
         WHERE id = $1",
        lost,
    )
    .await;
    let value = ok_json(&run_cli(&url, &["status", "--json"]).await);
    assert_eq!(value["expired_leases"], 1, "{value}");
    let text = ok(&run_cli(&url, &["status"]).await);
    assert!(text.contains("expired lease"), "{text}");
    assert!(text.contains("0 alive"), "{text}");
}

#[sqlx::test(migrations = false)]
async fn history_summary_gives_runs_failures_rate_durations_and_last_error(pool: PgPool) {
    let url = setup(&pool).await;
    // Completed in 1, 2 and 3 s; failed in 4 and 5 s; one more, old, outside --days 7.
    sqlx::query(
        "INSERT INTO refnet_jobs.jobs (id, task, state, attempt, started_at, finished_at, result)
         SELECT gen_random_uuid(), $1, 'completed', 1,
                now() - make_interval(hours => 3, secs => d), now() - interval '3 hours',
                '{\"queued\": 3}'
         FROM unnest(ARRAY[1, 2, 3]) AS d",
    )
    .bind(Collect::NAME)
    .execute(&pool)
    .await
    .unwrap();
    for (hours, secs, errors) in [
        (
            2,
            4,
            json!([{"attempt": 1, "at": "2026-01-01T00:00:00Z", "error": "older failure"}]),
        ),
        (
            1,
            5,
            json!([
                {"attempt": 1, "at": "2026-01-01T00:00:00Z", "error": "first try"},
                {"attempt": 2, "at": "2026-01-01T00:01:00Z", "error": "the crawler API answered 503"}
            ]),
        ),
        (
            24 * 10,
            1,
            json!([{"attempt": 1, "at": "2026-01-01T00:00:00Z", "error": "ancient"}]),
        ),
    ] {
        sqlx::query(
            "INSERT INTO refnet_jobs.jobs (id, task, state, attempt, started_at, finished_at, errors)
             VALUES (gen_random_uuid(), $1, 'failed', 1,
                     now() - make_interval(hours => $2, secs => $3), now() - make_interval(hours => $2),
                     $4)",
        )
        .bind(Collect::NAME)
        .bind(hours)
        .bind(secs)
        .bind(errors)
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO refnet_jobs.jobs (id, task, state, attempt, started_at, finished_at)
         VALUES (gen_random_uuid(), 'test.other', 'completed', 1,
                 now() - interval '10 seconds', now() - interval '9 seconds')",
    )
    .execute(&pool)
    .await
    .unwrap();

    let text = ok(&cli(&url, &["history", "--summary"]));
    let header = text.lines().next().unwrap();
    for column in ["TASK", "RUNS", "FAILED", "SUCCESS", "MEDIAN", "P95"] {
        assert!(header.contains(column), "{column} missing in:\n{text}");
    }
    let row = line_of(&text, Collect::NAME);
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[1..5], ["5", "2", "0", "60.0%"], "{text}");
    assert!(row.contains("the crawler API answered 503"), "{text}");
    assert!(!text.contains("ancient"), "{text}");
    assert!(line_of(&text, "test.other").contains("100.0%"), "{text}");

    let value = ok_json(&cli(&url, &["history", "--summary", "--json"]));
    let rows = value.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{value}");
    let collect = rows.iter().find(|r| r["task"] == Collect::NAME).unwrap();
    for key in [
        "runs",
        "failures",
        "success_rate",
        "median_secs",
        "p95_secs",
        "last_error",
    ] {
        assert!(collect.get(key).is_some(), "no {key} in {collect}");
    }
    assert_eq!(collect["runs"], 5);
    assert_eq!(collect["failures"], 2);
    assert!((collect["success_rate"].as_f64().unwrap() - 0.6).abs() < 1e-9);
    let median = collect["median_secs"].as_f64().unwrap();
    assert!((median - 3.0).abs() < 0.01, "median {median}");
    let p95 = collect["p95_secs"].as_f64().unwrap();
    assert!((p95 - 4.8).abs() < 0.01, "p95 {p95}");
    assert_eq!(collect["last_error"], "the crawler API answered 503");

    // The 10-day-old failure counts with --days 30.
    let value = ok_json(&cli(
        &url,
        &[
            "history",
            "--summary",
            "--days",
            "30",
            "--task",
            "collect-papers",
            "--json",
        ],
    ));
    assert_eq!(value.as_array().unwrap().len(), 1, "{value}");
    assert_eq!(value[0]["runs"], 6);
    assert_eq!(value[0]["failures"], 3);

    for days in ["0", "-1", "x"] {
        let out = cli(&url, &["history", "--summary", "--days", days]);
        fails(&out, 2);
    }
}

#[sqlx::test(migrations = false)]
async fn purge_asks_for_yes_counts_filters_and_never_touches_running_or_finished_jobs(
    pool: PgPool,
) {
    let url = setup(&pool).await;
    let a1 = insert(&pool, Collect::NAME, "default", "available").await;
    let a2 = insert(&pool, Collect::NAME, "default", "available").await;
    let sched = insert(&pool, Orphan::NAME, "default", "scheduled").await;
    exec(
        &pool,
        "UPDATE refnet_jobs.jobs SET run_at = now() + interval '1 day' WHERE id = $1",
        sched,
    )
    .await;
    let retry = insert(&pool, Collect::NAME, "slow", "retryable").await;
    let running = insert(&pool, Collect::NAME, "default", "running").await;
    exec(
        &pool,
        "UPDATE refnet_jobs.jobs
         SET attempt = 1, started_at = now(), worker_id = 'w', heartbeat_at = now(),
             lease_expires_at = now() + interval '1 minute'
         WHERE id = $1",
        running,
    )
    .await;
    let done = insert(&pool, Collect::NAME, "default", "completed").await;
    exec(
        &pool,
        "UPDATE refnet_jobs.jobs SET attempt = 1, finished_at = now() WHERE id = $1",
        done,
    )
    .await;

    // Not on a terminal and no --yes: refused, nothing deleted.
    let err = fails(&cli_no_stdin(&url, &["purge"]), 2);
    assert!(err.contains("--yes"), "{err}");
    let err = fails(&cli_no_stdin(&url, &["purge", "--json"]), 2);
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(job_count(&pool).await, 6);

    // Dry run: counts per queue and task.
    let text = ok(&cli_no_stdin(&url, &["purge", "--dry-run"]));
    assert!(text.contains("would delete 4 waiting jobs"), "{text}");
    assert!(line_of(&text, "slow").contains(Collect::NAME), "{text}");
    let value = ok_json(&cli_no_stdin(&url, &["purge", "--dry-run", "--json"]));
    assert_eq!(value["total"], 4, "{value}");
    assert_eq!(value["dry_run"], true);
    let groups = value["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3, "{value}");
    let count_of = |queue: &str, task: &str| {
        groups
            .iter()
            .find(|g| g["queue"] == queue && g["task"] == task)
            .map(|g| g["count"].as_i64().unwrap())
    };
    assert_eq!(count_of("default", Collect::NAME), Some(2));
    assert_eq!(count_of("default", Orphan::NAME), Some(1));
    assert_eq!(count_of("slow", Collect::NAME), Some(1));
    assert_eq!(job_count(&pool).await, 6, "a dry run deletes nothing");

    // --queue: only that queue.
    let value = ok_json(&cli_no_stdin(
        &url,
        &["purge", "--queue", "slow", "--yes", "--json"],
    ));
    assert_eq!(value["total"], 1, "{value}");
    assert_eq!(value["groups"][0]["queue"], "slow");
    assert!(refnet_jobs::get_job(&pool, retry).await.unwrap().is_none());
    assert_eq!(job_count(&pool).await, 5);

    // --task, by its short name: only that task.
    let text = ok(&cli_no_stdin(
        &url,
        &["purge", "--task", "rebuild-index", "--yes"],
    ));
    assert!(text.contains("deleted 1 waiting jobs"), "{text}");
    assert!(refnet_jobs::get_job(&pool, sched).await.unwrap().is_none());
    assert_eq!(job_count(&pool).await, 4);

    // Everything waiting; the running and the completed job remain.
    let value = ok_json(&cli_no_stdin(&url, &["purge", "--yes", "--json"]));
    assert_eq!(value["total"], 2, "{value}");
    assert_eq!(value["dry_run"], false);
    for gone in [a1, a2] {
        assert!(refnet_jobs::get_job(&pool, gone).await.unwrap().is_none());
    }
    assert_eq!(state_of(&pool, running).await, "running");
    assert_eq!(state_of(&pool, done).await, "completed");
    assert_eq!(job_count(&pool).await, 2);

    // Nothing left to purge: fine without --yes.
    let text = ok(&cli_no_stdin(&url, &["purge"]));
    assert!(text.contains("nothing to delete"), "{text}");
    let err = fails(&cli_no_stdin(&url, &["purge", "--queue", " ", "--yes"]), 2);
    assert!(err.contains("--queue"), "{err}");
}

#[sqlx::test(migrations = false)]
async fn prune_deletes_only_jobs_finished_before_the_cutoff_case_b31(pool: PgPool) {
    let url = setup(&pool).await;
    let gate = Arc::new(Semaphore::new(0));
    let worker = start_worker(&pool, fast_config(), |b| b.register(Gate(gate.clone()))).await;

    // A: running for 10 days, still heartbeating (a real worker holds it).
    let a = uuid_of(&ok_json(&run_cli(&url, &["run", "gate", "--json"]).await)["id"]);
    wait_state(&pool, a, "running", Duration::from_secs(10)).await;
    exec(
        &pool,
        "UPDATE refnet_jobs.jobs
         SET created_at = now() - interval '10 days', run_at = now() - interval '10 days',
             started_at = now() - interval '10 days'
         WHERE id = $1",
        a,
    )
    .await;
    let row = |state: &'static str| insert(&pool, "test.old", "default", state);
    // B: waiting since 10 days ago, run_at in the future.
    let b = row("scheduled").await;
    exec(
        &pool,
        "UPDATE refnet_jobs.jobs
         SET created_at = now() - interval '10 days', run_at = now() + interval '1 day'
         WHERE id = $1",
        b,
    )
    .await;
    // C, D, F: finished 10 days ago.
    let c = row("completed").await;
    let d = row("failed").await;
    let f = row("cancelled").await;
    for id in [c, d, f] {
        exec(
            &pool,
            "UPDATE refnet_jobs.jobs
             SET created_at = now() - interval '11 days', run_at = now() - interval '11 days',
                 started_at = now() - interval '10 days', finished_at = now() - interval '10 days',
                 attempt = 1
             WHERE id = $1",
            id,
        )
        .await;
    }
    // E: created 10 days ago but finished 1 day ago (age is from finished_at).
    let e = row("completed").await;
    exec(
        &pool,
        "UPDATE refnet_jobs.jobs
         SET created_at = now() - interval '10 days', run_at = now() - interval '10 days',
             started_at = now() - interval '1 day', finished_at = now() - interval '1 day',
             attempt = 1
         WHERE id = $1",
        e,
    )
    .await;
    // G: failed an attempt 10 days ago, waiting for its retry.
    let g = row("retryable").await;
    exec(
        &pool,
        "UPDATE refnet_jobs.jobs
         SET created_at = now() - interval '10 days', run_at = now() + interval '1 hour',
             started_at = now() - interval '10 days', attempt = 1, max_attempts = 3,
             errors = '[{\"attempt\": 1, \"at\": \"2026-01-01T00:00:00Z\", \"error\": \"x\"}]'
         WHERE id = $1",
        g,
    )
    .await;
    let ids = |ids: &[Uuid]| {
        let mut ids = ids.to_vec();
        ids.sort();
        ids
    };
    let left = || async {
        let mut rows: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM refnet_jobs.jobs")
            .fetch_all(&pool)
            .await
            .unwrap();
        rows.sort();
        rows
    };
    let all = ids(&[a, b, c, d, e, f, g]);
    assert_eq!(left().await, all);

    let text = ok(&run_cli(&url, &["prune", "--older-than", "7d", "--dry-run"]).await);
    assert!(text.contains("would delete 3 "), "{text}");
    let value = ok_json(
        &run_cli(
            &url,
            &["prune", "--older-than", "7d", "--dry-run", "--json"],
        )
        .await,
    );
    assert_eq!(value["would_delete"], 3, "{value}");
    assert_eq!(left().await, all, "a dry run deletes nothing");

    let text = ok(&run_cli(&url, &["prune", "--older-than", "7d", "--batch", "2"]).await);
    assert!(
        text.contains("deleted 3 ") && text.contains("2 batches"),
        "{text}"
    );
    assert_eq!(left().await, ids(&[a, b, e, g]), "exactly C, D and F go");
    let value = ok_json(&run_cli(&url, &["prune", "--older-than", "7d", "--json"]).await);
    assert_eq!(value["deleted"], 0, "{value}");
    assert_eq!(state_of(&pool, a).await, "running");
    assert_eq!(state_of(&pool, b).await, "scheduled");
    assert_eq!(state_of(&pool, g).await, "retryable");

    for bad in ["7x", "7", "", "d7"] {
        let out = run_cli(&url, &["prune", "--older-than", bad]).await;
        fails(&out, 2);
    }
    let out = run_cli(
        &url,
        &["prune", "--older-than", "7d", "--older-than-days", "7"],
    )
    .await;
    fails(&out, 2);
    assert_eq!(left().await, ids(&[a, b, e, g]));

    // A finishes later, and its result is stored.
    gate.add_permits(1);
    wait_state(&pool, a, "completed", Duration::from_secs(10)).await;
    let job = refnet_jobs::get_job(&pool, a).await.unwrap().unwrap();
    assert_eq!(job.result, Some(json!({"released": true})));
    worker.stop().await;
}

#[sqlx::test(migrations = false)]
async fn retry_puts_failed_and_cancelled_jobs_back_in_line_and_refuses_others(pool: PgPool) {
    let url = setup(&pool).await;
    let failed = insert(&pool, Collect::NAME, "default", "failed").await;
    exec(
        &pool,
        "UPDATE refnet_jobs.jobs
         SET attempt = 1, max_attempts = 1, started_at = now() - interval '1 minute',
             finished_at = now() - interval '50 seconds', worker_id = 'w',
             errors = jsonb_build_array(jsonb_build_object(
                 'attempt', 1, 'at', now() - interval '50 seconds',
                 'error', 'the crawler API answered 503'))
         WHERE id = $1",
        failed,
    )
    .await;
    let text = ok(&cli(&url, &["retry", &failed.to_string()]));
    assert!(
        text.contains(&failed.to_string()) && text.contains("failed"),
        "{text}"
    );
    let job = refnet_jobs::get_job(&pool, failed).await.unwrap().unwrap();
    assert_eq!(job.state, refnet_jobs::JobState::Available);
    assert_eq!(job.errors.len(), 1, "errors are kept");
    assert_eq!(job.errors[0].error, "the crawler API answered 503");
    assert_eq!(job.max_attempts, 2, "one more attempt is allowed");
    assert!(job.finished_at.is_none());

    let cancelled = insert(&pool, Collect::NAME, "default", "cancelled").await;
    exec(
        &pool,
        "UPDATE refnet_jobs.jobs SET finished_at = now(), max_attempts = 5 WHERE id = $1",
        cancelled,
    )
    .await;
    let value = ok_json(&cli(&url, &["retry", &cancelled.to_string(), "--json"]));
    assert_eq!(value["id"], cancelled.to_string());
    assert_eq!(value["was"], "cancelled");
    assert_eq!(value["state"], "available");
    let job = refnet_jobs::get_job(&pool, cancelled)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.state, refnet_jobs::JobState::Available);
    assert_eq!(job.max_attempts, 5, "not lowered");

    // The retried job runs.
    let worker = start_worker(&pool, fast_config(), |b| b.register(Collect)).await;
    wait_state(&pool, failed, "completed", Duration::from_secs(10)).await;
    worker.stop().await;

    let done = insert(&pool, Collect::NAME, "default", "completed").await;
    exec(
        &pool,
        "UPDATE refnet_jobs.jobs SET attempt = 1, finished_at = now(), result = '1' WHERE id = $1",
        done,
    )
    .await;
    for json_flag in [false, true] {
        let mut args = vec!["retry".to_string(), done.to_string()];
        if json_flag {
            args.push("--json".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = fails(&cli(&url, &args), 1);
        assert!(err.contains("only failed or cancelled"), "{err}");
    }
    assert_eq!(state_of(&pool, done).await, "completed");
    let waiting = insert(&pool, Collect::NAME, "default", "available").await;
    let err = fails(&cli(&url, &["retry", &waiting.to_string()]), 1);
    assert!(err.contains("only failed or cancelled"), "{err}");

    let unknown = Uuid::now_v7().to_string();
    let err = fails(&cli(&url, &["retry", &unknown]), 1);
    assert!(err.contains("not found"), "{err}");
    fails(&cli(&url, &["retry", "12345"]), 2);
}

#[sqlx::test(migrations = false)]
async fn queue_pause_stops_claims_until_resume(pool: PgPool) {
    let url = setup(&pool).await;
    let worker = start_worker(&pool, fast_config(), |b| b.register(Collect)).await;

    let text = ok(&run_cli(&url, &["queue", "pause", "default"]).await);
    assert!(
        text.contains("default") && text.contains("paused"),
        "{text}"
    );
    let id = uuid_of(&ok_json(&run_cli(&url, &["run", "collect-papers", "--json"]).await)["id"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        state_of(&pool, id).await,
        "available",
        "a paused queue starts nothing"
    );

    let text = ok(&run_cli(&url, &["queue", "list"]).await);
    let row = line_of(&text, "default");
    assert!(row.contains("paused"), "{text}");
    assert_eq!(
        row.split_whitespace().nth(2),
        Some("1"),
        "1 waiting: {text}"
    );
    // `queue` alone lists too.
    let bare = ok(&run_cli(&url, &["queue"]).await);
    assert!(line_of(&bare, "default").contains("paused"), "{bare}");
    let value = ok_json(&run_cli(&url, &["queue", "list", "--json"]).await);
    let default = value
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "default")
        .cloned()
        .unwrap();
    assert!(default["paused_at"].is_string(), "{value}");
    assert_eq!(default["waiting"], 1);
    // Pausing twice is harmless and keeps the first pause time.
    let again = ok_json(&run_cli(&url, &["queue", "pause", "default", "--json"]).await);
    assert_eq!(again["paused"], true);
    let value2 = ok_json(&run_cli(&url, &["queue", "list", "--json"]).await);
    assert_eq!(value2[0]["paused_at"], default["paused_at"], "{value2}");

    let value = ok_json(&run_cli(&url, &["queue", "resume", "default", "--json"]).await);
    assert_eq!(value["queue"], "default");
    assert_eq!(value["paused"], false);
    wait_state(&pool, id, "completed", Duration::from_secs(3)).await;
    let value = ok_json(&run_cli(&url, &["queue", "list", "--json"]).await);
    assert!(
        value
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["paused_at"].is_null()),
        "{value}"
    );
    let text = ok(&run_cli(&url, &["queue", "resume", "default"]).await);
    assert!(text.contains("resumed"), "{text}");
    worker.stop().await;
}

#[sqlx::test(migrations = false)]
async fn revoke_terminate_drops_a_running_job_at_once(pool: PgPool) {
    let url = setup(&pool).await;
    let config = WorkerConfig {
        cancel_grace: Duration::from_secs(30),
        ..fast_config()
    };
    let worker = start_worker(&pool, config, |b| b.register(Stubborn)).await;
    let first = uuid_of(&ok_json(&run_cli(&url, &["run", "stubborn", "--json"]).await)["id"]);
    let second = uuid_of(&ok_json(&run_cli(&url, &["run", "stubborn", "--json"]).await)["id"]);
    for id in [first, second] {
        wait_state(&pool, id, "running", Duration::from_secs(10)).await;
    }

    // --terminate: cancelled within seconds, without the 30 s grace.
    let started = Instant::now();
    let text = ok(&run_cli(&url, &["revoke", &first.to_string(), "--terminate"]).await);
    assert!(
        text.contains("revoke sent") && text.contains(&worker.id),
        "{text}"
    );
    wait_state(&pool, first, "cancelled", Duration::from_secs(3)).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let job = refnet_jobs::get_job(&pool, first).await.unwrap().unwrap();
    assert!(job.finished_at.is_some());

    // A plain revoke waits out the grace; --terminate then hurries it.
    let value = ok_json(&run_cli(&url, &["revoke", &second.to_string(), "--json"]).await);
    assert_eq!(value["revoked"]["outcome"], "stopping", "{value}");
    assert_eq!(value["revoked"]["worker"], worker.id.as_str());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(state_of(&pool, second).await, "running", "within its grace");
    let value = ok_json(
        &run_cli(
            &url,
            &["revoke", &second.to_string(), "--terminate", "--json"],
        )
        .await,
    );
    assert_eq!(value["revoked"]["outcome"], "stopping", "{value}");
    wait_state(&pool, second, "cancelled", Duration::from_secs(3)).await;

    // Revoking a finished job again: exit 1.
    let first_id = first.to_string();
    for flags in [&["--terminate"][..], &[], &["--json"]] {
        let mut args = vec!["revoke", first_id.as_str()];
        args.extend_from_slice(flags);
        let err = fails(&run_cli(&url, &args).await, 1);
        assert!(err.contains("already finished"), "{args:?}: {err}");
    }
    assert_eq!(state_of(&pool, first).await, "cancelled");

    // A waiting job is cancelled at once.
    let waiting =
        uuid_of(&ok_json(&run_cli(&url, &["run", "stubborn", "--in", "1h", "--json"]).await)["id"]);
    let value = ok_json(&run_cli(&url, &["revoke", &waiting.to_string(), "--json"]).await);
    assert_eq!(value["id"], waiting.to_string());
    assert_eq!(value["revoked"]["outcome"], "cancelled", "{value}");
    assert_eq!(value["revoked"]["was"], "scheduled", "{value}");
    assert_eq!(state_of(&pool, waiting).await, "cancelled");
    let other = uuid_of(&ok_json(&run_cli(&url, &["run", "rebuild-index", "--json"]).await)["id"]);
    let text = ok(&run_cli(&url, &["revoke", &other.to_string()]).await);
    assert!(text.contains("cancelled (it was available)"), "{text}");

    let unknown = Uuid::now_v7().to_string();
    let err = fails(&run_cli(&url, &["revoke", &unknown]).await, 1);
    assert!(err.contains("not found"), "{err}");
    fails(&run_cli(&url, &["revoke", "nope"]).await, 2);
    worker.stop().await;
}

#[test]
fn an_unreachable_database_is_named_without_its_password_by_the_operator_commands() {
    let url = "postgres://refnet:hunter2@127.0.0.1:1/refnet";
    let id = Uuid::now_v7().to_string();
    let commands: &[&[&str]] = &[
        &["status"],
        &["status", "--json"],
        &["show", &id],
        &["queue", "list"],
        &["history", "--summary"],
        &["prune", "--older-than", "7d", "--dry-run"],
        &["retry", &id],
    ];
    for args in commands {
        let out = cli(url, args);
        let err = fails(&out, 1);
        assert!(err.contains("127.0.0.1:1/refnet"), "{args:?}: {err}");
        assert!(!err.contains("hunter2"), "{args:?}: {err}");
    }
    // Bad usage is found before any connection is tried.
    for args in [
        &["history", "--summary", "--days", "0"][..],
        &["prune", "--older-than", "7x"],
        &["run", "collect-papers", "--in", "10x"],
        &["show", "not-a-uuid"],
        &["revoke", "not-a-uuid"],
    ] {
        let err = fails(&cli(url, args), 2);
        assert!(!err.contains("hunter2"), "{args:?}: {err}");
    }
}

#[test]
fn run_with_a_delay_past_the_calendar_is_bad_usage_not_a_crash() {
    // The check comes before any connection, so no database is needed.
    let out = cli(
        "postgres://127.0.0.1:1/x",
        &["run", "collect-papers", "--in", "100000000w"],
    );
    let err = fails(&out, 2);
    assert!(err.contains("--in"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[sqlx::test(migrations = false)]
async fn prune_with_an_age_past_the_calendar_is_bad_usage_and_deletes_nothing(pool: PgPool) {
    let url = setup(&pool).await;
    let old = insert(&pool, Collect::NAME, "default", "completed").await;
    exec(
        &pool,
        "UPDATE refnet_jobs.jobs SET finished_at = now() - interval '10 days' WHERE id = $1",
        old,
    )
    .await;
    for args in [
        &["prune", "--older-than", "1000000000w"][..],
        &["prune", "--older-than", "1000000000w", "--dry-run"],
    ] {
        let err = fails(&cli(&url, args), 2);
        assert!(err.contains("--older-than"), "{args:?}: {err}");
        assert!(!err.contains("database error"), "{args:?}: {err}");
    }
    assert_eq!(job_count(&pool).await, 1);
}

#[sqlx::test(migrations = false)]
async fn queue_pause_of_an_empty_name_is_bad_usage(pool: PgPool) {
    let url = setup(&pool).await;
    for args in [&["queue", "pause", ""][..], &["queue", "resume", " "]] {
        let err = fails(&cli(&url, args), 2);
        assert!(err.contains("queue name"), "{args:?}: {err}");
    }
    let paused: i64 = sqlx::query_scalar("SELECT count(*) FROM refnet_jobs.queues")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(paused, 0);
}
