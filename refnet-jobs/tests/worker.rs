//! Workers against a real PostgreSQL: exactly-once claims, transactions,
//! retries with backoff, panics and bad arguments.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use refnet_jobs::{JobState, NewJob, Worker, enqueue, enqueue_many, get_job, migrate};
use sqlx::PgPool;

#[sqlx::test(migrations = false)]
async fn four_workers_drain_ten_thousand_jobs_each_exactly_once(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let jobs: Vec<NewJob> = (0..10_000)
        .map(|i| NewJob::new("test.record", serde_json::json!({ "i": i })))
        .collect();
    let ids = enqueue_many(&pool, &jobs).await.unwrap();
    assert_eq!(ids.len(), 10_000);

    let audit = Audit::default();
    let mut workers = Vec::new();
    for n in 0..4 {
        let worker = Worker::builder(own_pool(&pool, 6).await)
            .register(Record(audit.clone()))
            .queue("default", 8)
            .config(fast_config())
            .id(format!("drain-{n}"))
            .build()
            .unwrap();
        workers.push(spawn_worker(worker));
    }
    wait_for(
        Duration::from_secs(240),
        "10,000 completed jobs",
        || async { count_state(&pool, "completed").await == 10_000 },
    )
    .await;
    for (token, handle) in workers {
        token.cancel();
        handle.await.unwrap().unwrap();
    }

    let runs = audit.snapshot();
    assert_eq!(runs.len(), 10_000, "every job ran");
    assert!(runs.values().all(|&n| n == 1), "no job ran twice");
    let spread: Vec<(String, i64)> =
        sqlx::query_as("SELECT worker_id, count(*) FROM refnet_jobs.jobs GROUP BY 1 ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(spread.len(), 4, "all four workers took part: {spread:?}");
    let attempts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM refnet_jobs.jobs WHERE attempt <> 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(attempts, 0);
}

#[sqlx::test(migrations = false)]
async fn a_job_enqueued_in_a_rolled_back_transaction_never_runs(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    let ghost = enqueue(
        &mut *tx,
        &NewJob::new("test.record", serde_json::json!({"ghost": true})),
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    let real = enqueue(
        &mut *tx,
        &NewJob::new("test.record", serde_json::json!({"real": true})),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let audit = Audit::default();
    let worker = Worker::builder(pool.clone())
        .register(Record(audit.clone()))
        .queue("default", 2)
        .config(fast_config())
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(Duration::from_secs(30), "the committed job", || async {
        audit.runs(real.id) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    token.cancel();
    handle.await.unwrap().unwrap();

    assert_eq!(audit.runs(ghost.id), 0);
    assert!(get_job(&pool, ghost.id).await.unwrap().is_none());
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM refnet_jobs.jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(total, 1);
    let job = get_job(&pool, real.id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(
        job.result,
        Some(serde_json::json!({"echo": {"real": true}}))
    );
}

#[sqlx::test(migrations = false)]
async fn a_failing_task_retries_with_growing_delays_then_fails_keeping_every_error(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let job = enqueue(
        &pool,
        &NewJob::new("test.always_fail", serde_json::json!({})).max_attempts(4),
    )
    .await
    .unwrap();
    let audit = Audit::default();
    let worker = Worker::builder(pool.clone())
        .register(AlwaysFail(audit.clone()))
        .queue("default", 1)
        .config(fast_config())
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(
        Duration::from_secs(60),
        "the job to fail for good",
        || async { get_job(&pool, job.id).await.unwrap().unwrap().state == JobState::Failed },
    )
    .await;
    token.cancel();
    handle.await.unwrap().unwrap();

    let job = get_job(&pool, job.id).await.unwrap().unwrap();
    assert_eq!(job.attempt, 4);
    assert_eq!(audit.runs(job.id), 4);
    assert!(job.finished_at.is_some());
    let attempts: Vec<i32> = job.errors.iter().map(|e| e.attempt).collect();
    assert_eq!(attempts, vec![1, 2, 3, 4]);
    for (i, error) in job.errors.iter().enumerate() {
        assert_eq!(error.error, format!("boom on attempt {}", i + 1));
    }
    // Backoff 200 ms doubling, no jitter: gaps of at least 200, 400, 800 ms.
    let gaps: Vec<i64> = job
        .errors
        .windows(2)
        .map(|w| (w[1].at - w[0].at).num_milliseconds())
        .collect();
    assert!(
        gaps[0] >= 200 && gaps[1] >= 400 && gaps[2] >= 800,
        "gaps {gaps:?}"
    );
    assert!(
        gaps[0] < gaps[1] && gaps[1] < gaps[2],
        "delays must grow: {gaps:?}"
    );
}

#[sqlx::test(migrations = false)]
async fn a_panicking_task_fails_its_attempt_and_the_worker_goes_on(pool: PgPool) {
    struct Panics;
    impl refnet_jobs::Task for Panics {
        const NAME: &'static str = "test.panics";
        type Args = serde_json::Value;
        type Output = ();
        async fn run(
            &self,
            _ctx: refnet_jobs::JobContext,
            _args: serde_json::Value,
        ) -> Result<(), refnet_jobs::TaskError> {
            panic!("the crawler fell over")
        }
    }
    migrate(&pool).await.unwrap();
    let bad = enqueue(
        &pool,
        &NewJob::new("test.panics", serde_json::json!({})).max_attempts(1),
    )
    .await
    .unwrap();
    let good = enqueue(&pool, &NewJob::new("test.record", serde_json::json!({})))
        .await
        .unwrap();
    let audit = Audit::default();
    let worker = Worker::builder(pool.clone())
        .register(Panics)
        .register(Record(audit.clone()))
        .queue("default", 1)
        .config(fast_config())
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(Duration::from_secs(30), "both jobs to finish", || async {
        count_state(&pool, "failed").await == 1 && count_state(&pool, "completed").await == 1
    })
    .await;
    token.cancel();
    handle.await.unwrap().unwrap();
    let bad = get_job(&pool, bad.id).await.unwrap().unwrap();
    assert_eq!(
        bad.last_error(),
        Some("task panicked: the crawler fell over")
    );
    assert_eq!(audit.runs(good.id), 1);
}

#[sqlx::test(migrations = false)]
async fn arguments_that_do_not_fit_the_task_fail_permanently_with_a_clear_error(pool: PgPool) {
    struct Typed;
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Args {
        paper_id: String,
    }
    impl refnet_jobs::Task for Typed {
        const NAME: &'static str = "test.typed";
        type Args = Args;
        type Output = String;
        async fn run(
            &self,
            _ctx: refnet_jobs::JobContext,
            args: Args,
        ) -> Result<String, refnet_jobs::TaskError> {
            Ok(args.paper_id)
        }
    }
    migrate(&pool).await.unwrap();
    let bad = enqueue(
        &pool,
        &NewJob::new("test.typed", serde_json::json!({"paper": 1})),
    )
    .await
    .unwrap();
    let good = refnet_jobs::enqueue_typed::<Typed>(
        &pool,
        &Args {
            paper_id: "p1".into(),
        },
    )
    .await
    .unwrap();
    let worker = Worker::builder(pool.clone())
        .register(Typed)
        .queue("default", 2)
        .config(fast_config())
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(Duration::from_secs(30), "both jobs to finish", || async {
        let bad = get_job(&pool, bad.id).await.unwrap().unwrap();
        let good = get_job(&pool, good.id).await.unwrap().unwrap();
        bad.state.is_finished() && good.state.is_finished()
    })
    .await;
    token.cancel();
    handle.await.unwrap().unwrap();
    let bad = get_job(&pool, bad.id).await.unwrap().unwrap();
    assert_eq!(bad.state, JobState::Failed);
    assert_eq!(bad.attempt, 1, "no retry for arguments that can never fit");
    let message = bad.last_error().unwrap();
    assert!(
        message.contains("invalid arguments for task test.typed"),
        "{message}"
    );
    assert!(message.contains("paper_id"), "{message}");
    let good = get_job(&pool, good.id).await.unwrap().unwrap();
    assert_eq!(good.result, Some(serde_json::json!("p1")));
}

#[sqlx::test(migrations = false)]
async fn a_job_for_a_task_this_worker_does_not_run_waits_for_one_that_does(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let foreign = enqueue(
        &pool,
        &NewJob::new("other.service.task", serde_json::json!({})),
    )
    .await
    .unwrap();
    let mine = enqueue(&pool, &NewJob::new("test.record", serde_json::json!({})))
        .await
        .unwrap();
    let audit = Audit::default();
    let worker = Worker::builder(pool.clone())
        .register(Record(audit.clone()))
        .queue("default", 1)
        .config(fast_config())
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(Duration::from_secs(30), "its own job", || async {
        audit.runs(mine.id) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    token.cancel();
    handle.await.unwrap().unwrap();
    let foreign = get_job(&pool, foreign.id).await.unwrap().unwrap();
    assert_eq!(
        foreign.state,
        JobState::Available,
        "left for a worker that runs it"
    );
    assert_eq!(foreign.attempt, 0);
    assert!(foreign.errors.is_empty());
}

#[sqlx::test(migrations = false)]
async fn a_duplicate_enqueue_in_an_open_transaction_does_not_hold_up_the_live_job(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let job = NewJob::new("test.record", serde_json::json!({})).unique_key("paper:1");
    let live = enqueue(&pool, &job).await.unwrap();
    // A caller enqueues the same key inside its own transaction and keeps it open.
    let mut tx = pool.begin().await.unwrap();
    let duplicate = enqueue(&mut *tx, &job).await.unwrap();
    assert_eq!((duplicate.id, duplicate.inserted), (live.id, false));

    let audit = Audit::default();
    let worker = Worker::builder(pool.clone())
        .register(Record(audit.clone()))
        .queue("default", 1)
        .config(fast_config())
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(
        Duration::from_secs(20),
        "the live job to complete while the transaction is open",
        || async { get_job(&pool, live.id).await.unwrap().unwrap().state == JobState::Completed },
    )
    .await;
    tx.commit().await.unwrap();
    token.cancel();
    handle.await.unwrap().unwrap();
    assert_eq!(audit.runs(live.id), 1);
}

#[sqlx::test(migrations = false)]
async fn a_job_told_to_wrap_up_at_shutdown_can_finish_within_the_grace(pool: PgPool) {
    struct Polite;
    impl refnet_jobs::Task for Polite {
        const NAME: &'static str = "test.polite";
        type Args = serde_json::Value;
        type Output = &'static str;
        async fn run(
            &self,
            ctx: refnet_jobs::JobContext,
            _args: serde_json::Value,
        ) -> Result<&'static str, refnet_jobs::TaskError> {
            tokio::select! {
                _ = ctx.cancel.cancelled() => Ok("stopped early, work saved"),
                _ = tokio::time::sleep(Duration::from_secs(600)) => Ok("finished"),
            }
        }
    }
    migrate(&pool).await.unwrap();
    let job = enqueue(&pool, &NewJob::new("test.polite", serde_json::json!({})))
        .await
        .unwrap();
    let worker = Worker::builder(pool.clone())
        .register(Polite)
        .queue("default", 1)
        .config(fast_config())
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(Duration::from_secs(30), "the job to start", || async {
        count_state(&pool, "running").await == 1
    })
    .await;
    token.cancel();
    handle.await.unwrap().unwrap();
    let job = get_job(&pool, job.id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(
        job.result,
        Some(serde_json::json!("stopped early, work saved"))
    );
}

#[sqlx::test(migrations = false)]
async fn shutdown_puts_interrupted_jobs_back_in_line(pool: PgPool) {
    struct Sleepy;
    impl refnet_jobs::Task for Sleepy {
        const NAME: &'static str = "test.sleepy";
        type Args = serde_json::Value;
        type Output = ();
        async fn run(
            &self,
            _ctx: refnet_jobs::JobContext,
            _args: serde_json::Value,
        ) -> Result<(), refnet_jobs::TaskError> {
            tokio::time::sleep(Duration::from_secs(600)).await;
            Ok(())
        }
    }
    migrate(&pool).await.unwrap();
    // Its last attempt: an interruption must still not fail it.
    let job = enqueue(
        &pool,
        &NewJob::new("test.sleepy", serde_json::json!({})).max_attempts(1),
    )
    .await
    .unwrap();
    let mut config = fast_config();
    config.shutdown_grace = Duration::from_millis(300);
    let worker = Worker::builder(pool.clone())
        .register(Sleepy)
        .queue("default", 1)
        .config(config)
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(Duration::from_secs(30), "the job to start", || async {
        count_state(&pool, "running").await == 1
    })
    .await;
    token.cancel();
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("worker stops within its grace period")
        .unwrap()
        .unwrap();
    let job = get_job(&pool, job.id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Available);
    assert_eq!(job.attempt, 1);
    assert!(job.last_error().unwrap().contains("interrupted"));
}

#[sqlx::test(migrations = false)]
async fn a_committed_job_wakes_an_idle_worker_through_notify_not_the_poll(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let audit = Audit::default();
    let mut config = fast_config();
    config.poll_interval = Duration::from_secs(60);
    let worker = Worker::builder(pool.clone())
        .register(Record(audit.clone()))
        .queue("default", 1)
        .config(config)
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    // Let the worker drain its first (empty) claim and go to sleep.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let job = enqueue(&pool, &NewJob::new("test.record", serde_json::json!({})))
        .await
        .unwrap();
    wait_for(Duration::from_secs(20), "the job to run", || async {
        audit.runs(job.id) == 1
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "woken by NOTIFY, long before the 60 s poll"
    );
    token.cancel();
    handle.await.unwrap().unwrap();
}

#[sqlx::test(migrations = false)]
async fn one_notification_per_queue_for_a_bulk_insert(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .unwrap();
    listener.listen("refnet_jobs").await.unwrap();
    let mut jobs: Vec<NewJob> = (0..100)
        .map(|_| NewJob::new("t", serde_json::json!({})).queue("crawl"))
        .collect();
    jobs.extend((0..100).map(|_| NewJob::new("t", serde_json::json!({})).queue("summarize")));
    let mut tx = pool.begin().await.unwrap();
    enqueue_many(&mut *tx, &jobs).await.unwrap();
    enqueue(
        &mut *tx,
        &NewJob::new("t", serde_json::json!({})).queue("crawl"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut payloads = Vec::new();
    while let Ok(Ok(notification)) =
        tokio::time::timeout(Duration::from_millis(500), listener.recv()).await
    {
        payloads.push(notification.payload().to_string());
    }
    payloads.sort();
    assert_eq!(
        payloads,
        vec!["crawl", "summarize"],
        "ids or data never travel, one per queue"
    );
}

/// Every way of enqueueing wakes the queue of an available job, and only
/// that: a job due later (scheduled) wakes nobody, and a duplicate of a live
/// unique key inserts nothing and wakes nobody.
#[sqlx::test(migrations = false)]
async fn each_enqueue_path_notifies_available_jobs_only(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .unwrap();
    listener.listen("refnet_jobs").await.unwrap();
    let job = |queue: &str| NewJob::new("t", serde_json::json!({})).queue(queue);
    enqueue(&pool, &job("plain")).await.unwrap();
    enqueue(&pool, &job("keyed").unique_key("k")).await.unwrap();
    enqueue(&pool, &job("keyed-again").unique_key("k"))
        .await
        .unwrap();
    enqueue(&pool, &job("later").run_in(Duration::from_secs(3600)))
        .await
        .unwrap();
    enqueue_many(
        &pool,
        &[job("later-bulk").run_in(Duration::from_secs(3600))],
    )
    .await
    .unwrap();
    // Notifications arrive in commit order: once the sentinel's is here,
    // every earlier one has arrived too.
    enqueue(&pool, &job("sentinel")).await.unwrap();

    let mut payloads = Vec::new();
    loop {
        let notification = tokio::time::timeout(Duration::from_secs(30), listener.recv())
            .await
            .expect("the sentinel's notification arrives")
            .unwrap();
        if notification.payload() == "sentinel" {
            break;
        }
        payloads.push(notification.payload().to_string());
    }
    payloads.sort();
    assert_eq!(payloads, vec!["keyed", "plain"]);
}

#[sqlx::test(migrations = false)]
async fn a_queue_never_runs_more_jobs_at_once_than_its_concurrency(pool: PgPool) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Gauge(Arc<AtomicUsize>, Arc<AtomicUsize>);
    impl refnet_jobs::Task for Gauge {
        const NAME: &'static str = "test.gauge";
        type Args = serde_json::Value;
        type Output = ();
        async fn run(
            &self,
            _ctx: refnet_jobs::JobContext,
            _args: serde_json::Value,
        ) -> Result<(), refnet_jobs::TaskError> {
            let now = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            self.1.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(200)).await;
            self.0.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
    }
    migrate(&pool).await.unwrap();
    let jobs: Vec<NewJob> = (0..12)
        .map(|_| NewJob::new("test.gauge", serde_json::json!({})))
        .collect();
    enqueue_many(&pool, &jobs).await.unwrap();
    let (current, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let worker = Worker::builder(pool.clone())
        .register(Gauge(current, peak.clone()))
        .queue("default", 3)
        .config(fast_config())
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(Duration::from_secs(30), "all jobs", || async {
        count_state(&pool, "completed").await == 12
    })
    .await;
    token.cancel();
    handle.await.unwrap().unwrap();
    assert_eq!(
        peak.load(Ordering::SeqCst),
        3,
        "slots are used, never exceeded"
    );
}
