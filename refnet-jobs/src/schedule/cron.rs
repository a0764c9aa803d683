//! Cron expressions evaluated in an IANA time zone: parsing and fire times.
//!
//! croner parses and matches; two rules of Vixie cron (`man 5 crontab`) are
//! ours on top where croner differs:
//! - Day-of-month and day-of-week are ORed only when both are restricted,
//!   and a field containing `*` (such as `*/3`) is not restricted; otherwise
//!   they are ANDed. `+` before day-of-week asks for AND explicitly.
//! - DST: a *specific-time* job (no `*` in its minute and hour fields, even
//!   with lists or ranges) runs once in a repeated hour (its first pass) and
//!   once at the first instant after a skipped hour. An *interval* job (a `*`
//!   in minute or hour) fires on real instants: both passes of a repeated
//!   hour, nothing inside a gap.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::{Error, Result};

/// No zone shifts its clock by more than this at once.
const MAX_SHIFT: Duration = Duration::hours(3);
/// Wall-clock candidates tried per search before giving up. Only those in a
/// repeated hour can be passed over (they fired on its first pass), so this
/// covers an every-second pattern through a three-hour repeat.
const MAX_CANDIDATES: usize = 11_000;

/// A parsed cron expression bound to a time zone.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// let cron = refnet_jobs::CronSchedule::parse("0 2 * * *", "Asia/Tokyo").unwrap();
/// let after = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
/// // 02:00 in Tokyo is 17:00 UTC the day before.
/// assert_eq!(cron.next_after(after).unwrap(), Utc.with_ymd_and_hms(2026, 12, 1, 17, 0, 0).unwrap());
/// ```
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    expr: String,
    tz: Tz,
    specific_time: bool,
}

impl CronSchedule {
    /// Parses a 5-field (or 6-field, seconds first) expression in time zone
    /// `tz`. Names (`MON`, `JAN`), `L`, `N#k` and `NL` are croner's; weekdays
    /// 0 and 7 are Sunday.
    ///
    /// Fails with [`Error::InvalidCron`] for a malformed expression or one that
    /// never matches (such as `0 0 30 2 *`), and with [`Error::UnknownTimeZone`]
    /// for a zone name not in the IANA database.
    pub fn parse(expr: &str, tz: &str) -> Result<Self> {
        let tz: Tz = tz
            .parse()
            .map_err(|_| Error::UnknownTimeZone(tz.to_string()))?;
        let fields: Vec<&str> = expr.split_whitespace().collect();
        // (minute, hour, day-of-month, day-of-week), when given as fields
        // rather than a @nickname.
        let parts = match fields.len() {
            5 => Some((fields[0], fields[1], fields[2], fields[4])),
            6 => Some((fields[1], fields[2], fields[3], fields[5])),
            _ => None,
        };
        let unrestricted = |field: &str| field.contains('*') || field.contains('?');
        let dom_and_dow =
            parts.is_some_and(|(_, _, dom, dow)| unrestricted(dom) || unrestricted(dow));
        let specific_time =
            parts.is_some_and(|(minute, hour, _, _)| !minute.contains('*') && !hour.contains('*'));
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            // 5 fields, or 6 with seconds first; croner's optional 7th (year)
            // field would make `0 */30 * * * * *` mean something else.
            .year(Year::Disallowed)
            .dom_and_dow(dom_and_dow)
            .build()
            .parse(expr)
            .map_err(|e| Error::InvalidCron {
                expr: expr.to_string(),
                reason: e.to_string(),
            })?;
        let schedule = CronSchedule {
            cron,
            expr: expr.to_string(),
            tz,
            specific_time,
        };
        // A pattern that can never fire (30 February) is caught here, not in the scheduler.
        if schedule.next_after(Utc::now()).is_err() {
            return Err(schedule.error(
                "it matches no date within croner's search limit (like 30 February or 31 April)"
                    .into(),
            ));
        }
        Ok(schedule)
    }

    /// The expression as given.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The time zone the expression is read in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// True for a specific-time job (no `*` in minute or hour): see the
    /// module docs for what that changes at DST transitions.
    pub fn is_specific_time(&self) -> bool {
        self.specific_time
    }

