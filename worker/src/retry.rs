//! When to run a failed job again.

use std::time::Duration;

use shared::config::JobsConfig;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    pub fn from_config(config: &JobsConfig) -> Self {
        Self {
            max_attempts: config.max_attempts,
            base: config.backoff_base,
            max: config.backoff_max,
        }
    }

    /// Delay before attempt `failed_attempt + 1`: exponential
    /// (`base × 2^(n-1)`, capped at `max`) with "equal jitter" — a random
    /// point in the upper half — so jobs that failed together (an SMTP
    /// outage) do not all come back in the same instant, yet each still
    /// waits at least half its step.
    pub fn backoff(&self, failed_attempt: u32) -> Duration {
        let step = self.ceiling(failed_attempt);
        let half = step / 2;
        let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rand::random_range(0..=jitter_ms))
    }

    /// The un-jittered delay after `failed_attempt`.
    pub fn ceiling(&self, failed_attempt: u32) -> Duration {
        let exponent = failed_attempt.saturating_sub(1).min(32);
        self.base
            .saturating_mul(1u32 << exponent.min(31))
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jittered_within_the_upper_half() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        assert_eq!(policy.ceiling(1), Duration::from_millis(100));
        assert_eq!(policy.ceiling(2), Duration::from_millis(200));
        assert_eq!(policy.ceiling(5), Duration::from_millis(1600));
        assert_eq!(policy.ceiling(6), Duration::from_secs(2));
        assert_eq!(policy.ceiling(99), Duration::from_secs(2));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let d = policy.backoff(3);
            assert!(
                d >= Duration::from_millis(200) && d <= Duration::from_millis(400),
                "{d:?}"
            );
            seen.insert(d);
        }
        assert!(seen.len() > 10, "jitter should spread delays");
    }
}
