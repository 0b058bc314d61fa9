//! `/orders`: buying crypto from and selling it to the house
//! (PRODUCT.md §6). Placing an order moves money at once; the house's hedge
//! at the exchange (clearing) happens in the worker afterwards.

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
        .routes(routes!(buy))
        .routes(routes!(sell))
        .routes(routes!(list_orders))
        .routes(routes!(get_order))
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
#[allow(dead_code, reason = "documents the values of OrderResponse::side")]
pub enum OrderSide {
    Buy,
    Sell,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code, reason = "documents the values of OrderResponse::status")]
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuyRequest {
    /// A fiat currency is 422 `currency_not_supported`.
    #[schema(schema_with = spec::crypto, required = true)]
    currency: Option<String>,
    /// The crypto amount.
    #[schema(schema_with = spec::crypto_amount, required = true)]
    amount: Option<AmountInput>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SellRequest {
    /// A fiat currency is 422 `currency_not_supported`.
    #[schema(schema_with = spec::crypto, required = true)]
    currency: Option<String>,
    /// The crypto amount.
    #[schema(schema_with = spec::crypto_amount, required = true)]
    amount: Option<AmountInput>,
    /// Pay the USD to this user's USD wallet instead of yours (404 when
    /// there is no such user or wallet).
    #[schema(pattern = "^[A-Za-z0-9_]{3,32}$", example = "grace_hopper")]
    to_username: Option<String>,
}

/// The validated parts of an order request.
struct Parsed {
    currency: String,
    amount: rust_decimal::Decimal,
}

/// Checks the currency (a known crypto currency) and the amount (within
/// its places).
async fn parse(
    state: &AppState,
    currency: Option<&str>,
    amount: Option<&AmountInput>,
) -> Result<Parsed, ApiError> {
    let mut errors = std::collections::BTreeMap::new();
    let code = currency.map(|c| c.trim().to_ascii_uppercase());
    let known = match &code {
        None => {
            errors.insert("currency".to_owned(), "is required".to_owned());
            None
        }
        Some(code) => {
            let mut conn = state.conn().await?;
            let found = currencies::find(&mut conn, code).await?;
            if found.is_none() {
                errors.insert("currency".to_owned(), format!("unknown currency {code:?}"));
            }
            found
        }
    };
    let parsed = match (amount, &known) {
        (None, _) => {
            errors.insert("amount".to_owned(), "is required".to_owned());
            None
        }
        (Some(raw), Some(currency)) => {
            match shared::money::parse_json_amount(raw, currency.decimals) {
                Ok(amount) => Some(amount),
                Err(message) => {
                    errors.insert("amount".to_owned(), message);
                    None
                }
            }
        }
        (Some(_), None) => None,
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(
            "the request has invalid fields",
            errors,
        ));
    }
    let (Some(currency), Some(amount)) = (known, parsed) else {
        return Err(ApiError::internal("order validation lost a field"));
    };
    if currency.kind != Kind::Crypto {
        return Err(ApiError::Refused {
            code: ErrorCode::CurrencyNotSupported,
            detail: format!(
                "{} is a fiat currency: orders buy and sell crypto for USD (use a transfer to convert fiat)",
                currency.code
            ),
        });
    }
    Ok(Parsed {
        currency: currency.code,
        amount,
    })
}

async fn place(
    state: AppState,
    user_id: Uuid,
    key: Option<String>,
    path: &str,
    fingerprint: Value,
    order: PlaceOrder,
) -> Result<Response, ApiError> {
    let hash = idempotency::fingerprint("POST", path, &fingerprint);
    let rates = state.config.rates.clone();
    let operation: Operation = Box::new(move |conn| {
        Box::pin(async move {
            let placed = trading::place(conn, &rates, order, Utc::now()).await?;
            Ok((
                StatusCode::CREATED,
                serde_json::to_value(OrderResponse::from(placed)).unwrap_or_default(),
            ))
        })
    });
    idempotency::run(&state, user_id, key, hash, operation).await
}

