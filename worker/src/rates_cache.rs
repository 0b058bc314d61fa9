//! The latest prices in Redis (`{prefix}:rates`, one field per symbol) and
//! their announcement on `{prefix}:rates:stream`, which every API process
//! relays to its SSE clients. Written after the observations are committed.

use std::sync::LazyLock;

use redis::{Script, aio::ConnectionManager};
use shared::rates::Price;

static STORE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("store_rates.lua")));

/// The JSON of one cached price, as `GET /rates` serves it.
pub fn entry(price: &Price) -> serde_json::Value {
    serde_json::json!({
        "symbol": price.symbol,
        "price_usd": price.price_usd.to_string(),
        "as_of": price.observed_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "source": price.source,
    })
}

/// Caches `prices` (newer ones only) and publishes them.
pub async fn store(
    conn: &ConnectionManager,
    prefix: &str,
    prices: &[Price],
) -> Result<usize, redis::RedisError> {
    if prices.is_empty() {
        return Ok(0);
    }
    let message = serde_json::Value::Array(prices.iter().map(entry).collect()).to_string();
    let mut invocation = STORE.prepare_invoke();
    invocation
        .key(format!("{prefix}:rates"))
        .arg(format!("{prefix}:rates:stream"))
        .arg(message);
    for price in prices {
        invocation
            .arg(&price.symbol)
            .arg(price.observed_at.timestamp_millis())
            .arg(entry(price).to_string());
    }
    invocation.invoke_async(&mut conn.clone()).await
}
