//! The fire-time cases of shared/cases/CASES.md (B01–B16), with their
//! expected instants, and the rules of the module docs.

#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};

use super::CronSchedule;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// Asserts the next fire times of `expr` in `tz` after `after`.
fn next(expr: &str, tz: &str, after: &str, expected: &[&str]) {
    let cron = CronSchedule::parse(expr, tz).unwrap();
    let got = cron.upcoming(at(after), expected.len()).unwrap();
    let want: Vec<DateTime<Utc>> = expected.iter().map(|t| at(t)).collect();
    assert_eq!(got, want, "{expr} in {tz} after {after}");
}

/// Dates at one UTC time of day.
fn days(dates: &[&str], time: &str) -> Vec<String> {
    dates.iter().map(|d| format!("{d}T{time}Z")).collect()
}

fn next_days(expr: &str, tz: &str, after: &str, dates: &[&str], time: &str) {
    let expected = days(dates, time);
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    next(expr, tz, after, &expected);
}

#[test]
fn b01_fixed_time_in_the_spring_gap_runs_right_after_it() {
    next(
        "30 2 * * *",
        "America/New_York",
        "2024-03-08T00:00:00Z",
        &[
            "2024-03-08T07:30:00Z",
            "2024-03-09T07:30:00Z",
            "2024-03-10T07:00:00Z",
            "2024-03-11T06:30:00Z",
            "2024-03-12T06:30:00Z",
        ],
    );
    next(
        "0 2 * * *",
        "America/New_York",
        "2025-03-09T06:30:00Z",
        &[
            "2025-03-09T07:00:00Z",
            "2025-03-10T06:00:00Z",
            "2025-03-11T06:00:00Z",
            "2025-03-12T06:00:00Z",
        ],
    );
}

#[test]
fn b02_fixed_time_in_the_repeated_hour_runs_once() {
    next(
        "30 1 * * *",
        "America/New_York",
        "2024-11-01T12:00:00Z",
        &[
            "2024-11-02T05:30:00Z",
            "2024-11-03T05:30:00Z",
            "2024-11-04T06:30:00Z",
            "2024-11-05T06:30:00Z",
            "2024-11-06T06:30:00Z",
        ],
    );
    next(
        "0 8 * * 1",
        "Europe/Amsterdam",
        "2017-10-20T00:00:00Z",
        &[
            "2017-10-23T06:00:00Z",
            "2017-10-30T07:00:00Z",
            "2017-11-06T07:00:00Z",
        ],
    );
    // A list of hours is still a specific time (croner alone fires twice).
    next(
        "0 1,13 * * *",
        "America/New_York",
        "2024-11-02T12:00:00Z",
        &[
            "2024-11-02T17:00:00Z",
            "2024-11-03T05:00:00Z",
            "2024-11-03T18:00:00Z",
            "2024-11-04T06:00:00Z",
            "2024-11-04T18:00:00Z",
        ],
    );
}

#[test]
fn b03_interval_job_fires_on_both_passes_of_the_repeated_hour() {
    next(
        "*/30 * * * *",
        "Australia/Melbourne",
        "2024-04-06T14:45:00Z",
        &[
            "2024-04-06T15:00:00Z",
            "2024-04-06T15:30:00Z",
            "2024-04-06T16:00:00Z",
            "2024-04-06T16:30:00Z",
            "2024-04-06T17:00:00Z",
            "2024-04-06T17:30:00Z",
            "2024-04-06T18:00:00Z",
        ],
    );
}

