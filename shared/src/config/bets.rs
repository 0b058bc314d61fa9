//! Bets: stake limits, the settlement reconciler, settlement batching.
//! Reads `BET_MIN_STAKE`, `BET_MAX_STAKE`, `BET_RECONCILE_CRON`,
//! `BET_RECONCILE_AFTER_SECS`, `BET_SETTLE_IN_FLIGHT`.

use std::time::Duration;

use rust_decimal::Decimal;

use super::env::{EnvReader, secs};

#[derive(Debug, Clone)]
pub struct BetsConfig {
    /// Stake limits in USD (inclusive).
    pub min_stake: Decimal,
    pub max_stake: Decimal,
    /// Cluster-wide schedule of the reconciler (six fields, UTC).
    pub reconcile_cron: String,
    /// An open bet this long past its `settles_at` gets a new settlement
    /// job from the reconciler (its job was lost, say with Redis's data).
    pub reconcile_after: Duration,
    /// Settlement transactions in flight per worker process; jobs arriving
    /// meanwhile wait and go together in the next one.
    pub settle_in_flight: usize,
}

impl BetsConfig {
    pub(super) fn read(env: &mut EnvReader) -> Self {
        let min_stake = env.range_or(
            "BET_MIN_STAKE",
            Decimal::ONE,
            Decimal::new(1, 2),
            Decimal::from(1_000_000_000),
        );
        let max_stake = env.range_or(
            "BET_MAX_STAKE",
            Decimal::from(10_000),
            Decimal::new(1, 2),
            Decimal::from(1_000_000_000),
        );
        if max_stake < min_stake {
            env.problem(
                "BET_MAX_STAKE",
                format!("{max_stake} is below BET_MIN_STAKE ({min_stake})"),
            );
        }
        Self {
            min_stake,
            max_stake,
            reconcile_cron: env.cron_or("BET_RECONCILE_CRON", "*/10 * * * * *"),
            reconcile_after: secs(env.range_or("BET_RECONCILE_AFTER_SECS", 30, 1, 7 * 24 * 3600)),
            settle_in_flight: env.range_or("BET_SETTLE_IN_FLIGHT", 1, 1, 64),
        }
    }
}
