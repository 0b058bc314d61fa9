//! Settling bets, each exactly once: a bet row is locked and must still be
//! open; the payouts, the escrow releases, the bets' results and their
//! emails commit together or not at all. A duplicate job, a retry or a job
//! that runs after a crash finds its bet settled and does nothing.
//!
//! [`settle_many`] settles a group of bets in one transaction (the worker
//! gathers the jobs that fall due together, see its `jobs::bets`): the
//! round trips are per group, not per bet. Wallet rows are locked in
//! ascending order (bets sorted by wallet), so groups never deadlock.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{
    BetError, BetStatus, Direction, STAKE_CURRENCY, Settlement, exposure, pnl,
    settled_email::{liquidated_email, settled_email},
};
use crate::{
    config::RatesConfig,
    currencies::Kind,
    email,
    ledger::{self, Movement, SystemAccount, TxKind},
    rates,
    wallets::WalletStatus,
    webhooks::{self, EventType, payloads::BetSettled as BetSettledEvent},
};

/// What settling one bet did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Paid now: `W`, `L` or `D` with the payout.
    Settled { result: String, payout: Decimal },
    /// No fresh price at `settles_at`: the stake went back.
    Void,
    /// An earlier run settled it.
    AlreadySettled,
    /// Not due yet by the database's clock (this machine's clock is ahead):
    /// try again after this long.
    Early(Duration),
    /// Another transaction holds the bet right now (a duplicate job): try
    /// again later.
    Busy,
    /// No such bet.
    Unknown,
}

/// The bet row, locked, with what settling it needs from elsewhere.
#[derive(Debug, Clone, QueryableByName)]
pub(super) struct OpenBet {
    #[diesel(sql_type = sql_types::Uuid)]
    pub(super) id: Uuid,
    #[diesel(sql_type = sql_types::Uuid)]
    pub(super) user_id: Uuid,
    #[diesel(sql_type = sql_types::Uuid)]
    pub(super) wallet_id: Uuid,
    #[diesel(sql_type = sql_types::Text)]
    pub(super) symbol: String,
    #[diesel(sql_type = sql_types::Text)]
    pub(super) direction: String,
    #[diesel(sql_type = sql_types::Numeric)]
    pub(super) stake: Decimal,
    #[diesel(sql_type = sql_types::Integer)]
    pub(super) leverage: i32,
    #[diesel(sql_type = sql_types::Numeric)]
    pub(super) start_price: Decimal,
    #[diesel(sql_type = sql_types::Numeric)]
    pub(super) liquidation_price: Decimal,
    #[diesel(sql_type = sql_types::Text)]
    pub(super) status: BetStatus,
    #[diesel(sql_type = sql_types::Timestamptz)]
    pub(super) settles_at: DateTime<Utc>,
    #[diesel(sql_type = sql_types::Text)]
    pub(super) kind: Kind,
    #[diesel(sql_type = sql_types::Text)]
    pub(super) username: String,
    #[diesel(sql_type = sql_types::Text)]
    pub(super) email: String,
    /// Seconds until `settles_at` by the database's clock (≤ 0 when due).
    #[diesel(sql_type = sql_types::Double)]
    pub(super) early: f64,
    /// `settles_at` is at or before the price barrier: its price is final.
    #[diesel(sql_type = sql_types::Bool)]
    pub(super) due: bool,
    /// The price in force at `settles_at` (when due and one was observed).
    #[diesel(sql_type = sql_types::Nullable<sql_types::Numeric>)]
    pub(super) end_price: Option<Decimal>,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Timestamptz>)]
    pub(super) end_observed_at: Option<DateTime<Utc>>,
    /// The first observation after placement and at or before
    /// `settles_at` that reached the liquidation price, if any: the bet
    /// ends there, whichever job gets to it first.
    #[diesel(sql_type = sql_types::Nullable<sql_types::Numeric>)]
    pub(super) crossed_price: Option<Decimal>,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Timestamptz>)]
    pub(super) crossed_at: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = sql_types::Uuid)]
    id: Uuid,
}

#[derive(QueryableByName)]
struct WalletState {
    #[diesel(sql_type = sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = sql_types::Text)]
    status: WalletStatus,
}

/// The escrow and house accounts of the stake currency, on a shared
/// connection (pipelined with the bet rows).
pub(super) async fn system_accounts_on(conn: &AsyncPgConnection) -> QueryResult<[Uuid; 2]> {
    ledger::system_accounts(
        conn,
        [SystemAccount::Escrow, SystemAccount::House],
        STAKE_CURRENCY,
    )
    .await
}