/// Buy crypto with USD.
///
/// Paid from your USD wallet (which must exist) at the fresh price, rounded
/// up to the cent; the crypto wallet is opened if you have none. The order
/// is `pending` until the house has hedged it at the exchange. Refusals:
/// 422 `insufficient_funds`, `wallet_blocked`, `rate_unavailable`,
/// `currency_not_supported` (a fiat currency). Accepts `Idempotency-Key`.
#[utoipa::path(
    post,
    path = "/orders/buy",
    tag = "orders",
    security(("bearer" = []), ("cookie" = [])),
    params(spec::IdempotencyHeader),
    request_body = BuyRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::SignedInWrite,
        (status = 201, description = "Bought", body = OrderResponse),
        (status = 403, description = "Email not verified (`email_not_verified`), or signed in by cookie without the CSRF proof (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "You have no USD wallet (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Idempotency-Key reused with another request, or its first request still running (`conflict`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`insufficient_funds`, `wallet_blocked`, `rate_unavailable`, `currency_not_supported` or `limit_exceeded` (a balance would pass its cap)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn buy(
    State(state): State<AppState>,
    VerifiedUser(user): VerifiedUser,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<BuyRequest>,
) -> Result<Response, ApiError> {
    let parsed = parse(&state, body.currency.as_deref(), body.amount.as_ref()).await?;
    let fingerprint = serde_json::json!({ "currency": parsed.currency, "amount": parsed.amount });
    let order = PlaceOrder {
        user_id: user.id,
        side: Side::Buy,
        currency: parsed.currency,
        amount: parsed.amount,
        to_username: None,
    };
    place(state, user.id, key, "/orders/buy", fingerprint, order).await
}

/// Sell crypto for USD.
///
/// At the fresh price, rounded down to the cent; the USD goes to your USD
/// wallet (opened if you have none) or, with `to_username`, to that user's
/// USD wallet (404 if there is no such user or wallet). Refusals: 422
/// `insufficient_funds`, `wallet_blocked`, `rate_unavailable`,
/// `currency_not_supported`. Accepts `Idempotency-Key`.
#[utoipa::path(
    post,
    path = "/orders/sell",
    tag = "orders",
    security(("bearer" = []), ("cookie" = [])),
    params(spec::IdempotencyHeader),
    request_body = SellRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::SignedInWrite,
        (status = 201, description = "Sold", body = OrderResponse),
        (status = 403, description = "Email not verified (`email_not_verified`), or signed in by cookie without the CSRF proof (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "You have no wallet in that currency, or no such recipient with a USD wallet (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Idempotency-Key reused with another request, or its first request still running (`conflict`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`insufficient_funds`, `wallet_blocked`, `rate_unavailable`, `currency_not_supported` or `limit_exceeded` (a balance would pass its cap)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sell(
    State(state): State<AppState>,
    VerifiedUser(user): VerifiedUser,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<SellRequest>,
) -> Result<Response, ApiError> {
    let to_username = match body.to_username.as_deref().map(str::trim) {
        Some("") => return Err(ApiError::field("to_username", "must not be empty")),
        Some(name) if super::auth::names_no_account(name) => {
            return Err(OrderError::RecipientNotFound(name.to_owned()).into());
        }
        other => other.map(str::to_owned),
    };
    let parsed = parse(&state, body.currency.as_deref(), body.amount.as_ref()).await?;
    let fingerprint = serde_json::json!({
        "currency": parsed.currency,
        "amount": parsed.amount,
        "to_username": to_username.as_deref().map(str::to_lowercase),
    });
    let order = PlaceOrder {
        user_id: user.id,
        side: Side::Sell,
        currency: parsed.currency,
        amount: parsed.amount,
        to_username,
    };
    place(state, user.id, key, "/orders/sell", fingerprint, order).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderParams {
    /// Only orders in this status.
    #[param(value_type = Option<OrderStatus>, inline)]
    status: Option<String>,
    /// Page size, default 20.
    #[param(minimum = 1, maximum = 100, nullable = false)]
    limit: Option<i64>,
    #[param(value_type = Option<spec::UuidCursor>, inline)]
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    pub items: Vec<OrderResponse>,
    pub next_cursor: Option<String>,
}

/// Your orders, newest first.
#[utoipa::path(
    get,
    path = "/orders",
    tag = "orders",
    security(("bearer" = []), ("cookie" = [])),
    params(OrderParams),
    responses(
        spec::Unavailable, spec::SignedIn,
        (status = 200, description = "One page", body = OrderPage),
        (status = 400, description = "Bad status, limit or cursor (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_orders(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Query(params): Query<OrderParams>,
) -> Result<axum::Json<OrderPage>, ApiError> {
    let status = match params.status.as_deref() {
        None => None,
        Some(s @ ("pending" | "cleared")) => Some(s),
        Some(_) => return Err(ApiError::field("status", "must be pending or cleared")),
    };
    let limit = pagination::limit(params.limit)?;
    let before = pagination::uuid_cursor(params.cursor.as_deref())?;
    let mut conn = state.conn().await?;
    let rows = trading::list(&mut conn, user.id, status, before, limit + 1).await?;
    let (rows, next_cursor) = pagination::uuid_page(rows, limit, |row| row.id);
    Ok(axum::Json(OrderPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// One of your orders.
#[utoipa::path(
    get,
    path = "/orders/{id}",
    tag = "orders",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        spec::Unavailable, spec::SignedIn,
        (status = 200, description = "The order", body = OrderResponse),
        (status = 404, description = "No such order of yours (`not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_order(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<axum::Json<OrderResponse>, ApiError> {
    let not_found = || ApiError::NotFound("no such order".into());
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let mut conn = state.conn().await?;
    let order = trading::get(&mut conn, user.id, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(axum::Json(order.into()))
}
