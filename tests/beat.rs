//! Case B17, "a periodic task fires twice when several schedulers run": real
//! `refnet-jobs-runner` processes, each with its scheduler enabled, on one
//! database; one is killed with SIGKILL mid-run. Every tick must be enqueued
//! exactly once, none missing around the kill, and each job must run once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "runner_process.rs"]
mod runner_process;
#[path = "support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use runner_process::{Runner, ready};
use sqlx::PgPool;
use support::*;
use uuid::Uuid;

const SCHEDULE: &str = "every-3s";
const LONG_SCHEDULE: &str = "every-minute";

/// The config every runner of a test shares: one schedule of the sleep task.
fn write_config(dir: &Path, name: &str, cron: &str) -> PathBuf {
    let text = format!(
        "timezone = \"UTC\"\nenvironment = \"test\"\n\n\
         [workers]\n\
         queues = {{ default = 2 }}\n\
         diagnostic_tasks = true\n\
         lease_secs = 3.0\n\
         heartbeat_secs = 0.5\n\
         rescue_secs = 0.5\n\n\
         [[schedules]]\n\
         name = \"{name}\"\n\
         cron = \"{cron}\"\n\
         task = \"refnet.diag.sleep\"\n\
         args = {{ secs = 0.0 }}\n"
    );
    let path = dir.join("refnet-jobs.toml");
    std::fs::write(&path, text).unwrap();
    path
}

// ---------------------------------------------------------------------------
// Runner processes
// ---------------------------------------------------------------------------

/// SIGTERMs every live runner at once (so none fires a tick the others no
/// longer run), then asserts each exits 0 within 20 s.
async fn stop_all(runners: &mut [Runner]) {
    for r in runners.iter().filter(|r| r.running()) {
        terminate(r.pid);
    }
    for r in runners.iter_mut().filter(|r| r.running()) {
        let status = r.wait_exit(Duration::from_secs(20)).await;
        assert!(
            status.success(),
            "runner {} exited {status:?} after SIGTERM; log:\n{}",
            r.name,
            r.log()
        );
    }
}

// ---------------------------------------------------------------------------
// Ticks
// ---------------------------------------------------------------------------

/// The job of one tick.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Tick {
    id: Uuid,
    scheduled_for: DateTime<Utc>,
    state: String,
    attempt: i32,
    worker_id: Option<String>,
    tags: Vec<String>,
}