#[test]
fn b05_hourly_through_spring_gap() {
    next(
        "0 * * * *",
        "America/New_York",
        "2022-03-13T03:00:30Z",
        &[
            "2022-03-13T04:00:00Z",
            "2022-03-13T05:00:00Z",
            "2022-03-13T06:00:00Z",
            "2022-03-13T07:00:00Z",
            "2022-03-13T08:00:00Z",
            "2022-03-13T09:00:00Z",
            "2022-03-13T10:00:00Z",
            "2022-03-13T11:00:00Z",
        ],
    );
    // The local date 2022-03-13 has 23 fires.
    let cron = CronSchedule::parse("0 * * * *", "America/New_York").unwrap();
    let fires = cron.upcoming(at("2022-03-13T04:59:59Z"), 30).unwrap();
    let on_the_day = fires
        .iter()
        .filter(|t| {
            t.with_timezone(&chrono_tz::America::New_York)
                .date_naive()
                .to_string()
                == "2022-03-13"
        })
        .count();
    assert_eq!(on_the_day, 23);
}

#[test]
fn b06_daily_job_keeps_its_local_time_on_the_spring_forward_day() {
    next(
        "4 16 * * *",
        "America/New_York",
        "2025-03-07T00:00:00Z",
        &[
            "2025-03-07T21:04:00Z",
            "2025-03-08T21:04:00Z",
            "2025-03-09T20:04:00Z",
            "2025-03-10T20:04:00Z",
            "2025-03-11T20:04:00Z",
        ],
    );
}

#[test]
fn b07_daily_job_keeps_its_local_time_after_fall_back() {
    next(
        "0 20 * * *",
        "Europe/Paris",
        "2022-10-29T22:00:00Z",
        &[
            "2022-10-30T19:00:00Z",
            "2022-10-31T19:00:00Z",
            "2022-11-01T19:00:00Z",
            "2022-11-02T19:00:00Z",
        ],
    );
}

#[test]
fn b10_day_of_month_and_day_of_week_both_restricted_are_ored() {
    next_days(
        "0 5 2-8 * 4",
        "UTC",
        "2021-01-09T17:48:39Z",
        &[
            "2021-01-14",
            "2021-01-21",
            "2021-01-28",
            "2021-02-02",
            "2021-02-03",
            "2021-02-04",
            "2021-02-05",
            "2021-02-06",
        ],
        "05:00:00",
    );
    next_days(
        "0 5 2-8 * +4",
        "UTC",
        "2021-01-09T17:48:39Z",
        &[
            "2021-02-04",
            "2021-03-04",
            "2021-04-08",
            "2021-05-06",
            "2021-06-03",
        ],
        "05:00:00",
    );
    next_days(
        "0 5 * * 4#2",
        "UTC",
        "2021-01-09T17:48:39Z",
        &[
            "2021-01-14",
            "2021-02-11",
            "2021-03-11",
            "2021-04-08",
            "2021-05-13",
        ],
        "05:00:00",
    );
}

#[test]
fn b11_a_stepped_day_of_month_is_unrestricted_so_the_fields_are_anded() {
    next_days(
        "0 0 */3 * 1-5",
        "UTC",
        "2024-04-03T12:00:00Z",
        &[
            "2024-04-04",
            "2024-04-10",
            "2024-04-16",
            "2024-04-19",
            "2024-04-22",
            "2024-04-25",
            "2024-05-01",
            "2024-05-07",
            "2024-05-10",
            "2024-05-13",
        ],
        "00:00:00",
    );
}

#[test]
fn b12_steps_that_do_not_divide_the_range_restart_each_hour() {
    let times = |date: &str, hm: &[&str]| -> Vec<String> {
        hm.iter().map(|t| format!("{date}T{t}:00Z")).collect()
    };
    let check = |expr: &str, after: &str, expected: Vec<String>| {
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        next(expr, "UTC", after, &expected);
    };
    check(
        "*/14 * * * *",
        "2021-04-09T09:00:00Z",
        times(
            "2021-04-09",
            &[
                "09:14", "09:28", "09:42", "09:56", "10:00", "10:14", "10:28", "10:42",
            ],
        ),
    );
    check(
        "*/7 * * * *",
        "2021-04-09T09:40:00Z",
        times(
            "2021-04-09",
            &["09:42", "09:49", "09:56", "10:00", "10:07", "10:14"],
        ),
    );
    check(
        "*/59 * * * *",
        "2023-03-11T13:30:00Z",
        times("2023-03-11", &["13:59", "14:00", "14:59", "15:00", "15:59"]),
    );
    check(
        "14-59/14 * * * *",
        "2021-04-09T09:50:00Z",
        times("2021-04-09", &["09:56", "10:14", "10:28", "10:42", "10:56"]),
    );
    for bad in ["0/10 * * * *", "5/20 * * * *", "*/0 * * * *"] {
        assert!(CronSchedule::parse(bad, "UTC").is_err(), "{bad} is refused");
    }
}