/// How long a run that arrives early waits in place rather than failing
/// and backing off.
const MAX_EARLY_WAIT: Duration = Duration::from_secs(5);

/// Settles bet `id` at the price in force at its `settles_at` (waiting a
/// moment if it arrives early by the database's clock).
pub async fn settle(
    conn: &mut AsyncPgConnection,
    rates_config: &RatesConfig,
    id: Uuid,
) -> Result<Settled, BetError> {
    for _ in 0..3 {
        let mut results = settle_many(conn, rates_config, &[id]).await?;
        match results.remove(&id).unwrap_or(Settled::Unknown) {
            Settled::Early(wait) if wait <= MAX_EARLY_WAIT => tokio::time::sleep(wait).await,
            other => return Ok(other),
        }
    }
    Ok(Settled::Early(MAX_EARLY_WAIT))
}

/// Settles the bets `ids` that are open and due, in one transaction; says
/// for every id what happened.
///
/// Round trips are what a group costs on busy cores, so there are five:
/// the price barrier, `BEGIN`, the locks and reads (pipelined), the writes
/// (pipelined) and `COMMIT`. A wallet blocked for unpaid fees adds one per
/// such bet.
pub async fn settle_many(
    conn: &mut AsyncPgConnection,
    rates_config: &RatesConfig,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Settled>, BetError> {
    // A barrier, before the payout transaction: the shared price lock,
    // taken and released in a statement of its own, cannot be granted while
    // a writer holds the lock, and a writer that takes it later stamps a
    // later time. So once it is granted at `prices_final`, every
    // observation stamped at or before then is committed, and any later
    // statement (a new snapshot) sees all of them. The lock is not held
    // through the payouts, so the writer of new prices never waits for them.
    let prices_final = rates::lock_prices(conn).await?;
    conn.transaction(async |conn| settle_in(conn, rates_config, ids, prices_final).await)
        .await
}

async fn settle_in(
    conn: &mut AsyncPgConnection,
    rates_config: &RatesConfig,
    ids: &[Uuid],
    prices_final: DateTime<Utc>,
) -> Result<HashMap<Uuid, Settled>, BetError> {
    let mut results: HashMap<Uuid, Settled> = HashMap::with_capacity(ids.len());
    let shared: &AsyncPgConnection = conn;
    let accounts = system_accounts_on(shared);
    // The bet rows are locked without waiting (a duplicate job's
    // transaction holding one is skipped, not waited for), in wallet order,
    // each with the price in force at its `settles_at` when that is final,
    // and the first observation in its lifetime that reached its
    // liquidation price. Only the observations whose liquidation job has not
    // finished (`liquidation_pending`) are searched: one that has finished
    // closed every open bet it reached, waiting for any a settlement held.
    let rows = diesel::sql_query(
        "SELECT b.id, b.user_id, b.wallet_id, b.symbol, b.direction, b.stake, b.leverage,
                b.start_price, b.liquidation_price, b.status, b.settles_at, c.kind,
                u.username, u.email,
                extract(epoch FROM b.settles_at - clock_timestamp())::float8 AS early,
                b.settles_at <= $2 AS due,
                p.price_usd AS end_price, p.observed_at AS end_observed_at,
                l.price_usd AS crossed_price, l.observed_at AS crossed_at
         FROM bets b
         JOIN currencies c ON c.code = b.symbol
         JOIN users u ON u.id = b.user_id
         LEFT JOIN LATERAL (
             SELECT price_usd, observed_at FROM price_history h
             WHERE b.status = 'open' AND b.settles_at <= $2
               AND h.symbol = b.symbol AND h.observed_at <= b.settles_at
             ORDER BY h.observed_at DESC LIMIT 1) p ON true
         LEFT JOIN LATERAL (
             SELECT h.price_usd, h.observed_at FROM liquidation_pending k
             CROSS JOIN LATERAL (
                 SELECT price_usd, observed_at FROM price_history h
                 WHERE h.symbol = k.symbol AND h.observed_at = k.observed_at
                 ORDER BY h.id DESC LIMIT 1) h
             WHERE b.status = 'open' AND b.settles_at <= $2
               AND k.symbol = b.symbol
               AND k.observed_at > b.created_at AND k.observed_at <= b.settles_at
               AND CASE WHEN b.direction = 'up' THEN h.price_usd <= b.liquidation_price
                        ELSE h.price_usd >= b.liquidation_price END
             ORDER BY k.observed_at LIMIT 1) l ON true
         WHERE b.id = ANY($1)
         ORDER BY b.wallet_id, b.id
         FOR UPDATE OF b SKIP LOCKED",
    )
    .bind::<sql_types::Array<sql_types::Uuid>, _>(ids)
    .bind::<sql_types::Timestamptz, _>(prices_final)
    .load::<OpenBet>(&mut &*shared);
    // Then, in the same round trip, the bets' wallet accounts, waiting for
    // them, in ascending id order (ledger_post's order, so no deadlock with
    // transfers or the other worker's group). A bet's wallet never changes,
    // so they are found from the ids; a wallet of a bet skipped above is
    // locked for nothing, which costs nothing.
    let wallets = diesel::sql_query(
        "SELECT w.id, w.status FROM ledger_accounts a JOIN wallets w ON w.id = a.id
         WHERE a.id IN (SELECT wallet_id FROM bets WHERE id = ANY($1))
         ORDER BY a.id FOR UPDATE",
    )
    .bind::<sql_types::Array<sql_types::Uuid>, _>(ids)
    .load::<WalletState>(&mut &*shared);
    let (rows, wallets, [escrow, house]) = futures::try_join!(rows, wallets, accounts)?;
    if rows.len() < ids.len() {
        let exist: Vec<Found> = diesel::sql_query("SELECT id FROM bets WHERE id = ANY($1)")
            .bind::<sql_types::Array<sql_types::Uuid>, _>(ids)
            .load(conn)
            .await?;
        for id in ids {
            let state = if exist.iter().any(|f| f.id == *id) {
                Settled::Busy
            } else {
                Settled::Unknown
            };
            results.insert(*id, state);
        }
    }
    let due = due_bets(rows, &mut results);
    if due.is_empty() {
        return Ok(results);
    }
    let outcomes = price_outcomes(rates_config, &due);
    let paid: Vec<Decimal> = outcomes.iter().map(|(_, payout, _, _)| *payout).collect();
    let blocked: HashSet<Uuid> = wallets
        .into_iter()
        .filter(|w| w.status != WalletStatus::Active)
        .map(|w| w.id)
        .collect();
    let payouts = Payouts::plan(&due, &paid, &blocked);
    // A blocked wallet's payout goes through `ledger_post` first, one at a
    // time: it settles the wallet's outstanding fees and unblocks it when
    // the credit covers them.
    let mut transactions = payouts.transactions.clone();
    for &i in &payouts.blocked {
        let movement = movement(&due[i], paid[i], escrow, house);
        transactions[i] = ledger::post(conn, movement).await?.id;
    }
    let shared: &AsyncPgConnection = conn;

    let bet_ids: Vec<Uuid> = due.iter().map(|b| b.id).collect();
    let mut statuses = Vec::with_capacity(due.len());
    let mut result_codes: Vec<Option<String>> = Vec::with_capacity(due.len());
    let mut end_prices: Vec<Option<Decimal>> = Vec::with_capacity(due.len());
    let mut end_times: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(due.len());
    let mut profits = Vec::with_capacity(due.len());
    let mut liquidated = Vec::with_capacity(due.len());
    let mut mails = Vec::with_capacity(due.len());
    let mut events = Vec::with_capacity(due.len());
    for (bet, (outcome, payout, end, closed)) in due.iter().zip(&outcomes) {
        let status = if outcome.is_some() {
            BetStatus::Settled
        } else {
            BetStatus::Void
        };
        let result = outcome.map(|o| o.outcome.as_str().to_owned());
        statuses.push(status);
        result_codes.push(result.clone());
        end_prices.push(end.map(|(p, _)| p));
        end_times.push(end.map(|(_, at)| at));
        profits.push(*payout - bet.stake);
        liquidated.push(*closed);
        let mail = match end {
            Some((price, at)) if *closed => liquidated_email(bet, *price, *at),
            _ => settled_email(bet, status, result.as_deref(), *payout, end.map(|(p, _)| p)),
        };
        mails.push((Some(bet.user_id), bet.email.clone(), mail));
        let shown = match status {
            _ if *closed => "liquidated",
            BetStatus::Void => "void",
            _ => "settled",
        };
        events.push(settled_event(bet, shown, result.as_deref(), *payout));
        results.insert(
            bet.id,
            match result {
                Some(result) => Settled::Settled {
                    result,
                    payout: *payout,
                },
                None => Settled::Void,
            },
        );
    }
    // The payouts, the results and the emails, pipelined: the transaction
    // ids were chosen here, so no statement waits for another's answer.
    let posted = payouts.insert_on(shared, escrow, house);
    let update = diesel::sql_query(
        "UPDATE bets b SET status = v.status, result = v.result, end_price = v.end_price,
                end_observed_at = v.end_at, payout = v.payout, profit = v.profit,
                payout_transaction_id = v.tx, settled_at = clock_timestamp(),
                liquidated = v.liquidated
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::numeric[], $5::timestamptz[],
                     $6::numeric[], $7::numeric[], $8::uuid[], $9::bool[])
              AS v(id, status, result, end_price, end_at, payout, profit, tx, liquidated)
         WHERE b.id = v.id",
    )
    .bind::<sql_types::Array<sql_types::Uuid>, _>(&bet_ids)
    .bind::<sql_types::Array<sql_types::Text>, _>(&statuses)
    .bind::<sql_types::Array<sql_types::Nullable<sql_types::Text>>, _>(&result_codes)
    .bind::<sql_types::Array<sql_types::Nullable<sql_types::Numeric>>, _>(&end_prices)
    .bind::<sql_types::Array<sql_types::Nullable<sql_types::Timestamptz>>, _>(&end_times)
    .bind::<sql_types::Array<sql_types::Numeric>, _>(&paid)
    .bind::<sql_types::Array<sql_types::Numeric>, _>(&profits)
    .bind::<sql_types::Array<sql_types::Uuid>, _>(&transactions)
    .bind::<sql_types::Array<sql_types::Bool>, _>(&liquidated)
    .execute(&mut &*shared);
    let emails = email::enqueue_many_quiet_on(shared, &mails);
    let webhooks = webhooks::events::emit(shared, EventType::BetSettled, &events);
    let closed = exposure::Closed::of(&due);
    let exposure = closed.take_off(shared);
    futures::try_join!(posted, update, emails, webhooks, exposure)?;
    Ok(results)
}

