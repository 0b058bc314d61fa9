//! Wallets (PRODUCT.md §5): one per user and currency, paid by its
//! 10-digit number. Deposits, withdrawals and transfers post through the
//! ledger; each writes with one statement (the ledger's posting), so it is
//! atomic alone and joins the caller's transaction when there is one (the
//! idempotency wrapper's).

mod history;
mod movements;

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
pub use history::{HistoryItem, history};
pub use movements::{Receipt, deposit, transfer, withdraw};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::{
    currencies as currency_table, db,
    ledger::LedgerError,
    rates::RateError,
    schema::{currencies, ledger_accounts, users, wallets},
};

crate::text_enum! {
    /// A blocked wallet owes monthly fees it could not pay: it takes
    /// credits (which pay the fees first) and nothing else.
    pub enum WalletStatus {
        Active = "active",
        Blocked = "blocked",
    }
}

/// A wallet with its balance.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName, Queryable)]
pub struct Wallet {
    #[diesel(sql_type = sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = sql_types::Uuid)]
    pub user_id: Uuid,
    #[diesel(sql_type = sql_types::Text)]
    pub currency: String,
    #[diesel(sql_type = sql_types::Text)]
    pub wallet_number: String,
    #[diesel(sql_type = sql_types::Text)]
    pub name: String,
    #[diesel(sql_type = sql_types::Text)]
    pub status: WalletStatus,
    #[diesel(sql_type = sql_types::Numeric)]
    pub balance: Decimal,
    /// Decimal places of the currency.
    #[diesel(sql_type = sql_types::SmallInt)]
    pub decimals: i16,
    #[diesel(sql_type = sql_types::Text)]
    pub kind: crate::currencies::Kind,
    #[diesel(sql_type = sql_types::Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = sql_types::Timestamptz)]
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// A credit would take a wallet past the balance cap.
    #[error(
        "the receiving wallet would hold more than {} units, the most one wallet may hold",
        crate::money::WALLET_BALANCE_CAP
    )]
    BalanceCap,
    #[error("unknown currency {0}")]
    UnknownCurrency(String),
    #[error("you already have a {0} wallet")]
    AlreadyExists(String),
    /// No such wallet, or not the caller's: never reveal which.
    #[error("no such wallet")]
    NotFound,
    #[error("no wallet with number {0}")]
    RecipientNotFound(String),
    #[error("{0} wallets cannot do this")]
    CurrencyNotSupported(String),
    #[error("a wallet cannot pay itself")]
    SameWallet,
    #[error("insufficient funds")]
    InsufficientFunds,
    #[error("this wallet is blocked: it can receive money but not send or withdraw it")]
    Blocked,
    #[error(transparent)]
    Rate(#[from] RateError),
    #[error("invalid amount: {0}")]
    InvalidAmount(String),
    #[error("{0}")]
    Ledger(String),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
}

impl Wallet {
    pub fn is_fiat(&self) -> bool {
        self.kind == crate::currencies::Kind::Fiat
    }
}

impl From<LedgerError> for WalletError {
    fn from(error: LedgerError) -> Self {
        match error {
            LedgerError::InsufficientFunds(_) => WalletError::InsufficientFunds,
            LedgerError::WalletBlocked(_) => WalletError::Blocked,
            LedgerError::BalanceCap(_) => WalletError::BalanceCap,
            LedgerError::Unbalanced(reason) => WalletError::Ledger(reason),
            LedgerError::Database(e) => WalletError::Database(e),
        }
    }
}

/// The columns of a [`Wallet`], in its field order. Queries built with the
/// DSL (not raw SQL) are prepared once per connection and then cost one
/// round trip each.
macro_rules! wallet_columns {
    () => {
        (
            wallets::id,
            wallets::user_id,
            wallets::currency,
            wallets::wallet_number,
            wallets::name,
            wallets::status,
            ledger_accounts::balance,
            currencies::decimals,
            currencies::kind,
            wallets::created_at,
            wallets::updated_at,
        )
    };
}

