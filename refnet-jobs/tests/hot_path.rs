//! The batched hot path: claims ahead of free slots (prefetch), outcomes
//! written in batches, and fencing kept through both.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use refnet_jobs::{
    JobContext, JobState, NewJob, Task, TaskError, Worker, WorkerConfig, enqueue, enqueue_many,
    get_job, migrate,
};
use sqlx::PgPool;
use tokio::sync::Semaphore;

fn throughput_config() -> WorkerConfig {
    WorkerConfig {
        poll_interval: Duration::from_millis(100),
        shutdown_grace: Duration::from_secs(5),
        ..WorkerConfig::throughput()
    }
}

#[sqlx::test(migrations = false)]
async fn prefetching_workers_run_each_job_once_and_record_every_outcome(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let jobs: Vec<NewJob> = (0..5_000)
        .map(|i| NewJob::new("test.record", serde_json::json!({ "i": i })))
        .collect();
    enqueue_many(&pool, &jobs).await.unwrap();
    let audit = Audit::default();
    let mut workers = Vec::new();
    for n in 0..2 {
        let worker = Worker::builder(pool.clone())
            .register(Record(audit.clone()))
            .queue("default", 10)
            .config(throughput_config())
            .id(format!("fast-{n}"))
            .build()
            .unwrap();
        workers.push(spawn_worker(worker));
    }
    wait_for(Duration::from_secs(120), "5,000 completed jobs", || async {
        count_state(&pool, "completed").await == 5_000
    })
    .await;
    for (token, handle) in workers {
        token.cancel();
        handle.await.unwrap().unwrap();
    }
    let runs = audit.snapshot();
    assert_eq!(runs.len(), 5_000, "every job ran");
    assert!(runs.values().all(|&n| n == 1), "no job ran twice");
    let (odd, no_result): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE attempt <> 1 OR started_at > finished_at),
                count(*) FILTER (WHERE result IS NULL OR result->'echo' IS NULL)
         FROM refnet_jobs.jobs",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(odd, 0, "one attempt each, started before finished");
    assert_eq!(no_result, 0, "each job's own result is stored");
}

/// Blocks until the test lets it go, counting its starts.
struct Gate(Arc<Semaphore>, Audit);

impl Task for Gate {
    const NAME: &'static str = "test.gate";
    type Args = serde_json::Value;
    type Output = ();
    async fn run(&self, ctx: JobContext, _args: serde_json::Value) -> Result<(), TaskError> {
        self.1.record(ctx.id);
        let permit = self
            .0
            .acquire()
            .await
            .map_err(|e| TaskError::retryable(e.to_string()))?;
        permit.forget();
        Ok(())
    }
}

#[sqlx::test(migrations = false)]
async fn jobs_claimed_ahead_but_never_started_go_back_at_shutdown_without_using_an_attempt(
    pool: PgPool,
) {
    migrate(&pool).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..4 {
        let job = NewJob::new("test.gate", serde_json::json!({ "i": i }));
        ids.push(enqueue(&pool, &job).await.unwrap().id);
    }
    let audit = Audit::default();
    let gate = Arc::new(Semaphore::new(0));
    let mut config = throughput_config();
    config.prefetch = 5;
    config.shutdown_grace = Duration::from_millis(300);
    let worker = Worker::builder(pool.clone())
        .register(Gate(gate.clone(), audit.clone()))
        .queue("default", 1)
        .config(config)
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(
        Duration::from_secs(30),
        "one started, three held",
        || async { count_state(&pool, "running").await == 4 && audit.snapshot().len() == 1 },
    )
    .await;
    token.cancel();
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("worker stops within its grace period")
        .unwrap()
        .unwrap();
    let started = *audit.snapshot().keys().next().unwrap();
    for id in ids {
        let job = get_job(&pool, id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Available, "job {id} is back in line");
        assert!(job.worker_id.is_none() || id == started);
        if id == started {
            assert_eq!(job.attempt, 1, "the interrupted attempt counts");
            assert!(job.last_error().unwrap().contains("interrupted"));
        } else {
            assert_eq!(job.attempt, 0, "a job that never started used no attempt");
            assert!(job.errors.is_empty());
        }
    }
}

/// Succeeds, fails for a retry, or fails for good, as its arguments say.
struct Mixed;

