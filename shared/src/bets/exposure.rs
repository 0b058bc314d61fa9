//! The house's open notional per symbol and direction (`bet_exposure`):
//! stake × leverage of the open bets, added at placement (under the row's
//! lock, so the limit holds under concurrent placements) and taken off
//! when a bet settles, is void or is liquidated, in the same transaction.
//!
//! Lock order: a placement locks its wallet, then escrow, then this row; a
//! settlement its bets, wallets, escrow and house, then these rows in
//! (symbol, direction) order. No cycle, so no deadlock.

use std::collections::BTreeMap;

use diesel::{QueryResult, sql_types};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;

#[derive(diesel::QueryableByName)]
struct Exposure {
    #[diesel(sql_type = sql_types::Numeric)]
    open_notional: Decimal,
}

/// Adds `notional` to the open notional of (`symbol`, `direction`) and
/// returns the new total.
pub(super) async fn add(
    conn: &mut AsyncPgConnection,
    symbol: &str,
    direction: &str,
    notional: Decimal,
) -> QueryResult<Decimal> {
    let row: Exposure = diesel::sql_query(
        "INSERT INTO bet_exposure (symbol, direction, open_notional) VALUES ($1, $2, $3)
         ON CONFLICT (symbol, direction)
         DO UPDATE SET open_notional = bet_exposure.open_notional + EXCLUDED.open_notional
         RETURNING open_notional",
    )
    .bind::<sql_types::Text, _>(symbol)
    .bind::<sql_types::Text, _>(direction)
    .bind::<sql_types::Numeric, _>(notional)
    .get_result(conn)
    .await?;
    Ok(row.open_notional)
}

/// What closing bets takes off each (symbol, direction), in lock order.
#[derive(Default)]
pub(super) struct Closed(BTreeMap<(String, String), Decimal>);

impl Closed {
    /// What closing `bets` takes off.
    pub(super) fn of(bets: &[super::settle::OpenBet]) -> Self {
        let mut closed = Self::default();
        for bet in bets {
            closed.add(&bet.symbol, &bet.direction, bet.stake, bet.leverage);
        }
        closed
    }

    fn add(&mut self, symbol: &str, direction: &str, stake: Decimal, leverage: i32) {
        *self
            .0
            .entry((symbol.to_owned(), direction.to_owned()))
            .or_default() += stake * Decimal::from(leverage);
    }

    /// Takes the closed bets' notional off, one statement per row in
    /// (symbol, direction) order, on a shared connection (pipelined with
    /// the settlement's other writes; the statements run in this order).
    pub(super) async fn take_off(&self, conn: &AsyncPgConnection) -> QueryResult<()> {
        let updates = self
            .0
            .iter()
            .map(|((symbol, direction), notional)| async move {
                diesel::sql_query(
                    "UPDATE bet_exposure SET open_notional = open_notional - $3
                 WHERE symbol = $1 AND direction = $2",
                )
                .bind::<sql_types::Text, _>(symbol)
                .bind::<sql_types::Text, _>(direction)
                .bind::<sql_types::Numeric, _>(*notional)
                .execute(&mut &*conn)
                .await
            });
        futures::future::try_join_all(updates).await?;
        Ok(())
    }
}
