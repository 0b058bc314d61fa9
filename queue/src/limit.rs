//! Cluster-wide rate limits for calls to outside services (PRODUCT.md §10):
//! an SMTP provider's sends per second, a price provider's calls per
//! minute and an exchange's orders per second hold for every worker
//! process together, not per process.
//!
//! GCRA (the generic cell rate algorithm) on the Redis server: one key per
//! limit holds the theoretical arrival time of the next call, in the
//! server's milliseconds (its clock, so skew between hosts does not
//! matter). A call is allowed when it is not earlier than that time minus
//! the burst tolerance, and then moves it on by one interval; a refused call
//! changes nothing and learns how long to wait. One script call per
//! attempt, no per-call keys.

use std::{sync::LazyLock, time::Duration};

use redis::Script;

use crate::{Conn, keys};

static GCRA: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local interval = tonumber(ARGV[1])
        local tolerance = tonumber(ARGV[2])
        local tat = tonumber(redis.call('GET', KEYS[1]) or now)
        if tat < now then tat = now end
        local allowed_at = tat - tolerance
        if now < allowed_at then return allowed_at - now end
        tat = tat + interval
        redis.call('SET', KEYS[1], tat, 'PX', math.max(1, tat - now + interval))
        return 0
        ",
    )
});

/// One named limit: one call per interval, with bursts of up to `burst`.
#[derive(Clone)]
pub struct RateLimit {
    conn: Conn,
    key: String,
    /// Milliseconds between calls at the steady rate.
    interval_ms: u64,
    /// How far ahead of the steady rate a burst may run.
    tolerance_ms: u64,
}

impl RateLimit {
    /// `per_second` calls a second; it must be positive (configuration
    /// checks it).
    pub fn new(conn: Conn, prefix: &str, name: &str, per_second: u32, burst: u32) -> Self {
        Self::per_minute(
            conn,
            prefix,
            name,
            per_second.max(1).saturating_mul(60),
            burst,
        )
    }

    /// `per_minute` calls a minute, the unit price providers publish their
    /// limits in (CoinGecko's 30 a minute is one call every 2 s).
    pub fn per_minute(conn: Conn, prefix: &str, name: &str, per_minute: u32, burst: u32) -> Self {
        let interval_ms = (60_000 / u64::from(per_minute.max(1))).max(1);
        Self {
            conn,
            key: keys::deployment_key(prefix, &format!("limit:{name}")),
            interval_ms,
            tolerance_ms: interval_ms * u64::from(burst.max(1) - 1),
        }
    }

    /// Takes a turn now if there is one: `None`, else how long until one
    /// may be free.
    pub async fn try_take(&self) -> Result<Option<Duration>, redis::RedisError> {
        let wait_ms: u64 = GCRA
            .key(&self.key)
            .arg(self.interval_ms)
            .arg(self.tolerance_ms)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok((wait_ms > 0).then(|| Duration::from_millis(wait_ms)))
    }

    /// Waits for a turn for at most `budget`: true once it has one, false
    /// when none came in time (the caller runs later instead).
    pub async fn take_within(&self, budget: Duration) -> Result<bool, redis::RedisError> {
        let deadline = tokio::time::Instant::now() + budget;
        loop {
            let Some(wait) = self.try_take().await? else {
                return Ok(true);
            };
            // Waiters wake spread out, not all at the free slot.
            let jitter = Duration::from_millis(rand_ms(self.interval_ms));
            let at = tokio::time::Instant::now() + wait + jitter;
            if at > deadline {
                return Ok(false);
            }
            tokio::time::sleep_until(at).await;
        }
    }
}

/// Up to `max_ms` milliseconds, from the clock's low bits: spreading
/// wake-ups needs no quality.
fn rand_ms(max_ms: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    nanos % max_ms.max(1)
}
