//! Webhooks (PRODUCT.md §11). Reads `WEBHOOK_ALLOW_PRIVATE_ADDRESSES`,
//! `WEBHOOK_MAX_PER_USER`, `WEBHOOK_TIMEOUT_SECS`,
//! `WEBHOOK_RETRY_BASE_SECS`, `WEBHOOK_RETRY_MAX_SECS`,
//! `WEBHOOK_RETRY_FOR_SECS`, `WEBHOOK_DISABLE_AFTER_SECS`,
//! `WEBHOOK_MAX_PER_SEC`, `WEBHOOK_BURST`.

use std::time::Duration;

use super::env::{EnvReader, secs};

#[derive(Debug, Clone)]
pub struct WebhooksConfig {
    /// Admit `http` URLs and loopback and private addresses (tests, local
    /// runs). Link-local and cloud metadata addresses stay refused.
    pub allow_private_addresses: bool,
    /// Most endpoints one user may register.
    pub max_per_user: i64,
    /// How long one attempt may take, connecting included.
    pub timeout: Duration,
    /// The wait after a delivery's first failed attempt; it doubles with
    /// each further failure, up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// A delivery failing this long after its event is given up.
    pub retry_for: Duration,
    /// An endpoint failing every attempt this long is disabled and its
    /// owner emailed.
    pub disable_after: Duration,
    /// Deliveries per second across all worker processes; 0: no limit.
    pub max_per_sec: u32,
    pub burst: u32,
}

impl WebhooksConfig {
    pub(super) fn read(env: &mut EnvReader) -> Self {
        Self {
            allow_private_addresses: env.parse_or(
                "WEBHOOK_ALLOW_PRIVATE_ADDRESSES",
                false,
                "true or false",
            ),
            max_per_user: env.range_or("WEBHOOK_MAX_PER_USER", 10, 1, 1000),
            timeout: secs(env.range_or("WEBHOOK_TIMEOUT_SECS", 10, 1, 60)),
            retry_base: secs(env.range_or("WEBHOOK_RETRY_BASE_SECS", 10, 1, 3600)),
            retry_max: secs(env.range_or("WEBHOOK_RETRY_MAX_SECS", 3600, 1, 86_400)),
            retry_for: secs(env.range_or("WEBHOOK_RETRY_FOR_SECS", 86_400, 1, 7 * 86_400)),
            disable_after: secs(env.range_or("WEBHOOK_DISABLE_AFTER_SECS", 86_400, 1, 30 * 86_400)),
            max_per_sec: env.range_or("WEBHOOK_MAX_PER_SEC", 0, 0, 100_000),
            burst: env.range_or("WEBHOOK_BURST", 10, 1, 100_000),
        }
    }
}