#[test]
fn b13_impossible_dates_are_refused_fast_and_rare_ones_found() {
    for impossible in ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6 *"] {
        let started = std::time::Instant::now();
        let error = CronSchedule::parse(impossible, "UTC").unwrap_err();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{impossible}"
        );
        assert!(error.to_string().contains(impossible), "{error}");
    }
    next(
        "0 0 31 4,5 *",
        "UTC",
        "2029-03-26T09:22:30Z",
        &["2029-05-31T00:00:00Z", "2030-05-31T00:00:00Z"],
    );
    next_days(
        "0 0 29 2 *",
        "UTC",
        "2025-01-01T00:00:00Z",
        &[
            "2028-02-29",
            "2032-02-29",
            "2036-02-29",
            "2040-02-29",
            "2044-02-29",
        ],
        "00:00:00",
    );
    next_days(
        "0 0 31 * *",
        "UTC",
        "2026-01-01T00:00:00Z",
        &[
            "2026-01-31",
            "2026-03-31",
            "2026-05-31",
            "2026-07-31",
            "2026-08-31",
        ],
        "00:00:00",
    );
}

#[test]
fn b15_nth_weekday_uses_posix_numbering() {
    let after = "1982-07-10T00:00:00Z";
    next_days(
        "0 12 * * 5#3",
        "UTC",
        after,
        &[
            "1982-07-16",
            "1982-08-20",
            "1982-09-17",
            "1982-10-15",
            "1982-11-19",
        ],
        "12:00:00",
    );
    next_days(
        "0 12 * * THU#3",
        "UTC",
        after,
        &["1982-07-15", "1982-08-19", "1982-09-16"],
        "12:00:00",
    );
    let last_fridays = [
        "2027-01-29",
        "2027-02-26",
        "2027-03-26",
        "2027-04-30",
        "2027-05-28",
        "2027-06-25",
    ];
    next_days(
        "0 12 * * 5#L",
        "UTC",
        "2027-01-01T00:00:00Z",
        &last_fridays,
        "12:00:00",
    );
    next_days(
        "0 12 * * 5L",
        "UTC",
        "2027-01-01T00:00:00Z",
        &last_fridays,
        "12:00:00",
    );
    next_days(
        "0 12 * * 5#5",
        "UTC",
        "2027-01-01T00:00:00Z",
        &["2027-01-29", "2027-04-30", "2027-07-30", "2027-10-29"],
        "12:00:00",
    );
    next(
        "0 0 * * 7",
        "UTC",
        "2026-01-01T00:00:00Z",
        &["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"],
    );
}

#[test]
fn b16_the_schedule_zone_alone_decides_asia_tokyo() {
    next(
        "0 9 * * *",
        "Asia/Tokyo",
        "2026-03-06T12:00:00Z",
        &[
            "2026-03-07T00:00:00Z",
            "2026-03-08T00:00:00Z",
            "2026-03-09T00:00:00Z",
            "2026-03-10T00:00:00Z",
            "2026-03-11T00:00:00Z",
        ],
    );
    next(
        "30 8 * * 1",
        "Asia/Tokyo",
        "2026-03-01T00:00:00Z",
        &[
            "2026-03-01T23:30:00Z",
            "2026-03-08T23:30:00Z",
            "2026-03-15T23:30:00Z",
            "2026-03-22T23:30:00Z",
        ],
    );
    next(
        "0 0 1 * *",
        "Asia/Tokyo",
        "2026-01-15T00:00:00Z",
        &[
            "2026-01-31T15:00:00Z",
            "2026-02-28T15:00:00Z",
            "2026-03-31T15:00:00Z",
            "2026-04-30T15:00:00Z",
        ],
    );
    assert!(matches!(
        CronSchedule::parse("0 9 * * *", "Asia/Tokio"),
        Err(crate::Error::UnknownTimeZone(_))
    ));
}

