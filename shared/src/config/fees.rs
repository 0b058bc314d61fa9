//! The monthly fee run and the housekeeping purge that rides its queue.
//! Reads `MONTHLY_FEE_AMOUNT`, `MONTHLY_FEE_CURRENCY`, `MONTHLY_FEE_CRON`,
//! `MONTHLY_FEE_BATCH`, `MONTHLY_FEE_PARALLELISM`, `PURGE_CRON`.

use rust_decimal::Decimal;

use super::env::EnvReader;

#[derive(Debug, Clone)]
pub struct FeesConfig {
    /// The monthly fee of a fiat wallet, in `currency` (converted to each
    /// wallet's currency at the fresh rate).
    pub amount: Decimal,
    pub currency: String,
    /// Cluster-wide schedule of the fee run (six fields, UTC).
    pub cron: String,
    /// Wallets charged per transaction.
    pub batch_size: i64,
    /// Fee jobs a run splits into, so several workers charge batches at
    /// once.
    pub parallelism: u32,
    /// Cluster-wide schedule of the housekeeping purge (expired idempotency
    /// keys, spent and expired codes, expired refresh tokens), six fields,
    /// UTC. It rides the `monthly_fee` queue.
    pub purge_cron: String,
}

impl FeesConfig {
    pub(super) fn read(env: &mut EnvReader) -> Self {
        let cron = env.cron_or("MONTHLY_FEE_CRON", "0 0 * * * *");
        Self {
            amount: env.range_or(
                "MONTHLY_FEE_AMOUNT",
                Decimal::from(200),
                Decimal::new(1, 2),
                Decimal::from(1_000_000_000),
            ),
            currency: env
                .string_or("MONTHLY_FEE_CURRENCY", "KZT")
                .trim()
                .to_ascii_uppercase(),
            cron,
            batch_size: env.range_or("MONTHLY_FEE_BATCH", 5000, 1, 100_000),
            parallelism: env.range_or("MONTHLY_FEE_PARALLELISM", 2, 1, 64),
            purge_cron: env.cron_or("PURGE_CRON", "0 17 * * * *"),
        }
    }
}
