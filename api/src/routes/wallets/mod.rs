//! `/wallets` and `/transactions`: holding and moving money.

mod create;
mod deposit;
mod get;
mod list;
mod rename;
mod transactions;
mod transfer;
mod withdraw;

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::Response,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::money::AmountInput;
use shared::{
    ledger::TxKind,
    wallets::{self, HistoryItem, Receipt, Wallet, WalletError, WalletNumber},
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::amount::money;
use crate::{
    auth::{Authenticated, CurrentUser},
    error::{ApiError, ErrorCode, Problem},
    extract::ApiJson,
    idempotency::{self, IdempotencyKey, Operation},
    routes::spec,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create::create_wallet, list::list_wallets))
        .routes(routes!(get::get_wallet, rename::rename_wallet))
        .routes(routes!(deposit::deposit))
        .routes(routes!(withdraw::withdraw))
        .routes(routes!(transfer::transfer))
        .routes(routes!(transactions::wallet_transactions))
        .routes(routes!(transactions::all_transactions))
}

impl From<WalletError> for ApiError {
    fn from(error: WalletError) -> Self {
        let refused = |code: ErrorCode, error: &WalletError| ApiError::Refused {
            code,
            detail: error.to_string(),
        };
        match error {
            WalletError::UnknownCurrency(ref code) => {
                ApiError::field("currency", format!("unknown currency {code:?}"))
            }
            WalletError::AlreadyExists(_) => {
                ApiError::Conflict(error.to_string(), Default::default())
            }
            WalletError::NotFound | WalletError::RecipientNotFound(_) => {
                ApiError::NotFound(error.to_string())
            }
            WalletError::CurrencyNotSupported(_) => {
                refused(ErrorCode::CurrencyNotSupported, &error)
            }
            WalletError::SameWallet => refused(ErrorCode::SameWallet, &error),
            WalletError::InsufficientFunds => refused(ErrorCode::InsufficientFunds, &error),
            WalletError::Blocked => refused(ErrorCode::WalletBlocked, &error),
            WalletError::BalanceCap => refused(ErrorCode::LimitExceeded, &error),
            WalletError::InvalidAmount(message) => ApiError::field("amount", message),
            WalletError::Rate(shared::rates::RateError::Unavailable { symbol, reason }) => {
                ApiError::rate_unavailable(&symbol, &reason)
            }
            WalletError::Rate(shared::rates::RateError::UnknownSymbol(symbol)) => {
                ApiError::internal(format!("wallet in unknown currency {symbol}"))
            }
            WalletError::Rate(shared::rates::RateError::Database(e)) | WalletError::Database(e) => {
                e.into()
            }
            WalletError::Ledger(reason) => ApiError::internal(reason),
        }
    }
}

/// A wallet as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WalletResponse {
    pub id: Uuid,
    pub currency: String,
    /// Ten digits; others pay this wallet by it.
    #[schema(example = "4821930571")]
    pub wallet_number: String,
    pub name: String,
    /// `active`, or `blocked` (can receive, cannot send or withdraw).
    #[schema(value_type = WalletStatus)]
    pub status: &'static str,
    #[schema(example = "125.50")]
    pub balance: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Wallet> for WalletResponse {
    fn from(w: Wallet) -> Self {
        Self {
            id: w.id,
            currency: w.currency,
            wallet_number: w.wallet_number,
            name: w.name,
            status: w.status.as_str(),
            balance: money(w.balance, w.decimals),
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// A wallet's status.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[expect(dead_code, reason = "documents the values of WalletResponse::status")]
pub enum WalletStatus {
    Active,
    Blocked,
}

/// A wallet id from the path; a malformed one is simply not found.
fn wallet_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(WalletError::NotFound.to_string()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmountRequest {
    /// Required. Deposits and withdrawals are fiat only (two places).
    #[schema(schema_with = spec::fiat_amount, required = true)]
    amount: Option<AmountInput>,
}

/// The result of a movement.
#[derive(Debug, Serialize, ToSchema)]
pub struct MovementResponse {
    pub transaction_id: Uuid,
    /// `deposit`, `withdrawal` or `transfer`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The wallet after the movement.
    pub wallet: WalletResponse,
    /// The amount that left or entered `wallet`.
    pub amount: String,
    pub currency: String,
    /// Transfers: the payee's wallet number and what it received.
    pub to_wallet_number: Option<String>,
    pub credited_amount: Option<String>,
    pub credited_currency: Option<String>,
    /// Units of the payee's currency per unit of yours, when converted.
    pub rate: Option<String>,
    pub created_at: DateTime<Utc>,
}

fn movement_answer(
    kind: TxKind,
    amount: rust_decimal::Decimal,
    receipt: Receipt,
) -> idempotency::Answer {
    let currency = receipt.wallet.currency.clone();
    let decimals = receipt.wallet.decimals;
    let credited_decimals = receipt.credited_decimals;
    let body = MovementResponse {
        transaction_id: receipt.transaction_id,
        kind: kind.as_str(),
        wallet: receipt.wallet.into(),
        amount: money(amount, decimals),
        currency,
        to_wallet_number: receipt.counterparty_number,
        credited_amount: receipt
            .credited
            .as_ref()
            .map(|(a, _)| money(*a, credited_decimals)),
        credited_currency: receipt.credited.map(|(_, c)| c),
        rate: receipt.rate.map(|r| r.normalize().to_string()),
        created_at: receipt.created_at,
    };
    (
        StatusCode::CREATED,
        serde_json::to_value(body).unwrap_or_default(),
    )
}

/// The user's wallet to move money with (their email must be verified)
/// and `amount` parsed for its currency (its decimal places).
async fn wallet_and_amount(
    conn: &mut diesel_async::AsyncPgConnection,
    user_id: Uuid,
    wallet: Uuid,
    raw: &Option<AmountInput>,
) -> Result<(Wallet, rust_decimal::Decimal), ApiError> {
    let wallet = wallets::for_movement(conn, user_id, wallet).await??;
    let amount = amount_in(&wallet, raw)?;
    Ok((wallet, amount))
}

/// `raw` as an amount of `wallet`'s currency.
fn amount_in(
    wallet: &Wallet,
    raw: &Option<AmountInput>,
) -> Result<rust_decimal::Decimal, ApiError> {
    let raw = raw
        .as_ref()
        .ok_or_else(|| ApiError::field("amount", "is required"))?;
    let decimals = u32::try_from(wallet.decimals).unwrap_or(0);
    shared::money::parse_json_amount(raw, decimals)
        .map_err(|message| ApiError::field("amount", message))
}

fn request_hash(path: &str, body: &impl Serialize) -> String {
    idempotency::fingerprint(
        "POST",
        path,
        &serde_json::to_value(body).unwrap_or_default(),
    )
}

#[derive(Serialize)]
struct Fingerprint<'a> {
    amount: &'a Option<AmountInput>,
    to_wallet_number: Option<&'a str>,
}
