//! RefNet's tasks against the fixture database (schema + generated sample).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use refnet_jobs::{JobContext, Task};
use sqlx::PgPool;

use super::*;

async fn setup(pool: &PgPool) -> Arc<TaskEnv> {
    refnet_jobs::migrate(pool).await.expect("migrate");
    crate::database::load_fixture_if_missing(pool)
        .await
        .expect("fixture");
    let dir = temp_dir("env");
    let env = TaskEnv::for_tests(pool.clone(), &dir, "");
    std::fs::create_dir_all(&env.reports_dir).expect("reports dir");
    Arc::new(env)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "refnet-tasks-{name}-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn ctx() -> JobContext {
    JobContext {
        id: uuid::Uuid::now_v7(),
        task: "test".into(),
        attempt: 1,
        max_attempts: 3,
        cancel: refnet_jobs::CancellationToken::new(),
    }
}

fn args<T: serde::de::DeserializeOwned>(json: serde_json::Value) -> T {
    serde_json::from_value(json).expect("args")
}

async fn crawl_jobs(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT args->>'paper_id' FROM refnet_jobs.jobs
         WHERE task = 'refnet.crawler.crawl_paper' AND queue = 'crawl'",
    )
    .fetch_all(pool)
    .await
    .expect("crawl jobs")
}

#[sqlx::test(migrations = false)]
async fn collect_queues_one_crawl_job_per_pending_paper_and_never_twice(pool: PgPool) {
    let env = setup(&pool).await;
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM papers WHERE crawl_status = 'pending'")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert!(pending > 1000, "the fixture has many pending papers");

    let task = CollectNewPapers(env.clone());
    let first = task
        .run(ctx(), args(serde_json::json!({"max_papers": 100})))
        .await
        .expect("first run");
    let first = serde_json::to_value(first).expect("json");
    assert_eq!(first["queued"], 100);
    let second = task
        .run(ctx(), args(serde_json::json!({"max_papers": 100})))
        .await
        .expect("second run");
    let second = serde_json::to_value(second).expect("json");
    assert_eq!(second["queued"], 100, "the next batch, not the same papers");

    let queued = crawl_jobs(&pool).await;
    let distinct: HashSet<&String> = queued.iter().collect();
    assert_eq!(queued.len(), 200);
    assert_eq!(distinct.len(), 200, "no paper queued twice");

    // A run larger than what is left queues the rest once; then nothing more.
    task.run(ctx(), args(serde_json::json!({"max_papers": 100000})))
        .await
        .expect("rest");
    let last = task
        .run(ctx(), args(serde_json::json!({"max_papers": 100000})))
        .await
        .expect("again");
    let last = serde_json::to_value(last).expect("json");
    assert_eq!(last["queued"], 0);
    assert_eq!(last["already_queued"], pending);
    let queued = crawl_jobs(&pool).await;
    assert_eq!(queued.len() as i64, pending);
    let not_pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refnet_jobs.jobs j JOIN papers p ON p.paper_id = j.args->>'paper_id'
         WHERE j.task = 'refnet.crawler.crawl_paper' AND p.crawl_status <> 'pending'",
    )
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(not_pending, 0, "only pending papers are queued");
    let job_args: serde_json::Value = sqlx::query_scalar(
        "SELECT args FROM refnet_jobs.jobs WHERE task = 'refnet.crawler.crawl_paper' LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .expect("args");
    assert_eq!(job_args["hop_count"], 0);
    assert_eq!(job_args["max_hops"], 3);
}

#[sqlx::test(migrations = false)]
async fn markdown_collection_picks_only_missing_or_stale_notes(pool: PgPool) {
    let env = setup(&pool).await;
    let needing: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM papers WHERE summary_status = 'completed'
         AND (generated_at IS NULL OR markdown_path IS NULL OR generated_at < summary_created_at)",
    )
    .fetch_one(&pool)
    .await
    .expect("count");
    let task = GenerateMarkdownFiles(env);
    let result = task
        .run(ctx(), args(serde_json::json!({"batch_size": 100000})))
        .await
        .expect("run");
    let result = serde_json::to_value(result).expect("json");
    assert_eq!(result["queued"].as_i64(), Some(needing));
    let fresh_notes_queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refnet_jobs.jobs j JOIN papers p ON p.paper_id = j.args->>'paper_id'
         WHERE j.task = 'refnet.generator.generate_markdown'
           AND p.generated_at >= p.summary_created_at AND p.markdown_path IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(fresh_notes_queued, 0, "up-to-date notes are left alone");
}

