//! Each API process mirrors the latest-price cache in memory and relays
//! new prices to its SSE clients.
//!
//! The mirror follows Redis's `{prefix}:rates:stream` channel and re-reads
//! the `{prefix}:rates` hash every second (a missed message costs at most a
//! second). When Redis has no prices (or is down) it reads the latest
//! observations from PostgreSQL instead. `GET /rates` answers from the
//! mirror: no outside call, no network round trip on the request path.
//!
//! It also counts the open `/rates/stream` connections (per client IP and
//! in total, so a client cannot hold them without bound) and ends them all
//! at shutdown.

use std::{
    collections::{BTreeMap, HashMap, HashSet, hash_map::Entry},
    future::Future,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::rates::CachedPrice;
use tokio::sync::{RwLock, broadcast, watch};
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

/// A cached price as `GET /rates` shows it (the same fields; the cache's
/// form is the workers' and the stream's contract, [`CachedPrice`]).
impl From<CachedPrice> for Rate {
    fn from(cached: CachedPrice) -> Self {
        Self {
            symbol: cached.symbol,
            price_usd: cached.price_usd,
            as_of: cached.as_of,
            source: cached.source,
        }
    }
}

/// The mirror and the relay.
pub struct RatesFeed {
    latest: RwLock<BTreeMap<String, Rate>>,
    /// Codes of crypto currencies (their staleness limit differs from fiat).
    crypto: RwLock<HashSet<String>>,
    /// Every currency code.
    known: RwLock<Vec<String>>,
    relay: broadcast::Sender<Arc<str>>,
    streams: Mutex<StreamCounts>,
    /// Becomes true at shutdown: every event stream ends.
    closing: watch::Sender<bool>,
}

/// Open event streams by client IP, and their total.
#[derive(Default)]
struct StreamCounts {
    by_ip: HashMap<String, usize>,
    total: usize,
}

/// Why a new event stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRefused {
    /// This client IP already holds `RATES_STREAM_MAX_PER_IP` streams.
    PerIp,
    /// This process already holds `RATES_STREAM_MAX_TOTAL` streams.
    Total,
}

/// One open event stream's place in the counts. Dropping it (the stream
/// ended or its client left) frees the place.
pub struct StreamSlot {
    feed: Arc<RatesFeed>,
    ip: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut counts = self.feed.stream_counts();
        counts.total = counts.total.saturating_sub(1);
        // Addresses without streams leave the map: it holds no more
        // entries than there are open streams.
        if let Entry::Occupied(mut open) = counts.by_ip.entry(std::mem::take(&mut self.ip)) {
            *open.get_mut() = open.get().saturating_sub(1);
            if *open.get() == 0 {
                open.remove();
            }
        }
    }
}

impl Default for RatesFeed {
    fn default() -> Self {
        let (relay, _) = broadcast::channel(256);
        Self {
            latest: RwLock::new(BTreeMap::new()),
            crypto: RwLock::new(HashSet::new()),
            known: RwLock::new(Vec::new()),
            relay,
            streams: Mutex::new(StreamCounts::default()),
            closing: watch::Sender::new(false),
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

    /// Takes a place for one more event stream of client `ip`, unless the
    /// client or the process already holds as many as allowed.
    pub fn open_stream(
        self: &Arc<Self>,
        ip: String,
        max_per_ip: usize,
        max_total: usize,
    ) -> Result<StreamSlot, StreamRefused> {
        let mut counts = self.stream_counts();
        if counts.by_ip.get(&ip).copied().unwrap_or(0) >= max_per_ip {
            return Err(StreamRefused::PerIp);
        }
        if counts.total >= max_total {
            return Err(StreamRefused::Total);
        }
        *counts.by_ip.entry(ip.clone()).or_default() += 1;
        counts.total += 1;
        drop(counts);
        Ok(StreamSlot {
            feed: Arc::clone(self),
            ip,
        })
    }

    /// The event streams open now.
    pub fn open_streams(&self) -> usize {
        self.stream_counts().total
    }

    /// Ends every event stream, open or opened from now on (shutdown).
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// Completes when the event streams are to end.
    pub fn streams_closed(&self) -> impl Future<Output = ()> + Send + use<> {
        let mut closing = self.closing.subscribe();
        async move {
            // An error means the feed itself is gone: end too.
            let _ = closing.wait_for(|closing| *closing).await;
        }
    }

    fn stream_counts(&self) -> MutexGuard<'_, StreamCounts> {
        // The counts stay consistent even if a holder panicked: every
        // update is a single step.
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
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
    let cached = queue::rates::cached(&state.redis, &state.config.redis.prefix)
        .await
        .unwrap_or_default();
    let mut rates: Vec<Rate> = cached
        .iter()
        .filter_map(|json| serde_json::from_str::<CachedPrice>(json).ok())
        .map(Rate::from)
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
    let prefix = state.config.redis.prefix.clone();
    loop {
        let followed = queue::rates::follow(&state.redis_subscriber, &prefix, |payload| async {
            if let Ok(rates) = serde_json::from_str::<Vec<CachedPrice>>(&payload) {
                state
                    .rates
                    .merge(rates.into_iter().map(Rate::from).collect())
                    .await;
                // No subscribers is fine.
                let _ = state.rates.relay.send(Arc::from(payload));
            }
        })
        .await;
        if let Err(error) = followed {
            tracing::debug!(%error, "price stream unavailable");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_places_are_counted_per_ip_and_in_total_and_freed_on_drop() {
        let feed = Arc::new(RatesFeed::default());
        let open = |ip: &str| feed.open_stream(ip.to_owned(), 2, 3);
        let first = open("10.0.0.1").unwrap();
        let second = open("10.0.0.1").unwrap();
        assert_eq!(open("10.0.0.1").err(), Some(StreamRefused::PerIp));
        let other = open("10.0.0.2").unwrap();
        assert_eq!(open("10.0.0.3").err(), Some(StreamRefused::Total));
        drop(first);
        assert_eq!(feed.open_streams(), 2);
        let again = open("10.0.0.1").unwrap();
        drop((second, other, again));
        assert_eq!(feed.open_streams(), 0);
        assert!(
            feed.stream_counts().by_ip.is_empty(),
            "no entry outlives its streams"
        );
    }

    #[tokio::test]
    async fn closing_ends_streams_open_and_to_come() {
        let feed = RatesFeed::default();
        let before = feed.streams_closed();
        feed.close_streams();
        before.await;
        feed.streams_closed().await;
    }
}
