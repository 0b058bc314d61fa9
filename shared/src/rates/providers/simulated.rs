//! The offline feed: a seeded random walk around realistic prices.
//!
//! Each step is a pure function of (seed, symbol, tick) applied to the last
//! stored price. With `SIMULATED_SEED` set the walk is reproducible, whichever
//! worker serves a tick (tests, demos). Unset, every process draws a secret
//! seed of its own, so nobody can compute the next price ahead (a known seed
//! would win every bet); the walk still goes on from the last stored price.
//! A slight pull towards the starting price keeps it realistic.

use std::hash::{Hash, Hasher};

use futures::future::BoxFuture;
use rust_decimal::Decimal;

use super::{PriceProvider, PriceRequest, ProviderError, Quote};

pub struct Simulated {
    seed: u64,
}

/// Starting prices in USD.
pub fn base_price(symbol: &str) -> Option<Decimal> {
    let (units, scale) = match symbol {
        "USD" => (1, 0),
        "EUR" => (108, 2),
        "KZT" => (21, 4),
        "BTC" => (95_000, 0),
        "ETH" => (3_500, 0),
        "SOL" => (180, 0),
        _ => return None,
    };
    Some(Decimal::new(units, scale))
}

/// SplitMix64: a tiny, well-mixed, deterministic generator.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A stable (not per-process randomised) hash of the symbol.
fn symbol_hash(symbol: &str) -> u64 {
    // FNV-1a: std's DefaultHasher is not guaranteed stable across releases.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in symbol.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

impl Simulated {
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// The next price of `symbol` after `previous` at tick `at_secs`.
    pub fn step(&self, symbol: &str, previous: Decimal, at_secs: i64) -> Decimal {
        let Some(base) = base_price(symbol) else {
            return previous;
        };
        if symbol == "USD" {
            return base;
        }
        let noise = mix(self.seed ^ symbol_hash(symbol) ^ mix(at_secs as u64));
        // -25..=25 basis points per step...
        let bps = i64::try_from(noise % 51).unwrap_or(0) - 25;
        // ...plus up to ±5 bps pulling back towards the base price.
        let pull = ((base - previous) / base * Decimal::from(50))
            .round()
            .clamp(Decimal::from(-5), Decimal::from(5));
        let factor = Decimal::ONE + (Decimal::from(bps) + pull) / Decimal::from(10_000);
        (previous * factor)
            .round_dp(10)
            .max(base / Decimal::from(100))
    }
}

impl Hash for Simulated {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.seed.hash(state);
    }
}

impl PriceProvider for Simulated {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn fetch<'a>(
        &'a self,
        request: PriceRequest<'a>,
    ) -> BoxFuture<'a, Result<Vec<Quote>, ProviderError>> {
        Box::pin(async move {
            let at = request.at.timestamp();
            request
                .symbols
                .iter()
                .map(|symbol| {
                    let base = base_price(symbol).ok_or_else(|| ProviderError::Config {
                        provider: "simulated",
                        reason: format!("no simulated price for {symbol}"),
                    })?;
                    let previous = request.previous.get(symbol).copied().unwrap_or(base);
                    Ok(Quote {
                        symbol: symbol.clone(),
                        price_usd: self.step(symbol, previous, at),
                    })
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::{TimeZone, Utc};

    use super::*;

    async fn walk(seed: u64, steps: i64) -> Vec<Vec<Quote>> {
        let provider = Simulated::new(seed);
        let symbols: Vec<String> = ["USD", "EUR", "KZT", "BTC", "ETH", "SOL"]
            .map(String::from)
            .to_vec();
        let mut previous = HashMap::new();
        let mut out = Vec::new();
        for i in 0..steps {
            let at = Utc.timestamp_opt(1_800_000_000 + i, 0).unwrap();
            let quotes = provider
                .fetch(PriceRequest {
                    symbols: &symbols,
                    at,
                    previous: &previous,
                })
                .await
                .unwrap();
            for q in &quotes {
                previous.insert(q.symbol.clone(), q.price_usd);
            }
            out.push(quotes);
        }
        out
    }

    #[tokio::test]
    async fn the_walk_is_reproducible_for_a_seed_and_differs_between_seeds() {
        let a = walk(42, 500).await;
        assert_eq!(a, walk(42, 500).await);
        assert_ne!(a, walk(43, 500).await);
        // It moves, stays near its base, and USD is always 1.
        let btc: Vec<Decimal> = a.iter().map(|q| q[3].price_usd).collect();
        assert!(btc.windows(2).any(|w| w[0] != w[1]));
        assert!(
            btc.iter()
                .all(|p| *p > Decimal::from(60_000) && *p < Decimal::from(140_000)),
            "{:?}",
            btc.last()
        );
        assert!(a.iter().all(|q| q[0].price_usd == Decimal::ONE));
    }
}