/// A `bet.settled` webhook event for `bet`'s owner.
pub(super) fn settled_event(
    bet: &OpenBet,
    status: &'static str,
    result: Option<&str>,
    payout: Decimal,
) -> (Uuid, BetSettledEvent) {
    let event = BetSettledEvent {
        bet_id: bet.id,
        wallet_id: bet.wallet_id,
        status,
        result: result.map(str::to_owned),
        symbol: bet.symbol.clone(),
        direction: bet.direction.clone(),
        stake: format!("{:.2}", bet.stake),
        payout: format!("{payout:.2}"),
        currency: super::STAKE_CURRENCY,
    };
    (bet.user_id, event)
}

/// Sorts the locked rows: settled already, not due yet by the database's
/// clock (when the barrier passed), or due now (returned).
fn due_bets(rows: Vec<OpenBet>, results: &mut HashMap<Uuid, Settled>) -> Vec<OpenBet> {
    let mut due = Vec::with_capacity(rows.len());
    for bet in rows {
        if bet.status != BetStatus::Open {
            results.insert(bet.id, Settled::AlreadySettled);
        } else if bet.early > 0.0 || !bet.due {
            results.insert(
                bet.id,
                Settled::Early(Duration::from_secs_f64(bet.early.clamp(0.001, 86_400.0))),
            );
        } else {
            due.push(bet);
        }
    }
    due
}

