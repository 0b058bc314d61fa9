//! Proof that the ledger holds: entries balance per currency (overall and
//! per transaction) and every wallet balance equals the sum of its entries.

use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

/// The sum of all entries in one currency (zero when the ledger holds).
#[derive(Debug, Clone, Serialize, QueryableByName, PartialEq, Eq)]
pub struct CurrencyTotal {
    #[diesel(sql_type = sql_types::Text)]
    pub currency: String,
    #[diesel(sql_type = sql_types::Numeric)]
    pub total: Decimal,
    #[diesel(sql_type = sql_types::BigInt)]
    pub entries: i64,
}

/// A wallet whose stored balance differs from its entries.
#[derive(Debug, Clone, Serialize, QueryableByName, PartialEq, Eq)]
pub struct Mismatch {
    #[diesel(sql_type = sql_types::Uuid)]
    pub wallet_id: Uuid,
    #[diesel(sql_type = sql_types::Numeric)]
    pub balance: Decimal,
    #[diesel(sql_type = sql_types::Numeric)]
    pub entries_sum: Decimal,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = sql_types::BigInt)]
    n: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LedgerReport {
    /// True when every check passed.
    pub ok: bool,
    pub currencies: Vec<CurrencyTotal>,
    /// Transactions whose entries do not sum to zero in some currency.
    pub unbalanced_transactions: i64,
    /// Entries whose transaction or account does not exist (neither is a
    /// foreign key, for speed: see the ledger migrations).
    pub orphan_entries: i64,
    pub mismatched_wallets: Vec<Mismatch>,
    pub wallets_checked: i64,
}

/// Runs every check in one repeatable-read snapshot, so concurrent
/// movements cannot make a consistent ledger look inconsistent.
pub async fn check(conn: &mut AsyncPgConnection) -> QueryResult<LedgerReport> {
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run(async |conn| {
            let currencies: Vec<CurrencyTotal> = diesel::sql_query(
                "SELECT currency, sum(amount) AS total, count(*) AS entries
                 FROM ledger_entries GROUP BY currency ORDER BY currency",
            )
            .load(conn)
            .await?;
            let unbalanced: Count = diesel::sql_query(
                "SELECT count(*) AS n FROM (
                     SELECT transaction_id FROM ledger_entries
                     GROUP BY transaction_id, currency HAVING sum(amount) <> 0) t",
            )
            .get_result(conn)
            .await?;
            let mismatched: Vec<Mismatch> = diesel::sql_query(
                "SELECT a.id AS wallet_id, a.balance, coalesce(e.total, 0) AS entries_sum
                 FROM ledger_accounts a
                 LEFT JOIN (SELECT account_id, sum(amount) AS total FROM ledger_entries GROUP BY account_id) e
                        ON e.account_id = a.id
                 WHERE a.kind = 'wallet' AND a.balance <> coalesce(e.total, 0)",
            )
            .load(conn)
            .await?;
            let orphans: Count = diesel::sql_query(
                "SELECT count(*) AS n FROM ledger_entries e
                 WHERE NOT EXISTS (SELECT 1 FROM ledger_transactions t WHERE t.id = e.transaction_id)
                    OR NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.id = e.account_id)",
            )
            .get_result(conn)
            .await?;
            let wallets: Count = diesel::sql_query("SELECT count(*) AS n FROM ledger_accounts WHERE kind = 'wallet'")
                .get_result(conn)
                .await?;
            let ok = currencies.iter().all(|c| c.total.is_zero()) && unbalanced.n == 0 && orphans.n == 0 && mismatched.is_empty();
            Ok(LedgerReport {
                ok,
                currencies,
                unbalanced_transactions: unbalanced.n,
                orphan_entries: orphans.n,
                mismatched_wallets: mismatched,
                wallets_checked: wallets.n,
            })
        })
        .await
}
