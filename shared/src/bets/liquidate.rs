//! Liquidation (PRODUCT.md §7): the observation that reaches an open bet's
//! liquidation price closes it there and then, as a margin product closes
//! a position whose loss has reached its margin.
//!
//! Each observation finds the bets it liquidates with one statement per
//! batch: per symbol and direction, a range of a partial index over open
//! bets (`bets_liquidation_up_idx`, `…_down_idx`), nearest the price
//! first; never a task per bet. Exactly once and race-free against the
//! expiry settlement: the rows are locked as they are found, and only
//! still-open bets change. A bet a settlement holds is waited for, not
//! skipped: the settlement either ends it (and it is passed over) or rolls
//! back (and it is liquidated here). So once the last batch of an
//! observation commits, every open bet it reached is closed, and it leaves
//! `liquidation_pending`, the list the expiry settlement searches for
//! crossings (`settle`): no settlement reads the whole price history.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use diesel::sql_types;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{
    BetError, exposure,
    settle::{OpenBet, Payouts, settled_event, system_accounts_on},
    settled_email::liquidated_email,
};
use crate::{
    email,
    webhooks::{self, EventType},
};

/// What one call of [`liquidate`] did.
#[derive(Debug)]
pub struct Liquidations {
    /// The bets closed, with their owners.
    pub bets: Vec<(Uuid, Uuid)>,
    /// A direction may have stopped at the batch limit: call again (a call
    /// that finds nothing more is cheap).
    pub maybe_more: bool,
}

/// Liquidates up to `batch` bets per direction whose liquidation price the
/// observations stored at `observed_at` for `symbols` reach (price ≤ it for
/// `up`, ≥ it for `down`), among bets placed before the observation and
/// due at or after it: status `settled`, result `L`, payout 0, the stake
/// from escrow to the house, `end_price` the observed price, and one email
/// each, in one transaction. Call again until [`Liquidations::maybe_more`]
/// is false; running the same observation again closes nothing new.
pub async fn liquidate(
    conn: &mut AsyncPgConnection,
    observed_at: DateTime<Utc>,
    symbols: &[String],
    batch: i64,
) -> Result<Liquidations, BetError> {
    let bets = conn
        .transaction::<_, BetError, _>(async |conn| {
            liquidate_in(conn, observed_at, symbols, batch).await
        })
        .await?;
    Ok(Liquidations {
        maybe_more: i64::try_from(bets.len()).unwrap_or(i64::MAX) >= batch,
        bets,
    })
}