impl Task for Mixed {
    const NAME: &'static str = "test.mixed";
    type Args = serde_json::Value;
    type Output = serde_json::Value;
    async fn run(
        &self,
        _ctx: JobContext,
        args: serde_json::Value,
    ) -> Result<serde_json::Value, TaskError> {
        match args["i"].as_i64().unwrap_or(0) % 3 {
            0 => Ok(serde_json::json!({ "ok": args["i"] })),
            1 => Err(TaskError::retryable(format!("flaky {}", args["i"]))),
            _ => Err(TaskError::permanent(format!("broken {}", args["i"]))),
        }
    }
}

#[sqlx::test(migrations = false)]
async fn outcomes_written_together_each_keep_their_own_state_result_and_error(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let jobs: Vec<NewJob> = (0..60)
        .map(|i| NewJob::new("test.mixed", serde_json::json!({ "i": i })).max_attempts(5))
        .collect();
    let ids = enqueue_many(&pool, &jobs).await.unwrap();
    let worker = Worker::builder(pool.clone())
        .register(Mixed)
        .queue("default", 10)
        .config(throughput_config())
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(
        Duration::from_secs(30),
        "every first attempt recorded",
        // One query: two counts taken apart can both read 0 while the
        // jobs move from available to running between them.
        || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM refnet_jobs.jobs WHERE state IN ('available', 'running')",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            waiting == 0
        },
    )
    .await;
    token.cancel();
    handle.await.unwrap().unwrap();
    for (i, id) in ids.into_iter().enumerate() {
        let job = get_job(&pool, id).await.unwrap().unwrap();
        match i % 3 {
            0 => {
                assert_eq!(job.state, JobState::Completed);
                assert_eq!(job.result, Some(serde_json::json!({ "ok": i })));
            }
            1 => {
                assert_eq!(job.state, JobState::Retryable);
                assert_eq!(job.last_error(), Some(format!("flaky {i}").as_str()));
                assert!(
                    job.run_at > job.started_at.unwrap(),
                    "retry waits for its backoff"
                );
                assert!(job.finished_at.is_none());
            }
            _ => {
                assert_eq!(job.state, JobState::Failed);
                assert_eq!(job.last_error(), Some(format!("broken {i}").as_str()));
                assert!(job.finished_at.is_some());
            }
        }
    }
}

