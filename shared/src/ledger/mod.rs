//! The double-entry ledger: the one way money moves (PRODUCT.md §5).
//!
//! A movement is a set of postings whose amounts sum to zero per currency.
//! [`post`] checks that, then calls the database function `ledger_post`,
//! which in one statement locks the wallet accounts involved in ascending id
//! order (so concurrent movements never deadlock), refuses to overdraw or to
//! debit a blocked wallet, and appends the transaction and its entries. A
//! database trigger applies each entry to its wallet's balance, and a
//! `CHECK` keeps wallet balances non-negative even against a bug here.
//!
//! A posting is atomic on its own; whatever else must change with it (an
//! order, a bet, an idempotency record) goes in one transaction around it.
//! A refusal writes nothing and leaves that transaction usable.

mod check;

use std::collections::BTreeMap;

pub use check::{LedgerReport, check};
use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::schema::ledger_accounts;

/// What a movement is, as users see it in their history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxKind {
    Deposit,
    Withdrawal,
    Transfer,
    Buy,
    Sell,
    BetStake,
    BetPayout,
    Fee,
}

impl TxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TxKind::Deposit => "deposit",
            TxKind::Withdrawal => "withdrawal",
            TxKind::Transfer => "transfer",
            TxKind::Buy => "buy",
            TxKind::Sell => "sell",
            TxKind::BetStake => "bet_stake",
            TxKind::BetPayout => "bet_payout",
            TxKind::Fee => "fee",
        }
    }

    pub const ALL: [TxKind; 8] = [
        TxKind::Deposit,
        TxKind::Withdrawal,
        TxKind::Transfer,
        TxKind::Buy,
        TxKind::Sell,
        TxKind::BetStake,
        TxKind::BetPayout,
        TxKind::Fee,
    ];

    pub fn parse(raw: &str) -> Option<TxKind> {
        TxKind::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

/// The system accounts every currency has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemAccount {
    /// Money entering (deposits) or leaving (withdrawals) Bourse.
    Outside,
    /// Bourse's own money: rounding remainders, bet results.
    House,
    Fees,
    /// The counterparty of conversions and trades.
    Exchange,
    /// Money held for open bets.
    Escrow,
}

impl SystemAccount {
    fn as_str(self) -> &'static str {
        match self {
            SystemAccount::Outside => "outside",
            SystemAccount::House => "house",
            SystemAccount::Fees => "fees",
            SystemAccount::Exchange => "exchange",
            SystemAccount::Escrow => "escrow",
        }
    }
}

/// The id of a system account.
pub async fn system_account(
    conn: &mut AsyncPgConnection,
    kind: SystemAccount,
    currency: &str,
) -> QueryResult<Uuid> {
    ledger_accounts::table
        .filter(ledger_accounts::kind.eq(kind.as_str()))
        .filter(ledger_accounts::currency.eq(currency))
        .select(ledger_accounts::id)
        .first(conn)
        .await
}

/// The ids of several system accounts of one currency, in the order of
/// `kinds`: one round trip.
pub async fn system_accounts<const N: usize>(
    conn: &AsyncPgConnection,
    kinds: [SystemAccount; N],
    currency: &str,
) -> QueryResult<[Uuid; N]> {
    let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let found: Vec<(String, Uuid)> = ledger_accounts::table
        .filter(ledger_accounts::kind.eq_any(&names))
        .filter(ledger_accounts::currency.eq(currency))
        .select((ledger_accounts::kind, ledger_accounts::id))
        .load(&mut &*conn)
        .await?;
    let mut ids = [Uuid::nil(); N];
    for (slot, kind) in ids.iter_mut().zip(kinds) {
        *slot = found
            .iter()
            .find(|(k, _)| k == kind.as_str())
            .map(|(_, id)| *id)
            .ok_or(diesel::result::Error::NotFound)?;
    }
    Ok(ids)
}

/// One side of a movement: `amount` into (positive) or out of (negative)
/// `account`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub account: Uuid,
    pub currency: String,
    pub amount: Decimal,
}