async fn liquidate_in(
    conn: &mut AsyncPgConnection,
    observed_at: DateTime<Utc>,
    symbols: &[String],
    batch: i64,
) -> Result<Vec<(Uuid, Uuid)>, BetError> {
    let due: Vec<OpenBet> = diesel::sql_query(
        "WITH obs AS (
             SELECT DISTINCT ON (symbol) symbol, price_usd
             FROM price_history
             WHERE observed_at = $1 AND symbol = ANY($2)
             ORDER BY symbol, id DESC),
         hit AS (
             SELECT c.id, obs.price_usd FROM obs CROSS JOIN LATERAL (
                 SELECT b.id FROM bets b
                 WHERE b.symbol = obs.symbol AND b.status = 'open' AND b.direction = 'up'
                   AND b.liquidation_price >= obs.price_usd
                   AND b.created_at < $1 AND b.settles_at >= $1
                 ORDER BY b.liquidation_price DESC
                 LIMIT $3
                 FOR UPDATE OF b) c
             UNION ALL
             SELECT c.id, obs.price_usd FROM obs CROSS JOIN LATERAL (
                 SELECT b.id FROM bets b
                 WHERE b.symbol = obs.symbol AND b.status = 'open' AND b.direction = 'down'
                   AND b.liquidation_price <= obs.price_usd
                   AND b.created_at < $1 AND b.settles_at >= $1
                 ORDER BY b.liquidation_price
                 LIMIT $3
                 FOR UPDATE OF b) c)
         SELECT b.id, b.user_id, b.wallet_id, b.symbol, b.direction, b.stake, b.leverage,
                b.start_price, b.liquidation_price, b.status, b.settles_at, c.kind,
                u.username, u.email, 0::float8 AS early, true AS due,
                hit.price_usd AS end_price, $1 AS end_observed_at,
                hit.price_usd AS crossed_price, $1 AS crossed_at
         FROM hit
         JOIN bets b ON b.id = hit.id
         JOIN currencies c ON c.code = b.symbol
         JOIN users u ON u.id = b.user_id
         ORDER BY b.id",
    )
    .bind::<sql_types::Timestamptz, _>(observed_at)
    .bind::<sql_types::Array<sql_types::Text>, _>(symbols)
    .bind::<sql_types::BigInt, _>(batch)
    .load(conn)
    .await?;
    // Fewer than a batch in all: this observation is done (the rows are
    // locked, so nothing open that it reaches is left behind).
    if i64::try_from(due.len()).unwrap_or(i64::MAX) < batch {
        evaluated(conn, observed_at, symbols).await?;
    }
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let shared: &AsyncPgConnection = conn;
    let [escrow, house] = system_accounts_on(shared).await?;
    // Payouts of zero credit no wallet: the stake goes from escrow to the
    // house, so a blocked wallet changes nothing here.
    let paid = vec![Decimal::ZERO; due.len()];
    let payouts = Payouts::plan(&due, &paid, &HashSet::new());
    let ids: Vec<Uuid> = due.iter().map(|b| b.id).collect();
    let prices: Vec<Decimal> = due
        .iter()
        .map(|b| b.crossed_price.unwrap_or(b.liquidation_price))
        .collect();
    let losses: Vec<Decimal> = due.iter().map(|b| -b.stake).collect();
    let mails: Vec<_> = due
        .iter()
        .zip(&prices)
        .map(|(bet, price)| {
            (
                Some(bet.user_id),
                bet.email.clone(),
                liquidated_email(bet, *price, observed_at),
            )
        })
        .collect();
    let events: Vec<_> = due
        .iter()
        .map(|bet| settled_event(bet, "liquidated", Some("L"), Decimal::ZERO))
        .collect();
    let posted = payouts.insert_on(shared, escrow, house);
    let update = diesel::sql_query(
        "UPDATE bets b SET status = 'settled', result = 'L', end_price = v.price,
                end_observed_at = $4, payout = 0, profit = v.profit,
                payout_transaction_id = v.tx, settled_at = clock_timestamp(),
                liquidated = true
         FROM unnest($1::uuid[], $2::numeric[], $3::numeric[], $5::uuid[])
              AS v(id, price, profit, tx)
         WHERE b.id = v.id AND b.status = 'open'",
    )
    .bind::<sql_types::Array<sql_types::Uuid>, _>(&ids)
    .bind::<sql_types::Array<sql_types::Numeric>, _>(&prices)
    .bind::<sql_types::Array<sql_types::Numeric>, _>(&losses)
    .bind::<sql_types::Timestamptz, _>(observed_at)
    .bind::<sql_types::Array<sql_types::Uuid>, _>(&payouts.transactions)
    .execute(&mut &*shared);
    let emails = email::enqueue_many_quiet_on(shared, &mails);
    let webhooks = webhooks::events::emit(shared, EventType::BetSettled, &events);
    let closed = exposure::Closed::of(&due);
    let exposure = closed.take_off(shared);
    futures::try_join!(posted, update, emails, webhooks, exposure)?;
    Ok(due.iter().map(|b| (b.id, b.user_id)).collect())
}

/// Takes `observed_at`'s observations of `symbols` off `liquidation_pending`,
/// with any row no bet can span any more (an observation never announced):
/// bets last at most a day.
async fn evaluated(
    conn: &mut AsyncPgConnection,
    observed_at: DateTime<Utc>,
    symbols: &[String],
) -> Result<(), BetError> {
    diesel::sql_query(
        "DELETE FROM liquidation_pending
         WHERE (observed_at = $1 AND symbol = ANY($2)) OR observed_at < $1 - interval '2 days'",
    )
    .bind::<sql_types::Timestamptz, _>(observed_at)
    .bind::<sql_types::Array<sql_types::Text>, _>(symbols)
    .execute(conn)
    .await?;
    Ok(())
}
