//! Placing and reading orders. An order is one PostgreSQL transaction: the
//! ledger movement at the fresh price, the order row, and (through the
//! outbox) the clearing job that will hedge it.

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rust_decimal::{Decimal, RoundingStrategy};
use uuid::Uuid;

use super::Side;
use crate::{
    config::RatesConfig,
    jobs::ClearOrders,
    ledger::{self, LedgerError, Movement, SystemAccount, TxKind},
    outbox, rates,
    rates::RateError,
    schema::orders,
    wallets::{self, Wallet, WalletError},
};

/// The currency orders are paid and settled in.
pub const QUOTE: &str = "USD";

/// USD has two decimal places: prices round to the cent.
const CENTS: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// A credit would take a wallet past the balance cap.
    #[error(
        "the receiving wallet would hold more than {} units, the most one wallet may hold",
        crate::money::WALLET_BALANCE_CAP
    )]
    BalanceCap,
    #[error("you have no {0} wallet")]
    NoWallet(String),
    #[error("no user {0:?} with a USD wallet")]
    RecipientNotFound(String),
    #[error("insufficient funds")]
    InsufficientFunds,
    #[error("this wallet is blocked: it can receive money but not send it")]
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

impl From<LedgerError> for OrderError {
    fn from(error: LedgerError) -> Self {
        match error {
            LedgerError::InsufficientFunds(_) => OrderError::InsufficientFunds,
            LedgerError::WalletBlocked(_) => OrderError::Blocked,
            LedgerError::BalanceCap(_) => OrderError::BalanceCap,
            LedgerError::Unbalanced(reason) => OrderError::Ledger(reason),
            LedgerError::Database(e) => OrderError::Database(e),
        }
    }
}

impl From<WalletError> for OrderError {
    fn from(error: WalletError) -> Self {
        match error {
            WalletError::Database(e) => OrderError::Database(e),
            WalletError::Rate(e) => OrderError::Rate(e),
            WalletError::InsufficientFunds => OrderError::InsufficientFunds,
            WalletError::Blocked => OrderError::Blocked,
            other => OrderError::Ledger(other.to_string()),
        }
    }
}

crate::text_enum! {
    /// Whether the house has hedged the order on the exchange yet.
    pub enum OrderStatus {
        Pending = "pending",
        Cleared = "cleared",
    }
}

/// An order as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Order {
    #[diesel(sql_type = sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = sql_types::Uuid)]
    pub user_id: Uuid,
    #[diesel(sql_type = sql_types::Text)]
    pub side: String,
    #[diesel(sql_type = sql_types::Text)]
    pub currency: String,
    /// Decimal places of `currency`.
    #[diesel(sql_type = sql_types::SmallInt)]
    pub decimals: i16,
    #[diesel(sql_type = sql_types::Numeric)]
    pub amount: Decimal,
    #[diesel(sql_type = sql_types::Numeric)]
    pub price_usd: Decimal,
    #[diesel(sql_type = sql_types::Numeric)]
    pub usd_amount: Decimal,
    #[diesel(sql_type = sql_types::Uuid)]
    pub usd_wallet: Uuid,
    #[diesel(sql_type = sql_types::Uuid)]
    pub crypto_wallet: Uuid,
    /// For a sale to another user: their username.
    #[diesel(sql_type = sql_types::Nullable<sql_types::Text>)]
    pub recipient: Option<String>,
    #[diesel(sql_type = sql_types::Uuid)]
    pub transaction_id: Uuid,
    #[diesel(sql_type = sql_types::Text)]
    pub status: OrderStatus,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Text>)]
    pub exchange_reference: Option<String>,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Timestamptz>)]
    pub cleared_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = sql_types::Timestamptz)]
    pub created_at: DateTime<Utc>,
}

const ORDER_SELECT: &str = "SELECT o.id, o.user_id, o.side, o.currency, c.decimals, o.amount,
        o.price_usd, o.usd_amount, o.usd_wallet, o.crypto_wallet, r.username AS recipient,
        o.transaction_id, o.status, o.exchange_reference, o.cleared_at, o.created_at
    FROM orders o
    JOIN currencies c ON c.code = o.currency
    LEFT JOIN users r ON r.id = o.recipient_id";

