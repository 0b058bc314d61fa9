//! The double-entry ledger: the one way money moves (PRODUCT.md §5).
//!
//! A movement is a set of postings whose amounts sum to zero per currency.
//! [`post`] checks that, locks the wallet accounts involved in ascending id
//! order (so concurrent movements never deadlock), refuses to overdraw or to
//! debit a blocked wallet, and appends the transaction and its entries. A
//! database trigger applies each entry to its wallet's balance, and a
//! `CHECK` keeps wallet balances non-negative even against a bug here.
//!
//! [`post`] must run inside a transaction together with whatever else the
//! movement changes (an order, a bet, an idempotency record).

mod check;

use std::collections::BTreeMap;

pub use check::{LedgerReport, check};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::schema::{ledger_accounts, ledger_entries, ledger_transactions, wallets};

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
    /// A bug in the caller: the postings do not balance.
    #[error("unbalanced movement: {0}")]
    Unbalanced(String),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
}

#[derive(Queryable)]
struct LockedWallet {
    id: Uuid,
    balance: Decimal,
    status: String,
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

/// Posts `movement`. Call inside a
/// transaction. Wallet accounts are locked `FOR UPDATE` in ascending id
/// order; system accounts are not locked (they have no running balance).
pub async fn post(conn: &mut AsyncPgConnection, movement: Movement) -> Result<Posted, LedgerError> {
    validate(&movement)?;
    let accounts: Vec<Uuid> = {
        let mut ids: Vec<Uuid> = movement.postings.iter().map(|p| p.account).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    // Locks the wallet rows (account and wallet) in id order; system
    // accounts have no wallet row and are not locked.
    let locked: Vec<LockedWallet> = ledger_accounts::table
        .inner_join(wallets::table)
        .filter(ledger_accounts::id.eq_any(&accounts))
        .order(ledger_accounts::id)
        .select((
            ledger_accounts::id,
            ledger_accounts::balance,
            wallets::status,
        ))
        .for_update()
        .load(conn)
        .await?;
    let mut balances = BTreeMap::new();
    for wallet in &locked {
        let change: Decimal = movement
            .postings
            .iter()
            .filter(|p| p.account == wallet.id)
            .map(|p| p.amount)
            .sum();
        balances.insert(wallet.id, wallet.balance + change);
        if change.is_sign_negative() {
            if wallet.status == "blocked" && !movement.allow_blocked_debit {
                return Err(LedgerError::WalletBlocked(wallet.id));
            }
            if wallet.balance + change < Decimal::ZERO {
                return Err(LedgerError::InsufficientFunds(wallet.id));
            }
        }
    }
    let id = Uuid::now_v7();
    // The transaction row and its entries go out pipelined (one round trip
    // for both, in order on the connection).
    let transaction = diesel::insert_into(ledger_transactions::table)
        .values((
            ledger_transactions::id.eq(id),
            ledger_transactions::kind.eq(movement.kind.as_str()),
            ledger_transactions::from_wallet.eq(movement.from_wallet),
            ledger_transactions::to_wallet.eq(movement.to_wallet),
            ledger_transactions::from_amount.eq(movement.from_amount),
            ledger_transactions::from_currency.eq(&movement.from_currency),
            ledger_transactions::to_amount.eq(movement.to_amount),
            ledger_transactions::to_currency.eq(&movement.to_currency),
            ledger_transactions::rate.eq(movement.rate),
            ledger_transactions::created_by.eq(movement.created_by),
        ))
        .returning(ledger_transactions::created_at)
        .get_result::<DateTime<Utc>>(&mut &*conn);
    let entries: Vec<_> = movement
        .postings
        .iter()
        .map(|p| {
            (
                ledger_entries::transaction_id.eq(id),
                ledger_entries::account_id.eq(p.account),
                ledger_entries::currency.eq(&p.currency),
                ledger_entries::amount.eq(p.amount),
            )
        })
        .collect();
    let inserted = diesel::insert_into(ledger_entries::table)
        .values(entries)
        .execute(&mut &*conn);
    let (created_at, _) = futures::try_join!(transaction, inserted)?;
    Ok(Posted {
        id,
        created_at,
        balances,
    })
}

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
