//! `/bets`: bets on price moves (PRODUCT.md §7). Placing a bet escrows the
//! stake and queues its settlement for `settles_at`; the worker settles it
//! at the price in force then.

use std::collections::BTreeMap;

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
    bets::{self, Bet, BetError, Direction, PlaceBet},
    currencies::{self, Kind},
    rates::RateError,
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
        .routes(routes!(place_bet, list_bets))
        .routes(routes!(get_bet))
}

impl From<BetError> for ApiError {
    fn from(error: BetError) -> Self {
        let detail = error.to_string();
        match error {
            BetError::NoWallet => ApiError::NotFound(
                "you have no USD wallet: open one with POST /api/v1/wallets".into(),
            ),
            BetError::Limit(detail) => ApiError::Refused {
                code: ErrorCode::LimitExceeded,
                detail,
            },
            BetError::InsufficientFunds => ApiError::Refused {
                code: ErrorCode::InsufficientFunds,
                detail,
            },
            BetError::Blocked => ApiError::Refused {
                code: ErrorCode::WalletBlocked,
                detail,
            },
            BetError::BalanceCap => ApiError::Refused {
                code: ErrorCode::LimitExceeded,
                detail,
            },
            BetError::Rate(RateError::Unavailable { symbol, reason }) => {
                ApiError::rate_unavailable(&symbol, &reason)
            }
            BetError::Rate(RateError::UnknownSymbol(symbol)) => {
                ApiError::field("symbol", format!("unknown symbol {symbol:?}"))
            }
            BetError::Rate(RateError::Database(e)) | BetError::Database(e) => e.into(),
            BetError::UnknownBet(_) => ApiError::NotFound("no such bet".into()),
            BetError::Ledger(reason) => ApiError::internal(reason),
        }
    }
}

/// A bet as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct BetResponse {
    pub id: Uuid,
    #[schema(example = "BTC")]
    pub symbol: String,
    #[schema(value_type = BetDirection)]
    pub direction: String,
    /// USD.
    #[schema(example = "10.00")]
    pub stake: String,
    pub leverage: i32,
    pub duration_seconds: i32,
    /// `open`, `settled` or `void` (no fresh price at `settles_at`: the
    /// stake was returned).
    #[schema(value_type = BetStatus)]
    pub status: &'static str,
    /// `W`, `L` or `D` once settled.
    #[schema(value_type = Option<BetResult>)]
    pub result: Option<String>,
    /// USD per unit: the price in force when the bet was placed.
    pub start_price: String,
    /// USD per unit: the price in force at `settles_at`.
    pub end_price: Option<String>,
    /// Payout − stake, USD (negative for a loss).
    pub profit: Option<String>,
    /// What the wallet received, USD.
    pub payout: Option<String>,
    pub created_at: DateTime<Utc>,
    pub settles_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
}

/// Which way the price must move for the bet to win.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code, reason = "documents the values of directions")]
pub enum BetDirection {
    Up,
    Down,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code, reason = "documents the values of BetResponse::status")]
pub enum BetStatus {
    Open,
    Settled,
    Void,
}

/// Won, lost, or drawn (no move: the stake is returned).
#[derive(ToSchema)]
#[allow(dead_code, reason = "documents the values of BetResponse::result")]
pub enum BetResult {
    W,
    L,
    D,
}

