//! A latest price as the workers cache it in Redis and announce it on the
//! price stream: the contract between `queue::rates::store` (written by the
//! refresh) and the API's mirror (`api::rates_feed`), which also relays the
//! announcements byte for byte to `/rates/stream` clients. One type, so the
//! two sides cannot drift apart.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Price;

/// Fields in alphabetical order: the order the stream's JSON has always
/// had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedPrice {
    /// When the price was observed, to the microsecond (PostgreSQL's
    /// precision), so a cached price compares equal to the stored one.
    #[serde(serialize_with = "micros", deserialize_with = "rfc3339")]
    pub as_of: DateTime<Utc>,
    /// USD price, as a decimal string.
    pub price_usd: String,
    pub source: String,
    pub symbol: String,
}

impl From<&Price> for CachedPrice {
    fn from(price: &Price) -> Self {
        Self {
            symbol: price.symbol.clone(),
            price_usd: price.price_usd.to_string(),
            as_of: price.observed_at,
            source: price.source.clone(),
        }
    }
}

fn micros<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true))
}

fn rfc3339<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    DateTime::<Utc>::deserialize(deserializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_entry_keeps_its_wire_form() {
        let entry = CachedPrice {
            symbol: "BTC".into(),
            price_usd: "95000.12".into(),
            as_of: "2026-12-04T10:00:00.5Z".parse().unwrap(),
            source: "binance".into(),
        };
        let json = serde_json::to_string(&entry).unwrap();
        assert_eq!(
            json,
            r#"{"as_of":"2026-12-04T10:00:00.500000Z","price_usd":"95000.12","source":"binance","symbol":"BTC"}"#
        );
        assert_eq!(serde_json::from_str::<CachedPrice>(&json).unwrap(), entry);
    }
}
