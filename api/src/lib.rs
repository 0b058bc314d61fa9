//! The Bourse HTTP API: validates requests, writes to PostgreSQL (queuing
//! jobs through the outbox in the same transaction) and answers JSON, with
//! problem+json errors everywhere.

pub mod auth;
pub mod cli;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod metrics;
pub mod middleware;
#[cfg(test)]
mod openapi_snapshot;
pub mod rate_limit;
pub mod rates_feed;
pub mod revocations;
pub mod routes;
pub mod server;
pub mod state;
pub mod user_cache;

use std::{future::Future, sync::Arc, time::Instant};

use anyhow::Context as _;
use shared::config::Config;

pub use crate::{routes::router, state::AppState};

/// How often a request's Redis call is retried on a fresh connection before
/// it fails (see `queue::connect`): once, so a request does not wait long
/// while Redis is away.
const REDIS_RETRIES: usize = 1;

/// Builds the shared state: a lazily connecting PostgreSQL pool and Redis
/// connection, so the API starts even while either is down.
pub fn state(config: Config) -> anyhow::Result<AppState> {
    let db = shared::db::pool(&config.database, "bourse-api")
        .map_err(anyhow::Error::msg)
        .context("DATABASE_URL")?;
    let (client, redis) =
        queue::connect(&config.redis, REDIS_RETRIES).map_err(anyhow::Error::msg)?;
    let relays = queue::wake::RelayWaker {
        redis: redis.clone(),
        prefix: config.redis.prefix.clone(),
    };
    Ok(AppState {
        config: Arc::new(config),
        db,
        relays,
        redis,
        redis_subscriber: client,
        rates: Arc::new(rates_feed::RatesFeed::default()),
        revoked: Arc::new(revocations::RevokedSessions::default()),
        metrics: Arc::new(metrics::HttpMetrics::new()),
        started: Instant::now(),
    })
}

/// Logs, with backoff, while PostgreSQL or Redis cannot be reached after
/// start, and once when both answer; then checks Redis's eviction policy
/// (see `queue::check_eviction_policy`). Never fails the process: requests
/// get 503 `unavailable` meanwhile, and the API recovers by itself.
pub async fn wait_for_dependencies(state: AppState) {
    use secrecy::ExposeSecret as _;
    let config = &state.config;
    let postgres =
        shared::startup::wait_for_postgres(&state.db, config.database.url.expose_secret(), None);
    let redis = async {
        if queue::wait_until_reachable(&state.redis, &config.redis, None)
            .await
            .is_ok()
        {
            queue::check_eviction_policy(&state.redis).await;
        }
    };
    let _ = tokio::join!(postgres, redis);
}

/// Serves on an already bound listener until `shutdown` completes, then
/// ends the event streams and finishes in-flight requests (for at most
/// `REQUEST_TIMEOUT_SECS`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_router(listener, state.clone(), router(state), shutdown).await
}

/// [`serve`] for a router the caller assembled (tests add routes). Also
/// keeps the in-memory price mirror current while serving.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    state: AppState,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let feed = tokio::spawn(rates_feed::follow(state.clone()));
    let revoked = tokio::spawn(revocations::follow(state.clone()));
    let rates = Arc::clone(&state.rates);
    // Event streams never end by themselves: they end first, or the drain
    // would wait for them in vain.
    let shutdown = async move {
        shutdown.await;
        rates.close_streams();
    };
    let timeouts = server::Timeouts::from_config(&state.config.http);
    server::serve(listener, router, timeouts, shutdown).await;
    feed.abort();
    revoked.abort();
    Ok(())
}
