//! `/orders`: buying crypto from and selling it to the house
//! (PRODUCT.md §6). Placing an order moves money at once; the house's hedge
//! at the exchange (clearing) happens in the worker afterwards.

mod get;
mod list;
mod place;

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::Response,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::money::AmountInput;
use shared::{
    currencies::{self, Kind},
    rates::RateError,
    trading::{self, Order, OrderError, PlaceOrder, Side},
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{amount::money, pagination};
use crate::{
    auth::{CurrentUser, VerifiedUser},
    error::{ApiError, ErrorCode, Problem},
    extract::ApiJson,
    idempotency::{self, IdempotencyKey, Operation},
    routes::spec,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(place::buy))
        .routes(routes!(place::sell))
        .routes(routes!(list::list_orders))
        .routes(routes!(get::get_order))
}

impl From<OrderError> for ApiError {
    fn from(error: OrderError) -> Self {
        let detail = error.to_string();
        match error {
            OrderError::NoWallet(currency) => ApiError::NotFound(format!(
                "you have no {currency} wallet: open one with POST /api/v1/wallets"
            )),
            OrderError::RecipientNotFound(_) => ApiError::NotFound(detail),
            OrderError::InsufficientFunds => ApiError::Refused {
                code: ErrorCode::InsufficientFunds,
                detail,
            },
            OrderError::Blocked => ApiError::Refused {
                code: ErrorCode::WalletBlocked,
                detail,
            },
            OrderError::BalanceCap => ApiError::Refused {
                code: ErrorCode::LimitExceeded,
                detail,
            },
            OrderError::Rate(RateError::Unavailable { symbol, reason }) => {
                ApiError::rate_unavailable(&symbol, &reason)
            }
            OrderError::Rate(RateError::UnknownSymbol(symbol)) => {
                ApiError::field("currency", format!("unknown currency {symbol:?}"))
            }
            OrderError::Rate(RateError::Database(e)) | OrderError::Database(e) => e.into(),
            OrderError::InvalidAmount(message) => ApiError::field("amount", message),
            OrderError::Ledger(reason) => ApiError::internal(reason),
        }
    }
}

/// An order as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderResponse {
    pub id: Uuid,
    #[schema(value_type = OrderSide)]
    pub side: &'static str,
    /// The crypto currency, e.g. `BTC`.
    pub currency: String,
    /// The crypto amount bought or sold.
    #[schema(example = "0.01500000")]
    pub amount: String,
    /// USD per unit: the fresh price the order was placed at.
    #[schema(example = "43210.55")]
    pub price_usd: String,
    /// USD paid (buy: rounded up to the cent) or received (sell: rounded
    /// down).
    #[schema(example = "648.16")]
    pub usd_amount: String,
    /// `pending` until the house has hedged it at the exchange, then
    /// `cleared`.
    #[schema(value_type = OrderStatus)]
    pub status: &'static str,
    /// A sale whose USD went to another user: their username.
    pub to_username: Option<String>,
    /// Your crypto wallet that paid or received.
    pub wallet_id: Uuid,
    /// Your USD wallet that paid or received (none for a sale to another
    /// user).
    pub usd_wallet_id: Option<Uuid>,
    /// The ledger transaction of the order.
    pub transaction_id: Uuid,
    /// The exchange's reference of the clearing, once cleared.
    pub exchange_reference: Option<String>,
    pub cleared_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[expect(dead_code, reason = "documents the values of OrderResponse::side")]
pub enum OrderSide {
    Buy,
    Sell,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[expect(dead_code, reason = "documents the values of OrderResponse::status")]
pub enum OrderStatus {
    Pending,
    Cleared,
}

impl From<Order> for OrderResponse {
    fn from(o: Order) -> Self {
        Self {
            id: o.id,
            side: if o.side == "buy" { "buy" } else { "sell" },
            amount: money(o.amount, o.decimals),
            currency: o.currency,
            price_usd: o.price_usd.normalize().to_string(),
            usd_amount: money(o.usd_amount, 2),
            status: o.status.as_str(),
            usd_wallet_id: o.recipient.is_none().then_some(o.usd_wallet),
            to_username: o.recipient,
            wallet_id: o.crypto_wallet,
            transaction_id: o.transaction_id,
            exchange_reference: o.exchange_reference,
            cleared_at: o.cleared_at,
            created_at: o.created_at,
        }
    }
}
