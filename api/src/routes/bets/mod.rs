//! `/bets`: bets on price moves (PRODUCT.md §7). Placing a bet escrows the
//! stake and queues its settlement for `settles_at`; the worker settles it
//! at the price in force then.

mod get;
mod list;
mod place;

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
        .routes(routes!(place::place_bet, list::list_bets))
        .routes(routes!(get::get_bet))
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
    /// USD per unit: an observation at or past it (at or below for `up`,
    /// at or above for `down`) before `settles_at` closes the bet at a
    /// total loss. Fixed at placement: start × (1 − 1/leverage) for `up`,
    /// start × (1 + 1/leverage) for `down`.
    pub liquidation_price: String,
    /// USD per unit: the price in force at `settles_at`, or the
    /// observation that liquidated the bet.
    pub end_price: Option<String>,
    /// Payout − stake, USD (negative for a loss).
    pub profit: Option<String>,
    /// What the wallet received, USD.
    pub payout: Option<String>,
    pub created_at: DateTime<Utc>,
    pub settles_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
    /// Closed early by an observation reaching `liquidation_price`
    /// (result `L`, payout 0).
    pub liquidated: bool,
}

/// Which way the price must move for the bet to win.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[expect(dead_code, reason = "documents the values of directions")]
pub enum BetDirection {
    Up,
    Down,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[expect(dead_code, reason = "documents the values of BetResponse::status")]
pub enum BetStatus {
    Open,
    Settled,
    Void,
}

/// Won, lost, or drawn (no move: the stake is returned).
#[derive(ToSchema)]
#[expect(dead_code, reason = "documents the values of BetResponse::result")]
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
            liquidation_price: b.liquidation_price.normalize().to_string(),
            end_price: b.end_price.map(|p| p.normalize().to_string()),
            profit: b.profit.map(|p| money(p, 2)),
            payout: b.payout.map(|p| money(p, 2)),
            created_at: b.created_at,
            settles_at: b.settles_at,
            settled_at: b.settled_at,
            liquidated: b.liquidated,
        }
    }
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
