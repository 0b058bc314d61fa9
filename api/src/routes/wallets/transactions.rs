//! `GET /api/v1/wallets/{id}/transactions`, `GET /api/v1/transactions`.

use super::*;
use crate::routes::pagination::{self, Cursor};

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
#[expect(dead_code, reason = "documents the values of TxKind")]
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
    let limit = pagination::limit(params.limit)?;
    // The cursor is the last entry id, 8 bytes big-endian in base64url:
    // every string of that shape is a cursor, as the document says.
    let before = Cursor::<i64>::decode(params.cursor.as_deref())?;
    let mut conn = state.conn().await?;
    if let Some(wallet) = wallet
        && wallets::get(&mut conn, user_id, wallet).await?.is_none()
    {
        return Err(WalletError::NotFound.into());
    }
    let rows = wallets::history(&mut conn, user_id, wallet, kind, before, limit + 1).await?;
    let (rows, next_cursor) = pagination::page(rows, limit, |r| r.entry_id);
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
