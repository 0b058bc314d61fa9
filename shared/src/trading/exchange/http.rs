//! A JSON exchange API (the protocol is documented in the README under
//! "Exchange API"):
//!
//! `POST {EXCHANGE_URL}/v1/orders` with `Idempotency-Key: <batch id>` and
//! `{"client_order_id", "symbol": "BTC-USD", "side", "type": "market",
//! "quantity"}`, answered `200`/`201` with `{"order_id", "client_order_id",
//! "status": "filled", "filled_quantity", "average_price", "filled_at"}`.
//! A repeated `client_order_id` must be answered with the order already
//! placed. Timeouts, connection failures, `429` and `5xx` are retried a few
//! times here and then reported as [`ExchangeError::Unavailable`]; any
//! other answer that is not a fill of exactly our order is
//! [`ExchangeError::Rejected`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use reqwest::StatusCode;
use rust_decimal::Decimal;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use super::{Exchange, ExchangeError, Fill, HedgeOrder};
use crate::config::TradingConfig;

pub struct HttpExchange {
    client: reqwest::Client,
    orders_url: String,
    api_key: Option<SecretString>,
    retries: u32,
    backoff: Duration,
}

#[derive(Serialize)]
struct OrderRequest<'a> {
    client_order_id: String,
    symbol: String,
    side: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    quantity: String,
}

#[derive(Deserialize)]
struct OrderResponse {
    order_id: String,
    client_order_id: String,
    status: String,
    filled_quantity: Option<Decimal>,
    average_price: Option<Decimal>,
    filled_at: Option<DateTime<Utc>>,
}

impl HttpExchange {
    pub fn new(config: &TradingConfig) -> Result<Self, String> {
        crate::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(config.exchange_timeout.min(Duration::from_secs(5)))
            .timeout(config.exchange_timeout)
            .user_agent("bourse/0.1 (+clearing)")
            .build()
            .map_err(|e| format!("cannot build the exchange HTTP client: {e}"))?;
        Ok(Self {
            client,
            orders_url: format!("{}/v1/orders", config.exchange_url),
            api_key: config.exchange_api_key.clone(),
            retries: config.exchange_retries,
            backoff: Duration::from_millis(200),
        })
    }

    /// Checks that `answer` is a complete fill of `order`.
    fn fill(order: &HedgeOrder, answer: OrderResponse) -> Result<Fill, ExchangeError> {
        if answer.client_order_id != order.reference.to_string() {
            return Err(ExchangeError::Rejected(format!(
                "answered for client_order_id {:?}, not {}",
                answer.client_order_id, order.reference
            )));
        }
        match answer.status.as_str() {
            "filled" => {}
            "rejected" | "canceled" | "cancelled" | "expired" => {
                return Err(ExchangeError::Rejected(format!(
                    "order {} is {}",
                    answer.order_id, answer.status
                )));
            }
            // Accepted but not filled yet: asking again later returns its
            // state then.
            other => {
                return Err(ExchangeError::Unavailable(format!(
                    "order {} is {other}, not filled yet",
                    answer.order_id
                )));
            }
        }
        if let Some(filled) = answer.filled_quantity
            && filled != order.amount
        {
            return Err(ExchangeError::Rejected(format!(
                "order {} filled {filled}, not {}",
                answer.order_id, order.amount
            )));
        }
        Ok(Fill {
            reference: answer.order_id,
            price: answer.average_price,
            executed_at: answer.filled_at.unwrap_or_else(Utc::now),
        })
    }

    async fn place_once(&self, order: &HedgeOrder) -> Result<Fill, Attempt> {
        let body = OrderRequest {
            client_order_id: order.reference.to_string(),
            symbol: format!("{}-USD", order.currency),
            side: order.side.as_str(),
            kind: "market",
            quantity: order.amount.normalize().to_string(),
        };
        let mut request = self
            .client
            .post(&self.orders_url)
            .header("Idempotency-Key", order.reference.to_string())
            .json(&body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let response = request.send().await.map_err(|error| {
            Attempt::Transient(if error.is_timeout() {
                "timed out".to_owned()
            } else if error.is_connect() {
                "cannot connect".to_owned()
            } else {
                error.to_string()
            })
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Attempt::Transient(format!("reading the answer failed: {e}")))?;
        let excerpt = || {
            String::from_utf8_lossy(&bytes)
                .chars()
                .take(200)
                .collect::<String>()
        };
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Attempt::Transient(format!("HTTP {status}: {}", excerpt())));
        }
        if !status.is_success() {
            return Err(Attempt::Final(ExchangeError::Rejected(format!(
                "HTTP {status}: {}",
                excerpt()
            ))));
        }
        let answer: OrderResponse = serde_json::from_slice(&bytes).map_err(|e| {
            Attempt::Final(ExchangeError::Rejected(format!(
                "unreadable answer ({e}): {}",
                excerpt()
            )))
        })?;
        Self::fill(order, answer).map_err(|error| match error {
            ExchangeError::Unavailable(reason) => Attempt::Transient(reason),
            rejected => Attempt::Final(rejected),
        })
    }
}

/// A failed call: worth repeating now, or not.
enum Attempt {
    Transient(String),
    Final(ExchangeError),
}

impl Exchange for HttpExchange {
    fn name(&self) -> &'static str {
        "http"
    }

    fn place<'a>(&'a self, order: &'a HedgeOrder) -> BoxFuture<'a, Result<Fill, ExchangeError>> {
        Box::pin(async move {
            let mut last = String::new();
            for attempt in 0..=self.retries {
                if attempt > 0 {
                    tokio::time::sleep(self.backoff * 2u32.pow(attempt - 1)).await;
                }
                match self.place_once(order).await {
                    Ok(fill) => return Ok(fill),
                    Err(Attempt::Final(error)) => return Err(error),
                    Err(Attempt::Transient(reason)) => last = reason,
                }
            }
            Err(ExchangeError::Unavailable(format!(
                "{last} (after {} calls)",
                self.retries + 1
            )))
        })
    }
}
