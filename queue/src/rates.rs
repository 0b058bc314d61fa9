//! The latest-price cache, the contract between the workers that write it
//! and the API processes that serve it: a hash of the newest price per
//! symbol (`{prefix}:rates`) and a channel announcing new ones
//! (`{prefix}:rates:stream`). Both sides come here, so the key names and
//! the entry's JSON are spelled once.

use std::{collections::BTreeMap, future::Future, sync::LazyLock};

use futures::StreamExt as _;
use redis::{AsyncCommands as _, Script};
use shared::rates::{CachedPrice, Price};

use crate::{Conn, Subscriber, keys};

pub use keys::{rates_cache as cache_key, rates_stream as stream_channel};

static STORE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/store_rates.lua")));

/// The JSON of cached prices ([`CachedPrice`], as `GET /rates` serves
/// them).
fn json<T: serde::Serialize>(value: &T) -> Result<String, redis::RedisError> {
    serde_json::to_string(value).map_err(|e| {
        redis::RedisError::from((redis::ErrorKind::Client, "cached price", e.to_string()))
    })
}

/// Caches `prices` (each only if newer than the cached one) and, if any
/// was, announces them on the stream channel. Returns how many replaced
/// the cache. Call it after the observations are committed.
pub async fn store(
    conn: &Conn,
    prefix: &str,
    prices: &[Price],
) -> Result<usize, redis::RedisError> {
    if prices.is_empty() {
        return Ok(0);
    }
    let entries: Vec<CachedPrice> = prices.iter().map(CachedPrice::from).collect();
    let message = json(&entries)?;
    let mut invocation = STORE.prepare_invoke();
    invocation
        .key(keys::rates_cache(prefix))
        .arg(keys::rates_stream(prefix))
        .arg(message);
    for entry in &entries {
        invocation
            .arg(&entry.symbol)
            .arg(entry.as_of.timestamp_millis())
            .arg(json(entry)?);
    }
    invocation.invoke_async(&mut conn.clone()).await
}

/// Every cached entry (the JSON of a [`CachedPrice`]), in symbol order.
pub async fn cached(conn: &Conn, prefix: &str) -> Result<Vec<String>, redis::RedisError> {
    let all: BTreeMap<String, String> = conn.clone().hgetall(keys::rates_cache(prefix)).await?;
    Ok(all
        .into_iter()
        .filter(|(field, _)| !field.ends_with(":ms"))
        .map(|(_, json)| json)
        .collect())
}

/// Follows the stream channel, handing each announcement's payload (a JSON
/// array of entries) to `on_message`, until the subscription ends. Returns
/// the error that ended it, if any; the caller reconnects.
pub async fn follow<F, Fut>(
    subscriber: &Subscriber,
    prefix: &str,
    mut on_message: F,
) -> Result<(), redis::RedisError>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut pubsub = subscriber.pubsub().await?;
    pubsub.subscribe(keys::rates_stream(prefix)).await?;
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        if let Ok(payload) = message.get_payload::<String>() {
            on_message(payload).await;
        }
    }
    Ok(())
}
