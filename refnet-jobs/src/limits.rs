//! Time limits of an attempt: a soft one that asks the task to stop, a hard
//! one that stops it.

use std::time::Duration;

use serde::Serialize;

use crate::{Error, Result};

/// How long one attempt may run.
///
/// At the **soft** limit the job's [`crate::JobContext::cancel`] token fires
/// and a warning is logged; the task may wrap up and return as it likes (a
/// success after the soft limit is recorded as a success). At the **hard**
/// limit the task's future is dropped and the attempt fails with an error
/// naming the limit; it is retried like any failure.
///
/// Dropping a future stops it only at its next `.await`: code that blocks
/// the thread (a CPU loop, a blocking call) keeps its thread busy until it
/// returns, although the attempt is already recorded as failed and its slot
/// freed. Run such work with [`crate::JobContext::run_blocking`], which checks
/// the token between steps, or in a child process started with
/// `tokio::process::Command::kill_on_drop(true)`, which the hard limit kills.
///
/// ```
/// use std::time::Duration;
/// use refnet_jobs::TimeLimits;
/// let limits = TimeLimits::new(Some(Duration::from_secs(3300)), Some(Duration::from_secs(3600)))?;
/// assert_eq!(limits.hard(), Some(Duration::from_secs(3600)));
/// assert!(TimeLimits::new(Some(Duration::from_secs(5)), Some(Duration::from_secs(5))).is_err());
/// # Ok::<(), refnet_jobs::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TimeLimits {
    soft: Option<Duration>,
    hard: Option<Duration>,
}

impl TimeLimits {
    /// No limit at all (the default).
    pub const NONE: TimeLimits = TimeLimits {
        soft: None,
        hard: None,
    };

    /// Limits with either part optional.
    ///
    /// Fails with [`Error::InvalidOption`] when a limit is zero or the soft
    /// limit is not below the hard one (it would never fire first).
    pub fn new(soft: Option<Duration>, hard: Option<Duration>) -> Result<Self> {
        if soft.is_some_and(|s| s.is_zero()) || hard.is_some_and(|h| h.is_zero()) {
            return Err(Error::InvalidOption(
                "time limits must be above zero".into(),
            ));
        }
        if let (Some(soft), Some(hard)) = (soft, hard)
            && soft >= hard
        {
            return Err(Error::InvalidOption(format!(
                "the soft time limit ({}) must be below the hard one ({})",
                secs(soft),
                secs(hard)
            )));
        }
        Ok(TimeLimits { soft, hard })
    }

    /// Both limits, checked at compile time where used in a `const`: `None`
    /// unless `0 < soft < hard`.
    pub const fn const_new(soft: Duration, hard: Duration) -> Option<Self> {
        if soft.is_zero() || soft.as_nanos() >= hard.as_nanos() {
            return None;
        }
        Some(TimeLimits {
            soft: Some(soft),
            hard: Some(hard),
        })
    }

    /// Limits from seconds as stored in the database or a config file.
    ///
    /// Fails as [`TimeLimits::new`] does, or for a negative or non-finite value.
    pub fn from_secs(soft: Option<f64>, hard: Option<f64>) -> Result<Self> {
        let convert = |value: Option<f64>| {
            value
                .map(|v| {
                    Duration::try_from_secs_f64(v).map_err(|_| {
                        Error::InvalidOption(format!("time limit {v} is not a number of seconds"))
                    })
                })
                .transpose()
        };
        TimeLimits::new(convert(soft)?, convert(hard)?)
    }

    /// When the task is asked to stop.
    pub fn soft(&self) -> Option<Duration> {
        self.soft
    }

    /// When the task is stopped.
    pub fn hard(&self) -> Option<Duration> {
        self.hard
    }

    /// True when neither limit is set.
    pub fn is_none(&self) -> bool {
        self.soft.is_none() && self.hard.is_none()
    }
}

/// A duration as the limits' messages show it: `5s`, `2.5s`.
pub(crate) fn secs(duration: Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}