/// The user's order `id`; `None` for someone else's.
pub async fn get(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<Order>> {
    diesel::sql_query(format!("{ORDER_SELECT} WHERE o.id = $1 AND o.user_id = $2"))
        .bind::<sql_types::Uuid, _>(id)
        .bind::<sql_types::Uuid, _>(user_id)
        .get_result(conn)
        .await
        .optional()
}

/// The user's orders, newest first, older than the order `before` (a
/// cursor), optionally only those with `status`.
pub async fn list(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    status: Option<OrderStatus>,
    before: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<Order>> {
    // Order ids are UUIDv7: time-ordered, so they are the cursor.
    diesel::sql_query(format!(
        "{ORDER_SELECT} WHERE o.user_id = $1
           AND ($2::text IS NULL OR o.status = $2)
           AND ($3::uuid IS NULL OR o.id < $3)
         ORDER BY o.id DESC LIMIT $4"
    ))
    .bind::<sql_types::Uuid, _>(user_id)
    .bind::<sql_types::Nullable<sql_types::Text>, _>(status)
    .bind::<sql_types::Nullable<sql_types::Uuid>, _>(before)
    .bind::<sql_types::BigInt, _>(limit)
    .load(conn)
    .await
}

/// An order to place: `amount` of the crypto `currency` (already checked
/// to be a crypto currency, with at most its decimal places).
#[derive(Debug, Clone)]
pub struct PlaceOrder {
    pub user_id: Uuid,
    pub side: Side,
    pub currency: String,
    pub amount: Decimal,
    /// A sale whose USD goes to this user's USD wallet.
    pub to_username: Option<String>,
}

/// The user's wallet in `currency`, if any.
async fn own_wallet(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    currency: &str,
) -> QueryResult<Option<Wallet>> {
    let found = wallets::list(conn, user_id).await?;
    Ok(found.into_iter().find(|w| w.currency == currency))
}

/// The user's wallet in `currency`, opened now if they have none (another
/// request may open it at the same moment: then that one is used).
async fn own_wallet_or_open(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    currency: &str,
) -> Result<Wallet, OrderError> {
    if let Some(wallet) = own_wallet(conn, user_id, currency).await? {
        return Ok(wallet);
    }
    match wallets::create(conn, user_id, currency, None).await {
        Ok(wallet) => Ok(wallet),
        Err(WalletError::AlreadyExists(_)) => own_wallet(conn, user_id, currency)
            .await?
            .ok_or_else(|| OrderError::NoWallet(currency.to_owned())),
        Err(other) => Err(other.into()),
    }
}

/// The USD wallet of the user named `username` (any case).
async fn recipient_wallet(
    conn: &mut AsyncPgConnection,
    username: &str,
) -> Result<(Uuid, Wallet), OrderError> {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = sql_types::Uuid)]
        user_id: Uuid,
    }
    let found: Option<Found> =
        diesel::sql_query("SELECT id AS user_id FROM users WHERE lower(username) = lower($1)")
            .bind::<sql_types::Text, _>(username.trim())
            .get_result(conn)
            .await
            .optional()?;
    let not_found = || OrderError::RecipientNotFound(username.trim().to_owned());
    let user_id = found.ok_or_else(not_found)?.user_id;
    let wallet = own_wallet(conn, user_id, QUOTE)
        .await?
        .ok_or_else(not_found)?;
    Ok((user_id, wallet))
}

/// What an order is worth in USD at `price`: the exact value, and what the
/// user pays (buy, rounded up to the cent) or receives (sell, rounded
/// down). The house keeps the difference.
pub fn usd_value(
    side: Side,
    amount: Decimal,
    price: Decimal,
) -> Result<(Decimal, Decimal), String> {
    let exact = amount
        .checked_mul(price)
        .ok_or_else(|| "is too large".to_owned())?
        .round_dp_with_strategy(18, RoundingStrategy::ToZero);
    if exact < Decimal::new(1, CENTS) {
        return Err(format!("is worth {exact} USD, less than 0.01 USD"));
    }
    let charged = match side {
        Side::Buy => exact.round_dp_with_strategy(CENTS, RoundingStrategy::AwayFromZero),
        Side::Sell => exact.round_dp_with_strategy(CENTS, RoundingStrategy::ToZero),
    };
    Ok((exact, charged))
}

/// Places an order at the fresh price of its currency at `now`: one
/// transaction (a savepoint inside the caller's) with the ledger movement,
/// the order and its clearing job.
pub async fn place(
    conn: &mut AsyncPgConnection,
    rates_config: &RatesConfig,
    order: PlaceOrder,
    now: DateTime<Utc>,
) -> Result<Order, OrderError> {
    let id = conn
        .transaction::<Uuid, OrderError, _>(async |conn| {
            place_in(conn, rates_config, &order, now).await
        })
        .await?;
    get(conn, order.user_id, id)
        .await?
        .ok_or_else(|| OrderError::Ledger("the order just placed is missing".into()))
}

