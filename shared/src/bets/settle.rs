//! Settling a bet, exactly once: the bet row is locked and must still be
//! open; the payout, the escrow release, the bet's result and the email
//! commit together or not at all. A duplicate job, a retry or a job that
//! runs after a crash finds the bet settled and does nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{BetError, Direction, STAKE_CURRENCY, in_force, pnl};
use crate::{
    config::RatesConfig,
    currencies::{self, Kind},
    email::{self, BetSettled},
    ledger::{self, Movement, SystemAccount, TxKind},
    rates,
    schema::{bets, users},
};

/// What [`settle`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Paid now: `W`, `L` or `D` with the payout.
    Settled { result: String, payout: Decimal },
    /// No fresh price at `settles_at`: the stake went back.
    Void,
    /// An earlier run settled it.
    AlreadySettled,
}

#[derive(Debug, Clone, Queryable)]
struct OpenBet {
    user_id: Uuid,
    wallet_id: Uuid,
    symbol: String,
    direction: String,
    stake: Decimal,
    leverage: i32,
    start_price: Decimal,
    status: String,
    settles_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct Wait {
    #[diesel(sql_type = sql_types::Nullable<sql_types::Double>)]
    secs: Option<f64>,
}

/// How long a run that arrives early (this machine's clock ahead of the
/// database's) waits in place rather than failing and backing off.
const MAX_EARLY_WAIT: Duration = Duration::from_secs(5);

/// Settles bet `id` at the price in force at its `settles_at`.
pub async fn settle(
    conn: &mut AsyncPgConnection,
    rates_config: &RatesConfig,
    id: Uuid,
) -> Result<Settled, BetError> {
    // Never before settles_at by the database's clock, which stamps prices.
    let wait: Option<Wait> = diesel::sql_query(
        "SELECT extract(epoch FROM settles_at - clock_timestamp())::float8 AS secs
         FROM bets WHERE id = $1",
    )
    .bind::<sql_types::Uuid, _>(id)
    .get_result(conn)
    .await
    .optional()?;
    let early = wait
        .ok_or(BetError::UnknownBet(id))?
        .secs
        .filter(|s| *s > 0.0)
        .map(|s| Duration::from_secs_f64(s.min(86_400.0)));
    if let Some(early) = early {
        if early > MAX_EARLY_WAIT {
            return Err(BetError::Ledger(format!(
                "bet {id} is not due for {}s",
                early.as_secs()
            )));
        }
        tokio::time::sleep(early).await;
    }
    conn.transaction(async |conn| settle_in(conn, rates_config, id).await)
        .await
}

async fn settle_in(
    conn: &mut AsyncPgConnection,
    rates_config: &RatesConfig,
    id: Uuid,
) -> Result<Settled, BetError> {
    // Only the bet row is locked: settlements of one user's bets do not
    // wait for each other.
    let bet: OpenBet = bets::table
        .filter(bets::id.eq(id))
        .select((
            bets::user_id,
            bets::wallet_id,
            bets::symbol,
            bets::direction,
            bets::stake,
            bets::leverage,
            bets::start_price,
            bets::status,
            bets::settles_at,
        ))
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or(BetError::UnknownBet(id))?;
    if bet.status != "open" {
        return Ok(Settled::AlreadySettled);
    }
    // Every observation stamped at or before settles_at is committed once
    // we hold the price lock past it.
    let now = rates::lock_prices(conn).await?;
    if now < bet.settles_at {
        return Err(BetError::Ledger(format!("bet {id} is not due yet")));
    }
    let kind = currencies::find(conn, &bet.symbol)
        .await?
        .map_or(Kind::Crypto, |c| c.kind);
    let end = in_force(conn, rates_config, &bet.symbol, kind, bet.settles_at).await?;
    let direction = Direction::parse(&bet.direction).unwrap_or(Direction::Up);
    let outcome = end.as_ref().map(|end| {
        pnl::settle(
            direction,
            bet.stake,
            u32::try_from(bet.leverage).unwrap_or(1),
            bet.start_price,
            end.price_usd,
        )
    });
    let payout = outcome.map_or(bet.stake, |o| o.payout);

    // Escrow releases the stake; the wallet gets the payout; the house
    // takes what the user lost or pays what they won.
    let escrow = ledger::system_account(conn, SystemAccount::Escrow, STAKE_CURRENCY).await?;
    let house = ledger::system_account(conn, SystemAccount::House, STAKE_CURRENCY).await?;
    let mut movement = Movement::new(TxKind::BetPayout).posting(escrow, STAKE_CURRENCY, -bet.stake);
    if !payout.is_zero() {
        movement = movement.posting(bet.wallet_id, STAKE_CURRENCY, payout);
        movement.to_wallet = Some(bet.wallet_id);
        movement.to_amount = Some(payout);
        movement.to_currency = Some(STAKE_CURRENCY.into());
    }
    let house_change = bet.stake - payout;
    if !house_change.is_zero() {
        movement = movement.posting(house, STAKE_CURRENCY, house_change);
    }
    movement.created_by = Some(bet.user_id);
    let posted = ledger::post(conn, movement).await?;

    let status = if outcome.is_some() { "settled" } else { "void" };
    let result = outcome.map(|o| o.outcome.as_str().to_owned());
    diesel::update(bets::table.find(id))
        .set((
            bets::status.eq(status),
            bets::result.eq(&result),
            bets::end_price.eq(end.as_ref().map(|p| p.price_usd)),
            bets::end_observed_at.eq(end.as_ref().map(|p| p.observed_at)),
            bets::payout.eq(payout),
            bets::profit.eq(payout - bet.stake),
            bets::payout_transaction_id.eq(posted.id),
            bets::settled_at.eq(diesel::dsl::sql::<
                sql_types::Nullable<sql_types::Timestamptz>,
            >("clock_timestamp()")),
        ))
        .execute(conn)
        .await?;

    let (username, address): (String, String) = users::table
        .find(bet.user_id)
        .select((users::username, users::email))
        .first(conn)
        .await?;
    let money = |d: Decimal| format!("{:.2}", d);
    email::enqueue(
        conn,
        Some(bet.user_id),
        &address,
        &BetSettled {
            username,
            symbol: bet.symbol.clone(),
            direction: bet.direction.clone(),
            status: status.to_owned(),
            result: result.clone().unwrap_or_default(),
            stake: money(bet.stake),
            leverage: bet.leverage,
            start_price: bet.start_price.normalize().to_string(),
            end_price: end
                .as_ref()
                .map(|p| p.price_usd.normalize().to_string())
                .unwrap_or_default(),
            payout: money(payout),
            profit: money(payout - bet.stake),
            settles_at: bet
                .settles_at
                .format("%Y-%m-%d %H:%M:%S%.3f UTC")
                .to_string(),
        },
    )
    .await?;
    Ok(match result {
        Some(result) => Settled::Settled { result, payout },
        None => Settled::Void,
    })
}
