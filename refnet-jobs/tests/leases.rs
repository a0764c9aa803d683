//! Leases, rescue, fencing, revoke, time limits and the worker registry,
//! against a real PostgreSQL (cases B22, B24, B25, B29 of shared/cases).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use refnet_jobs::{
    Error, JobContext, JobState, NewJob, Revoked, Task, TaskError, TimeLimits, Worker,
    WorkerConfig, enqueue, get_job, list_workers, migrate, revoke,
};
use sqlx::PgPool;
use uuid::Uuid;

/// Short leases so that rescue and heartbeats show within a test's patience.
fn lease_config() -> WorkerConfig {
    WorkerConfig {
        lease: Duration::from_secs(2),
        heartbeat_interval: Duration::from_millis(200),
        rescue_interval: Duration::from_millis(200),
        cancel_grace: Duration::from_millis(500),
        ..fast_config()
    }
}

/// Sleeps `secs`; returns early with an error when its cancel token fires,
/// unless `stubborn`. Records each start and whether the token fired.
#[derive(Clone, Default)]
struct Sleeper {
    audit: Audit,
    saw_cancel: Arc<AtomicBool>,
}

impl Task for Sleeper {
    const NAME: &'static str = "test.sleep";
    type Args = serde_json::Value;
    type Output = &'static str;
    async fn run(&self, ctx: JobContext, args: Self::Args) -> Result<&'static str, TaskError> {
        self.audit.record(ctx.id);
        let secs = args["secs"].as_f64().unwrap_or(60.0);
        let nap = tokio::time::sleep(Duration::from_secs_f64(secs));
        if args["stubborn"].as_bool().unwrap_or(false) {
            nap.await;
            return Ok("slept");
        }
        tokio::select! {
            _ = nap => Ok("slept"),
            _ = ctx.cancel.cancelled() => {
                self.saw_cancel.store(true, Ordering::SeqCst);
                Err(TaskError::retryable("stopped: asked to cancel"))
            }
        }
    }
}

fn sleep_job(secs: f64, stubborn: bool) -> NewJob {
    NewJob::new(
        "test.sleep",
        serde_json::json!({ "secs": secs, "stubborn": stubborn }),
    )
}

async fn job_state(pool: &PgPool, id: Uuid) -> JobState {
    get_job(pool, id).await.unwrap().unwrap().state
}

/// Makes job `id` look claimed by a worker that died: running under
/// `worker`, its lease already expired.
async fn held_by_dead_worker(pool: &PgPool, id: Uuid, worker: &str) {
    sqlx::query(
        "UPDATE refnet_jobs.jobs
         SET state = 'running', attempt = attempt + 1, worker_id = $2, started_at = now(),
             heartbeat_at = now() - interval '1 minute',
             lease_expires_at = now() - interval '1 second'
         WHERE id = $1",
    )
    .bind(id)
    .bind(worker)
    .execute(pool)
    .await
    .unwrap();
}