async fn place_in(
    conn: &mut AsyncPgConnection,
    rates_config: &RatesConfig,
    order: &PlaceOrder,
    now: DateTime<Utc>,
) -> Result<Uuid, OrderError> {
    let currency = order.currency.as_str();
    let price = rates::fresh_price(conn, rates_config, currency, now).await?;
    let (exact, usd_amount) =
        usd_value(order.side, order.amount, price.price_usd).map_err(OrderError::InvalidAmount)?;
    let (usd_wallet, crypto_wallet, recipient_id) = match order.side {
        Side::Buy => {
            let usd = own_wallet(conn, order.user_id, QUOTE)
                .await?
                .ok_or_else(|| OrderError::NoWallet(QUOTE.into()))?;
            let crypto = own_wallet_or_open(conn, order.user_id, currency).await?;
            (usd, crypto, None)
        }
        Side::Sell => {
            let crypto = own_wallet(conn, order.user_id, currency)
                .await?
                .ok_or_else(|| OrderError::NoWallet(currency.into()))?;
            match &order.to_username {
                Some(name) => {
                    let (recipient, usd) = recipient_wallet(conn, name).await?;
                    (usd, crypto, Some(recipient))
                }
                None => (
                    own_wallet_or_open(conn, order.user_id, QUOTE).await?,
                    crypto,
                    None,
                ),
            }
        }
    };
    let exchange_usd = ledger::system_account(conn, SystemAccount::Exchange, QUOTE).await?;
    let exchange_crypto = ledger::system_account(conn, SystemAccount::Exchange, currency).await?;
    let house_usd = ledger::system_account(conn, SystemAccount::House, QUOTE).await?;
    // The exchange account takes and pays exact market value; the house
    // keeps the rounding to the cent (always in its favour).
    let remainder = (usd_amount - exact).abs();
    let mut movement = match order.side {
        Side::Buy => {
            let mut m = Movement::new(TxKind::Buy)
                .posting(usd_wallet.id, QUOTE, -usd_amount)
                .posting(exchange_usd, QUOTE, exact)
                .posting(exchange_crypto, currency, -order.amount)
                .posting(crypto_wallet.id, currency, order.amount);
            if !remainder.is_zero() {
                m = m.posting(house_usd, QUOTE, remainder);
            }
            m.from_wallet = Some(usd_wallet.id);
            m.from_amount = Some(usd_amount);
            m.from_currency = Some(QUOTE.into());
            m.to_wallet = Some(crypto_wallet.id);
            m.to_amount = Some(order.amount);
            m.to_currency = Some(currency.into());
            m.rate = Some((order.amount / usd_amount).round_dp(18));
            m
        }
        Side::Sell => {
            let mut m = Movement::new(TxKind::Sell)
                .posting(crypto_wallet.id, currency, -order.amount)
                .posting(exchange_crypto, currency, order.amount)
                .posting(exchange_usd, QUOTE, -exact)
                .posting(usd_wallet.id, QUOTE, usd_amount);
            if !remainder.is_zero() {
                m = m.posting(house_usd, QUOTE, remainder);
            }
            m.from_wallet = Some(crypto_wallet.id);
            m.from_amount = Some(order.amount);
            m.from_currency = Some(currency.into());
            m.to_wallet = Some(usd_wallet.id);
            m.to_amount = Some(usd_amount);
            m.to_currency = Some(QUOTE.into());
            m.rate = Some((usd_amount / order.amount).round_dp(18));
            m
        }
    };
    movement.created_by = Some(order.user_id);
    let posted = ledger::post(conn, movement).await?;

    let id = Uuid::now_v7();
    diesel::insert_into(orders::table)
        .values((
            orders::id.eq(id),
            orders::user_id.eq(order.user_id),
            orders::side.eq(order.side.as_str()),
            orders::currency.eq(currency),
            orders::amount.eq(order.amount),
            orders::price_usd.eq(price.price_usd),
            orders::usd_amount.eq(usd_amount),
            orders::usd_wallet.eq(usd_wallet.id),
            orders::crypto_wallet.eq(crypto_wallet.id),
            orders::recipient_id.eq(recipient_id),
            orders::transaction_id.eq(posted.id),
        ))
        .execute(conn)
        .await?;
    outbox::push(
        conn,
        &ClearOrders {
            currency: currency.to_owned(),
            side: order.side,
        },
        None,
    )
    .await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn the_house_keeps_the_rounding_on_both_sides() {
        // 0.00012345 BTC at 43,210.99 = 5.3343967155 USD.
        let (exact, paid) = usd_value(Side::Buy, d("0.00012345"), d("43210.99")).unwrap();
        assert_eq!(exact, d("5.3343967155"));
        assert_eq!(paid, d("5.34"));
        let (_, received) = usd_value(Side::Sell, d("0.00012345"), d("43210.99")).unwrap();
        assert_eq!(received, d("5.33"));
        // Exact cents are not rounded either way.
        let (_, paid) = usd_value(Side::Buy, d("0.5"), d("20")).unwrap();
        assert_eq!(paid, d("10.00"));
    }

    #[test]
    fn orders_worth_less_than_a_cent_are_refused() {
        assert!(usd_value(Side::Buy, d("0.00000001"), d("100")).is_err());
        assert!(usd_value(Side::Sell, d("0.0001"), d("100")).is_ok());
    }
}
