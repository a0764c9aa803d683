//! Cron schedules as rows: exactly-once ticks under racing schedulers,
//! validation, misfire handling and config sync.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use chrono::{TimeZone, Utc};
use refnet_jobs::schedule::{self, fire_due};
use refnet_jobs::{
    CancellationToken, CronSchedule, Error, MisfirePolicy, ScheduleSpec, Scheduler, migrate,
};
use sqlx::PgPool;

#[sqlx::test(migrations = false)]
async fn three_racing_schedulers_enqueue_each_tick_exactly_once(pool: PgPool) {
    migrate(&pool).await.unwrap();
    // Every second, so a few seconds give many ticks to race on.
    let spec = ScheduleSpec::new("every-second", "* * * * * *", "test.record");
    schedule::upsert(&pool, &spec, "code").await.unwrap();

    let stop = CancellationToken::new();
    let mut handles = Vec::new();
    for _ in 0..3 {
        let scheduler = Scheduler::new(pool.clone()).poll_interval(Duration::from_millis(20));
        handles.push(tokio::spawn(scheduler.run(stop.clone())));
    }
    // Plus direct callers hammering the same rows.
    for _ in 0..3 {
        let pool = pool.clone();
        let stop = stop.clone();
        handles.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                let _ = fire_due(&pool).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.cancel();
    for handle in handles {
        handle.await.unwrap();
    }

    let ticks: Vec<(chrono::DateTime<Utc>, i64)> = sqlx::query_as(
        "SELECT scheduled_for, count(*) FROM refnet_jobs.jobs
         WHERE schedule_name = 'every-second' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(ticks.len() >= 4, "ticks fired: {ticks:?}");
    assert!(
        ticks.iter().all(|(_, n)| *n == 1),
        "a tick fired twice: {ticks:?}"
    );
    for pair in ticks.windows(2) {
        assert_eq!(
            (pair[1].0 - pair[0].0).num_seconds(),
            1,
            "a tick went missing: {ticks:?}"
        );
    }
    let (last_fire,): (Option<chrono::DateTime<Utc>>,) =
        sqlx::query_as("SELECT last_fire_at FROM refnet_jobs.schedules")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(last_fire, ticks.last().map(|t| t.0));
}

#[sqlx::test(migrations = false)]
async fn a_bad_cron_expression_or_zone_is_refused_and_writes_nothing(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let bad = [
        ScheduleSpec::new("typo", "0 25 * * *", "t"),
        ScheduleSpec::new("words", "every day", "t"),
        ScheduleSpec::new("never", "0 0 30 2 *", "t"),
        // Seven fields (croner's optional year) are not ours: 5, or 6 with seconds.
        ScheduleSpec::new("seven-fields", "0 */30 * * * * *", "t"),
        ScheduleSpec {
            timezone: "Asia/Tokio".into(),
            ..ScheduleSpec::new("zone", "0 2 * * *", "t")
        },
        ScheduleSpec {
            queue: "".into(),
            ..ScheduleSpec::new("no-queue", "0 2 * * *", "t")
        },
    ];
    for spec in &bad {
        let err = schedule::upsert(&pool, spec, "code").await.unwrap_err();
        let Error::InvalidSchedule { name, reason } = &err else {
            panic!("unexpected error {err:?}");
        };
        assert_eq!(name, &spec.name);
        assert!(!reason.is_empty());
    }
    // One bad entry in a config: nothing at all is written.
    let mut config = vec![ScheduleSpec::new("good", "0 2 * * *", "t")];
    config.push(bad[0].clone());
    let err = schedule::sync_config(&pool, &config).await.unwrap_err();
    assert!(err.to_string().contains("typo"), "{err}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM refnet_jobs.schedules")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[test]
fn fire_times_follow_the_schedule_zone() {
    let cron = CronSchedule::parse("0 2 * * *", "Asia/Tokyo").unwrap();
    let after = Utc.with_ymd_and_hms(2026, 3, 7, 0, 0, 0).unwrap();
    let next = cron.upcoming(after, 3).unwrap();
    assert_eq!(
        next,
        vec![
            Utc.with_ymd_and_hms(2026, 3, 7, 17, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 8, 17, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 9, 17, 0, 0).unwrap(),
        ]
    );
}

/// Pretends the scheduler was down since `minutes` ago by moving the stored
/// next tick back to the first tick after that.
async fn simulate_downtime(pool: &PgPool, name: &str, cron: &str, minutes: i64) {
    let cron = CronSchedule::parse(cron, "UTC").unwrap();
    let now: chrono::DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(pool)
        .await
        .unwrap();
    let first_missed = cron
        .next_after(now - chrono::Duration::minutes(minutes))
        .unwrap();
    sqlx::query("UPDATE refnet_jobs.schedules SET next_fire_at = $2 WHERE name = $1")
        .bind(name)
        .bind(first_missed)
        .execute(pool)
        .await
        .unwrap();
}

async fn ticks_of(pool: &PgPool, name: &str) -> Vec<chrono::DateTime<Utc>> {
    sqlx::query_scalar(
        "SELECT scheduled_for FROM refnet_jobs.jobs WHERE schedule_name = $1 ORDER BY 1",
    )
    .bind(name)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn after_downtime_each_misfire_policy_fires_what_it_promises(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let cron = "* * * * *";
    for (name, policy) in [
        ("once", MisfirePolicy::Once),
        ("skip", MisfirePolicy::Skip),
        ("all", MisfirePolicy::All),
    ] {
        let spec = ScheduleSpec {
            misfire: policy,
            misfire_cap: 3,
            ..ScheduleSpec::new(name, cron, "test.record")
        };
        schedule::upsert(&pool, &spec, "code").await.unwrap();
        simulate_downtime(&pool, name, cron, 10).await;
    }
    let fired = fire_due(&pool).await.unwrap();
    let now: chrono::DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let latest = CronSchedule::parse(cron, "UTC")
        .unwrap()
        .latest_at_or_before(now)
        .unwrap();

    assert_eq!(
        ticks_of(&pool, "once").await,
        vec![latest],
        "once: the latest missed tick only"
    );
    let all = ticks_of(&pool, "all").await;
    assert_eq!(all.len(), 3, "all: capped at 3: {all:?}");
    assert_eq!(all.last(), Some(&latest));
    // The latest tick is less than a minute old, so even `skip` counts it as on time.
    assert_eq!(ticks_of(&pool, "skip").await, vec![latest]);
    assert_eq!(fired.len(), 5);

    // Everything now waits for the next tick: nothing more fires.
    assert!(fire_due(&pool).await.unwrap().is_empty());
    let next: Vec<chrono::DateTime<Utc>> =
        sqlx::query_scalar("SELECT next_fire_at FROM refnet_jobs.schedules")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(next.iter().all(|t| *t > now));
}

#[sqlx::test(migrations = false)]
async fn skip_drops_ticks_missed_beyond_the_grace(pool: PgPool) {
    migrate(&pool).await.unwrap();
    // Hourly at minute 0: with an hour of downtime the latest tick may be up
    // to an hour old, so pin the stored tick two hours back and the policy skip.
    let cron = "0 * * * *";
    let spec = ScheduleSpec {
        misfire: MisfirePolicy::Skip,
        ..ScheduleSpec::new("hourly", cron, "t")
    };
    schedule::upsert(&pool, &spec, "code").await.unwrap();
    let now: chrono::DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let latest = CronSchedule::parse(cron, "UTC")
        .unwrap()
        .latest_at_or_before(now)
        .unwrap();
    if now - latest <= chrono::Duration::seconds(61) {
        return; // Too close to the hour to tell a late tick from an on-time one.
    }
    simulate_downtime(&pool, "hourly", cron, 150).await;
    assert!(fire_due(&pool).await.unwrap().is_empty());
    assert!(ticks_of(&pool, "hourly").await.is_empty());
}

#[sqlx::test(migrations = false)]
async fn config_sync_updates_changed_schedules_and_disables_removed_ones(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let a = ScheduleSpec::new("a", "0 2 * * *", "t");
    let b = ScheduleSpec::new("b", "0 3 * * *", "t");
    schedule::sync_config(&pool, &[a.clone(), b.clone()])
        .await
        .unwrap();
    let code = ScheduleSpec::new("from-code", "0 4 * * *", "t");
    schedule::upsert(&pool, &code, "code").await.unwrap();

    let a2 = ScheduleSpec {
        cron: "30 2 * * *".into(),
        ..a.clone()
    };
    let report = schedule::sync_config(&pool, &[a2]).await.unwrap();
    assert_eq!(report.disabled, vec!["b".to_string()]);
    let listed = schedule::list(&pool).await.unwrap();
    let by_name = |n: &str| listed.iter().find(|s| s.spec.name == n).unwrap().clone();
    assert_eq!(by_name("a").spec.cron, "30 2 * * *");
    assert!(!by_name("b").spec.enabled);
    assert!(by_name("b").next_fire_at.is_none());
    assert!(
        by_name("from-code").spec.enabled,
        "schedules from code are left alone"
    );
    let next_a = by_name("a").next_fire_at.unwrap();
    assert_eq!(next_a.format("%M").to_string(), "30");
}

#[sqlx::test(migrations = false)]
async fn an_impossible_schedule_written_with_sql_is_parked_and_the_others_still_fire(pool: PgPool) {
    migrate(&pool).await.unwrap();
    schedule::upsert(&pool, &ScheduleSpec::new("good", "* * * * *", "t"), "code")
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO refnet_jobs.schedules (name, cron, task, next_fire_at)
         VALUES ('feb-30', '0 0 30 2 *', 't', now() - interval '1 second'),
                ('garbage', 'not a cron', 't', now() - interval '1 second')",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE refnet_jobs.schedules SET next_fire_at = now() - interval '1 second' WHERE name = 'good'")
        .execute(&pool)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let fired = fire_due(&pool).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no endless search"
    );
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].schedule, "good");
    let parked: Vec<(String, Option<chrono::DateTime<Utc>>)> = sqlx::query_as(
        "SELECT name, next_fire_at FROM refnet_jobs.schedules WHERE name <> 'good' ORDER BY name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(parked.iter().all(|(_, next)| next.is_none()), "{parked:?}");
    // Parked ones never fire again (the good one may, if a minute turned meanwhile).
    assert!(
        fire_due(&pool)
            .await
            .unwrap()
            .iter()
            .all(|t| t.schedule == "good")
    );
}

#[sqlx::test(migrations = false)]
async fn a_paused_schedule_fires_nothing_keeps_its_pause_through_config_sync_and_resumes_without_stale_ticks(
    pool: PgPool,
) {
    migrate(&pool).await.unwrap();
    let cron = "* * * * *";
    let spec = ScheduleSpec::new("every-minute", cron, "test.record");
    schedule::sync_config(&pool, std::slice::from_ref(&spec))
        .await
        .unwrap();
    schedule::pause(&pool, "every-minute").await.unwrap();
    schedule::pause(&pool, "every-minute").await.unwrap();
    simulate_downtime(&pool, "every-minute", cron, 10).await;
    // A paused schedule never fires, even with a due tick stored.
    assert!(fire_due(&pool).await.unwrap().is_empty());
    // The runner restarting and syncing its config does not undo the pause.
    schedule::sync_config(&pool, std::slice::from_ref(&spec))
        .await
        .unwrap();
    let info = schedule::get(&pool, "every-minute").await.unwrap();
    assert!(info.paused_at.is_some() && !info.is_active());
    assert!(info.next_fire_at.is_none());
    assert!(fire_due(&pool).await.unwrap().is_empty());

    let now: chrono::DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let next = schedule::resume(&pool, "every-minute")
        .await
        .unwrap()
        .unwrap();
    assert!(
        next > now,
        "resuming fires no tick that fell during the pause"
    );
    assert!(fire_due(&pool).await.unwrap().is_empty());
    assert!(ticks_of(&pool, "every-minute").await.is_empty());
    assert!(
        schedule::get(&pool, "every-minute")
            .await
            .unwrap()
            .is_active()
    );

    assert!(matches!(
        schedule::pause(&pool, "nope").await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        schedule::resume(&pool, "nope").await,
        Err(Error::NotFound(_))
    ));
}

#[sqlx::test(migrations = false)]
async fn a_schedule_disabled_by_its_definition_says_why_and_is_not_resumed(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let gated = ScheduleSpec {
        enabled: false,
        disabled_reason: Some("only in production (this runner: development)".into()),
        ..ScheduleSpec::new("daily-backup", "0 1 * * *", "t")
    };
    schedule::sync_config(&pool, &[gated]).await.unwrap();
    let info = schedule::get(&pool, "daily-backup").await.unwrap();
    assert!(!info.is_active());
    assert_eq!(
        info.spec.disabled_reason.as_deref(),
        Some("only in production (this runner: development)")
    );
    let error = schedule::resume(&pool, "daily-backup").await.unwrap_err();
    assert!(error.to_string().contains("only in production"), "{error}");
    // Paused, then resumed: the pause goes, the gate stays.
    schedule::pause(&pool, "daily-backup").await.unwrap();
    assert_eq!(schedule::resume(&pool, "daily-backup").await.unwrap(), None);
    let info = schedule::get(&pool, "daily-backup").await.unwrap();
    assert!(info.paused_at.is_none() && !info.spec.enabled && info.next_fire_at.is_none());
    // Removed from the config: disabled, with that as the reason.
    schedule::sync_config(&pool, &[ScheduleSpec::new("other", "0 1 * * *", "t")])
        .await
        .unwrap();
    let removed = ScheduleSpec::new("removed", "0 1 * * *", "t");
    schedule::sync_config(&pool, &[removed]).await.unwrap();
    schedule::sync_config(&pool, &[]).await.unwrap();
    let info = schedule::get(&pool, "removed").await.unwrap();
    assert!(!info.spec.enabled);
    assert!(
        info.spec
            .disabled_reason
            .unwrap()
            .contains("no longer in the runner's config")
    );
}

#[sqlx::test(migrations = false)]
async fn triggering_a_schedule_enqueues_its_job_now_and_leaves_its_ticks_alone(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let spec = ScheduleSpec {
        args: serde_json::json!({ "max_papers": 7 }),
        queue: "maintenance".into(),
        max_attempts: 2,
        ..ScheduleSpec::new("weekly", "0 1 * * 0", "test.record")
    };
    schedule::upsert(&pool, &spec, "code").await.unwrap();
    let before = schedule::get(&pool, "weekly").await.unwrap();
    schedule::pause(&pool, "weekly").await.unwrap();
    let id = schedule::trigger(&pool, "weekly").await.unwrap();
    let job = refnet_jobs::get_job(&pool, id).await.unwrap().unwrap();
    assert_eq!(job.task, "test.record");
    assert_eq!(job.args, serde_json::json!({ "max_papers": 7 }));
    assert_eq!((job.queue.as_str(), job.max_attempts), ("maintenance", 2));
    assert_eq!(job.state, refnet_jobs::JobState::Available);
    assert_eq!(job.tags, vec!["triggered".to_string()]);
    assert_eq!(job.schedule_name.as_deref(), Some("weekly"));
    let after = schedule::get(&pool, "weekly").await.unwrap();
    assert_eq!(
        after.last_fire_at, before.last_fire_at,
        "no tick was consumed"
    );
    assert!(matches!(
        schedule::trigger(&pool, "nope").await,
        Err(Error::NotFound(_))
    ));
}

/// Case B20 A: `*/5`, the scheduler down for 31 minutes. `once` fires one
/// catch-up job for the latest missed tick, `skip` none, `all` each missed
/// tick in order; then every schedule waits for its next tick.
#[sqlx::test(migrations = false)]
async fn b20_downtime_of_31_minutes_per_misfire_policy(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let cron_text = "*/5 * * * *";
    for (name, policy) in [
        ("once", MisfirePolicy::Once),
        ("skip", MisfirePolicy::Skip),
        ("all", MisfirePolicy::All),
    ] {
        let spec = ScheduleSpec {
            misfire: policy,
            ..ScheduleSpec::new(name, cron_text, "test.record")
        };
        schedule::upsert(&pool, &spec, "code").await.unwrap();
        simulate_downtime(&pool, name, cron_text, 31).await;
    }
    let now: chrono::DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let cron = CronSchedule::parse(cron_text, "UTC").unwrap();
    let latest = cron.latest_at_or_before(now).unwrap();
    if now - latest <= chrono::Duration::seconds(61) {
        return; // The latest tick is on time, not missed: nothing to tell apart.
    }
    let mut missed = Vec::new();
    let mut tick = cron
        .next_after(now - chrono::Duration::minutes(31))
        .unwrap();
    while tick <= now {
        missed.push(tick);
        tick = cron.next_after(tick).unwrap();
    }
    assert!((6..=7).contains(&missed.len()), "{missed:?}");

    let fired = fire_due(&pool).await.unwrap();
    assert!(fired.iter().all(|t| t.catch_up));
    assert_eq!(ticks_of(&pool, "once").await, vec![latest]);
    assert!(ticks_of(&pool, "skip").await.is_empty());
    assert_eq!(ticks_of(&pool, "all").await, missed);
    let tags: Vec<Vec<String>> =
        sqlx::query_scalar("SELECT tags FROM refnet_jobs.jobs WHERE schedule_name = 'once'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(tags, vec![vec![schedule::CATCH_UP_TAG.to_string()]]);
    for info in schedule::list(&pool).await.unwrap() {
        assert_eq!(info.next_fire_at, Some(cron.next_after(now).unwrap()));
    }
    assert!(fire_due(&pool).await.unwrap().is_empty());
}

/// Case B20 B: a weekly schedule disabled and enabled again later does not
/// run at once; its next tick is the next real one.
#[sqlx::test(migrations = false)]
async fn b20_reenabling_a_weekly_schedule_fires_no_stale_tick(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let weekly = ScheduleSpec::new("weekly", "0 0 * * 0", "test.record");
    schedule::sync_config(&pool, std::slice::from_ref(&weekly))
        .await
        .unwrap();
    // Stored as if last fired weeks ago and due since (the scheduler was off).
    sqlx::query(
        "UPDATE refnet_jobs.schedules SET next_fire_at = now() - interval '12 days',
             last_fire_at = now() - interval '19 days'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let off = ScheduleSpec {
        enabled: false,
        ..weekly.clone()
    };
    schedule::sync_config(&pool, &[off]).await.unwrap();
    schedule::sync_config(&pool, &[weekly]).await.unwrap();
    assert!(
        fire_due(&pool).await.unwrap().is_empty(),
        "no immediate run"
    );
    let now: chrono::DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let next = schedule::get(&pool, "weekly")
        .await
        .unwrap()
        .next_fire_at
        .unwrap();
    assert_eq!(
        next,
        CronSchedule::parse("0 0 * * 0", "UTC")
            .unwrap()
            .next_after(now)
            .unwrap()
    );
    assert_eq!(next.format("%a %H:%M").to_string(), "Sun 00:00");
}

/// Case B16: the schedule's zone alone decides its ticks, whatever the
/// session's and the database's time zones.
#[sqlx::test(migrations = false)]
async fn b16_ticks_ignore_the_database_and_session_time_zones(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{db}\" SET timezone = 'Europe/Berlin'"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let berlin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("SET TIME ZONE 'America/New_York'")
                    .execute(conn)
                    .await
                    .map(|_| ())
            })
        })
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    let spec = ScheduleSpec {
        timezone: "Asia/Tokyo".into(),
        ..ScheduleSpec::new("tokyo-nine", "0 9 * * *", "test.record")
    };
    schedule::upsert(&berlin, &spec, "code").await.unwrap();
    let now: chrono::DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&berlin)
        .await
        .unwrap();
    let next = schedule::get(&berlin, "tokyo-nine")
        .await
        .unwrap()
        .next_fire_at
        .unwrap();
    assert_eq!(
        next.format("%H:%M").to_string(),
        "00:00",
        "09:00 JST is 00:00 UTC"
    );
    assert!(next > now && next - now <= chrono::Duration::days(1));
    // The latest real tick, stored as due: firing it under these session
    // zones enqueues exactly that instant, 09:00 in Tokyo.
    let latest = CronSchedule::parse("0 9 * * *", "Asia/Tokyo")
        .unwrap()
        .latest_at_or_before(now)
        .unwrap();
    sqlx::query("UPDATE refnet_jobs.schedules SET next_fire_at = $1")
        .bind(latest)
        .execute(&berlin)
        .await
        .unwrap();
    fire_due(&berlin).await.unwrap();
    let ticks = ticks_of(&berlin, "tokyo-nine").await;
    assert_eq!(ticks, vec![latest]);
    assert_eq!(
        ticks[0]
            .with_timezone(&chrono_tz::Asia::Tokyo)
            .format("%H:%M")
            .to_string(),
        "09:00"
    );
}

#[sqlx::test(migrations = false)]
async fn enabling_a_schedule_that_is_not_paused_is_refused_and_keeps_its_due_tick(pool: PgPool) {
    migrate(&pool).await.unwrap();
    let cron = "* * * * *";
    schedule::upsert(&pool, &ScheduleSpec::new("m", cron, "t"), "code")
        .await
        .unwrap();
    simulate_downtime(&pool, "m", cron, 5).await;
    let due = schedule::get(&pool, "m").await.unwrap().next_fire_at;
    let error = schedule::resume(&pool, "m").await.unwrap_err();
    assert!(error.to_string().contains("not paused"), "{error}");
    assert_eq!(schedule::get(&pool, "m").await.unwrap().next_fire_at, due);
}
