//! `/wallets` and `/transactions`: holding and moving money.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::Response,
};
use base64::Engine as _;
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
        .routes(routes!(create_wallet, list_wallets))
        .routes(routes!(get_wallet, rename_wallet))
        .routes(routes!(deposit))
        .routes(routes!(withdraw))
        .routes(routes!(transfer))
        .routes(routes!(wallet_transactions))
        .routes(routes!(all_transactions))
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
#[allow(dead_code, reason = "documents the values of WalletResponse::status")]
pub enum WalletStatus {
    Active,
    Blocked,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WalletList {
    pub items: Vec<WalletResponse>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWalletRequest {
    #[schema(schema_with = spec::currency)]
    currency: String,
    /// 1 to 100 characters (surrounding spaces are dropped), no control
    /// characters. Defaults to "<Currency name> wallet".
    #[schema(
        max_length = 100,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x1F\\x7F-\\x9F]*$",
        example = "Travel money"
    )]
    name: Option<String>,
}

/// Open a wallet.
///
/// One wallet per currency: a second one is 409.
#[utoipa::path(
    post,
    path = "/wallets",
    tag = "wallets",
    security(("bearer" = []), ("cookie" = [])),
    request_body = CreateWalletRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::SignedInWrite,
        (status = 201, description = "The new wallet", body = WalletResponse),
        (status = 409, description = "You already have a wallet in this currency (`conflict`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_wallet(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<CreateWalletRequest>,
) -> Result<(StatusCode, axum::Json<WalletResponse>), ApiError> {
    let name = body
        .name
        .as_deref()
        .map(wallets::validate_name)
        .transpose()
        .map_err(|message| ApiError::field("name", message))?;
    let mut conn = state.conn().await?;
    let wallet = wallets::create(
        &mut conn,
        user.id,
        &body.currency.trim().to_ascii_uppercase(),
        name,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(wallet.into())))
}

/// Your wallets.
#[utoipa::path(
    get,
    path = "/wallets",
    tag = "wallets",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        spec::Unavailable, spec::SignedIn,
        (status = 200, description = "Every wallet you hold (one page: `next_cursor` is null)", body = WalletList),
    )
)]
pub async fn list_wallets(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<axum::Json<WalletList>, ApiError> {
    let mut conn = state.conn().await?;
    let items = wallets::list(&mut conn, user.id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(axum::Json(WalletList {
        items,
        next_cursor: None,
    }))
}

/// A wallet id from the path; a malformed one is simply not found.
fn wallet_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(WalletError::NotFound.to_string()))
}

