use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

/// One movement as a wallet's owner sees it: signed amount in the wallet's
/// currency, the other side (wallet number, amount, currency), the rate.
#[derive(Debug, Clone, QueryableByName)]
pub struct HistoryItem {
    /// The entry id: the history cursor.
    #[diesel(sql_type = sql_types::BigInt)]
    pub entry_id: i64,
    #[diesel(sql_type = sql_types::Uuid)]
    pub transaction_id: Uuid,
    #[diesel(sql_type = sql_types::Text)]
    pub kind: String,
    #[diesel(sql_type = sql_types::Uuid)]
    pub wallet_id: Uuid,
    #[diesel(sql_type = sql_types::Text)]
    pub wallet_number: String,
    /// Positive when money came in.
    #[diesel(sql_type = sql_types::Numeric)]
    pub amount: Decimal,
    #[diesel(sql_type = sql_types::Text)]
    pub currency: String,
    #[diesel(sql_type = sql_types::SmallInt)]
    pub decimals: i16,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Text>)]
    pub counterparty_wallet_number: Option<String>,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Numeric>)]
    pub counterparty_amount: Option<Decimal>,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Text>)]
    pub counterparty_currency: Option<String>,
    #[diesel(sql_type = sql_types::Nullable<sql_types::SmallInt>)]
    pub counterparty_decimals: Option<i16>,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Numeric>)]
    pub rate: Option<Decimal>,
    #[diesel(sql_type = sql_types::Timestamptz)]
    pub created_at: DateTime<Utc>,
}

/// The user's movements, newest first: of one wallet or all of them,
/// optionally of one kind, at most `limit`, before entry `before` (the
/// cursor). Another user's wallet yields nothing.
pub async fn history(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    wallet_id: Option<Uuid>,
    kind: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<HistoryItem>> {
    diesel::sql_query(
        "SELECT e.id AS entry_id, t.id AS transaction_id, t.kind, w.id AS wallet_id, w.wallet_number,
                e.amount, e.currency, c.decimals,
                CASE WHEN t.from_wallet = w.id THEN tw.wallet_number ELSE fw.wallet_number END
                    AS counterparty_wallet_number,
                CASE WHEN t.from_wallet = w.id THEN t.to_amount ELSE t.from_amount END AS counterparty_amount,
                CASE WHEN t.from_wallet = w.id THEN t.to_currency ELSE t.from_currency END AS counterparty_currency,
                cc.decimals AS counterparty_decimals,
                t.rate, t.created_at
         FROM wallets w
         JOIN currencies c ON c.code = w.currency
         JOIN ledger_entries e ON e.account_id = w.id
         JOIN ledger_transactions t ON t.id = e.transaction_id
         LEFT JOIN wallets fw ON fw.id = t.from_wallet AND t.kind = 'transfer'
         LEFT JOIN wallets tw ON tw.id = t.to_wallet AND t.kind = 'transfer'
         LEFT JOIN currencies cc
                ON cc.code = CASE WHEN t.from_wallet = w.id THEN t.to_currency ELSE t.from_currency END
         WHERE w.user_id = $1
           AND ($2::uuid IS NULL OR w.id = $2)
           AND ($3::text IS NULL OR t.kind = $3)
           AND ($4::bigint IS NULL OR e.id < $4)
         ORDER BY e.id DESC
         LIMIT $5",
    )
    .bind::<sql_types::Uuid, _>(user_id)
    .bind::<sql_types::Nullable<sql_types::Uuid>, _>(wallet_id)
    .bind::<sql_types::Nullable<sql_types::Text>, _>(kind)
    .bind::<sql_types::Nullable<sql_types::BigInt>, _>(before)
    .bind::<sql_types::BigInt, _>(limit)
    .load(conn)
    .await
}