/// A due bet's result at the price in force at its `settles_at`, if that
/// price was fresh then (else none: the bet is void and the stake goes
/// back), with the payout, that price, and whether an observation before
/// then reached the liquidation price instead (then the bet ends there: a
/// total loss at that observation's price).
type PricedOutcome = (
    Option<Settlement>,
    Decimal,
    Option<(Decimal, DateTime<Utc>)>,
    bool,
);

fn price_outcomes(rates_config: &RatesConfig, due: &[OpenBet]) -> Vec<PricedOutcome> {
    due.iter()
        .map(|bet| {
            if let Some(crossed) = bet.crossed_price.zip(bet.crossed_at) {
                return (
                    Some(pnl::liquidated(bet.stake)),
                    Decimal::ZERO,
                    Some(crossed),
                    true,
                );
            }
            let end = bet
                .end_price
                .zip(bet.end_observed_at)
                .filter(|(_, at)| super::fresh_at(rates_config, bet.kind, *at, bet.settles_at));
            let outcome = end.map(|(price, _)| {
                pnl::settle(
                    Direction::parse(&bet.direction).unwrap_or(Direction::Up),
                    bet.stake,
                    u32::try_from(bet.leverage).unwrap_or(1),
                    bet.start_price,
                    price,
                )
            });
            let payout = outcome.map_or(bet.stake, |o| o.payout);
            (outcome, payout, end, false)
        })
        .collect()
}