/// One of your wallets.
#[utoipa::path(
    get,
    path = "/wallets/{id}",
    tag = "wallets",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Wallet id")),
    responses(
        spec::Unavailable, spec::SignedIn,
        (status = 200, description = "The wallet", body = WalletResponse),
        (status = 404, description = "No such wallet of yours (`not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_wallet(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<axum::Json<WalletResponse>, ApiError> {
    let id = wallet_id(&id)?;
    let mut conn = state.conn().await?;
    let wallet = wallets::get(&mut conn, user.id, id)
        .await?
        .ok_or(WalletError::NotFound)?;
    Ok(axum::Json(wallet.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameWalletRequest {
    /// 1 to 100 characters (surrounding spaces are dropped), no control
    /// characters.
    #[schema(
        max_length = 100,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x1F\\x7F-\\x9F]*$",
        example = "Travel money"
    )]
    name: String,
}

/// Rename one of your wallets.
#[utoipa::path(
    patch,
    path = "/wallets/{id}",
    tag = "wallets",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Wallet id")),
    request_body = RenameWalletRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::SignedInWrite,
        (status = 200, description = "The renamed wallet", body = WalletResponse),
        (status = 404, description = "No such wallet of yours (`not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rename_wallet(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RenameWalletRequest>,
) -> Result<axum::Json<WalletResponse>, ApiError> {
    let id = wallet_id(&id)?;
    let name =
        wallets::validate_name(&body.name).map_err(|message| ApiError::field("name", message))?;
    let mut conn = state.conn().await?;
    Ok(axum::Json(
        wallets::rename(&mut conn, user.id, id, &name).await?.into(),
    ))
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

/// Deposit into a fiat wallet.
///
/// Stands for a card top-up. Crypto wallets are 422
/// `currency_not_supported`. Accepts `Idempotency-Key`.
#[utoipa::path(
    post,
    path = "/wallets/{id}/deposit",
    tag = "wallets",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Wallet id"), spec::IdempotencyHeader),
    request_body = AmountRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::SignedInWrite,
        (status = 201, description = "Deposited", body = MovementResponse),
        (status = 403, description = "Email not verified (`email_not_verified`), or signed in by cookie without the CSRF proof (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such wallet of yours (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Idempotency-Key reused with another request, or its first request still running (`conflict`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`currency_not_supported` (a crypto wallet) or `limit_exceeded` (the balance would pass its cap)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn deposit(
    State(state): State<AppState>,
    caller: Authenticated,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AmountRequest>,
) -> Result<Response, ApiError> {
    let wallet = wallet_id(&id)?;
    let hash = request_hash(
        &format!("/wallets/{wallet}/deposit"),
        &Fingerprint {
            amount: &body.amount,
            to_wallet_number: None,
        },
    );
    let user_id = caller.user_id;
    let operation: Operation = Box::new(move |conn| {
        Box::pin(async move {
            let (wallet, amount) = wallet_and_amount(conn, user_id, wallet, &body.amount).await?;
            let receipt = wallets::deposit(conn, user_id, wallet, amount).await?;
            Ok(movement_answer(TxKind::Deposit, amount, receipt))
        })
    });
    idempotency::run(&state, caller.user_id, key, hash, operation).await
}

/// Withdraw from a fiat wallet.
///
/// Stands for a payout to a card. Refusals: 422 `insufficient_funds`,
/// `wallet_blocked`, `currency_not_supported`. Accepts `Idempotency-Key`.
#[utoipa::path(
    post,
    path = "/wallets/{id}/withdraw",
    tag = "wallets",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Wallet id"), spec::IdempotencyHeader),
    request_body = AmountRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::SignedInWrite,
        (status = 201, description = "Withdrawn", body = MovementResponse),
        (status = 403, description = "Email not verified (`email_not_verified`), or signed in by cookie without the CSRF proof (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such wallet of yours (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Idempotency-Key reused with another request, or its first request still running (`conflict`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`insufficient_funds`, `wallet_blocked` or `currency_not_supported`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn withdraw(
    State(state): State<AppState>,
    caller: Authenticated,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AmountRequest>,
) -> Result<Response, ApiError> {
    let wallet = wallet_id(&id)?;
    let hash = request_hash(
        &format!("/wallets/{wallet}/withdraw"),
        &Fingerprint {
            amount: &body.amount,
            to_wallet_number: None,
        },
    );
    let user_id = caller.user_id;
    let operation: Operation = Box::new(move |conn| {
        Box::pin(async move {
            let (wallet, amount) = wallet_and_amount(conn, user_id, wallet, &body.amount).await?;
            let receipt = wallets::withdraw(conn, user_id, wallet, amount).await?;
            Ok(movement_answer(TxKind::Withdrawal, amount, receipt))
        })
    });
    idempotency::run(&state, caller.user_id, key, hash, operation).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// The payee's ten-digit wallet number (anyone's).
    #[schema(value_type = String, required = true, pattern = "^[0-9]{10}$", example = "4821930571")]
    to_wallet_number: Option<String>,
    /// In your wallet's currency: two places for fiat, eight for crypto.
    #[schema(schema_with = spec::any_amount, required = true)]
    amount: Option<AmountInput>,
}

/// Pay another wallet.
///
/// Across currencies the payee receives the amount converted at fresh
/// prices, rounded down to its currency's places (the rate is stored).
/// Refusals: 422 `insufficient_funds`, `wallet_blocked`, `same_wallet`,
/// `rate_unavailable`. Accepts `Idempotency-Key`.
#[utoipa::path(
    post,
    path = "/wallets/{id}/transfer",
    tag = "wallets",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Your paying wallet's id"), spec::IdempotencyHeader),
    request_body = TransferRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::SignedInWrite,
        (status = 201, description = "Transferred", body = MovementResponse),
        (status = 403, description = "Email not verified (`email_not_verified`), or signed in by cookie without the CSRF proof (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such wallet of yours, or no wallet with that number (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Idempotency-Key reused with another request, or its first request still running (`conflict`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`insufficient_funds`, `wallet_blocked`, `same_wallet`, `rate_unavailable` or `limit_exceeded` (the payee's balance would pass its cap)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn transfer(
    State(state): State<AppState>,
    caller: Authenticated,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TransferRequest>,
) -> Result<Response, ApiError> {
    let wallet = wallet_id(&id)?;
    let number = body.to_wallet_number.as_deref().map(WalletNumber::parse);
    let mut errors = std::collections::BTreeMap::new();
    match &number {
        None => {
            errors.insert("to_wallet_number".to_owned(), "is required".to_owned());
        }
        Some(Err(message)) => {
            errors.insert("to_wallet_number".to_owned(), (*message).to_owned());
        }
        Some(Ok(_)) => {}
    }
    if body.amount.is_none() {
        errors.insert("amount".to_owned(), "is required".to_owned());
    }
    if !errors.is_empty() {
        // A caller who may not move money hears that first.
        wallets::may_move_money(&mut *state.conn().await?, caller.user_id).await??;
        return Err(ApiError::validation(
            "the request has invalid fields",
            errors,
        ));
    }
    let Some(Ok(number)) = number else {
        return Err(ApiError::field("to_wallet_number", "is required"));
    };
    let hash = request_hash(
        &format!("/wallets/{wallet}/transfer"),
        &Fingerprint {
            amount: &body.amount,
            to_wallet_number: Some(number.as_str()),
        },
    );
    let user_id = caller.user_id;
    let rates = state.config.rates.clone();
    let operation: Operation = Box::new(move |conn| {
        Box::pin(async move {
            let (payer, payee) = wallets::payer_and_payee(conn, user_id, wallet, &number).await?;
            let payer = payer?;
            let amount = amount_in(&payer, &body.amount)?;
            let payee =
                payee.ok_or_else(|| WalletError::RecipientNotFound(number.as_str().to_owned()))?;
            let receipt =
                wallets::transfer(conn, &rates, user_id, payer, payee, amount, Utc::now()).await?;
            Ok(movement_answer(TxKind::Transfer, amount, receipt))
        })
    });
    idempotency::run(&state, caller.user_id, key, hash, operation).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Only movements of this type.
    #[serde(rename = "type")]
    #[param(value_type = Option<TransactionType>, inline)]
    kind: Option<String>,
    /// Page size, default 20.
    #[param(minimum = 1, maximum = 100, nullable = false)]
    limit: Option<i64>,
    #[param(value_type = Option<spec::EntryCursor>, inline)]
    cursor: Option<String>,
}

/// The type of a movement.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code, reason = "documents the values of TxKind")]
pub enum TransactionType {
    Deposit,
    Withdrawal,
    Transfer,
    Buy,
    Sell,
    BetStake,
    BetPayout,
    Fee,
}

/// One movement as seen from one of your wallets.
#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionItem {
    pub id: Uuid,
    #[serde(rename = "type")]
    #[schema(value_type = TransactionType)]
    pub kind: String,
    pub wallet_id: Uuid,
    pub wallet_number: String,
    /// Signed: positive when money came into the wallet.
    pub amount: String,
    pub currency: String,
    /// The other wallet of a transfer.
    pub counterparty_wallet_number: Option<String>,
    /// What the other side sent or received, in its currency.
    pub counterparty_amount: Option<String>,
    pub counterparty_currency: Option<String>,
    pub rate: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransactionPage {
    pub items: Vec<TransactionItem>,
    pub next_cursor: Option<String>,
}

impl From<HistoryItem> for TransactionItem {
    fn from(h: HistoryItem) -> Self {
        Self {
            id: h.transaction_id,
            kind: h.kind,
            wallet_id: h.wallet_id,
            wallet_number: h.wallet_number,
            amount: money(h.amount, h.decimals),
            currency: h.currency,
            counterparty_wallet_number: h.counterparty_wallet_number,
            counterparty_amount: h
                .counterparty_amount
                .map(|a| money(a, h.counterparty_decimals.unwrap_or(h.decimals))),
            counterparty_currency: h.counterparty_currency,
            rate: h.rate.map(|r| r.normalize().to_string()),
            created_at: h.created_at,
        }
    }
}

async fn history_page(
    state: &AppState,
    user_id: Uuid,
    wallet: Option<Uuid>,
    params: HistoryParams,
) -> Result<axum::Json<TransactionPage>, ApiError> {
    let kind = match params.kind.as_deref() {
        None => None,
        Some(raw) => Some(
            TxKind::parse(raw)
                .ok_or_else(|| ApiError::field("type", "must be deposit, withdrawal, transfer, buy, sell, bet_stake, bet_payout or fee"))?
                .as_str(),
        ),
    };
    let limit = super::pagination::limit(params.limit)?;
    // The cursor is the last entry id, 8 bytes big-endian in base64url:
    // every string of that shape is a cursor, as the document says.
    let before = match params.cursor.as_deref() {
        None => None,
        Some(raw) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(raw.trim())
                .ok()
                .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
                .map(i64::from_be_bytes)
                .ok_or_else(|| ApiError::field("cursor", "is not a cursor from this endpoint"))?,
        ),
    };
    let mut conn = state.conn().await?;
    if let Some(wallet) = wallet
        && wallets::get(&mut conn, user_id, wallet).await?.is_none()
    {
        return Err(WalletError::NotFound.into());
    }
    let mut rows = wallets::history(&mut conn, user_id, wallet, kind, before, limit + 1).await?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(0);
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = more
        .then(|| {
            rows.last().map(|r| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r.entry_id.to_be_bytes())
            })
        })
        .flatten();
    Ok(axum::Json(TransactionPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Movements of one of your wallets, newest first.
#[utoipa::path(
    get,
    path = "/wallets/{id}/transactions",
    tag = "wallets",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Wallet id"), HistoryParams),
    responses(
        spec::Unavailable, spec::SignedIn,
        (status = 200, description = "One page", body = TransactionPage),
        (status = 400, description = "Bad type, limit or cursor (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such wallet of yours (`not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn wallet_transactions(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    Query(params): Query<HistoryParams>,
) -> Result<axum::Json<TransactionPage>, ApiError> {
    let wallet = wallet_id(&id)?;
    history_page(&state, user.id, Some(wallet), params).await
}

/// Movements of all your wallets, newest first.
#[utoipa::path(
    get,
    path = "/transactions",
    tag = "wallets",
    security(("bearer" = []), ("cookie" = [])),
    params(HistoryParams),
    responses(
        spec::Unavailable, spec::SignedIn,
        (status = 200, description = "One page", body = TransactionPage),
        (status = 400, description = "Bad type, limit or cursor (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn all_transactions(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Query(params): Query<HistoryParams>,
) -> Result<axum::Json<TransactionPage>, ApiError> {
    history_page(&state, user.id, None, params).await
}