/// A money movement to post.
#[derive(Debug, Clone)]
pub struct Movement {
    pub kind: TxKind,
    pub postings: Vec<Posting>,
    /// How users see it: the wallets on each side, amounts, currencies and
    /// the conversion rate (units of `to` per unit of `from`).
    pub from_wallet: Option<Uuid>,
    pub to_wallet: Option<Uuid>,
    pub from_amount: Option<Decimal>,
    pub from_currency: Option<String>,
    pub to_amount: Option<Decimal>,
    pub to_currency: Option<String>,
    pub rate: Option<Decimal>,
    pub created_by: Option<Uuid>,
    /// Fees may be charged to a blocked wallet; nothing else may debit one.
    pub allow_blocked_debit: bool,
}

impl Movement {
    pub fn new(kind: TxKind) -> Self {
        Self {
            kind,
            postings: Vec::new(),
            from_wallet: None,
            to_wallet: None,
            from_amount: None,
            from_currency: None,
            to_amount: None,
            to_currency: None,
            rate: None,
            created_by: None,
            allow_blocked_debit: false,
        }
    }

    pub fn posting(mut self, account: Uuid, currency: &str, amount: Decimal) -> Self {
        self.postings.push(Posting {
            account,
            currency: currency.to_owned(),
            amount,
        });
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("insufficient funds in wallet {0}")]
    InsufficientFunds(Uuid),
    #[error("wallet {0} is blocked")]
    WalletBlocked(Uuid),
    /// The credit would take the wallet past
    /// [`crate::money::WALLET_BALANCE_CAP`].
    #[error("wallet {0} would hold more than the balance cap")]
    BalanceCap(Uuid),
    /// A bug in the caller: the postings do not balance.
    #[error("unbalanced movement: {0}")]
    Unbalanced(String),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
}

diesel::define_sql_function! {
    /// The posting itself, in the database: see
    /// `migrations/2026-11-23-100800_create_ledger_post/up.sql`.
    #[expect(clippy::too_many_arguments, reason = "the SQL function's parameters, one per column of a posting")]
    fn ledger_post(
        id: sql_types::Uuid,
        kind: sql_types::Text,
        from_wallet: sql_types::Nullable<sql_types::Uuid>,
        to_wallet: sql_types::Nullable<sql_types::Uuid>,
        from_amount: sql_types::Nullable<sql_types::Numeric>,
        from_currency: sql_types::Nullable<sql_types::Text>,
        to_amount: sql_types::Nullable<sql_types::Numeric>,
        to_currency: sql_types::Nullable<sql_types::Text>,
        rate: sql_types::Nullable<sql_types::Numeric>,
        created_by: sql_types::Nullable<sql_types::Uuid>,
        allow_blocked_debit: sql_types::Bool,
        accounts: sql_types::Array<sql_types::Uuid>,
        currencies: sql_types::Array<sql_types::Text>,
        amounts: sql_types::Array<sql_types::Numeric>,
        net_accounts: sql_types::Array<sql_types::Uuid>,
        net_changes: sql_types::Array<sql_types::Numeric>,
    ) -> sql_types::Record<(
        sql_types::Nullable<sql_types::Text>,
        sql_types::Nullable<sql_types::Uuid>,
        sql_types::Nullable<sql_types::Timestamptz>,
        sql_types::Array<sql_types::Uuid>,
        sql_types::Array<sql_types::Numeric>,
    )>;
}

/// Validates the shape of a movement: non-zero postings of at most 18
/// decimal places, summing to zero per currency.
fn validate(movement: &Movement) -> Result<(), LedgerError> {
    if movement.postings.len() < 2 {
        return Err(LedgerError::Unbalanced(
            "a movement needs at least two postings".into(),
        ));
    }
    let mut sums: BTreeMap<&str, Decimal> = BTreeMap::new();
    for posting in &movement.postings {
        if posting.amount.is_zero() || posting.amount.scale() > 18 {
            return Err(LedgerError::Unbalanced(format!(
                "bad posting amount {}",
                posting.amount
            )));
        }
        *sums.entry(&posting.currency).or_default() += posting.amount;
    }
    if let Some((currency, sum)) = sums.iter().find(|(_, sum)| !sum.is_zero()) {
        return Err(LedgerError::Unbalanced(format!(
            "{currency} postings sum to {sum}"
        )));
    }
    Ok(())
}

/// What [`post`] did.
#[derive(Debug, Clone)]
pub struct Posted {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    /// The new balance of each wallet account involved.
    pub balances: BTreeMap<Uuid, Decimal>,
}

