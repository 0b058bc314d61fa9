use std::{sync::Arc, time::Instant};

use shared::{config::Config, db::DbPool};

use crate::{metrics::HttpMetrics, rates_feed::RatesFeed};

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: DbPool,
    /// Lazily connected; the API starts and takes writes while Redis is down.
    pub redis: queue::Conn,
    /// Wakes the outbox relays after a request queued a job due now.
    pub relays: queue::wake::RelayWaker,
    /// For subscriptions (SSE relay).
    pub redis_subscriber: queue::Subscriber,
    pub rates: Arc<RatesFeed>,
    /// Sessions whose access tokens are refused (see `revocations`).
    pub revoked: Arc<crate::revocations::RevokedSessions>,
    pub metrics: Arc<HttpMetrics>,
    pub started: Instant,
}

impl AppState {
    /// A pooled connection, or 503 when PostgreSQL cannot be reached.
    pub async fn conn(&self) -> Result<shared::db::DbConn, crate::error::ApiError> {
        Ok(self.db.get().await?)
    }
}
