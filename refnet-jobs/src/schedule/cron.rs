//! Cron expressions evaluated in an IANA time zone: parsing and fire times.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::{Error, Result};

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
}

impl CronSchedule {
    /// Parses a 5-field (or 6-field, seconds first) expression in time zone `tz`.
    ///
    /// Fails with [`Error::InvalidCron`] for a malformed expression or one that
    /// never matches (such as `0 0 30 2 *`), and with [`Error::UnknownTimeZone`]
    /// for a zone name not in the IANA database.
    pub fn parse(expr: &str, tz: &str) -> Result<Self> {
        let tz: Tz = tz
            .parse()
            .map_err(|_| Error::UnknownTimeZone(tz.to_string()))?;
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            // 5 fields, or 6 with seconds first; croner's optional 7th (year)
            // field would make `0 */30 * * * * *` mean something else.
            .year(Year::Disallowed)
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
        };
        // A pattern that can never fire (30 February) is caught here, not in the scheduler.
        schedule.next_after(Utc::now())?;
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

    /// The first fire time strictly after `instant`.
    ///
    /// Fails with [`Error::InvalidCron`] when no fire time can be found.
    pub fn next_after(&self, instant: DateTime<Utc>) -> Result<DateTime<Utc>> {
        let local = instant.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| self.error(e))
    }

    /// The last fire time at or before `instant`.
    ///
    /// Fails with [`Error::InvalidCron`] when no such time can be found.
    pub fn latest_at_or_before(&self, instant: DateTime<Utc>) -> Result<DateTime<Utc>> {
        let local = instant.with_timezone(&self.tz);
        self.cron
            .find_previous_occurrence(&local, true)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| self.error(e))
    }

    /// The next `count` fire times strictly after `instant`.
    pub fn upcoming(&self, instant: DateTime<Utc>, count: usize) -> Result<Vec<DateTime<Utc>>> {
        let mut times = Vec::with_capacity(count);
        let mut at = instant;
        for _ in 0..count {
            at = self.next_after(at)?;
            times.push(at);
        }
        Ok(times)
    }

    fn error(&self, e: croner::errors::CronError) -> Error {
        Error::InvalidCron {
            expr: self.expr.clone(),
            reason: e.to_string(),
        }
    }
}
