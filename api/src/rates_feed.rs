//! Each API process mirrors the latest-price cache in memory and relays
//! new prices to its SSE clients.
//!
//! The mirror follows Redis's `{prefix}:rates:stream` channel and re-reads
//! the `{prefix}:rates` hash every second (a missed message costs at most a
//! second). When Redis has no prices (or is down) it reads the latest
//! observations from PostgreSQL instead. `GET /rates` answers from the
//! mirror: no outside call, no network round trip on the request path.

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tokio::sync::{RwLock, broadcast};
use utoipa::ToSchema;

use crate::state::AppState;

/// A latest price as clients see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Rate {
    pub symbol: String,
    /// USD price, as a decimal string.
    #[schema(example = "95000.12")]
    pub price_usd: String,
    /// When the price was received.
    pub as_of: DateTime<Utc>,
    pub source: String,
}

/// The mirror and the relay.
pub struct RatesFeed {
    latest: RwLock<BTreeMap<String, Rate>>,
    /// Codes of crypto currencies (their staleness limit differs from fiat).
    crypto: RwLock<HashSet<String>>,
    /// Every currency code.
    known: RwLock<Vec<String>>,
    relay: broadcast::Sender<Arc<str>>,
}

impl Default for RatesFeed {
    fn default() -> Self {
        let (relay, _) = broadcast::channel(256);
        Self {
            latest: RwLock::new(BTreeMap::new()),
            crypto: RwLock::new(HashSet::new()),
            known: RwLock::new(Vec::new()),
            relay,
        }
    }
}

impl RatesFeed {
    pub async fn is_crypto(&self, symbol: &str) -> bool {
        self.crypto.read().await.contains(symbol)
    }

    /// The latest prices, by symbol.
    pub async fn snapshot(&self) -> Vec<Rate> {
        self.latest.read().await.values().cloned().collect()
    }

    /// New prices as they arrive (JSON arrays of [`Rate`]).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.relay.subscribe()
    }

    async fn merge(&self, rates: Vec<Rate>) {
        let mut latest = self.latest.write().await;
        for rate in rates {
            let newer = latest
                .get(&rate.symbol)
                .is_none_or(|old| old.as_of < rate.as_of);
            if newer {
                latest.insert(rate.symbol.clone(), rate);
            }
        }
    }
}

/// Keeps `state.rates` current until the process ends.
pub async fn follow(state: AppState) {
    let reload = reload_loop(state.clone());
    let listen = listen_loop(state);
    futures::join!(reload, listen);
}

async fn reload_loop(state: AppState) {
    let mut round: u32 = 0;
    loop {
        if round.is_multiple_of(60) || state.rates.crypto.read().await.is_empty() {
            load_kinds(&state).await;
        }
        if let Err(reason) = reload(&state).await {
            tracing::debug!(%reason, "price cache reload failed");
        }
        round = round.wrapping_add(1);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Which currencies are crypto (currencies are data and rarely change).
async fn load_kinds(state: &AppState) {
    let Ok(mut conn) = state.db.get().await else {
        return;
    };
    if let Ok(all) = shared::currencies::all(&mut conn).await {
        let crypto = all
            .iter()
            .filter(|c| c.kind == shared::currencies::Kind::Crypto)
            .map(|c| c.code.clone())
            .collect();
        *state.rates.crypto.write().await = crypto;
        *state.rates.known.write().await = all.into_iter().map(|c| c.code).collect();
    }
}

/// Reads the Redis cache; symbols it lacks (or all, when Redis is down)
/// come from PostgreSQL.
async fn reload(state: &AppState) -> Result<(), String> {
    let key = format!("{}:rates", state.config.redis.prefix);
    let mut redis = state.redis.clone();
    let cached: BTreeMap<String, String> = redis.hgetall(&key).await.unwrap_or_default();
    let mut rates: Vec<Rate> = cached
        .iter()
        .filter(|(field, _)| !field.ends_with(":ms"))
        .filter_map(|(_, json)| serde_json::from_str(json).ok())
        .collect();
    let missing: Vec<String> = state
        .rates
        .known
        .read()
        .await
        .iter()
        .filter(|code| !rates.iter().any(|r| &r.symbol == *code))
        .cloned()
        .collect();
    if !missing.is_empty() {
        rates.extend(from_database(state, &missing).await?);
    }
    state.rates.merge(rates).await;
    Ok(())
}

async fn from_database(state: &AppState, symbols: &[String]) -> Result<Vec<Rate>, String> {
    let mut conn = state.db.get().await.map_err(|e| e.to_string())?;
    let prices = shared::rates::latest(&mut conn, symbols)
        .await
        .map_err(|e| e.to_string())?;
    Ok(prices
        .into_iter()
        .map(|p| Rate {
            symbol: p.symbol,
            price_usd: p.price_usd.normalize().to_string(),
            as_of: p.observed_at,
            source: p.source,
        })
        .collect())
}

async fn listen_loop(state: AppState) {
    let channel = format!("{}:rates:stream", state.config.redis.prefix);
    loop {
        match state.redis_client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if pubsub.subscribe(&channel).await.is_ok() {
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        let Ok(payload) = message.get_payload::<String>() else {
                            continue;
                        };
                        if let Ok(rates) = serde_json::from_str::<Vec<Rate>>(&payload) {
                            state.rates.merge(rates).await;
                            // No subscribers is fine.
                            let _ = state.rates.relay.send(Arc::from(payload));
                        }
                    }
                }
            }
            Err(error) => tracing::debug!(%error, "price stream unavailable"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