#[sqlx::test(migrations = false)]
async fn jobs_of_a_dead_worker_are_rescued_failed_on_their_last_attempt_or_cancelled_if_revoked(
    pool: PgPool,
) {
    migrate(&pool).await.unwrap();
    let again = enqueue(&pool, &sleep_job(0.0, false)).await.unwrap().id;
    let last = enqueue(&pool, &sleep_job(0.0, false).max_attempts(1))
        .await
        .unwrap()
        .id;
    let revoked = enqueue(&pool, &sleep_job(0.0, false)).await.unwrap().id;
    for id in [again, last, revoked] {
        held_by_dead_worker(&pool, id, "dead-worker").await;
    }
    sqlx::query("UPDATE refnet_jobs.jobs SET cancel_requested_at = now() WHERE id = $1")
        .bind(revoked)
        .execute(&pool)
        .await
        .unwrap();

    let sleeper = Sleeper::default();
    let worker = Worker::builder(pool.clone())
        .register(sleeper.clone())
        .queue("default", 2)
        .config(lease_config())
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(
        Duration::from_secs(30),
        "the rescued job to run",
        || async { job_state(&pool, again).await == JobState::Completed },
    )
    .await;
    token.cancel();
    handle.await.unwrap().unwrap();

    let again = get_job(&pool, again).await.unwrap().unwrap();
    assert_eq!(again.attempt, 2, "the lost attempt counts");
    assert!(
        again.errors[0].error.contains("worker lost"),
        "{:?}",
        again.errors
    );
    assert!(again.errors[0].error.contains("dead-worker"));
    let last = get_job(&pool, last).await.unwrap().unwrap();
    assert_eq!(last.state, JobState::Failed);
    assert_eq!(last.attempt, 1, "never run again");
    assert!(
        last.last_error().unwrap().contains("lease"),
        "{:?}",
        last.errors
    );
    assert!(last.finished_at.is_some());
    let revoked = get_job(&pool, revoked).await.unwrap().unwrap();
    assert_eq!(revoked.state, JobState::Cancelled);
    assert_eq!(sleeper.audit.runs(revoked.id), 0);
    let stuck: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refnet_jobs.jobs
         WHERE state = 'running' AND heartbeat_at < now() - interval '60 seconds'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(stuck, 0);
}

