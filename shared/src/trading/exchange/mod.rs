//! Where the house hedges: an [`Exchange`] places one market order per
//! clearing batch. [`Simulated`] (the default) fills at once in-process;
//! [`HttpExchange`] calls a JSON exchange API.
//!
//! Every call carries the batch id as its idempotency reference: an
//! exchange must answer a repeated reference with the order it already
//! placed, never a second one. That is what makes retries (ours, after a
//! timeout whose request may have arrived, or a redelivered job) safe.

mod http;
mod simulated;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
pub use http::HttpExchange;
use rust_decimal::Decimal;
pub use simulated::Simulated;
use uuid::Uuid;

use super::Side;
use crate::config::{ExchangeKind, TradingConfig};

/// One market order at the exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HedgeOrder {
    /// The clearing batch: the idempotency reference of the call.
    pub reference: Uuid,
    /// The crypto currency, e.g. `BTC`.
    pub currency: String,
    /// The house's side at the exchange is the user's side: users bought,
    /// so the house buys to cover what it sold them.
    pub side: Side,
    pub amount: Decimal,
    /// What the orders were worth to users, in USD (for limits and logs).
    pub usd_amount: Decimal,
}

/// The exchange's confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fill {
    /// The exchange's id of the order.
    pub reference: String,
    /// The average price it filled at, when the exchange says.
    pub price: Option<Decimal>,
    pub executed_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExchangeError {
    /// Down, slow or failing: try again later (the order may or may not
    /// have arrived; the reference makes a retry safe).
    #[error("exchange unavailable: {0}")]
    Unavailable(String),
    /// Refused or answered nonsense: retrying the same call will not help;
    /// an operator must look.
    #[error("exchange refused the order: {0}")]
    Rejected(String),
}

/// An outside exchange.
pub trait Exchange: Send + Sync {
    /// For logs and metrics.
    fn name(&self) -> &'static str;

    /// Places `order` (or returns the fill of the order already placed
    /// with its reference).
    fn place<'a>(&'a self, order: &'a HedgeOrder) -> BoxFuture<'a, Result<Fill, ExchangeError>>;
}

/// The exchange the configuration names.
pub fn from_config(config: &TradingConfig) -> Result<Arc<dyn Exchange>, String> {
    Ok(match config.exchange {
        ExchangeKind::Simulated => Arc::new(Simulated),
        ExchangeKind::Http => Arc::new(HttpExchange::new(config)?),
    })
}
