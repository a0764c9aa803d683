//! The `refnet-jobs` binary against a real PostgreSQL: each command in table
//! and JSON form, and its error paths.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support.rs"]
mod support;

use std::time::Duration;

use refnet_jobs::{JobContext, Registry, Task, TaskError, TaskOptions, Worker, WorkerConfig};
use sqlx::PgPool;
use support::*;

/// Stands in for the runner's collection task, so the catalogue knows it.
struct Collect;

impl Task for Collect {
    const NAME: &'static str = "refnet.scheduled.collect_new_papers";
    type Args = serde_json::Value;
    type Output = serde_json::Value;
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
        Ok(serde_json::json!({ "queued": 3 }))
    }
}

async fn setup(pool: &PgPool) -> String {
    refnet_jobs::migrate(pool).await.unwrap();
    let mut registry = Registry::new();
    registry.register(Collect);
    refnet_jobs::register_tasks(pool, &registry).await.unwrap();
    url_of(pool).await
}

async fn job_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM refnet_jobs.jobs")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn migrate_creates_the_schema(pool: PgPool) {
    let url = url_of(&pool).await;
    let out = cli(&url, &["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("up to date"));
    let json = cli(&url, &["migrate", "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["migrated"], true);
    let jobs: Option<String> = sqlx::query_scalar("SELECT to_regclass('refnet_jobs.jobs')::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(jobs.as_deref(), Some("refnet_jobs.jobs"));
}

#[sqlx::test(migrations = false)]
async fn prune_deletes_old_history_and_says_how_much(pool: PgPool) {
    let url = url_of(&pool).await;
    assert!(cli(&url, &["migrate"]).status.success());
    sqlx::query(
        "INSERT INTO refnet_jobs.jobs (id, task, state, attempt, finished_at)
         SELECT gen_random_uuid(), 'test.old', 'completed', 1, now() - make_interval(days => d)
         FROM unnest(ARRAY[45, 40, 3]) AS d",
    )
    .execute(&pool)
    .await
    .unwrap();
    let out = cli(&url, &["prune", "--older-than-days", "30", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["deleted"], 2, "{value}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM refnet_jobs.jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 1, "the job of 3 days ago stays");
    let bad = cli(&url, &["prune", "--batch", "0"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

#[sqlx::test(migrations = false)]
async fn run_accepts_short_and_full_names_with_json_args(pool: PgPool) {
    let url = setup(&pool).await;
    let out = cli(
        &url,
        &["run", "collect-papers", "--args", r#"{"max_papers": 5}"#],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("enqueued refnet.scheduled.collect_new_papers"));

    let out = cli(
        &url,
        &[
            "run",
            "refnet.scheduled.collect_new_papers",
            "--json",
            "--priority",
            "3",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id: uuid::Uuid = value["id"].as_str().unwrap().parse().unwrap();
    let job = refnet_jobs::get_job(&pool, id).await.unwrap().unwrap();
    assert_eq!(job.priority, 3);
    assert_eq!(job.max_attempts, 1, "the catalogue's attempts are used");

    let args: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT args FROM refnet_jobs.jobs ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        args,
        vec![serde_json::json!({"max_papers": 5}), serde_json::json!({})]
    );
}

#[sqlx::test(migrations = false)]
async fn run_of_an_unknown_task_lists_the_known_ones_and_writes_nothing(pool: PgPool) {
    let url = setup(&pool).await;
    let out = cli(&url, &["run", "collect-paper"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("unknown task \"collect-paper\""), "{err}");
    assert!(
        err.contains("refnet.scheduled.collect_new_papers (collect-papers)"),
        "{err}"
    );
    assert_eq!(job_count(&pool).await, 0);
}

#[sqlx::test(migrations = false)]
async fn run_with_malformed_json_args_is_refused_and_writes_nothing(pool: PgPool) {
    let url = setup(&pool).await;
    for bad in [r#"{"max_papers": }"#, "[1, 2]", "not json"] {
        let out = cli(&url, &["run", "collect-papers", "--args", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(stderr(&out).contains("--args"), "{}", stderr(&out));
    }
    assert_eq!(job_count(&pool).await, 0);
}

#[sqlx::test(migrations = false)]
async fn history_shows_finished_jobs_with_results_and_errors(pool: PgPool) {
    let url = setup(&pool).await;
    assert!(cli(&url, &["run", "collect-papers"]).status.success());
    assert!(
        cli(
            &url,
            &["run", "collect-papers", "--args", r#"{"fail": true}"#]
        )
        .status
        .success()
    );
    let worker = Worker::builder(pool.clone())
        .register(Collect)
        .queue("default", 2)
        .config(WorkerConfig {
            poll_interval: Duration::from_millis(100),
            ..WorkerConfig::default()
        })
        .build()
        .unwrap();
    let token = refnet_jobs::CancellationToken::new();
    let handle = tokio::spawn(worker.run(token.clone()));
    wait_for(Duration::from_secs(30), "both jobs to finish", || async {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM refnet_jobs.jobs WHERE finished_at IS NOT NULL",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        done == 2
    })
    .await;
    token.cancel();
    handle.await.unwrap().unwrap();

    let out = cli(&url, &["history", "--days", "7"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("TASK") && text.contains("DURATION") && text.contains("ATTEMPTS"),
        "{text}"
    );
    assert!(
        text.contains("completed") && text.contains(r#"{"queued":3}"#),
        "{text}"
    );
    assert!(
        text.contains("failed") && text.contains("the crawler API answered 503"),
        "{text}"
    );

    let out = cli(
        &url,
        &["history", "--days", "7", "--state", "failed", "--json"],
    );
    let jobs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["state"], "failed");
    assert_eq!(
        jobs[0]["errors"][0]["error"],
        "the crawler API answered 503"
    );

    let out = cli(&url, &["history", "--state", "exploded"]);
    assert_eq!(out.status.code(), Some(2));
    let out = cli(&url, &["history", "--state", "running"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "history holds finished jobs only"
    );
    assert!(stderr(&out).contains("completed, failed or cancelled"));
    for days in ["0", "4294967295"] {
        assert_eq!(
            cli(&url, &["history", "--days", days]).status.code(),
            Some(2)
        );
    }

    // The short name works as a filter too.
    let out = cli(&url, &["history", "--task", "collect-papers", "--json"]);
    let jobs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(jobs.len(), 2);
}

#[sqlx::test(migrations = false)]
async fn schedule_lists_next_ticks_in_the_zone_and_in_utc(pool: PgPool) {
    let url = setup(&pool).await;
    let mut spec =
        refnet_jobs::ScheduleSpec::new("daily-paper-collection", "0 2 * * *", Collect::NAME);
    spec.timezone = "Asia/Tokyo".into();
    refnet_jobs::schedule::upsert(&pool, &spec, "config")
        .await
        .unwrap();

    let out = cli(&url, &["schedule"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("daily-paper-collection"), "{text}");
    assert!(
        text.contains("02:00 JST") && text.contains("17:00 UTC"),
        "{text}"
    );

    let out = cli(&url, &["schedule", "--json"]);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["name"], "daily-paper-collection");
    assert_eq!(list[0]["misfire"], "once");
    assert!(
        list[0]["next_fire_at"]
            .as_str()
            .unwrap()
            .contains("T17:00:00")
    );
}

#[sqlx::test(migrations = false)]
async fn schedule_disable_enable_trigger_and_next_steer_a_stored_schedule(pool: PgPool) {
    let url = setup(&pool).await;
    let mut spec =
        refnet_jobs::ScheduleSpec::new("daily-paper-collection", "30 2 * * *", Collect::NAME);
    spec.timezone = "America/New_York".into();
    refnet_jobs::schedule::upsert(&pool, &spec, "config")
        .await
        .unwrap();

    let out = cli(&url, &["schedule", "disable", "daily-paper-collection"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&cli(&url, &["schedule", "list"])).contains("paused"));
    let out = cli(
        &url,
        &["schedule", "enable", "daily-paper-collection", "--json"],
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["paused"], false);
    assert!(stdout(&cli(&url, &["schedule"])).contains("enabled"));

    let out = cli(
        &url,
        &["schedule", "trigger", "daily-paper-collection", "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["id"].is_string());
    assert_eq!(job_count(&pool).await, 1);

    // The schedule's own zone, whatever --tz says (case B01 end to end).
    let out = cli(
        &url,
        &[
            "schedule",
            "next",
            "daily-paper-collection",
            "--after",
            "2024-03-08T00:00:00Z",
            "--count",
            "3",
            "--json",
        ],
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["fires"][2]["utc"], "2024-03-10T07:00:00Z");
    assert_eq!(json["timezone"], "America/New_York");

    for verb in ["enable", "disable", "trigger", "next"] {
        let out = cli(&url, &["schedule", verb, "no-such-schedule"]);
        assert_eq!(out.status.code(), Some(1), "{verb}");
        assert!(stderr(&out).contains("no-such-schedule"), "{verb}");
    }
}

#[test]
fn an_unreachable_database_is_named_without_its_password() {
    let out = cli("postgres://refnet:hunter2@127.0.0.1:1/refnet", &["history"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("127.0.0.1:1/refnet"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn cron_next_prints_fire_times_without_a_database() {
    // An unreachable URL: `cron next` must not touch it.
    let out = cli(
        "postgres://127.0.0.1:1/x",
        &[
            "cron",
            "next",
            "30 2 * * *",
            "--tz",
            "America/New_York",
            "--after",
            "2024-03-08T00:00:00Z",
            "--count",
            "5",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let utc: Vec<&str> = json["fires"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["utc"].as_str().unwrap())
        .collect();
    // Case B01: 02:30 does not exist on 2024-03-10, so the job runs at 03:00 EDT.
    assert_eq!(
        utc,
        [
            "2024-03-08T07:30:00Z",
            "2024-03-09T07:30:00Z",
            "2024-03-10T07:00:00Z",
            "2024-03-11T06:30:00Z",
            "2024-03-12T06:30:00Z"
        ]
    );
    assert_eq!(json["fires"][2]["local"], "2024-03-10T03:00:00-04:00");
    let table = cli(
        "postgres://127.0.0.1:1/x",
        &[
            "cron",
            "next",
            "0 9 * * *",
            "--tz",
            "Asia/Tokyo",
            "--after",
            "2026-03-06T12:00:00Z",
            "--count",
            "1",
        ],
    );
    assert!(
        stdout(&table).contains("2026-03-07 09:00:00 JST"),
        "{}",
        stdout(&table)
    );
    assert!(stdout(&table).contains("2026-03-07T00:00:00Z"));
}

#[test]
fn cron_next_refuses_impossible_and_malformed_patterns_as_bad_usage() {
    for bad in ["0 0 30 2 *", "0/10 * * * *", "61 * * * *", "* * * *"] {
        let out = cli("postgres://127.0.0.1:1/x", &["cron", "next", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(stderr(&out).contains(bad), "{bad}: {}", stderr(&out));
    }
    let out = cli(
        "postgres://127.0.0.1:1/x",
        &["cron", "next", "0 9 * * *", "--tz", "Asia/Tokio"],
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_unknown_display_zone_is_bad_usage() {
    let out = cli(
        "postgres://127.0.0.1:1/x",
        &["history", "--tz", "Mars/Olympus"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Mars/Olympus"));
}

#[sqlx::test(migrations = false)]
async fn bench_runs_every_workload_and_reports_json(pool: PgPool) {
    let url = url_of(&pool).await;
    let out = cli(
        &url,
        &[
            "bench",
            "--reps",
            "1",
            "--jobs",
            "300",
            "--latency-jobs",
            "20",
            "--interval-ms",
            "5",
            "--seconds",
            "1",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let drain = &report["drain"]["runs"][0];
    assert_eq!(drain["completed"], 300, "{report}");
    assert!(drain["jobs_per_sec"].as_f64().unwrap() > 0.0);
    let latency = &report["latency"]["runs"][0];
    assert_eq!(latency["received"], 20, "{report}");
    let p50 = latency["p50_ms"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= latency["max_ms"].as_f64().unwrap());
    assert!(report["insert"]["runs"][0]["count"].as_u64().unwrap() > 0);
    assert!(report["insert"]["jobs_per_sec"]["median"].as_f64().unwrap() > 0.0);
    // The benchmark cleans up after itself: no jobs, no tasks in the catalogue.
    let left: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM refnet_jobs.jobs), (SELECT count(*) FROM refnet_jobs.tasks)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left, (0, 0));
}

#[sqlx::test(migrations = false)]
async fn bench_bloat_drains_with_the_horizon_held_and_while_pruning(pool: PgPool) {
    let url = url_of(&pool).await;
    let out = cli(
        &url,
        &[
            "bench",
            "bloat",
            "--jobs",
            "300",
            "--prune-rows",
            "25000",
            "--reps",
            "1",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &report["bloat"]["runs"][0];
    for scenario in ["clean", "held_xmin"] {
        assert_eq!(run[scenario]["completed"], 300, "{scenario}: {run}");
    }
    let drains = run["pruning"].as_array().unwrap();
    assert!(!drains.is_empty(), "{run}");
    assert!(drains.iter().all(|d| d["completed"] == 300), "{run}");
    assert_eq!(run["pruned"]["deleted"], 25000, "{run}");
    assert!(run["pruning_ratio"].as_f64().unwrap() > 0.0, "{run}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM refnet_jobs.jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "the benchmark cleans up after itself");
}

#[sqlx::test(migrations = false)]
async fn bench_scale_times_claims_with_history_and_a_backlog(pool: PgPool) {
    let url = url_of(&pool).await;
    let out = cli(
        &url,
        &[
            "bench",
            "scale",
            "--history",
            "0,20000",
            "--backlog",
            "5000",
            "--claims",
            "20",
            "--claim-batch",
            "10",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let runs: Vec<serde_json::Value> = serde_json::from_value(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["scale"].clone(),
    )
    .unwrap();
    let shape: Vec<(i64, i64)> = runs
        .iter()
        .map(|r| {
            (
                r["history"].as_i64().unwrap(),
                r["waiting"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shape, vec![(0, 200), (20_000, 200), (0, 5_000)]);
    assert!(runs.iter().all(|r| r["p95_ms"].as_f64().unwrap() > 0.0));
}

#[sqlx::test(migrations = false)]
async fn bench_refuses_bad_options_before_touching_the_database(pool: PgPool) {
    let url = url_of(&pool).await;
    let out = cli(&url, &["bench", "drain", "--jobs", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--jobs"));
    let schema: Option<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname = 'refnet_jobs'")
            .fetch_optional(&pool)
            .await
            .unwrap();
    assert!(schema.is_none(), "nothing was written");
}

#[sqlx::test(migrations = false)]
async fn schedule_add_refuses_bad_patterns_writing_nothing_and_warns_about_the_or_rule(
    pool: PgPool,
) {
    let url = setup(&pool).await;
    let schedules = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM refnet_jobs.schedules")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    // Cases B12 and B13: refused fast, with a clear message, and no row.
    for bad in [
        "0/10 * * * *",
        "5/20 * * * *",
        "*/0 * * * *",
        "0 0 30 2 *",
        "0 0 31 4 *",
        "0 0 31 2,4,6 *",
    ] {
        let started = std::time::Instant::now();
        let out = cli(
            &url,
            &[
                "schedule",
                "add",
                "x",
                "--cron",
                bad,
                "--task",
                "collect-papers",
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains(bad), "{bad}: {}", stderr(&out));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{bad}"
        );
    }
    // Case B16 D: a misspelt zone.
    let out = cli(
        &url,
        &[
            "schedule",
            "add",
            "x",
            "--cron",
            "0 9 * * *",
            "--task",
            "collect-papers",
            "--tz",
            "Asia/Tokio",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(schedules().await, 0);

    // Case B10: both day fields restricted is allowed, with a warning.
    let out = cli(
        &url,
        &[
            "schedule",
            "add",
            "thursdays",
            "--cron",
            "0 5 2-8 * 4",
            "--task",
            "collect-papers",
            "--tz",
            "Asia/Tokyo",
            "--args",
            r#"{"max_papers": 5}"#,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("either"), "{}", stderr(&out));
    let listed = refnet_jobs::schedule::get(&pool, "thursdays")
        .await
        .unwrap();
    assert_eq!(listed.spec.task, Collect::NAME, "the alias is resolved");
    assert_eq!(listed.spec.timezone, "Asia/Tokyo");
    assert_eq!(listed.spec.args, serde_json::json!({"max_papers": 5}));
    assert_eq!(listed.source, "cli");
    let out = cli(&url, &["schedule", "remove", "thursdays"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(schedules().await, 0);
}