#[test]
fn the_latest_tick_follows_the_same_dst_rules() {
    let cron = CronSchedule::parse("30 1 * * *", "America/New_York").unwrap();
    // Second pass of 01:30 on the fall-back day: the latest tick is the first pass.
    assert_eq!(
        cron.latest_at_or_before(at("2024-11-03T06:45:00Z"))
            .unwrap(),
        at("2024-11-03T05:30:00Z")
    );
    let gap = CronSchedule::parse("30 2 * * *", "America/New_York").unwrap();
    assert_eq!(
        gap.latest_at_or_before(at("2024-03-10T08:00:00Z")).unwrap(),
        at("2024-03-10T07:00:00Z")
    );
    assert_eq!(
        gap.latest_at_or_before(at("2024-03-10T06:59:59Z")).unwrap(),
        at("2024-03-09T07:30:00Z")
    );
}

#[test]
fn two_wall_times_in_one_gap_fire_once() {
    next(
        "0,30 2 * * *",
        "America/New_York",
        "2024-03-09T12:00:00Z",
        &[
            "2024-03-10T07:00:00Z",
            "2024-03-11T06:00:00Z",
            "2024-03-11T06:30:00Z",
        ],
    );
}

#[test]
fn a_wall_time_in_a_gap_runs_on_the_transition_second_exactly() {
    // 02:10 is skipped on 2024-03-10 in New York: the job runs at 03:00 EDT
    // sharp, and 02:00 / 02:10 together fire once.
    next(
        "10 2 * * *",
        "America/New_York",
        "2024-03-09T12:00:00Z",
        &["2024-03-10T07:00:00Z", "2024-03-11T06:10:00Z"],
    );
    next(
        "0,10 2 * * *",
        "America/New_York",
        "2024-03-09T12:00:00Z",
        &[
            "2024-03-10T07:00:00Z",
            "2024-03-11T06:00:00Z",
            "2024-03-11T06:10:00Z",
        ],
    );
}

#[test]
fn dense_specific_time_patterns_are_answered_at_any_hour() {
    // Every minute of the working day: no `*`, so a specific-time job, with
    // many matches in a few hours.
    let cron = CronSchedule::parse("0-59 9-17 * * *", "UTC").unwrap();
    assert_eq!(
        cron.next_after(at("2026-12-04T12:00:00Z")).unwrap(),
        at("2026-12-04T12:01:00Z")
    );
    assert_eq!(
        cron.latest_at_or_before(at("2026-12-04T12:00:30Z"))
            .unwrap(),
        at("2026-12-04T12:00:00Z")
    );
    assert_eq!(
        cron.next_after(at("2026-12-04T17:59:00Z")).unwrap(),
        at("2026-12-05T09:00:00Z")
    );
    let seconds = CronSchedule::parse("* 0-59 0-23 * * *", "America/New_York").unwrap();
    // Through the repeated hour of 2024-11-03, second by second.
    let inside = at("2024-11-03T06:30:00Z"); // 01:30 EST, the second pass
    assert_eq!(
        seconds.next_after(inside).unwrap(),
        at("2024-11-03T07:00:00Z")
    );
    assert_eq!(
        seconds.latest_at_or_before(inside).unwrap(),
        at("2024-11-03T05:59:59Z")
    );
    CronSchedule::parse("0-59 0-23 * * *", "UTC").unwrap();
}