/// Posts `movement` in one statement: locks the wallet accounts involved
/// `FOR UPDATE` in ascending id order (system accounts have no running
/// balance and are not locked), refuses an overdraft or a debit of a blocked
/// wallet, and appends the transaction and its entries. Atomic on its own;
/// whatever else must commit with the movement (an order, a bet, an
/// idempotency record) goes in a transaction around it.
pub async fn post(conn: &mut AsyncPgConnection, movement: Movement) -> Result<Posted, LedgerError> {
    post_on(conn, movement).await
}

/// [`post`] on a shared connection, so several postings of one
/// transaction can be pipelined (`futures::future::try_join_all`); they run
/// in the order they are first polled.
pub async fn post_on(conn: &AsyncPgConnection, movement: Movement) -> Result<Posted, LedgerError> {
    validate(&movement)?;
    let id = Uuid::now_v7();
    let accounts: Vec<Uuid> = movement.postings.iter().map(|p| p.account).collect();
    let currencies: Vec<&str> = movement
        .postings
        .iter()
        .map(|p| p.currency.as_str())
        .collect();
    let amounts: Vec<Decimal> = movement.postings.iter().map(|p| p.amount).collect();
    // Ascending by id, as PostgreSQL orders uuids (bytewise, like `Uuid`).
    let mut net: BTreeMap<Uuid, Decimal> = BTreeMap::new();
    for posting in &movement.postings {
        *net.entry(posting.account).or_default() += posting.amount;
    }
    let (net_accounts, net_changes): (Vec<Uuid>, Vec<Decimal>) = net.into_iter().unzip();
    let posted = diesel::select(ledger_post(
        id,
        movement.kind.as_str(),
        movement.from_wallet,
        movement.to_wallet,
        movement.from_amount,
        movement.from_currency.as_deref(),
        movement.to_amount,
        movement.to_currency.as_deref(),
        movement.rate,
        movement.created_by,
        movement.allow_blocked_debit,
        accounts,
        currencies,
        amounts,
        net_accounts,
        net_changes,
    ))
    .get_result::<PostResult>(&mut &*conn)
    .await?;
    match posted {
        (None, _, Some(created_at), wallets, balances) => Ok(Posted {
            id,
            created_at,
            balances: wallets.into_iter().zip(balances).collect(),
        }),
        (Some(refusal), Some(wallet), ..) if refusal == "insufficient_funds" => {
            Err(LedgerError::InsufficientFunds(wallet))
        }
        (Some(refusal), Some(wallet), ..) if refusal == "wallet_blocked" => {
            Err(LedgerError::WalletBlocked(wallet))
        }
        (Some(refusal), Some(wallet), ..) if refusal == "limit_exceeded" => {
            Err(LedgerError::BalanceCap(wallet))
        }
        (refusal, ..) => Err(LedgerError::Database(
            diesel::result::Error::DeserializationError(
                format!("ledger_post answered {refusal:?} without a posting").into(),
            ),
        )),
    }
}

/// `ledger_post`'s answer: refusal, refused wallet, creation time, wallets
/// and their new balances.
type PostResult = (
    Option<String>,
    Option<Uuid>,
    Option<DateTime<Utc>>,
    Vec<Uuid>,
    Vec<Decimal>,
);

#[cfg(test)]
mod tests {
    use super::*;

    fn movement(postings: &[(&str, i64)]) -> Movement {
        let mut m = Movement::new(TxKind::Transfer);
        for (currency, cents) in postings {
            m = m.posting(Uuid::new_v4(), currency, Decimal::new(*cents, 2));
        }
        m
    }

    #[test]
    fn movements_must_balance_per_currency() {
        assert!(validate(&movement(&[("USD", -100), ("USD", 100)])).is_ok());
        assert!(validate(&movement(&[("USD", -100), ("BTC", 100)])).is_err());
        assert!(validate(&movement(&[("USD", -100), ("USD", 99)])).is_err());
        assert!(validate(&movement(&[("USD", 0), ("USD", 0)])).is_err());
        assert!(validate(&movement(&[("USD", -100)])).is_err());
        assert!(
            validate(&movement(&[
                ("USD", -100),
                ("USD", 100),
                ("EUR", -5),
                ("EUR", 5)
            ]))
            .is_ok()
        );
    }
}