/// One bet's payout as a ledger movement: escrow releases the stake; the
/// wallet gets the payout; the house takes what the user lost or pays what
/// they won.
fn movement(bet: &OpenBet, payout: Decimal, escrow: Uuid, house: Uuid) -> Movement {
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
    movement
}

/// A group's payouts, one ledger transaction per bet, in the group's order.
///
/// Payouts only credit wallets, so for an active wallet there is nothing to
/// refuse: all of those go in with one set-based statement (the
/// transactions, then their entries; the balance trigger runs once),
/// instead of one `ledger_post` call per bet, which was most of the
/// database's work per settlement. The wallets were locked beforehand.
pub(super) struct Payouts {
    /// Each bet's transaction id; nil for a blocked wallet's (not chosen
    /// here: `ledger_post` returns it).
    pub(super) transactions: Vec<Uuid>,
    /// Positions of the bets whose wallet is blocked.
    blocked: Vec<usize>,
    tx: Vec<Uuid>,
    wallet: Vec<Uuid>,
    stake: Vec<Decimal>,
    payout: Vec<Decimal>,
    user: Vec<Uuid>,
}

impl Payouts {
    pub(super) fn plan(due: &[OpenBet], paid: &[Decimal], blocked_wallets: &HashSet<Uuid>) -> Self {
        let mut plan = Self {
            transactions: vec![Uuid::nil(); due.len()],
            blocked: Vec::new(),
            tx: Vec::with_capacity(due.len()),
            wallet: Vec::with_capacity(due.len()),
            stake: Vec::with_capacity(due.len()),
            payout: Vec::with_capacity(due.len()),
            user: Vec::with_capacity(due.len()),
        };
        for (i, (bet, paid)) in due.iter().zip(paid).enumerate() {
            if blocked_wallets.contains(&bet.wallet_id) {
                plan.blocked.push(i);
                continue;
            }
            let id = Uuid::now_v7();
            plan.transactions[i] = id;
            plan.tx.push(id);
            plan.wallet.push(bet.wallet_id);
            plan.stake.push(bet.stake);
            plan.payout.push(*paid);
            plan.user.push(bet.user_id);
        }
        plan
    }

    /// Posts the active wallets' payouts, on a shared connection.
    pub(super) async fn insert_on(
        &self,
        conn: &AsyncPgConnection,
        escrow: Uuid,
        house: Uuid,
    ) -> QueryResult<usize> {
        if self.tx.is_empty() {
            return Ok(0);
        }
        diesel::sql_query(
            "WITH p AS (
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::numeric[], $4::numeric[],
                                      $5::uuid[]) AS p(tx, wallet, stake, payout, created_by)),
             transactions AS (
                 INSERT INTO ledger_transactions (id, kind, to_wallet, to_amount, to_currency,
                                                  created_by)
                 SELECT tx, 'bet_payout',
                        CASE WHEN payout <> 0 THEN wallet END,
                        CASE WHEN payout <> 0 THEN payout END,
                        CASE WHEN payout <> 0 THEN $8 END,
                        created_by
                 FROM p)
             INSERT INTO ledger_entries (transaction_id, account_id, currency, amount)
             SELECT p.tx, e.account, $8, e.amount
             FROM p CROSS JOIN LATERAL (VALUES ($6::uuid, -p.stake),
                                               (p.wallet, p.payout),
                                               ($7::uuid, p.stake - p.payout)) AS e(account, amount)
             WHERE e.amount <> 0",
        )
        .bind::<sql_types::Array<sql_types::Uuid>, _>(&self.tx)
        .bind::<sql_types::Array<sql_types::Uuid>, _>(&self.wallet)
        .bind::<sql_types::Array<sql_types::Numeric>, _>(&self.stake)
        .bind::<sql_types::Array<sql_types::Numeric>, _>(&self.payout)
        .bind::<sql_types::Array<sql_types::Uuid>, _>(&self.user)
        .bind::<sql_types::Uuid, _>(escrow)
        .bind::<sql_types::Uuid, _>(house)
        .bind::<sql_types::Text, _>(STAKE_CURRENCY)
        .execute(&mut &*conn)
        .await
    }
}
