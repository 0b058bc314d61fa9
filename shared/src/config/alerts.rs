//! Price alerts. Reads `ALERT_MAX_ACTIVE`, `ALERT_CACHE_TTL_SECS`,
//! `ALERT_BATCH_SIZE`.

use std::time::Duration;

use super::env::{EnvReader, secs};

#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// Most active (`created`) alerts one user may hold.
    pub max_active_per_user: i64,
    /// How long a cached alerts answer may live in Redis. Changes
    /// invalidate it at once; this only bounds staleness should an
    /// invalidation be lost (Redis unreachable just then).
    pub cache_ttl: Duration,
    /// Most alerts one evaluation statement triggers per direction: an
    /// observation crossing more is evaluated batch after batch, each its
    /// own short transaction, so none nears `statement_timeout`.
    pub batch_size: i64,
}

impl AlertsConfig {
    pub(super) fn read(env: &mut EnvReader) -> Self {
        Self {
            max_active_per_user: env.range_or("ALERT_MAX_ACTIVE", 1000, 1, 10_000_000),
            cache_ttl: secs(env.range_or("ALERT_CACHE_TTL_SECS", 60, 1, 24 * 3600)),
            batch_size: env.range_or("ALERT_BATCH_SIZE", 5_000, 1, 1_000_000),
        }
    }
}
