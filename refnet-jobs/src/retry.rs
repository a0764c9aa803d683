//! When a failed attempt runs again: capped exponential backoff with jitter.

use std::time::Duration;

/// How long to wait before each retry: `base * 2^(attempt-1)`, capped at `max`,
/// then spread by ±`jitter` (a fraction) so retries of many jobs do not align.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delay before the first retry.
    pub base: Duration,
    /// Longest delay, whatever the attempt.
    pub max: Duration,
    /// Random spread as a fraction of the delay, in `0.0..=1.0`.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// 15 s, doubling, capped at one hour, ±20 %.
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(15),
            max: Duration::from_secs(3600),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// A policy with the given first delay and cap and the default jitter.
    pub fn exponential(base: Duration, max: Duration) -> Self {
        RetryPolicy {
            base,
            max,
            ..RetryPolicy::default()
        }
    }

    /// The delay before retrying after failed attempt number `attempt` (1-based),
    /// before jitter.
    pub fn base_delay(&self, attempt: i32) -> Duration {
        let exponent = attempt.saturating_sub(1).clamp(0, 62) as u32;
        let factor = 2u64.saturating_pow(exponent);
        let nanos = (self.base.as_nanos() as u64).saturating_mul(factor);
        Duration::from_nanos(nanos).min(self.max)
    }

    /// The delay with jitter applied, never above `max`.
    pub fn delay(&self, attempt: i32) -> Duration {
        let base = self.base_delay(attempt).as_secs_f64();
        let jitter = self.jitter.clamp(0.0, 1.0);
        let spread = 1.0 + jitter * (rand::random::<f64>() * 2.0 - 1.0);
        Duration::from_secs_f64((base * spread).max(0.0)).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_until_the_cap() {
        let policy = RetryPolicy::exponential(Duration::from_secs(10), Duration::from_secs(60));
        let delays: Vec<u64> = (1..=5).map(|a| policy.base_delay(a).as_secs()).collect();
        assert_eq!(delays, vec![10, 20, 40, 60, 60]);
    }

    #[test]
    fn jitter_stays_within_its_band_and_the_cap() {
        let policy = RetryPolicy {
            base: Duration::from_secs(100),
            max: Duration::from_secs(150),
            jitter: 0.2,
        };
        for _ in 0..1000 {
            let first = policy.delay(1).as_secs_f64();
            assert!((80.0..=120.0).contains(&first), "{first}");
            assert!(policy.delay(2).as_secs_f64() <= 150.0);
        }
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.base_delay(i32::MAX), policy.max);
    }
}
