//! Exchange clearing: where the house hedges its trades. Reads
//! `CLEARING_THRESHOLD_USD`, `EXCHANGE`, `EXCHANGE_URL`, `EXCHANGE_API_KEY`,
//! `EXCHANGE_TIMEOUT_MS`, `EXCHANGE_RETRIES`, `CLEARING_RESUBMIT_SECS`,
//! `EXCHANGE_MAX_PER_SEC`, `EXCHANGE_BURST`.

use std::time::Duration;

use rust_decimal::Decimal;
use secrecy::SecretString;

use super::env::{EnvReader, millis, secs};

/// Where the house hedges its trades.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    /// Fills every order at once in-process: the local default.
    Simulated,
    /// A JSON exchange API at `EXCHANGE_URL` (see `shared::trading::exchange`).
    Http,
}

#[derive(Debug, Clone)]
pub struct TradingConfig {
    /// Orders worth at least this many USD are cleared alone; smaller ones
    /// wait until their sum per currency and side reaches it.
    pub clearing_threshold_usd: Decimal,
    pub exchange: ExchangeKind,
    pub exchange_url: String,
    pub exchange_api_key: Option<SecretString>,
    pub exchange_timeout: Duration,
    /// Extra tries of one exchange call on a timeout, a connection failure
    /// or a 5xx, before the clearing job itself backs off and retries.
    pub exchange_retries: u32,
    /// A batch still pending this long after its last exchange call is
    /// submitted again (its job may have gone to the dead set).
    pub resubmit_after: Duration,
    /// Orders placed per second across every worker process (0: no
    /// limit), and how many may go at once after a quiet spell.
    pub exchange_max_per_sec: u32,
    pub exchange_burst: u32,
}

impl TradingConfig {
    pub(super) fn read(env: &mut EnvReader) -> Self {
        let exchange = env.choice_or(
            "EXCHANGE",
            ExchangeKind::Simulated,
            &[
                ("simulated", ExchangeKind::Simulated),
                ("http", ExchangeKind::Http),
            ],
        );
        let exchange_url = env.optional("EXCHANGE_URL");
        if exchange == ExchangeKind::Http && exchange_url.is_none() {
            env.problem("EXCHANGE_URL", "not set (required when EXCHANGE=http)");
        }
        Self {
            clearing_threshold_usd: env.range_or(
                "CLEARING_THRESHOLD_USD",
                Decimal::TEN,
                Decimal::new(1, 2),
                Decimal::from(1_000_000_000),
            ),
            exchange,
            exchange_url: exchange_url
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned(),
            exchange_api_key: env.optional_secret("EXCHANGE_API_KEY"),
            exchange_timeout: millis(env.range_or("EXCHANGE_TIMEOUT_MS", 5000, 50, 120_000)),
            exchange_retries: env.range_or("EXCHANGE_RETRIES", 2, 0, 10),
            resubmit_after: secs(env.range_or("CLEARING_RESUBMIT_SECS", 900, 1, 7 * 24 * 3600)),
            exchange_max_per_sec: env.range_or("EXCHANGE_MAX_PER_SEC", 0, 0, 1000),
            exchange_burst: env.range_or("EXCHANGE_BURST", 1, 1, 1000),
        }
    }
}
