//! Bets: stake limits, the settlement reconciler, settlement batching,
//! liquidation batches. Reads `BET_MIN_STAKE`, `BET_MAX_STAKE`,
//! `BET_RECONCILE_CRON`, `BET_RECONCILE_AFTER_SECS`, `BET_SETTLE_IN_FLIGHT`,
//! `BET_LIQUIDATION_BATCH_SIZE`, `BET_MAX_OPEN_STAKE`, `BET_MAX_OPEN_BETS`, `BET_MAX_HOUSE_NOTIONAL`.

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
    /// Bets one statement liquidates per direction (each batch its own
    /// transaction): a crash that liquidates a hundred thousand bets is
    /// many short transactions, none near `statement_timeout`.
    pub liquidation_batch_size: i64,
    /// What one user may have at stake in open bets, USD, and in how many.
    pub max_open_stake: Decimal,
    pub max_open_bets: i64,
    /// The house's open notional (stake × leverage) per symbol and
    /// direction, USD.
    pub max_house_notional: Decimal,
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
            liquidation_batch_size: env.range_or("BET_LIQUIDATION_BATCH_SIZE", 1_000, 1, 100_000),
            max_open_stake: env.range_or(
                "BET_MAX_OPEN_STAKE",
                Decimal::from(10_000),
                Decimal::new(1, 2),
                Decimal::from(1_000_000_000_000_i64),
            ),
            max_open_bets: env.range_or("BET_MAX_OPEN_BETS", 100, 1, 1_000_000),
            max_house_notional: env.range_or(
                "BET_MAX_HOUSE_NOTIONAL",
                Decimal::from(10_000_000),
                Decimal::ONE,
                Decimal::from(1_000_000_000_000_000_i64),
            ),
        }
    }
}