    /// The first fire time strictly after `instant`.
    ///
    /// Fails with [`Error::InvalidCron`] when no fire time can be found.
    pub fn next_after(&self, instant: DateTime<Utc>) -> Result<DateTime<Utc>> {
        if !self.specific_time {
            let local = instant.with_timezone(&self.tz);
            return self
                .cron
                .find_next_occurrence(&local, false)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| self.error(e.to_string()));
        }
        // Walk the wall-clock matches after `instant`'s local time; each maps
        // to one instant, and that mapping never goes back. A match earlier
        // on the wall clock always ran at or before `instant`; a later one
        // runs after it, except within a repeated hour whose first pass is over.
        let mut wall = self.wall(instant);
        for _ in 0..MAX_CANDIDATES {
            wall = self.next_wall(wall)?;
            let at = self.instant_of(wall);
            if at > instant {
                return Ok(at);
            }
        }
        Err(self.error("no fire time found".into()))
    }

    /// The last fire time at or before `instant`.
    ///
    /// Fails with [`Error::InvalidCron`] when no such time can be found.
    pub fn latest_at_or_before(&self, instant: DateTime<Utc>) -> Result<DateTime<Utc>> {
        if !self.specific_time {
            let local = instant.with_timezone(&self.tz);
            return self
                .cron
                .find_previous_occurrence(&local, true)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| self.error(e.to_string()));
        }
        // Back from just after `instant`'s local time; inside a repeated hour,
        // from its end, as later wall times there ran on the first pass.
        let now = self.wall(instant);
        let mut wall = match self.tz.from_local_datetime(&now) {
            LocalResult::Ambiguous(..) => now + MAX_SHIFT,
            _ => now + Duration::seconds(1),
        };
        for _ in 0..MAX_CANDIDATES {
            wall = self.previous_wall(wall)?;
            let at = self.instant_of(wall);
            if at <= instant {
                return Ok(at);
            }
        }
        Err(self.error("no fire time found".into()))
    }

    /// The next `count` fire times strictly after `instant`.
    ///
    /// Fails with [`Error::InvalidCron`] when no fire time can be found.
    pub fn upcoming(&self, instant: DateTime<Utc>, count: usize) -> Result<Vec<DateTime<Utc>>> {
        let mut times = Vec::with_capacity(count);
        let mut at = instant;
        for _ in 0..count {
            at = self.next_after(at)?;
            times.push(at);
        }
        Ok(times)
    }

    /// `instant` as a wall-clock time in the schedule's zone.
    fn wall(&self, instant: DateTime<Utc>) -> NaiveDateTime {
        instant.with_timezone(&self.tz).naive_local()
    }

    /// The first wall-clock time after `wall` that the pattern matches,
    /// ignoring DST (the pattern is matched on a clock that never jumps).
    fn next_wall(&self, wall: NaiveDateTime) -> Result<NaiveDateTime> {
        self.cron
            .find_next_occurrence(&Utc.from_utc_datetime(&wall), false)
            .map(|t| t.naive_utc())
            .map_err(|e| self.error(e.to_string()))
    }

    /// The last wall-clock time before `wall` that the pattern matches.
    fn previous_wall(&self, wall: NaiveDateTime) -> Result<NaiveDateTime> {
        self.cron
            .find_previous_occurrence(&Utc.from_utc_datetime(&wall), false)
            .map(|t| t.naive_utc())
            .map_err(|e| self.error(e.to_string()))
    }

    /// When a specific-time job set for wall time `wall` runs: that instant;
    /// its first pass when the hour repeats; the first instant after the
    /// gap when that wall time is skipped.
    fn instant_of(&self, wall: NaiveDateTime) -> DateTime<Utc> {
        match self.tz.from_local_datetime(&wall) {
            LocalResult::Single(at) => at.with_timezone(&Utc),
            LocalResult::Ambiguous(first, second) => first.min(second).with_timezone(&Utc),
            LocalResult::None => self.end_of_gap(wall),
        }
    }

    /// The instant the clock jumps over `wall`: the first instant whose wall
    /// time is at or after it. Searched to the second between the two
    /// readings of `wall` with the offsets a day either side of the gap (no
    /// zone changes its offset twice within a day).
    fn end_of_gap(&self, wall: NaiveDateTime) -> DateTime<Utc> {
        let as_utc = Utc.from_utc_datetime(&wall);
        let offset_at = |at: DateTime<Utc>| {
            let local = at.with_timezone(&self.tz);
            local.naive_local() - local.naive_utc()
        };
        let day = Duration::days(1);
        let (before, after) = (offset_at(as_utc - day), offset_at(as_utc + day));
        // Whole seconds: transitions fall on them, and so must the answer.
        let mut low = (as_utc - after.max(before)).timestamp();
        let mut high = (as_utc - after.min(before)).timestamp();
        let at = |secs: i64| Utc.timestamp_opt(secs, 0).single().unwrap_or(as_utc);
        if self.wall(at(low)) >= wall {
            return at(low);
        }
        // Invariant: wall(low) < wall <= wall(high).
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            if self.wall(at(mid)) >= wall {
                high = mid;
            } else {
                low = mid;
            }
        }
        at(high)
    }

    fn error(&self, reason: String) -> Error {
        Error::InvalidCron {
            expr: self.expr.clone(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests;
