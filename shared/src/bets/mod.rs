//! Bets on price moves (PRODUCT.md §7): the stake goes to escrow when the
//! bet is placed, together with its settlement job (outbox, due at
//! `settles_at`); [`settle`] pays out once, at the price in force at
//! `settles_at`; [`reconcile`] queues settlement again for open bets whose
//! job was lost.

mod exposure;
mod liquidate;
mod pnl;
mod settle;
mod settled_email;

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
pub use liquidate::{Liquidations, liquidate};
pub use pnl::{Direction, Outcome, Settlement, liquidation_price, settle as settle_at_price};
use rust_decimal::Decimal;
pub use settle::{Settled, settle, settle_many};
use uuid::Uuid;

use crate::{
    config::{BetsConfig, RatesConfig},
    currencies::{self, Kind},
    jobs::SettleBet,
    ledger::{self, LedgerError, Movement, SystemAccount, TxKind},
    outbox, rates,
    rates::RateError,
    schema::bets,
    wallets,
};

/// Bets are staked and paid in this currency.
pub const STAKE_CURRENCY: &str = "USD";

#[derive(Debug, thiserror::Error)]
pub enum BetError {
    /// A credit would take a wallet past the balance cap.
    #[error(
        "the receiving wallet would hold more than {} units, the most one wallet may hold",
        crate::money::WALLET_BALANCE_CAP
    )]
    BalanceCap,
    #[error("you have no USD wallet")]
    NoWallet,
    #[error("{0}")]
    Limit(String),
    #[error("insufficient funds")]
    InsufficientFunds,
    #[error("this wallet is blocked: it can receive money but not send it")]
    Blocked,
    #[error(transparent)]
    Rate(#[from] RateError),
    #[error("no bet {0}")]
    UnknownBet(Uuid),
    #[error("{0}")]
    Ledger(String),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
}

impl From<LedgerError> for BetError {
    fn from(error: LedgerError) -> Self {
        match error {
            LedgerError::InsufficientFunds(_) => BetError::InsufficientFunds,
            LedgerError::WalletBlocked(_) => BetError::Blocked,
            LedgerError::BalanceCap(_) => BetError::BalanceCap,
            LedgerError::Unbalanced(reason) => BetError::Ledger(reason),
            LedgerError::Database(e) => BetError::Database(e),
        }
    }
}

crate::text_enum! {
    pub enum BetStatus {
        Open = "open",
        Settled = "settled",
        /// No fresh price at `settles_at`: the stake went back.
        Void = "void",
    }
}

/// A bet as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = bets)]
pub struct Bet {
    pub id: Uuid,
    pub user_id: Uuid,
    pub wallet_id: Uuid,
    pub symbol: String,
    pub direction: String,
    pub stake: Decimal,
    pub leverage: i32,
    pub duration_seconds: i32,
    pub start_price: Decimal,
    pub status: BetStatus,
    pub result: Option<String>,
    pub end_price: Option<Decimal>,
    pub payout: Option<Decimal>,
    pub profit: Option<Decimal>,
    pub created_at: DateTime<Utc>,
    pub settles_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
    /// An observation reaching it closes the bet at a total loss.
    pub liquidation_price: Decimal,
    /// Closed by an observation reaching `liquidation_price`.
    pub liquidated: bool,
}

/// The user's bet `id`; `None` for someone else's.
pub async fn get(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    id: Uuid,
) -> QueryResult<Option<Bet>> {
    bets::table
        .find(id)
        .filter(bets::user_id.eq(user_id))
        .select(Bet::as_select())
        .first(conn)
        .await
        .optional()
}