/// The user's wallets, by currency.
pub async fn list(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<Vec<Wallet>> {
    wallets::table
        .inner_join(ledger_accounts::table)
        .inner_join(currencies::table)
        .filter(wallets::user_id.eq(user_id))
        .order(wallets::currency)
        .select(wallet_columns!())
        .load(conn)
        .await
}

/// The user's wallet `id`; `None` for someone else's.
pub async fn get(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<Wallet>> {
    wallets::table
        .inner_join(ledger_accounts::table)
        .inner_join(currencies::table)
        .filter(wallets::id.eq(id))
        .filter(wallets::user_id.eq(user_id))
        .select(wallet_columns!())
        .first(conn)
        .await
        .optional()
}

/// Any wallet by its number (the payee of a transfer).
pub async fn by_number(conn: &mut AsyncPgConnection, number: &str) -> QueryResult<Option<Wallet>> {
    wallets::table
        .inner_join(ledger_accounts::table)
        .inner_join(currencies::table)
        .filter(wallets::wallet_number.eq(number))
        .select(wallet_columns!())
        .first(conn)
        .await
        .optional()
}

/// The query of [`for_movement`] (a macro: its type is unwieldy to name).
macro_rules! for_movement_query {
    ($user_id:expr, $id:expr) => {
        wallets::table
            .inner_join(ledger_accounts::table)
            .inner_join(currencies::table)
            .inner_join(users::table)
            .filter(wallets::id.eq($id).and(wallets::user_id.eq($user_id)))
            .select((wallet_columns!(), users::email_verified_at.is_not_null()))
    };
}

/// Why a user may not move money (with a wallet of theirs), in one place:
/// the API answers 401, 403 `email_not_verified` or 404 from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The account is gone (deleted since its token was issued).
    NoSuchUser,
    /// Money moves only once the email address is verified.
    EmailNotVerified,
    /// No such wallet of theirs.
    NoSuchWallet,
}

/// Whether user `user_id` may move money at all.
pub async fn may_move_money(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
) -> QueryResult<Result<(), Refusal>> {
    let verified: Option<bool> = users::table
        .find(user_id)
        .select(users::email_verified_at.is_not_null())
        .first(conn)
        .await
        .optional()?;
    Ok(match verified {
        None => Err(Refusal::NoSuchUser),
        Some(false) => Err(Refusal::EmailNotVerified),
        Some(true) => Ok(()),
    })
}

/// What the wallet query found, as a [`Refusal`] or the wallet. The query
/// reads whether the email is verified with the wallet (one statement
/// where two lookups would be two); only when it finds nothing is the
/// account read, to tell a missing wallet from a missing or unverified
/// account.
async fn movable(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    found: Option<(Wallet, bool)>,
) -> QueryResult<Result<Wallet, Refusal>> {
    Ok(match found {
        Some((wallet, true)) => Ok(wallet),
        Some((_, false)) => Err(Refusal::EmailNotVerified),
        None => Err(may_move_money(conn, user_id)
            .await?
            .err()
            .unwrap_or(Refusal::NoSuchWallet)),
    })
}

/// The user's wallet `id`, to move money out of or into, or why they may
/// not.
pub async fn for_movement(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
) -> QueryResult<Result<Wallet, Refusal>> {
    let found = for_movement_query!(user_id, id)
        .first(conn)
        .await
        .optional()?;
    movable(conn, user_id, found).await
}

/// [`for_movement`] for the payer and the wallet numbered `number`
/// (anyone's) as the payee, pipelined: one round trip for both. (Two index
/// lookups measured cheaper than one statement with an `OR`, which
/// PostgreSQL answers with a bitmap scan.)
pub async fn payer_and_payee(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
    number: &WalletNumber,
) -> QueryResult<(Result<Wallet, Refusal>, Option<Wallet>)> {
    let (payer, payee) = payer_and_payee_rows(conn, user_id, id, number.as_str()).await?;
    Ok((movable(conn, user_id, payer).await?, payee))
}

async fn payer_and_payee_rows(
    conn: &AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
    number: &str,
) -> QueryResult<(Option<(Wallet, bool)>, Option<Wallet>)> {
    let payer = for_movement_query!(user_id, id).first(&mut &*conn);
    let payee = wallets::table
        .inner_join(ledger_accounts::table)
        .inner_join(currencies::table)
        .filter(wallets::wallet_number.eq(number))
        .select(wallet_columns!())
        .first(&mut &*conn);
    let (payer, payee) = futures::join!(payer, payee);
    Ok((payer.optional()?, payee.optional()?))
}

/// Ten digits, the first not zero, from the CSPRNG.
fn new_wallet_number() -> String {
    format!(
        "{}",
        rand::random_range(1_000_000_000u64..10_000_000_000u64)
    )
}

/// A wallet number as a payer types it: ten digits (surrounding spaces
/// ignored). Whether a wallet has it is for the database to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletNumber(String);

impl WalletNumber {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let number = raw.trim();
        if number.len() != 10 || !number.chars().all(|c| c.is_ascii_digit()) {
            return Err("must be a ten-digit wallet number");
        }
        Ok(Self(number.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A valid wallet name: 1–100 characters without control characters.
pub fn validate_name(raw: &str) -> Result<String, &'static str> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err("must be 1 to 100 characters, without control characters");
    }
    Ok(name.to_owned())
}

/// Opens the user's wallet in `currency` (one per currency: a second one is
/// [`WalletError::AlreadyExists`]). The name defaults to "<Currency> wallet".
pub async fn create(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    currency_code: &str,
    name: Option<String>,
) -> Result<Wallet, WalletError> {
    let currency = currency_table::find(conn, currency_code)
        .await?
        .ok_or_else(|| WalletError::UnknownCurrency(currency_code.to_owned()))?;
    let name = name.unwrap_or_else(|| format!("{} wallet", currency.name));
    // A number collision (1 in 9e9 per existing wallet) is retried with a
    // fresh number.
    for _ in 0..5 {
        let id = Uuid::new_v4();
        let number = new_wallet_number();
        let created = conn
            .transaction::<(), diesel::result::Error, _>(async |conn| {
                diesel::insert_into(ledger_accounts::table)
                    .values((
                        ledger_accounts::id.eq(id),
                        ledger_accounts::kind.eq("wallet"),
                        ledger_accounts::currency.eq(&currency.code),
                    ))
                    .execute(conn)
                    .await?;
                diesel::insert_into(wallets::table)
                    .values((
                        wallets::id.eq(id),
                        wallets::user_id.eq(user_id),
                        wallets::currency.eq(&currency.code),
                        wallets::wallet_number.eq(&number),
                        wallets::name.eq(&name),
                    ))
                    .execute(conn)
                    .await?;
                Ok(())
            })
            .await;
        match created {
            Ok(()) => return get(conn, user_id, id).await?.ok_or(WalletError::NotFound),
            Err(error) => match db::unique_violation(&error) {
                Some("wallets_user_currency_key") => {
                    return Err(WalletError::AlreadyExists(currency.code));
                }
                Some("wallets_wallet_number_key") => continue,
                _ => return Err(error.into()),
            },
        }
    }
    Err(WalletError::Ledger(
        "could not find a free wallet number".into(),
    ))
}

/// Renames the user's wallet.
pub async fn rename(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
    name: &str,
) -> Result<Wallet, WalletError> {
    let updated = diesel::update(wallets::table.find(id).filter(wallets::user_id.eq(user_id)))
        .set(wallets::name.eq(name))
        .execute(conn)
        .await?;
    if updated == 0 {
        return Err(WalletError::NotFound);
    }
    get(conn, user_id, id).await?.ok_or(WalletError::NotFound)
}