#[sqlx::test(migrations = false)]
async fn a_worker_whose_job_was_taken_over_cannot_record_its_outcome(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let job = enqueue(&pool, &NewJob::new("test.gate", serde_json::json!({})))
        .await
        .unwrap();
    let audit = Audit::default();
    let gate = Arc::new(Semaphore::new(0));
    let worker = Worker::builder(pool.clone())
        .register(Gate(gate.clone(), audit.clone()))
        .queue("default", 1)
        .config(throughput_config())
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(Duration::from_secs(30), "the job to start", || async {
        audit.runs(job.id) == 1
    })
    .await;
    // Another worker takes the job over (as a rescue after a lost lease would).
    sqlx::query(
        "UPDATE refnet_jobs.jobs SET worker_id = 'someone-else', attempt = 2 WHERE id = $1",
    )
    .bind(job.id)
    .execute(&pool)
    .await
    .unwrap();
    gate.add_permits(1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    token.cancel();
    handle.await.unwrap().unwrap();
    let job = get_job(&pool, job.id).await.unwrap().unwrap();
    assert_eq!(
        job.state,
        JobState::Running,
        "the new holder's attempt is untouched"
    );
    assert_eq!(job.worker_id.as_deref(), Some("someone-else"));
    assert!(job.finished_at.is_none());
}

/// Right after a queue table is emptied and refilled its statistics describe
/// what it held before (here: only finished jobs), and a planner trusting them
/// may claim with a sequential scan and a sort of every row (seen in the
/// benchmark). The claim must walk the runnable index whatever the statistics.
#[sqlx::test(migrations = false)]
async fn a_claim_walks_the_runnable_index_even_with_stale_statistics(pool: PgPool) {
    migrate(&pool).await.unwrap();
    for statement in [
        "INSERT INTO refnet_jobs.jobs (id, task, state, attempt, finished_at)
         SELECT gen_random_uuid(), 'test.record', 'completed', 1, now()
         FROM generate_series(1, 20000)",
        "ANALYZE refnet_jobs.jobs",
        "TRUNCATE refnet_jobs.jobs",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let jobs: Vec<NewJob> = (0..20_000)
        .map(|i| NewJob::new("test.record", serde_json::json!({ "i": i })))
        .collect();
    enqueue_many(&pool, &jobs).await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    let scans = "SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables
                 WHERE relid = 'refnet_jobs.jobs'::regclass";
    let (seq_before, idx_before): (i64, i64) =
        sqlx::query_as(scans).fetch_one(&mut *tx).await.unwrap();
    let claimed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refnet_jobs.claim('default', 10, 'w', 30, '{test.record}', false)",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(claimed, 10);
    let (seq_after, idx_after): (i64, i64) =
        sqlx::query_as(scans).fetch_one(&mut *tx).await.unwrap();
    assert_eq!(seq_after, seq_before, "the claim scanned the whole table");
    assert!(idx_after > idx_before, "the claim used no index");
    // The planner here may pick the index anyway: what guarantees it does
    // whatever the statistics is the claim's own planner settings.
    let config: Vec<String> = sqlx::query_scalar(
        "SELECT unnest(proconfig) FROM pg_proc
         WHERE oid = 'refnet_jobs.claim'::regproc",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    for setting in ["enable_seqscan=off", "enable_sort=off"] {
        assert!(config.iter().any(|c| c == setting), "{config:?}");
    }
}

/// Holds every run until released, counting the runs.
struct Gated {
    gate: Arc<Semaphore>,
    runs: Arc<std::sync::atomic::AtomicU32>,
}

impl Task for Gated {
    const NAME: &'static str = "test.gated";
    type Args = serde_json::Value;
    type Output = ();
    async fn run(&self, _ctx: JobContext, _args: serde_json::Value) -> Result<(), TaskError> {
        self.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _permit = self.gate.acquire().await;
        Ok(())
    }
}

/// An asynchronously committed claim can be forgotten by a server crash while
/// its job runs on. When the worker running it claims it again, it must not
/// start it a second time: the run going on records its outcome.
#[sqlx::test(migrations = false)]
async fn a_worker_does_not_start_twice_a_job_whose_claim_was_lost(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let job = enqueue(&pool, &NewJob::new(Gated::NAME, serde_json::json!({})))
        .await
        .unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let worker = Worker::builder(pool.clone())
        .register(Gated {
            gate: gate.clone(),
            runs: runs.clone(),
        })
        .queue("default", 2)
        .config(throughput_config())
        .build()
        .unwrap();
    let (stop, handle) = spawn_worker(worker);
    let started = || runs.load(std::sync::atomic::Ordering::SeqCst);
    wait_for(Duration::from_secs(10), "the first run", || async {
        started() == 1
    })
    .await;
    // What a crash right after an asynchronous claim leaves behind.
    sqlx::query(
        "UPDATE refnet_jobs.jobs SET state = 'available', attempt = attempt - 1,
             worker_id = NULL, lease_expires_at = NULL, started_at = NULL
         WHERE id = $1",
    )
    .bind(job.id)
    .execute(&pool)
    .await
    .unwrap();
    wait_for(Duration::from_secs(10), "the job claimed again", || async {
        count_state(&pool, "running").await == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(started(), 1, "the job was started twice at once");
    gate.add_permits(10);
    wait_for(Duration::from_secs(10), "the job completed", || async {
        count_state(&pool, "completed").await == 1
    })
    .await;
    assert_eq!(started(), 1);
    let done = get_job(&pool, job.id).await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.attempt, 1);
    stop.cancel();
    handle.await.unwrap().unwrap();
}

/// Shutting down while a claim is in flight: the claim may already have
/// committed, so its jobs must go back to the queue, not stay running for a
/// worker that is gone.
#[sqlx::test(migrations = false)]
async fn shutdown_during_a_claim_leaves_no_job_running(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let jobs: Vec<NewJob> = (0..20_000)
        .map(|i| NewJob::new("test.record", serde_json::json!({ "i": i })))
        .collect();
    enqueue_many(&pool, &jobs).await.unwrap();
    for round in 0..5 {
        let audit = Audit::default();
        let worker = Worker::builder(pool.clone())
            .register(Record(audit.clone()))
            .queue("default", 4)
            .config(throughput_config())
            .build()
            .unwrap();
        let (stop, handle) = spawn_worker(worker);
        wait_for(Duration::from_secs(20), "some jobs done", || async {
            audit.snapshot().len() > 200 * (round + 1)
        })
        .await;
        stop.cancel();
        handle.await.unwrap().unwrap();
        assert_eq!(
            count_state(&pool, "running").await,
            0,
            "round {round}: jobs left running by a stopped worker"
        );
    }
}
