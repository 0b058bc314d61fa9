//! Price sources behind one trait, chosen by configuration: `simulated`
//! (the offline default), `binance`, `coingecko`, `coinmarketcap` (crypto)
//! and `exchangerate` (fiat). Every price is in USD.

mod binance;
mod coingecko;
mod coinmarketcap;
mod exchangerate;
mod http;
mod simulated;

use std::{collections::HashMap, str::FromStr};

pub use binance::Binance;
use chrono::{DateTime, Utc};
pub use coingecko::CoinGecko;
pub use coinmarketcap::CoinMarketCap;
pub use exchangerate::ExchangeRate;
use futures::future::BoxFuture;
pub use http::HttpFetcher;
use rust_decimal::Decimal;
pub use simulated::{Simulated, base_price};

/// One price from a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub symbol: String,
    pub price_usd: Decimal,
}

/// What a refresh asks for.
#[derive(Debug, Clone)]
pub struct PriceRequest<'a> {
    pub symbols: &'a [String],
    /// The schedule tick being served.
    pub at: DateTime<Utc>,
    /// The latest stored prices (the simulated feed walks on from them).
    pub previous: &'a HashMap<String, Decimal>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    /// Network trouble, timeouts, 5xx: tried again with backoff, then given up.
    #[error("{provider}: unavailable: {reason}")]
    Unavailable {
        provider: &'static str,
        reason: String,
    },
    /// The provider said 429; we will not call it before `retry_after_secs`.
    #[error("{provider}: rate limited for {retry_after_secs}s")]
    RateLimited {
        provider: &'static str,
        retry_after_secs: u64,
    },
    /// Still inside a 429 cool-down: no call was made.
    #[error("{provider}: cooling down after a 429 ({remaining_secs}s left)")]
    CoolingDown {
        provider: &'static str,
        remaining_secs: u64,
    },
    /// No turn under the cluster-wide limit on calls to this provider
    /// (`RATE_CRYPTO_MAX_PER_MIN`, `RATE_FIAT_MAX_PER_MIN`) came in time: no
    /// call was made, and a later refresh asks again. Not a failure: the
    /// refresh records it as a skip.
    #[error("{provider}: over the configured rate limit; skipped")]
    OverLimit { provider: &'static str },
    /// The answer was not the documented format, was partial or held
    /// impossible prices: rejected as a whole.
    #[error("{provider}: rejected answer: {reason}")]
    Malformed {
        provider: &'static str,
        reason: String,
    },
    /// Bad settings (missing API key, unsupported symbol).
    #[error("{provider}: misconfigured: {reason}")]
    Config {
        provider: &'static str,
        reason: String,
    },
}

/// A source of USD prices.
pub trait PriceProvider: Send + Sync {
    fn name(&self) -> &'static str;

    /// Prices of every requested symbol, or an error: never a partial list.
    fn fetch<'a>(
        &'a self,
        request: PriceRequest<'a>,
    ) -> BoxFuture<'a, Result<Vec<Quote>, ProviderError>>;
}

/// Largest price we accept (USD); anything above is a provider bug.
const MAX_PRICE: i64 = 1_000_000_000_000;

/// Parses a price given as a JSON string or number; it must be positive and
/// plausible.
pub(crate) fn parse_price(
    provider: &'static str,
    symbol: &str,
    value: &serde_json::Value,
) -> Result<Decimal, ProviderError> {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        other => {
            return Err(ProviderError::Malformed {
                provider,
                reason: format!("{symbol}: price is not a number: {other}"),
            });
        }
    };
    let price = Decimal::from_str(text.trim())
        .or_else(|_| Decimal::from_scientific(text.trim()))
        .map_err(|_| ProviderError::Malformed {
            provider,
            reason: format!("{symbol}: unreadable price {text:?}"),
        })?;
    if price <= Decimal::ZERO || price > Decimal::from(MAX_PRICE) {
        return Err(ProviderError::Malformed {
            provider,
            reason: format!("{symbol}: implausible price {price}"),
        });
    }
    Ok(price.normalize())
}

/// Checks that `quotes` covers every requested symbol exactly once.
pub(crate) fn complete(
    provider: &'static str,
    wanted: &[String],
    quotes: Vec<Quote>,
) -> Result<Vec<Quote>, ProviderError> {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|s| !quotes.iter().any(|q| &q.symbol == *s))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(ProviderError::Malformed {
            provider,
            reason: format!("partial answer: no price for {}", missing.join(", ")),
        });
    }
    Ok(quotes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_parse_from_strings_numbers_and_exponents() {
        let p = |v: serde_json::Value| parse_price("t", "X", &v);
        assert_eq!(
            p(serde_json::json!("95000.12000000")).unwrap().to_string(),
            "95000.12"
        );
        assert_eq!(p(serde_json::json!(1.5)).unwrap().to_string(), "1.5");
        assert_eq!(
            p(serde_json::json!(2.1e-6)).unwrap().to_string(),
            "0.0000021"
        );
        for bad in [
            serde_json::json!("0"),
            serde_json::json!(-1),
            serde_json::json!("abc"),
            serde_json::json!(null),
            serde_json::json!(1e13),
        ] {
            assert!(p(bad).is_err());
        }
    }
}