#[sqlx::test(migrations = false)]
async fn summaries_are_queued_for_crawled_unsummarized_papers_only(pool: PgPool) {
    let env = setup(&pool).await;
    let task = ProcessPendingSummaries(env);
    let result = task
        .run(ctx(), args(serde_json::json!({"batch_size": 50})))
        .await
        .expect("run");
    assert_eq!(serde_json::to_value(result).expect("json")["queued"], 50);
    let wrong: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refnet_jobs.jobs j JOIN papers p ON p.paper_id = j.args->>'paper_id'
         WHERE j.queue = 'summarize'
           AND NOT (p.crawl_status = 'completed' AND p.summary_status = 'pending')",
    )
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(wrong, 0);
}

#[sqlx::test(migrations = false)]
async fn health_check_reports_real_counts(pool: PgPool) {
    let env = setup(&pool).await;
    refnet_jobs::enqueue(
        &pool,
        &refnet_jobs::NewJob::new("x", serde_json::json!({})).queue("crawl"),
    )
    .await
    .expect("enqueue");
    let report = SystemHealthCheck(env)
        .run(ctx(), args(serde_json::json!({})))
        .await
        .expect("run");
    let report = serde_json::to_value(report).expect("json");
    assert_eq!(report["database"]["reachable"], true);
    assert_eq!(report["queues"]["crawl"]["available"], 1);
    assert_eq!(report["papers_total"], 12000);
    let by_status: Vec<(String, i64)> =
        sqlx::query_as("SELECT summary_status, count(*) FROM papers GROUP BY 1")
            .fetch_all(&pool)
            .await
            .expect("counts");
    for (status, count) in by_status {
        assert_eq!(
            report["papers"]["summary_status"][&status], count,
            "{status}"
        );
    }
}

#[sqlx::test(migrations = false)]
async fn health_check_fails_the_job_when_refnet_tables_are_missing(pool: PgPool) {
    refnet_jobs::migrate(&pool).await.expect("migrate");
    let env = Arc::new(TaskEnv::for_tests(pool.clone(), &temp_dir("unused"), ""));
    let error = SystemHealthCheck(env)
        .run(ctx(), args(serde_json::json!({})))
        .await
        .expect_err("fails");
    assert!(error.message().contains("papers"), "{}", error.message());
}

#[sqlx::test(migrations = false)]
async fn stats_report_counts_papers_per_year_and_is_written_atomically(pool: PgPool) {
    let env = setup(&pool).await;
    let task = GenerateStatsReport(env.clone());
    let outcome = task
        .run(ctx(), args(serde_json::json!({})))
        .await
        .expect("run");
    let outcome = serde_json::to_value(outcome).expect("json");
    let path = PathBuf::from(outcome["path"].as_str().expect("path"));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("report file")).expect("valid JSON");

    let expected: Vec<(i32, i64)> =
        sqlx::query_as("SELECT year, count(*) FROM papers WHERE year IS NOT NULL GROUP BY 1")
            .fetch_all(&pool)
            .await
            .expect("per year");
    let per_year: BTreeMap<String, i64> =
        serde_json::from_value(report["papers_per_year"].clone()).expect("map");
    assert_eq!(per_year.len(), expected.len());
    for (year, count) in expected {
        assert_eq!(per_year[&year.to_string()], count, "year {year}");
        assert_ne!(
            count,
            i64::from(year),
            "a count must not be the year itself"
        );
    }
    assert_eq!(report["totals"]["papers"], 12000);
    // Every other number, against SQL of its own.
    for (name, table) in [
        ("papers", "papers"),
        ("authors", "authors"),
        ("paper_relations", "paper_relations"),
        ("venues", "venues"),
        ("journals", "journals"),
    ] {
        let count: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&pool)
                .await
                .expect("count");
        assert_eq!(report["totals"][name], count, "{name}");
    }
    for column in ["crawl_status", "pdf_status", "summary_status"] {
        let by_value: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {column}, count(*) FROM papers GROUP BY 1"
        )))
        .fetch_all(&pool)
        .await
        .expect("status counts");
        for (value, count) in &by_value {
            assert_eq!(
                report["processing_status"][column][value], *count,
                "{column} {value}"
            );
        }
        let rate: f64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT round(100.0 * count(*) FILTER (WHERE {column} = 'completed') / count(*), 2)::float8
             FROM papers"
        )))
        .fetch_one(&pool)
        .await
        .expect("rate");
        let key = column.trim_end_matches("_status");
        assert!(
            (report["completion_rates"][key].as_f64().expect("rate") - rate).abs() < 0.006,
            "{key}: {} vs {rate}",
            report["completion_rates"][key]
        );
    }
    let week: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM papers WHERE created_at >= (now() AT TIME ZONE 'UTC') - interval '7 days'",
    )
    .fetch_one(&pool)
    .await
    .expect("week");
    assert_eq!(report["papers_added_this_week"], week);
    let queue: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT task_type, status, count(*) FROM processing_queue GROUP BY 1, 2")
            .fetch_all(&pool)
            .await
            .expect("queue");
    for (task_type, status, count) in &queue {
        assert_eq!(report["processing_queue"][task_type][status], *count);
    }
    let files: Vec<String> = std::fs::read_dir(&env.reports_dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1, "no temporary file left: {files:?}");
    assert!(files[0].starts_with("stats_report_") && files[0].ends_with(".json"));

    // A second report gets its own file; nothing is overwritten.
    task.run(ctx(), args(serde_json::json!({})))
        .await
        .expect("second run");
    assert_eq!(std::fs::read_dir(&env.reports_dir).expect("dir").count(), 2);
    std::fs::remove_dir_all(&env.reports_dir).ok();
}