#[sqlx::test(migrations = false)]
async fn a_worker_that_lost_its_lease_stops_the_attempt_and_cannot_record_it(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let id = enqueue(&pool, &sleep_job(60.0, false)).await.unwrap().id;
    let sleeper = Sleeper::default();
    let worker = Worker::builder(pool.clone())
        .register(sleeper.clone())
        .queue("default", 1)
        .config(lease_config())
        .id("zombie")
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(Duration::from_secs(30), "the job to start", || async {
        sleeper.audit.runs(id) == 1
    })
    .await;
    // Another worker took the job over at a new attempt, as a rescue of an
    // expired lease and a new claim would.
    sqlx::query(
        "UPDATE refnet_jobs.jobs SET attempt = attempt + 1, worker_id = 'new-holder' WHERE id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    wait_for(
        Duration::from_secs(10),
        "the old attempt to be stopped",
        || async { sleeper.saw_cancel.load(Ordering::SeqCst) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    token.cancel();
    handle.await.unwrap().unwrap();
    let job = get_job(&pool, id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Running, "the new attempt is untouched");
    assert_eq!(job.attempt, 2);
    assert_eq!(job.worker_id.as_deref(), Some("new-holder"));
    assert!(job.errors.is_empty(), "{:?}", job.errors);
}

#[sqlx::test(migrations = false)]
async fn revoking_a_waiting_job_cancels_it_at_once_and_it_never_runs(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let later = enqueue(
        &pool,
        &sleep_job(0.0, false).run_at(chrono::Utc::now() + chrono::Duration::hours(1)),
    )
    .await
    .unwrap()
    .id;
    let now = enqueue(&pool, &sleep_job(0.0, false)).await.unwrap().id;
    assert_eq!(
        revoke(&pool, later).await.unwrap(),
        Revoked::Cancelled {
            was: JobState::Scheduled
        }
    );
    assert_eq!(
        revoke(&pool, now).await.unwrap(),
        Revoked::Cancelled {
            was: JobState::Available
        }
    );
    sqlx::query("UPDATE refnet_jobs.jobs SET run_at = now() WHERE id = $1")
        .bind(later)
        .execute(&pool)
        .await
        .unwrap();
    let sleeper = Sleeper::default();
    let worker = Worker::builder(pool.clone())
        .register(sleeper.clone())
        .queue("default", 2)
        .config(lease_config())
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    tokio::time::sleep(Duration::from_millis(800)).await;
    token.cancel();
    handle.await.unwrap().unwrap();
    for id in [later, now] {
        let job = get_job(&pool, id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Cancelled);
        assert!(job.started_at.is_none());
        assert_eq!(sleeper.audit.runs(id), 0);
    }
}

#[sqlx::test(migrations = false)]
async fn revoking_a_finished_or_unknown_job_is_a_clear_error(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let id = enqueue(&pool, &sleep_job(0.0, false)).await.unwrap().id;
    sqlx::query(
        "UPDATE refnet_jobs.jobs SET state = 'completed', finished_at = now() WHERE id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    let error = revoke(&pool, id).await.unwrap_err();
    assert!(matches!(
        error,
        Error::AlreadyFinished {
            state: JobState::Completed,
            ..
        }
    ));
    assert!(error.to_string().contains("already finished"), "{error}");
    assert_eq!(job_state(&pool, id).await, JobState::Completed);
    let job = get_job(&pool, id).await.unwrap().unwrap();
    assert!(
        job.cancel_requested_at.is_none(),
        "a refused revoke writes nothing"
    );
    let unknown = revoke(&pool, Uuid::now_v7()).await.unwrap_err();
    assert!(matches!(unknown, Error::NotFound(_)), "{unknown}");
}

/// Revoke of running jobs, with and without NOTIFY: a job that watches its
/// token stops at once; one that ignores it is dropped after the cancel
/// grace. Either way it ends `cancelled`, with no retry.
async fn revoke_running(pool: PgPool, listen: bool) {
    migrate(&pool).await.unwrap();
    let polite = enqueue(&pool, &sleep_job(60.0, false)).await.unwrap().id;
    let stubborn = enqueue(&pool, &sleep_job(60.0, true)).await.unwrap().id;
    let sleeper = Sleeper::default();
    let worker = Worker::builder(pool.clone())
        .register(sleeper.clone())
        .queue("default", 2)
        .config(WorkerConfig {
            listen,
            ..lease_config()
        })
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(Duration::from_secs(30), "both jobs to start", || async {
        sleeper.audit.runs(polite) == 1 && sleeper.audit.runs(stubborn) == 1
    })
    .await;
    for id in [polite, stubborn] {
        assert!(matches!(
            revoke(&pool, id).await.unwrap(),
            Revoked::Stopping { worker: Some(_) }
        ));
    }
    wait_for(Duration::from_secs(10), "both jobs cancelled", || async {
        job_state(&pool, polite).await == JobState::Cancelled
            && job_state(&pool, stubborn).await == JobState::Cancelled
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    token.cancel();
    handle.await.unwrap().unwrap();
    for id in [polite, stubborn] {
        let job = get_job(&pool, id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Cancelled);
        assert_eq!(job.attempt, 1, "no retry");
        assert_eq!(sleeper.audit.runs(id), 1);
        assert!(
            job.last_error().unwrap().contains("revoked"),
            "{:?}",
            job.errors
        );
        assert!(job.started_at.is_some() && job.finished_at.is_some());
    }
    assert!(
        get_job(&pool, stubborn)
            .await
            .unwrap()
            .unwrap()
            .last_error()
            .unwrap()
            .contains("cancel grace")
    );
}

#[sqlx::test(migrations = false)]
async fn revoking_a_running_job_stops_it_and_ends_it_cancelled(pool: PgPool) {
    revoke_running(pool, true).await;
}

#[sqlx::test(migrations = false)]
async fn revoking_a_running_job_works_without_notify_through_heartbeats(pool: PgPool) {
    revoke_running(pool, false).await;
}

#[sqlx::test(migrations = false)]
async fn a_revoked_job_claimed_but_not_started_ends_cancelled_without_running(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let first = enqueue(&pool, &sleep_job(1.5, true)).await.unwrap().id;
    let second = enqueue(&pool, &sleep_job(0.0, false)).await.unwrap().id;
    let sleeper = Sleeper::default();
    let worker = Worker::builder(pool.clone())
        .register(sleeper.clone())
        .queue("default", 1)
        .config(WorkerConfig {
            prefetch: 2,
            ..lease_config()
        })
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(
        Duration::from_secs(30),
        "the first job to start",
        || async { sleeper.audit.runs(first) == 1 },
    )
    .await;
    wait_for(
        Duration::from_secs(10),
        "the second to be claimed",
        || async { job_state(&pool, second).await == JobState::Running },
    )
    .await;
    assert!(matches!(
        revoke(&pool, second).await.unwrap(),
        Revoked::Stopping { .. }
    ));
    wait_for(Duration::from_secs(15), "the second cancelled", || async {
        job_state(&pool, second).await == JobState::Cancelled
    })
    .await;
    token.cancel();
    handle.await.unwrap().unwrap();
    let job = get_job(&pool, second).await.unwrap().unwrap();
    assert_eq!(sleeper.audit.runs(second), 0, "it never ran");
    assert!(job.started_at.is_none());
    assert_eq!(job_state(&pool, first).await, JobState::Completed);
}

#[sqlx::test(migrations = false)]
async fn a_hard_time_limit_stops_a_task_that_ignores_the_soft_one(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let limits = TimeLimits::new(
        Some(Duration::from_millis(300)),
        Some(Duration::from_secs(1)),
    )
    .unwrap();
    let once = enqueue(
        &pool,
        &sleep_job(60.0, true).time_limits(limits).max_attempts(1),
    )
    .await
    .unwrap()
    .id;
    let twice = enqueue(
        &pool,
        &sleep_job(60.0, true).time_limits(limits).max_attempts(2),
    )
    .await
    .unwrap()
    .id;
    let polite = enqueue(
        &pool,
        &sleep_job(60.0, false).time_limits(limits).max_attempts(1),
    )
    .await
    .unwrap()
    .id;
    let sleeper = Sleeper::default();
    let worker = Worker::builder(pool.clone())
        .register_with(
            sleeper.clone(),
            refnet_jobs::TaskOptions {
                retry: refnet_jobs::RetryPolicy {
                    base: Duration::from_millis(100),
                    max: Duration::from_millis(100),
                    jitter: 0.0,
                },
                ..refnet_jobs::TaskOptions::default()
            },
        )
        .queue("default", 3)
        .config(lease_config())
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(Duration::from_secs(30), "all three to fail", || async {
        for id in [once, twice, polite] {
            if job_state(&pool, id).await != JobState::Failed {
                return false;
            }
        }
        true
    })
    .await;
    token.cancel();
    handle.await.unwrap().unwrap();
    let once = get_job(&pool, once).await.unwrap().unwrap();
    let ran = once.duration().unwrap().num_milliseconds();
    assert!((900..2500).contains(&ran), "stopped after {ran} ms");
    assert!(
        once.last_error().unwrap().contains("hard time limit of 1s"),
        "{:?}",
        once.errors
    );
    let twice = get_job(&pool, twice).await.unwrap().unwrap();
    assert_eq!((twice.attempt, twice.errors.len()), (2, 2));
    assert_eq!(sleeper.audit.runs(twice.id), 2);
    let polite = get_job(&pool, polite).await.unwrap().unwrap();
    assert!(
        polite
            .last_error()
            .unwrap()
            .starts_with("soft time limit of 0.3s passed; stopped"),
        "{:?}",
        polite.errors
    );
    assert!(polite.duration().unwrap().num_milliseconds() < 900);
}

#[test]
fn a_soft_limit_not_below_the_hard_one_is_refused() {
    let five = Some(Duration::from_secs(5));
    assert!(TimeLimits::new(five, five).is_err());
    assert!(TimeLimits::new(Some(Duration::from_secs(6)), five).is_err());
    assert!(TimeLimits::from_secs(Some(-1.0), None).is_err());
    assert!(TimeLimits::new(Some(Duration::from_secs(2)), five).is_ok());
}

#[sqlx::test(migrations = false)]
async fn heartbeats_keep_flowing_when_tasks_hold_every_pool_connection(pool: PgPool) {
    migrate(&pool).await.unwrap();
    // Case B29: a pool of 5, 20 jobs at once, each holding a connection as
    // long as it can get one.
    struct Hog(PgPool);
    impl Task for Hog {
        const NAME: &'static str = "test.hog";
        type Args = serde_json::Value;
        type Output = ();
        async fn run(&self, _ctx: JobContext, _args: Self::Args) -> Result<(), TaskError> {
            sqlx::query("SELECT pg_sleep(1.5)").execute(&self.0).await?;
            Ok(())
        }
    }
    let small = own_pool(&pool, 5).await;
    let jobs: Vec<NewJob> = (0..20)
        .map(|i| NewJob::new("test.hog", serde_json::json!({ "i": i })))
        .collect();
    refnet_jobs::enqueue_many(&pool, &jobs).await.unwrap();
    let worker = Worker::builder(small.clone())
        .register(Hog(small.clone()))
        .queue("default", 20)
        .config(WorkerConfig {
            lease: Duration::from_secs(3),
            heartbeat_interval: Duration::from_millis(500),
            ..lease_config()
        })
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(Duration::from_secs(30), "20 jobs running", || async {
        count_state(&pool, "running").await == 20
    })
    .await;
    // Three tasks at a time get a connection; the lease (3 s) is shorter than
    // the queue of hogs (20 × 1.5 s / 3): only heartbeats keep the rest alive.
    wait_for(Duration::from_secs(60), "all 20 completed", || async {
        count_state(&pool, "completed").await == 20
    })
    .await;
    token.cancel();
    handle.await.unwrap().unwrap();
    let retried: i64 =
        sqlx::query_scalar("SELECT count(*) FROM refnet_jobs.jobs WHERE attempt > 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        retried, 0,
        "no lease expired while jobs waited for a connection"
    );
}

#[sqlx::test(migrations = false)]
async fn workers_record_themselves_while_they_run_and_remove_themselves_when_they_stop(
    pool: PgPool,
) {
    migrate(&pool).await.unwrap();
    let worker = Worker::builder(pool.clone())
        .register(Sleeper::default())
        .queue("default", 1)
        .queue("other", 2)
        .config(lease_config())
        .id("registry-test")
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(Duration::from_secs(10), "the worker's row", || async {
        list_workers(&pool).await.unwrap().len() == 1
    })
    .await;
    let listed = list_workers(&pool).await.unwrap().remove(0);
    assert_eq!(listed.id, "registry-test");
    assert!(listed.alive);
    assert_eq!(listed.pid, std::process::id() as i32);
    assert_eq!(
        listed.queues,
        vec!["default".to_string(), "other".to_string()]
    );
    let first_seen = listed.last_seen_at;
    wait_for(Duration::from_secs(10), "a later heartbeat", || async {
        list_workers(&pool).await.unwrap()[0].last_seen_at > first_seen
    })
    .await;
    // A worker that died without a word is listed as dead.
    sqlx::query(
        "INSERT INTO refnet_jobs.workers (id, host, pid, queues, expires_at)
         VALUES ('gone', 'elsewhere', 1, '{default}', now() - interval '1 minute')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let all = list_workers(&pool).await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all[0].alive && !all[1].alive, "live ones first");
    token.cancel();
    handle.await.unwrap().unwrap();
    let left: Vec<String> = list_workers(&pool)
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(left, vec!["gone".to_string()]);
}

/// Returns its arguments, or with `{"nul": true}` a text holding a NUL
/// character (which arguments cannot: the enqueue is refused).
struct Echo;

impl Task for Echo {
    const NAME: &'static str = "test.echo";
    type Args = serde_json::Value;
    type Output = serde_json::Value;
    async fn run(&self, _ctx: JobContext, args: Self::Args) -> Result<Self::Output, TaskError> {
        if args["nul"] == true {
            return Ok(serde_json::json!({ "out": "a\u{0}b" }));
        }
        Ok(args)
    }
}

#[sqlx::test(migrations = false)]
async fn an_outcome_the_database_refuses_fails_its_job_and_spares_the_others(pool: PgPool) {
    migrate(&pool).await.unwrap();
    // PostgreSQL cannot store a NUL in jsonb: that result is refused for good.
    let bad = enqueue(
        &pool,
        &NewJob::new("test.echo", serde_json::json!({"nul": true})),
    )
    .await
    .unwrap()
    .id;
    let mut good = Vec::new();
    for i in 0..5 {
        good.push(
            enqueue(
                &pool,
                &NewJob::new("test.echo", serde_json::json!({ "i": i })),
            )
            .await
            .unwrap()
            .id,
        );
    }
    let worker = Worker::builder(pool.clone())
        .register(Echo)
        .queue("default", 6)
        .config(lease_config())
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(
        Duration::from_secs(20),
        "every outcome recorded",
        || async {
            count_state(&pool, "completed").await == 5 && count_state(&pool, "failed").await == 1
        },
    )
    .await;
    token.cancel();
    handle.await.unwrap().unwrap();
    let bad = get_job(&pool, bad).await.unwrap().unwrap();
    assert!(
        bad.last_error().unwrap().contains("could not be recorded"),
        "{:?}",
        bad.errors
    );
    assert_eq!(bad.attempt, 1, "not run again");
    for id in good {
        assert_eq!(job_state(&pool, id).await, JobState::Completed);
    }
}

#[sqlx::test(migrations = false)]
async fn a_revoke_that_lands_as_the_job_fails_still_ends_it_cancelled(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let id = enqueue(&pool, &sleep_job(1.0, true)).await.unwrap().id;
    let sleeper = Sleeper::default();
    // No NOTIFY and slow heartbeats: the worker never hears of the revoke
    // before the attempt ends.
    let worker = Worker::builder(pool.clone())
        .register(AlwaysFailAfter(sleeper.audit.clone()))
        .queue("default", 1)
        .config(WorkerConfig {
            listen: false,
            lease: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(30),
            ..lease_config()
        })
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(Duration::from_secs(20), "the job to start", || async {
        sleeper.audit.runs(id) == 1
    })
    .await;
    assert!(matches!(
        revoke(&pool, id).await.unwrap(),
        Revoked::Stopping { .. }
    ));
    wait_for(Duration::from_secs(20), "the attempt to end", || async {
        job_state(&pool, id).await != JobState::Running
    })
    .await;
    token.cancel();
    handle.await.unwrap().unwrap();
    let job = get_job(&pool, id).await.unwrap().unwrap();
    assert_eq!(
        job.state,
        JobState::Cancelled,
        "not retried: {:?}",
        job.errors
    );
    assert_eq!(sleeper.audit.runs(id), 1);
}

/// Fails one second after it starts, whatever happens.
struct AlwaysFailAfter(Audit);

impl Task for AlwaysFailAfter {
    const NAME: &'static str = "test.sleep";
    type Args = serde_json::Value;
    type Output = ();
    async fn run(&self, ctx: JobContext, _args: Self::Args) -> Result<(), TaskError> {
        self.0.record(ctx.id);
        tokio::time::sleep(Duration::from_secs(1)).await;
        Err(TaskError::retryable("the crawler API answered 503"))
    }
}

#[sqlx::test(migrations = false)]
async fn a_job_that_stops_on_its_token_at_shutdown_is_put_back_not_failed(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let id = enqueue(&pool, &sleep_job(60.0, false).max_attempts(1))
        .await
        .unwrap()
        .id;
    let sleeper = Sleeper::default();
    let worker = Worker::builder(pool.clone())
        .register(sleeper.clone())
        .queue("default", 1)
        .config(lease_config())
        .build()
        .unwrap();
    let (token, handle) = spawn_worker(worker);
    wait_for(Duration::from_secs(20), "the job to start", || async {
        sleeper.audit.runs(id) == 1
    })
    .await;
    token.cancel();
    handle.await.unwrap().unwrap();
    assert!(sleeper.saw_cancel.load(Ordering::SeqCst));
    let job = get_job(&pool, id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Available, "{:?}", job.errors);
    assert!(job.last_error().unwrap().contains("interrupted"));
}