/// The user's bets, newest first (ids are UUIDv7: time-ordered), older
/// than `before`, optionally only those with `status`.
pub async fn list(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    status: Option<BetStatus>,
    before: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<Bet>> {
    let mut query = bets::table
        .filter(bets::user_id.eq(user_id))
        .select(Bet::as_select())
        .order(bets::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(status) = status {
        query = query.filter(bets::status.eq(status));
    }
    if let Some(before) = before {
        query = query.filter(bets::id.lt(before));
    }
    query.load(conn).await
}

/// A bet to place, validated for shape (see the API); limits and prices
/// are checked here.
#[derive(Debug, Clone)]
pub struct PlaceBet {
    pub user_id: Uuid,
    pub symbol: String,
    pub direction: Direction,
    /// USD, at most two decimal places.
    pub stake: Decimal,
    pub leverage: u32,
    pub duration_seconds: u32,
}

/// Places a bet in one transaction (a savepoint inside the caller's): the
/// start price is the price in force now (it must be fresh), the stake
/// moves from the user's USD wallet to escrow, and the settlement job is
/// queued for `settles_at`.
pub async fn place(
    conn: &mut AsyncPgConnection,
    rates_config: &RatesConfig,
    limits: &BetsConfig,
    bet: PlaceBet,
) -> Result<Bet, BetError> {
    if bet.stake < limits.min_stake || bet.stake > limits.max_stake {
        return Err(BetError::Limit(format!(
            "the stake must be from {} to {} USD",
            limits.min_stake, limits.max_stake
        )));
    }
    let id = conn
        .transaction::<Uuid, BetError, _>(async |conn| {
            place_in(conn, rates_config, limits, &bet).await
        })
        .await?;
    get(conn, bet.user_id, id)
        .await?
        .ok_or_else(|| BetError::Ledger("the bet just placed is missing".into()))
}

async fn place_in(
    conn: &mut AsyncPgConnection,
    rates_config: &RatesConfig,
    limits: &BetsConfig,
    bet: &PlaceBet,
) -> Result<Uuid, BetError> {
    let kind = currencies::find(conn, &bet.symbol)
        .await?
        .map(|c| c.kind)
        .ok_or_else(|| RateError::UnknownSymbol(bet.symbol.clone()))?;
    // The start price is the price in force now, by the same rule as the
    // end price: read under the price lock, by the database's clock.
    let now = rates::lock_prices(conn).await?;
    let start = in_force(conn, rates_config, &bet.symbol, kind, now)
        .await?
        .ok_or_else(|| RateError::Unavailable {
            symbol: bet.symbol.clone(),
            reason: "no fresh price".into(),
        })?;
    let wallet = wallets::list(conn, bet.user_id)
        .await?
        .into_iter()
        .find(|w| w.currency == STAKE_CURRENCY)
        .ok_or(BetError::NoWallet)?;
    let escrow = ledger::system_account(conn, SystemAccount::Escrow, STAKE_CURRENCY).await?;
    let mut movement = Movement::new(TxKind::BetStake)
        .posting(wallet.id, STAKE_CURRENCY, -bet.stake)
        .posting(escrow, STAKE_CURRENCY, bet.stake);
    movement.from_wallet = Some(wallet.id);
    movement.from_amount = Some(bet.stake);
    movement.from_currency = Some(STAKE_CURRENCY.into());
    movement.created_by = Some(bet.user_id);
    let posted = ledger::post(conn, movement).await?;
    // The stake's debit locked the user's USD wallet until commit, so the
    // user's other placements wait here and count this bet once it is in.
    check_open_limits(conn, limits, bet).await?;
    let notional = bet.stake * Decimal::from(bet.leverage);
    let exposure = exposure::add(conn, &bet.symbol, bet.direction.as_str(), notional).await?;
    if exposure > limits.max_house_notional {
        return Err(BetError::Limit(format!(
            "the house has {} USD of {} {} bets open (stake × leverage), the most it takes; try a smaller bet or later",
            exposure - notional,
            bet.symbol,
            bet.direction.as_str()
        )));
    }

    let id = Uuid::now_v7();
    let settles_at = now + chrono::Duration::seconds(i64::from(bet.duration_seconds));
    diesel::insert_into(bets::table)
        .values((
            bets::id.eq(id),
            bets::user_id.eq(bet.user_id),
            bets::wallet_id.eq(wallet.id),
            bets::symbol.eq(&bet.symbol),
            bets::direction.eq(bet.direction.as_str()),
            bets::stake.eq(bet.stake),
            bets::leverage.eq(i32::try_from(bet.leverage).unwrap_or(i32::MAX)),
            bets::duration_seconds.eq(i32::try_from(bet.duration_seconds).unwrap_or(i32::MAX)),
            bets::start_price.eq(start.price_usd),
            bets::liquidation_price.eq(liquidation_price(
                bet.direction,
                start.price_usd,
                bet.leverage,
            )),
            bets::start_observed_at.eq(start.observed_at),
            bets::stake_transaction_id.eq(posted.id),
            bets::created_at.eq(now),
            bets::settles_at.eq(settles_at),
        ))
        .execute(conn)
        .await?;
    outbox::push(conn, &SettleBet { bet_id: id }, Some(settles_at)).await?;
    Ok(id)
}

/// Refuses a bet that would take the user past `BET_MAX_OPEN_BETS` open
/// bets or `BET_MAX_OPEN_STAKE` USD at stake in them. Call with the user's
/// wallet locked (after the stake's debit).
async fn check_open_limits(
    conn: &mut AsyncPgConnection,
    limits: &BetsConfig,
    bet: &PlaceBet,
) -> Result<(), BetError> {
    #[derive(QueryableByName)]
    struct Open {
        #[diesel(sql_type = sql_types::BigInt)]
        bets: i64,
        #[diesel(sql_type = sql_types::Numeric)]
        staked: Decimal,
    }
    let open: Open = diesel::sql_query(
        "SELECT count(*) AS bets, coalesce(sum(stake), 0) AS staked
         FROM bets WHERE user_id = $1 AND status = 'open'",
    )
    .bind::<sql_types::Uuid, _>(bet.user_id)
    .get_result(conn)
    .await?;
    if open.bets >= limits.max_open_bets {
        return Err(BetError::Limit(format!(
            "you have {} open bets, the most allowed",
            open.bets
        )));
    }
    if open.staked + bet.stake > limits.max_open_stake {
        return Err(BetError::Limit(format!(
            "your open bets would have {} USD at stake, more than the {} USD allowed",
            open.staked + bet.stake,
            limits.max_open_stake
        )));
    }
    Ok(())
}

/// The price of `symbol` in force at `at` (the last observation at or
/// before it) if it was fresh then; `None` if there is none or it is stale.
pub async fn in_force(
    conn: &mut AsyncPgConnection,
    rates_config: &RatesConfig,
    symbol: &str,
    kind: Kind,
    at: DateTime<Utc>,
) -> QueryResult<Option<rates::Price>> {
    let price = rates::price_at(conn, symbol, at).await?;
    Ok(price.filter(|p| fresh_at(rates_config, kind, p.observed_at, at)))
}

/// Whether an observation made at `observed_at` may still move money at
/// `at` (not older than the staleness limit of its kind).
pub(crate) fn fresh_at(
    rates_config: &RatesConfig,
    kind: Kind,
    observed_at: DateTime<Utc>,
    at: DateTime<Utc>,
) -> bool {
    at - observed_at <= rates::max_age(rates_config, kind)
}

/// Queues settlement again for open bets more than `after` past due (at
/// most `limit`; each at most once per `after`): their job was lost (Redis
/// lost its data, say) or is failing. A duplicate of a live job is
/// harmless: settlement happens once. Returns how many were queued.
pub async fn reconcile(
    conn: &mut AsyncPgConnection,
    after: std::time::Duration,
    limit: i64,
) -> QueryResult<usize> {
    #[derive(QueryableByName)]
    struct Due {
        #[diesel(sql_type = sql_types::Uuid)]
        id: Uuid,
    }
    let after_secs = after.as_secs_f64();
    conn.transaction(async |conn| {
        let due: Vec<Due> = diesel::sql_query(
            "UPDATE bets SET rescheduled_at = clock_timestamp()
             WHERE id = ANY(ARRAY(
                 SELECT id FROM bets
                 WHERE status = 'open'
                   AND settles_at < statement_timestamp() - make_interval(secs => $1)
                   AND (rescheduled_at IS NULL
                        OR rescheduled_at < statement_timestamp() - make_interval(secs => $1))
                 ORDER BY settles_at
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED))
             RETURNING id",
        )
        .bind::<sql_types::Double, _>(after_secs)
        .bind::<sql_types::BigInt, _>(limit)
        .load(conn)
        .await?;
        for bet in &due {
            outbox::push(conn, &SettleBet { bet_id: bet.id }, None).await?;
        }
        Ok(due.len())
    })
    .await
}