#[sqlx::test(migrations = false)]
async fn stats_report_fails_the_job_when_it_cannot_write(pool: PgPool) {
    let env = setup(&pool).await;
    let blocker = temp_dir("blocked").join("not-a-dir");
    std::fs::write(&blocker, b"a file where the directory should be").expect("file");
    let env = Arc::new(TaskEnv {
        reports_dir: blocker.clone(),
        ..TaskEnv::for_tests(env.pool.clone(), &temp_dir("unused"), "")
    });
    let error = GenerateStatsReport(env)
        .run(ctx(), args(serde_json::json!({})))
        .await
        .expect_err("fails");
    assert!(
        error.message().contains("cannot write"),
        "{}",
        error.message()
    );
    assert!(!error.is_permanent(), "a disk problem is worth retrying");
}

#[test]
fn unknown_arguments_are_refused() {
    let parsed: Result<fan_out::CollectArgs, _> =
        serde_json::from_value(serde_json::json!({"max_paper": 5}));
    assert!(parsed.is_err());
}

#[sqlx::test(migrations = false)]
async fn maintenance_deletes_only_old_finished_rows_then_vacuums_outside_a_transaction(
    pool: PgPool,
) {
    let env = setup(&pool).await;
    let paper: String = sqlx::query_scalar("SELECT paper_id FROM papers LIMIT 1")
        .fetch_one(&pool)
        .await
        .expect("a paper");
    sqlx::query("DELETE FROM processing_queue")
        .execute(&pool)
        .await
        .expect("empty");
    // (status, days ago): only the old finished ones go.
    for (status, days) in [
        ("completed", 40),
        ("failed", 40),
        ("pending", 40),
        ("running", 40),
        ("completed", 5),
    ] {
        sqlx::query(
            "INSERT INTO processing_queue (paper_id, task_type, status, created_at, updated_at, completed_at)
             VALUES ($1, 'crawl', $2,
                     (now() AT TIME ZONE 'UTC') - make_interval(days => $3),
                     (now() AT TIME ZONE 'UTC') - make_interval(days => $3),
                     CASE WHEN $2 IN ('completed', 'failed')
                          THEN (now() AT TIME ZONE 'UTC') - make_interval(days => $3) END)",
        )
        .bind(&paper)
        .bind(status)
        .bind(days)
        .execute(&pool)
        .await
        .expect("queue row");
    }
    let old = refnet_jobs::enqueue(&pool, &refnet_jobs::NewJob::new("t", serde_json::json!({})))
        .await
        .expect("job")
        .id;
    sqlx::query(
        "UPDATE refnet_jobs.jobs SET state = 'completed', finished_at = now() - interval '40 days'
         WHERE id = $1",
    )
    .bind(old)
    .execute(&pool)
    .await
    .expect("old job");
    let waiting =
        refnet_jobs::enqueue(&pool, &refnet_jobs::NewJob::new("t", serde_json::json!({})))
            .await
            .expect("job")
            .id;

    let outcome = DatabaseMaintenance(env)
        .run(ctx(), args(serde_json::json!({})))
        .await
        .expect("maintenance");
    let json = serde_json::to_value(&outcome).expect("json");
    assert_eq!(json["processing_queue_deleted"], 2);
    assert_eq!(json["job_history_deleted"], 1);
    let left: Vec<String> =
        sqlx::query_scalar("SELECT status FROM processing_queue ORDER BY status")
            .fetch_all(&pool)
            .await
            .expect("left");
    assert_eq!(left, ["completed", "pending", "running"]);
    assert!(
        refnet_jobs::get_job(&pool, old)
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        refnet_jobs::get_job(&pool, waiting)
            .await
            .expect("get")
            .is_some()
    );
    let vacuumed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_user_tables
         WHERE relname IN ('papers', 'processing_queue', 'jobs') AND last_vacuum IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .expect("stats");
    assert_eq!(vacuumed, 3, "VACUUM ran (it cannot inside a transaction)");
    assert!(
        <DatabaseMaintenance as Task>::validate(&args(
            serde_json::json!({"queue_days_to_keep": 0})
        ))
        .is_err()
    );
}