async fn ticks(pool: &PgPool, schedule: &str) -> Vec<Tick> {
    sqlx::query_as(
        "SELECT id, scheduled_for, state, attempt, worker_id, tags FROM refnet_jobs.jobs
         WHERE schedule_name = $1 ORDER BY scheduled_for, id",
    )
    .bind(schedule)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn db_now(pool: &PgPool) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT now()")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The names of the runners whose log says they enqueued job `id`.
fn fired_by(runners: &[Runner], id: Uuid) -> Vec<String> {
    let needle = format!("job={id}");
    runners
        .iter()
        .filter(|r| {
            r.log()
                .lines()
                .any(|l| l.contains("cron tick enqueued") && l.contains(&needle))
        })
        .map(|r| r.name.clone())
        .collect()
}

/// The runner whose worker id is `worker`, by name.
fn runner_of(runners: &[Runner], ids: &[String], worker: Option<&str>) -> String {
    match worker {
        None => "-".into(),
        Some(w) => ids
            .iter()
            .position(|id| id == w)
            .map(|i| runners[i].name.clone())
            .unwrap_or_else(|| format!("unknown worker {w}")),
    }
}

/// Waits for the `nth` tick (1-based) or a later one to be the newest and
/// completed while the next tick is still far enough (`delay` plus a margin)
/// away, sleeps `delay`, and `kill -9`s the runner that ran it. Returns the
/// victim's index and the tick.
async fn kill_the_runner_of_tick(
    pool: &PgPool,
    schedule: &str,
    runners: &mut [Runner],
    ids: &[String],
    nth: usize,
    period: chrono::Duration,
    delay: Duration,
) -> (usize, Tick) {
    let margin = chrono::Duration::from_std(delay).unwrap() + chrono::Duration::seconds(1);
    let start = Instant::now();
    let limit = Duration::from_secs(30) + period.to_std().unwrap() * (nth as u32 + 2);
    let (victim, tick) = loop {
        assert!(
            start.elapsed() < limit,
            "tick {nth} never completed in time; ticks: {:#?}\n{}",
            ticks(pool, schedule).await,
            runner_process::logs(&runners.iter().collect::<Vec<_>>())
        );
        let all = ticks(pool, schedule).await;
        let now = db_now(pool).await;
        if all.len() >= nth
            && let Some(newest) = all.last()
            && newest.state == "completed"
            && now - newest.scheduled_for + margin < period
        {
            let worker = newest.worker_id.clone().unwrap();
            let victim = ids
                .iter()
                .position(|id| *id == worker)
                .expect("one of our runners ran it");
            break (victim, newest.clone());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(delay).await;
    runners[victim].kill9();
    (victim, tick)
}

/// The assertions of B17 on the ticks of `schedule`, `period` apart, of a
/// schedule created at `created_at` whose runners were stopped at `stopped_at`
/// (both by the database clock). Prints who fired and ran each tick.
async fn check_ticks(
    pool: &PgPool,
    schedule: &str,
    period: chrono::Duration,
    created_at: DateTime<Utc>,
    stopped_at: DateTime<Utc>,
    runners: &[Runner],
    ids: &[String],
) -> Vec<Tick> {
    let all = ticks(pool, schedule).await;
    for t in &all {
        println!(
            "  tick {} job {} {:>9} attempt {} fired by {:?} ran on {}",
            t.scheduled_for.format("%H:%M:%S"),
            t.id,
            t.state,
            t.attempt,
            fired_by(runners, t.id),
            runner_of(runners, ids, t.worker_id.as_deref()),
        );
    }
    let dump = || {
        format!(
            "ticks: {all:#?}\n{}",
            runner_process::logs(&runners.iter().collect::<Vec<_>>())
        )
    };
    assert!(!all.is_empty(), "no tick fired\n{}", dump());

    // Exactly one job per tick, backed by a unique index.
    let doubled: Vec<(DateTime<Utc>, i64)> = sqlx::query_as(
        "SELECT scheduled_for, count(*) FROM refnet_jobs.jobs WHERE schedule_name = $1
         GROUP BY 1 HAVING count(*) <> 1",
    )
    .bind(schedule)
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(doubled.is_empty(), "ticks fired twice: {doubled:?}");
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes
         WHERE schemaname = 'refnet_jobs' AND tablename = 'jobs'
           AND indexdef LIKE 'CREATE UNIQUE INDEX%'
           AND indexdef LIKE '%schedule_name%' AND indexdef LIKE '%scheduled_for%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    println!("unique index: {indexes:?}");
    assert!(
        !indexes.is_empty(),
        "no unique index on (schedule_name, scheduled_for)"
    );

    // Consecutive, from the first tick after the schedule was stored to the
    // last one due before the runners stopped.
    for pair in all.windows(2) {
        assert_eq!(
            pair[1].scheduled_for - pair[0].scheduled_for,
            period,
            "a tick is missing (or out of step) between {} and {}\n{}",
            pair[0].scheduled_for,
            pair[1].scheduled_for,
            dump()
        );
    }
    let first = all[0].scheduled_for;
    let last = all[all.len() - 1].scheduled_for;
    // The first tick is the first after the upsert's now(), a moment before created_at.
    assert!(
        first > created_at - chrono::Duration::seconds(1) && first <= created_at + period,
        "first tick {first} is not the first after the schedule's creation at {created_at}\n{}",
        dump()
    );
    // A scheduler polls every second: every tick due 2 s before the stop fired.
    let slack = chrono::Duration::seconds(2);
    assert!(
        last > stopped_at - slack - period && last <= stopped_at + slack,
        "last tick {last} but the runners stopped at {stopped_at}: ticks went missing at the end\n{}",
        dump()
    );

    // Each job ran exactly once; the last may not have been claimed yet.
    for (i, t) in all.iter().enumerate() {
        let is_last = i == all.len() - 1;
        let ok = (t.state == "completed" && t.attempt == 1)
            || (is_last && t.state == "available" && t.attempt == 0);
        assert!(
            ok,
            "tick {} did not run exactly once: {t:?}\n{}",
            t.scheduled_for,
            dump()
        );
        assert!(t.tags.is_empty(), "not a plain tick: {t:?}");
        assert_eq!(
            fired_by(runners, t.id).len(),
            1,
            "tick {} is not logged as fired by exactly one runner\n{}",
            t.scheduled_for,
            dump()
        );
    }
    all
}

async fn created_at(pool: &PgPool, schedule: &str) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT created_at FROM refnet_jobs.schedules WHERE name = $1")
        .bind(schedule)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A line per runner: ticks it fired and ran.
fn tally(runners: &[Runner], ids: &[String], all: &[Tick]) {
    for (i, r) in runners.iter().enumerate() {
        let fired = all
            .iter()
            .filter(|t| fired_by(runners, t.id).contains(&r.name))
            .count();
        let ran = all
            .iter()
            .filter(|t| t.worker_id.as_deref() == Some(ids[i].as_str()))
            .count();
        println!(
            "  {} (pid {}, worker {}): fired {fired}, ran {ran}",
            r.name, r.pid, ids[i]
        );
    }
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

#[sqlx::test(migrations = false)]
async fn three_runners_fire_each_tick_exactly_once_even_when_one_is_killed(pool: PgPool) {
    const KILL_AT_TICK: usize = 5;
    const TICKS_AFTER_KILL: usize = 5;
    let period = chrono::Duration::seconds(3);
    refnet_jobs::migrate(&pool).await.unwrap();
    let url = url_of(&pool).await;
    let dir = temp_dir("beat-3s");
    let config = write_config(&dir, SCHEDULE, "*/3 * * * * *");
    let begin = Instant::now();
    let mut runners: Vec<Runner> = (1..=3)
        .map(|i| Runner::start(&dir, &format!("r{i}"), &config, &url))
        .collect();
    let mut ids = Vec::new();
    for r in runners.iter_mut() {
        ids.push(ready(&pool, r).await);
    }
    let created = created_at(&pool, SCHEDULE).await;

    let (victim, killed) = kill_the_runner_of_tick(
        &pool,
        SCHEDULE,
        &mut runners,
        &ids,
        KILL_AT_TICK,
        period,
        Duration::ZERO,
    )
    .await;
    let killed_after = begin.elapsed();
    println!(
        "{:.1} s: killed {} (pid {}) with SIGKILL right after it ran tick {} (job {})",
        killed_after.as_secs_f64(),
        runners[victim].name,
        runners[victim].pid,
        killed.scheduled_for.format("%H:%M:%S"),
        killed.id
    );

    // The two others go on: stop them just after a later tick completed.
    let start = Instant::now();
    loop {
        let all = ticks(&pool, SCHEDULE).await;
        let later = all
            .iter()
            .filter(|t| t.scheduled_for > killed.scheduled_for)
            .count();
        if later >= TICKS_AFTER_KILL && all.last().is_some_and(|t| t.state == "completed") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "only {later} ticks after the kill within 30 s; ticks: {all:#?}\n{}",
            runner_process::logs(&runners.iter().collect::<Vec<_>>())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, r) in runners.iter_mut().enumerate() {
        if i != victim {
            assert!(r.exited().is_none(), "{} died:\n{}", r.name, r.log());
        }
    }
    let stopped = db_now(&pool).await;
    stop_all(&mut runners).await;
    println!(
        "{:.1} s: the two others stopped with SIGTERM, exit 0",
        begin.elapsed().as_secs_f64()
    );

    let all = check_ticks(&pool, SCHEDULE, period, created, stopped, &runners, &ids).await;
    let after: Vec<&Tick> = all
        .iter()
        .filter(|t| t.scheduled_for > killed.scheduled_for)
        .collect();
    assert!(after.len() >= TICKS_AFTER_KILL, "{after:?}");
    assert!(
        after
            .iter()
            .all(|t| t.worker_id.as_deref() != Some(ids[victim].as_str())
                && !fired_by(&runners, t.id).contains(&runners[victim].name)),
        "the killed runner fired or ran a tick after its death: {after:#?}"
    );
    println!(
        "{} ticks from {} to {}, {} after the kill, each once; by runner:",
        all.len(),
        all[0].scheduled_for.format("%H:%M:%S"),
        all[all.len() - 1].scheduled_for.format("%H:%M:%S"),
        after.len()
    );
    tally(&runners, &ids, &all);
    std::fs::remove_dir_all(&dir).ok();
}

/// The literal case: `* * * * *`, three runners from hh:mm:30 for ten
/// minutes, the runner of the 4th tick killed 10 s after that tick.
#[sqlx::test(migrations = false)]
async fn b17_three_runners_ten_minutes_every_minute_long(pool: PgPool) {
    if std::env::var("REFNET_JOBS_LONG_TESTS").as_deref() != Ok("1") {
        println!("skipped: set REFNET_JOBS_LONG_TESTS=1");
        return;
    }
    let period = chrono::Duration::minutes(1);
    refnet_jobs::migrate(&pool).await.unwrap();
    let url = url_of(&pool).await;
    let dir = temp_dir("beat-minute");
    let config = write_config(&dir, LONG_SCHEDULE, "* * * * *");

    // Start at hh:mm:30 (as the case's 12:00:30), stop ten minutes later.
    let now = db_now(&pool).await;
    let into_minute = now.timestamp_millis().rem_euclid(60_000);
    let wait_ms = (30_000 - into_minute).rem_euclid(60_000);
    println!("waiting {:.1} s for hh:mm:30", wait_ms as f64 / 1000.0);
    tokio::time::sleep(Duration::from_millis(wait_ms as u64)).await;
    let begin = Instant::now();
    let mut runners: Vec<Runner> = (1..=3)
        .map(|i| Runner::start(&dir, &format!("r{i}"), &config, &url))
        .collect();
    let mut ids = Vec::new();
    for r in runners.iter_mut() {
        ids.push(ready(&pool, r).await);
    }
    let created = created_at(&pool, LONG_SCHEDULE).await;
    println!("schedule created at {created}");

    let (victim, killed) = kill_the_runner_of_tick(
        &pool,
        LONG_SCHEDULE,
        &mut runners,
        &ids,
        4,
        period,
        Duration::from_secs(10),
    )
    .await;
    println!(
        "killed {} (pid {}) with SIGKILL 10 s after tick {} (job {}, which it ran; fired by {:?})",
        runners[victim].name,
        runners[victim].pid,
        killed.scheduled_for.format("%H:%M:%S"),
        killed.id,
        fired_by(&runners, killed.id)
    );

    let total = Duration::from_secs(600);
    if let Some(rest) = total.checked_sub(begin.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    for (i, r) in runners.iter_mut().enumerate() {
        if i != victim {
            assert!(r.exited().is_none(), "{} died:\n{}", r.name, r.log());
        }
    }
    let stopped = db_now(&pool).await;
    stop_all(&mut runners).await;

    let all = check_ticks(
        &pool,
        LONG_SCHEDULE,
        period,
        created,
        stopped,
        &runners,
        &ids,
    )
    .await;
    // Whole minutes between the start (hh:mm:30 and a moment) and the stop (ten minutes later).
    let minutes = |t: DateTime<Utc>| t.timestamp().div_euclid(60);
    let expected = (minutes(stopped) - minutes(created)) as usize;
    println!(
        "{} ticks from {} to {} ({expected} whole minutes); by runner:",
        all.len(),
        all[0].scheduled_for,
        all[all.len() - 1].scheduled_for
    );
    tally(&runners, &ids, &all);
    assert_eq!(all.len(), expected);
    assert_eq!(all.len(), 10, "ten minutes from hh:mm:30 hold ten ticks");
    assert!(
        all.iter().all(|t| t.state == "completed" && t.attempt == 1),
        "{all:#?}"
    );
    assert!(
        all.iter()
            .filter(|t| t.scheduled_for > killed.scheduled_for)
            .all(|t| t.worker_id.as_deref() != Some(ids[victim].as_str())),
        "the killed runner ran a tick after its death"
    );
    std::fs::remove_dir_all(&dir).ok();
}