impl From<Bet> for BetResponse {
    fn from(b: Bet) -> Self {
        Self {
            id: b.id,
            symbol: b.symbol,
            direction: b.direction,
            stake: money(b.stake, 2),
            leverage: b.leverage,
            duration_seconds: b.duration_seconds,
            status: b.status.as_str(),
            result: b.result,
            start_price: b.start_price.normalize().to_string(),
            end_price: b.end_price.map(|p| p.normalize().to_string()),
            profit: b.profit.map(|p| money(p, 2)),
            payout: b.payout.map(|p| money(p, 2)),
            created_at: b.created_at,
            settles_at: b.settles_at,
            settled_at: b.settled_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BetRequest {
    /// A fiat currency is 422 `currency_not_supported`.
    #[schema(schema_with = spec::crypto, required = true)]
    symbol: Option<String>,
    #[schema(value_type = BetDirection, required = true)]
    direction: Option<String>,
    /// USD from your USD wallet; outside the configured stake limits it is
    /// 422 `limit_exceeded`.
    #[schema(schema_with = spec::fiat_amount, required = true)]
    stake: Option<AmountInput>,
    #[schema(schema_with = spec::leverage, required = true)]
    leverage: Option<Value>,
    /// Seconds until settlement.
    #[schema(schema_with = spec::duration_seconds, required = true)]
    duration_seconds: Option<Value>,
    /// Refused: the server sets the price.
    #[schema(ignore)]
    start_price: Option<Value>,
    /// Refused: the server sets the price.
    #[schema(ignore)]
    price: Option<Value>,
    /// Refused: the server sets the price.
    #[schema(ignore)]
    end_price: Option<Value>,
}

/// A whole number in `range`, from a JSON number (or a string of digits).
fn whole(raw: Option<&Value>, range: std::ops::RangeInclusive<u32>) -> Result<u32, String> {
    let message = || {
        format!(
            "must be a whole number from {} to {}",
            range.start(),
            range.end()
        )
    };
    let value = match raw {
        None => return Err("is required".into()),
        Some(Value::Number(n)) => whole_json_number(n),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    value
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| range.contains(v))
        .ok_or_else(message)
}

/// A JSON number with no fraction, however written: `60`, `60.0` (JSON
/// Schema's `integer` allows both, and many encoders write the second) or
/// `6e1`.
fn whole_json_number(n: &serde_json::Number) -> Option<u64> {
    use rust_decimal::prelude::ToPrimitive as _;
    if let Some(whole) = n.as_u64() {
        return Some(whole);
    }
    let text = n.to_string();
    let value = text
        .parse::<rust_decimal::Decimal>()
        .or_else(|_| rust_decimal::Decimal::from_scientific(&text))
        .ok()?;
    if value.is_integer() {
        value.to_u64()
    } else {
        None
    }
}

/// Bet on a price move.
///
/// The server sets the start price (the price in force now, which must be
/// fresh) and `settles_at` = now + `duration_seconds`; a client-supplied
/// price is a 400. The stake moves from your USD wallet to escrow at once;
/// at `settles_at` the bet is settled at the price in force then: P&L =
/// stake × leverage × (end − start) / start (sign by direction, at worst
/// −stake), paid out rounded down to the cent. No fresh price at
/// `settles_at`: `void`, stake returned. You are emailed the outcome.
/// Refusals: 422 `limit_exceeded` (stake outside the limits),
/// `insufficient_funds`, `wallet_blocked`, `rate_unavailable`,
/// `currency_not_supported`. Accepts `Idempotency-Key`.
#[utoipa::path(
    post,
    path = "/bets",
    tag = "bets",
    security(("bearer" = []), ("cookie" = [])),
    params(spec::IdempotencyHeader),
    request_body = BetRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::SignedInWrite,
        (status = 201, description = "The open bet", body = BetResponse),
        (status = 400, description = "Bad or missing field, or a client-supplied price (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Email not verified (`email_not_verified`), or signed in by cookie without the CSRF proof (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "You have no USD wallet (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Idempotency-Key reused with another request, or its first request still running (`conflict`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`limit_exceeded`, `insufficient_funds`, `wallet_blocked`, `rate_unavailable` or `currency_not_supported`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn place_bet(
    State(state): State<AppState>,
    VerifiedUser(user): VerifiedUser,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<BetRequest>,
) -> Result<Response, ApiError> {
    let mut errors = BTreeMap::new();
    for (field, given) in [
        ("start_price", &body.start_price),
        ("price", &body.price),
        ("end_price", &body.end_price),
    ] {
        if given.is_some() {
            errors.insert(
                field.to_owned(),
                "is set by the server, not the client".to_owned(),
            );
        }
    }
    let symbol = body
        .symbol
        .as_deref()
        .map(|s| s.trim().to_ascii_uppercase());
    let currency = match &symbol {
        None => {
            errors.insert("symbol".into(), "is required".into());
            None
        }
        Some(code) => {
            let mut conn = state.conn().await?;
            let found = currencies::find(&mut conn, code).await?;
            if found.is_none() {
                errors.insert("symbol".into(), format!("unknown symbol {code:?}"));
            }
            found
        }
    };
    let direction = match body.direction.as_deref().map(str::trim) {
        None => {
            errors.insert("direction".into(), "is required".into());
            None
        }
        Some(raw) => Direction::parse(raw).or_else(|| {
            errors.insert("direction".into(), "must be up or down".into());
            None
        }),
    };
    let stake = match &body.stake {
        None => {
            errors.insert("stake".into(), "is required".into());
            None
        }
        Some(raw) => shared::money::parse_json_amount(raw, 2)
            .map_err(|m| errors.insert("stake".into(), m))
            .ok(),
    };
    let leverage = whole(body.leverage.as_ref(), 1..=100)
        .map_err(|m| errors.insert("leverage".into(), m))
        .ok();
    let duration = whole(body.duration_seconds.as_ref(), 10..=86_400)
        .map_err(|m| errors.insert("duration_seconds".into(), m))
        .ok();
    if !errors.is_empty() {
        return Err(ApiError::validation(
            "the request has invalid fields",
            errors,
        ));
    }
    let (Some(currency), Some(direction), Some(stake), Some(leverage), Some(duration)) =
        (currency, direction, stake, leverage, duration)
    else {
        return Err(ApiError::internal("bet validation lost a field"));
    };
    if currency.kind != Kind::Crypto {
        return Err(ApiError::Refused {
            code: ErrorCode::CurrencyNotSupported,
            detail: format!("bets are on crypto prices; {} is fiat", currency.code),
        });
    }
    let hash = idempotency::fingerprint(
        "POST",
        "/bets",
        &serde_json::json!({
            "symbol": currency.code,
            "direction": direction.as_str(),
            "stake": stake,
            "leverage": leverage,
            "duration_seconds": duration,
        }),
    );
    let bet = PlaceBet {
        user_id: user.id,
        symbol: currency.code,
        direction,
        stake,
        leverage,
        duration_seconds: duration,
    };
    let rates = state.config.rates.clone();
    let limits = state.config.bets.clone();
    let operation: Operation = Box::new(move |conn| {
        Box::pin(async move {
            let placed = bets::place(conn, &rates, &limits, bet).await?;
            Ok((
                StatusCode::CREATED,
                serde_json::to_value(BetResponse::from(placed)).unwrap_or_default(),
            ))
        })
    });
    idempotency::run(&state, user.id, key, hash, operation).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BetParams {
    /// Only bets in this status.
    #[param(value_type = Option<BetStatus>, inline)]
    status: Option<String>,
    /// Page size, default 20.
    #[param(minimum = 1, maximum = 100, nullable = false)]
    limit: Option<i64>,
    #[param(value_type = Option<spec::UuidCursor>, inline)]
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BetPage {
    pub items: Vec<BetResponse>,
    pub next_cursor: Option<String>,
}

/// Your bets, newest first.
#[utoipa::path(
    get,
    path = "/bets",
    tag = "bets",
    security(("bearer" = []), ("cookie" = [])),
    params(BetParams),
    responses(
        spec::Unavailable, spec::SignedIn,
        (status = 200, description = "One page", body = BetPage),
        (status = 400, description = "Bad status, limit or cursor (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_bets(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Query(params): Query<BetParams>,
) -> Result<axum::Json<BetPage>, ApiError> {
    let status = match params.status.as_deref() {
        None => None,
        Some(s @ ("open" | "settled" | "void")) => Some(s),
        Some(_) => return Err(ApiError::field("status", "must be open, settled or void")),
    };
    let limit = pagination::limit(params.limit)?;
    let before = pagination::uuid_cursor(params.cursor.as_deref())?;
    let mut conn = state.conn().await?;
    let rows = bets::list(&mut conn, user.id, status, before, limit + 1).await?;
    let (rows, next_cursor) = pagination::uuid_page(rows, limit, |row| row.id);
    Ok(axum::Json(BetPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// One of your bets.
#[utoipa::path(
    get,
    path = "/bets/{id}",
    tag = "bets",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Bet id")),
    responses(
        spec::Unavailable, spec::SignedIn,
        (status = 200, description = "The bet", body = BetResponse),
        (status = 404, description = "No such bet of yours (`not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_bet(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<axum::Json<BetResponse>, ApiError> {
    let not_found = || ApiError::NotFound("no such bet".into());
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let mut conn = state.conn().await?;
    let bet = bets::get(&mut conn, user.id, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(axum::Json(bet.into()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn whole_numbers_however_written() {
        let whole =
            |text: &str, range| super::whole(Some(&serde_json::from_str(text).unwrap()), range);
        assert_eq!(whole("60", 10..=86_400), Ok(60));
        assert_eq!(whole("60.0", 10..=86_400), Ok(60));
        assert_eq!(whole("6e1", 10..=86_400), Ok(60));
        assert_eq!(whole("\"60\"", 10..=86_400), Ok(60));
        for bad in ["60.5", "-60", "9", "86401", "1e30", "true", "\"sixty\""] {
            assert!(whole(bad, 10..=86_400).is_err(), "{bad}");
        }
    }
}
