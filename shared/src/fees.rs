//! The monthly wallet fee (PRODUCT.md §9).
//!
//! Every fiat wallet owes the fee (`MONTHLY_FEE_AMOUNT` `MONTHLY_FEE_CURRENCY`,
//! converted to its currency at the fresh rate, rounded down) 30 days after
//! creation and every 30 days after (`wallet_fee_schedule`, filled by a
//! database trigger). [`charge_due`] charges every wallet due at a given
//! time, in batches of `MONTHLY_FEE_BATCH` wallets, one transaction each:
//!
//! - due wallets are locked `FOR UPDATE SKIP LOCKED`, so any number of
//!   runs on any number of workers share the work without waiting on each
//!   other;
//! - each charge is its own `fee` ledger transaction (wallet → the fees
//!   account of its currency), inserted set-based;
//! - each (wallet, period) gets one `wallet_fees` row, and its primary key
//!   refuses a second: a rerun, a retry or a crash between batches charges
//!   nothing twice;
//! - a wallet that cannot pay is `blocked` with the fee outstanding and
//!   its owner gets one email; the ledger (`ledger_post`) charges the
//!   outstanding fees with the first credit that covers them and unblocks
//!   the wallet, in that credit's transaction.
//!
//! Without a fresh price of the fee's currency nothing is charged (the
//! next tick tries again); wallets whose own currency has no fresh price
//! wait likewise. Nobody is blocked for lack of a price.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rust_decimal::{Decimal, RoundingStrategy};
use uuid::Uuid;

use crate::{
    config::{FeesConfig, RatesConfig},
    currencies::{self, Kind},
    email::{self, WalletBlocked},
    rates,
    wallets::WalletStatus,
    webhooks::{self, EventType, payloads::WalletBlocked as WalletBlockedEvent},
};

/// Days between two fees of a wallet.
pub const PERIOD_DAYS: i64 = 30;

/// What one call of [`charge_due`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeeRun {
    pub charged: usize,
    pub blocked: usize,
    /// Wallets that were already blocked and owe one more period.
    pub outstanding: usize,
    pub batches: usize,
    /// Nothing charged: no fresh price of the fee's currency.
    pub waiting_for_price: bool,
    /// Currencies whose wallets wait for a fresh price.
    pub unpriced: Vec<String>,
    /// Stopped at its batch or time limit, perhaps with wallets still due.
    pub unfinished: bool,
}

/// When [`charge_batches`] stops although wallets may still be due.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub max_batches: usize,
    /// No batch starts after this.
    pub deadline: Option<std::time::Instant>,
}

impl Limit {
    pub const NONE: Limit = Limit {
        max_batches: usize::MAX,
        deadline: None,
    };
}

/// The fee in one wallet currency, at the prices of this run.
#[derive(Debug, Clone)]
struct Priced {
    /// In the wallet's currency, rounded down to its decimals.
    amount: Decimal,
    /// Units of the wallet's currency per unit of the fee's.
    rate: Decimal,
}

#[derive(QueryableByName)]
struct Due {
    #[diesel(sql_type = sql_types::Uuid)]
    id: Uuid,
    #[diesel(sql_type = sql_types::Uuid)]
    user_id: Uuid,
    #[diesel(sql_type = sql_types::Text)]
    currency: String,
    #[diesel(sql_type = sql_types::Text)]
    wallet_number: String,
    #[diesel(sql_type = sql_types::Integer)]
    fee_period: i32,
    #[diesel(sql_type = sql_types::Timestamptz)]
    next_fee_at: DateTime<Utc>,
    #[diesel(sql_type = sql_types::Text)]
    status: WalletStatus,
    #[diesel(sql_type = sql_types::Numeric)]
    balance: Decimal,
}

/// Charges every wallet whose fee is due at `now` (the injectable clock's
/// time), batch after batch, until none is left that this call can lock.
pub async fn charge_due(
    conn: &mut AsyncPgConnection,
    fees: &FeesConfig,
    rates_config: &RatesConfig,
    now: DateTime<Utc>,
) -> QueryResult<FeeRun> {
    charge_batches(conn, fees, rates_config, now, Limit::NONE).await
}

/// [`charge_due`] within `limit`: a job stops before its attempt times out
/// (and queues its continuation); tests stop a run between batches.
pub async fn charge_batches(
    conn: &mut AsyncPgConnection,
    fees: &FeesConfig,
    rates_config: &RatesConfig,
    now: DateTime<Utc>,
    limit: Limit,
) -> QueryResult<FeeRun> {
    let mut run = FeeRun::default();
    let Some((prices, unpriced)) = prices(conn, fees, rates_config, now).await? else {
        run.waiting_for_price = true;
        return Ok(run);
    };
    run.unpriced = unpriced;
    let currencies: Vec<String> = prices.keys().cloned().collect();
    let mut idle = 0;
    loop {
        if run.batches >= limit.max_batches
            || limit
                .deadline
                .is_some_and(|d| std::time::Instant::now() >= d)
        {
            run.unfinished = true;
            break;
        }
        let batch = charge_batch(conn, fees, &prices, &currencies, now).await?;
        if batch.locked == 0 {
            // Nothing lockable: done, unless due wallets are held by
            // someone else just now (a transfer, another run's batch);
            // wait for them a little rather than leave them to the next
            // tick.
            if idle >= IDLE_RETRIES || !any_due(conn, &currencies, now).await? {
                break;
            }
            idle += 1;
            tokio::time::sleep(IDLE_PAUSE).await;
            continue;
        }
        idle = 0;
        run.batches += 1;
        run.charged += batch.charged;
        run.blocked += batch.blocked;
        run.outstanding += batch.outstanding;
    }
    Ok(run)
}

/// How often, and after what pause, a run whose batch found every due
/// wallet locked by others looks again before it ends.
const IDLE_RETRIES: u32 = 100;
const IDLE_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// Whether any wallet of `currencies` is due at `now`, locked or not.
async fn any_due(
    conn: &mut AsyncPgConnection,
    currencies: &[String],
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Any {
        #[diesel(sql_type = sql_types::Bool)]
        due: bool,
    }
    let any: Any = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM wallet_fee_schedule
                        WHERE next_fee_at <= $1 AND currency = ANY($2)) AS due",
    )
    .bind::<sql_types::Timestamptz, _>(now)
    .bind::<sql_types::Array<sql_types::Text>, _>(currencies)
    .get_result(conn)
    .await?;
    Ok(any.due)
}

/// The fee in every fiat currency with a fresh price at `now`; `None` when
/// the fee's own currency has none. Also the currencies left out.
async fn prices(
    conn: &mut AsyncPgConnection,
    fees: &FeesConfig,
    rates_config: &RatesConfig,
    now: DateTime<Utc>,
) -> QueryResult<Option<(HashMap<String, Priced>, Vec<String>)>> {
    let fiat: Vec<currencies::Currency> = currencies::all(conn)
        .await?
        .into_iter()
        .filter(|c| c.kind == Kind::Fiat)
        .collect();
    let codes: Vec<String> = fiat.iter().map(|c| c.code.clone()).collect();
    let latest = rates::latest(conn, &codes).await?;
    let fresh: HashMap<&str, Decimal> = latest
        .iter()
        .filter(|p| now - p.observed_at <= rates::max_age(rates_config, Kind::Fiat))
        .map(|p| (p.symbol.as_str(), p.price_usd))
        .collect();
    let usd_price = |code: &str| {
        if code == "USD" {
            Some(Decimal::ONE)
        } else {
            fresh.get(code).copied()
        }
    };
    let Some(fee_usd) = usd_price(&fees.currency) else {
        return Ok(None);
    };
    let mut priced = HashMap::new();
    let mut unpriced = Vec::new();
    for currency in &fiat {
        match usd_price(&currency.code).filter(|p| !p.is_zero()) {
            Some(price) => {
                let rate = if currency.code == fees.currency {
                    Decimal::ONE
                } else {
                    fee_usd / price
                };
                let amount = (fees.amount * rate)
                    .round_dp_with_strategy(currency.decimals, RoundingStrategy::ToZero);
                priced.insert(currency.code.clone(), Priced { amount, rate });
            }
            None => unpriced.push(currency.code.clone()),
        }
    }
    Ok(Some((priced, unpriced)))
}

#[derive(Debug, Default)]
struct Batch {
    locked: usize,
    charged: usize,
    blocked: usize,
    outstanding: usize,
}

/// One batch in one transaction: lock up to `batch_size` due wallets, write
/// their fee rows (the primary key refuses a period twice), post the
/// charges of those that can pay, block those that cannot, email their
/// owners, and move every wallet to its next period.
async fn charge_batch(
    conn: &mut AsyncPgConnection,
    fees: &FeesConfig,
    prices: &HashMap<String, Priced>,
    currencies: &[String],
    now: DateTime<Utc>,
) -> QueryResult<Batch> {
    conn.transaction(async |conn| {
        let due: Vec<Due> = diesel::sql_query(
            // The wallet's ledger account is locked with its schedule row:
            // every posting locks that account first, so its balance and
            // status hold still until this batch commits.
            "SELECT s.wallet_id AS id, w.user_id, s.currency, w.wallet_number,
                    s.period AS fee_period, s.next_fee_at, w.status, a.balance
             FROM wallet_fee_schedule s
             JOIN ledger_accounts a ON a.id = s.wallet_id
             JOIN wallets w ON w.id = s.wallet_id
             WHERE s.next_fee_at <= $1 AND s.currency = ANY($2)
             ORDER BY s.next_fee_at
             LIMIT $3
             FOR UPDATE OF s, a SKIP LOCKED",
        )
        .bind::<sql_types::Timestamptz, _>(now)
        .bind::<sql_types::Array<sql_types::Text>, _>(currencies)
        .bind::<sql_types::BigInt, _>(fees.batch_size)
        .load(conn)
        .await?;
        let mut batch = Batch {
            locked: due.len(),
            ..Batch::default()
        };
        if due.is_empty() {
            return Ok(batch);
        }
        let mut rows = FeeRows::default();
        let mut newly_blocked = Vec::new();
        for wallet in &due {
            let Some(price) = prices.get(&wallet.currency) else {
                continue;
            };
            // A fee that rounds to nothing in this currency is not charged;
            // the wallet still moves on to its next period.
            if price.amount.is_zero() {
                continue;
            }
            let pays = wallet.status == WalletStatus::Active && wallet.balance >= price.amount;
            if pays {
                batch.charged += 1;
            } else if wallet.status == WalletStatus::Active {
                batch.blocked += 1;
                newly_blocked.push((wallet, price));
            } else {
                batch.outstanding += 1;
            }
            rows.push(wallet, price, pays);
        }
        rows.insert(conn, fees, now).await?;
        let ids: Vec<Uuid> = due.iter().map(|w| w.id).collect();
        // Every locked wallet moves to its next period (one period per
        // batch: a wallet several periods behind comes back in a later
        // batch of the same run); those that could not pay are blocked.
        let blocked: Vec<Uuid> = rows.blocked_wallets();
        diesel::sql_query(
            "UPDATE wallet_fee_schedule
             SET next_fee_at = next_fee_at + make_interval(days => $2), period = period + 1
             WHERE wallet_id = ANY($1)",
        )
        .bind::<sql_types::Array<sql_types::Uuid>, _>(&ids)
        .bind::<sql_types::Integer, _>(i32::try_from(PERIOD_DAYS).unwrap_or(30))
        .execute(conn)
        .await?;
        if !blocked.is_empty() {
            diesel::sql_query("UPDATE wallets SET status = 'blocked' WHERE id = ANY($1)")
                .bind::<sql_types::Array<sql_types::Uuid>, _>(&blocked)
                .execute(conn)
                .await?;
        }
        if !newly_blocked.is_empty() {
            notify_blocked(conn, fees, &newly_blocked).await?;
        }
        Ok(batch)
    })
    .await
}

/// Queues one email to the owner of each newly blocked wallet, and a
/// `wallet.blocked` webhook event.
async fn notify_blocked(
    conn: &mut AsyncPgConnection,
    fees: &FeesConfig,
    blocked: &[(&Due, &Priced)],
) -> QueryResult<()> {
    use crate::schema::users;
    let ids: Vec<Uuid> = blocked.iter().map(|(w, _)| w.user_id).collect();
    let owners: HashMap<Uuid, (String, String)> = users::table
        .filter(users::id.eq_any(&ids))
        .select((users::id, users::username, users::email))
        .load::<(Uuid, String, String)>(conn)
        .await?
        .into_iter()
        .map(|(id, name, email)| (id, (name, email)))
        .collect();
    let mails: Vec<_> = blocked
        .iter()
        .filter_map(|(wallet, price)| {
            let (username, address) = owners.get(&wallet.user_id)?;
            Some((
                Some(wallet.user_id),
                address.clone(),
                WalletBlocked {
                    username: username.clone(),
                    currency: wallet.currency.clone(),
                    wallet_number: wallet.wallet_number.clone(),
                    fee: price.amount.to_string(),
                    balance: wallet.balance.normalize().to_string(),
                    fee_amount: fees.amount.normalize().to_string(),
                    fee_currency: fees.currency.clone(),
                },
            ))
        })
        .collect();
    email::enqueue_many_quiet_on(conn, &mails).await?;
    let events: Vec<_> = blocked
        .iter()
        .map(|(wallet, price)| {
            let event = WalletBlockedEvent {
                wallet_id: wallet.id,
                currency: wallet.currency.clone(),
                fee: price.amount.to_string(),
                balance: wallet.balance.normalize().to_string(),
            };
            (wallet.user_id, event)
        })
        .collect();
    webhooks::events::emit(conn, EventType::WalletBlocked, &events).await?;
    Ok(())
}

/// The fee rows of one batch, as columns for `unnest`.
#[derive(Default)]
struct FeeRows {
    wallets: Vec<Uuid>,
    periods: Vec<i32>,
    due: Vec<DateTime<Utc>>,
    amounts: Vec<Decimal>,
    currencies: Vec<String>,
    rates: Vec<Decimal>,
    /// The ledger transaction of a charge (created by the system: no
    /// `created_by`); `None` for an outstanding fee.
    transactions: Vec<Option<Uuid>>,
    /// Whether the wallet was active (so an unpaid fee blocks it now).
    newly_blocked: Vec<bool>,
}

impl FeeRows {
    fn push(&mut self, wallet: &Due, price: &Priced, pays: bool) {
        self.wallets.push(wallet.id);
        self.periods.push(wallet.fee_period + 1);
        self.due.push(wallet.next_fee_at);
        self.amounts.push(price.amount);
        self.currencies.push(wallet.currency.clone());
        self.rates.push(price.rate);
        self.transactions.push(pays.then(Uuid::now_v7));
        self.newly_blocked
            .push(!pays && wallet.status == WalletStatus::Active);
    }

    fn blocked_wallets(&self) -> Vec<Uuid> {
        self.wallets
            .iter()
            .zip(&self.newly_blocked)
            .filter(|(_, blocked)| **blocked)
            .map(|(id, _)| *id)
            .collect()
    }

    /// One statement: the fee rows first (a period already recorded is
    /// skipped by the primary key, and then charged by nothing), then for
    /// the rows written as charged their ledger transactions and entries
    /// (wallet −amount, the fees account of its currency +amount: each
    /// transaction balances). The balance trigger applies the entries.
    async fn insert(
        &self,
        conn: &mut AsyncPgConnection,
        fees: &FeesConfig,
        now: DateTime<Utc>,
    ) -> QueryResult<()> {
        if self.wallets.is_empty() {
            return Ok(());
        }
        diesel::sql_query(
            "WITH input AS (
                 SELECT * FROM unnest($1::uuid[], $2::int[], $3::timestamptz[], $4::numeric[],
                                      $5::text[], $6::numeric[], $7::uuid[])
                      AS t(wallet_id, period, due_at, amount, currency, rate, tx)),
             written AS (
                 INSERT INTO wallet_fees (wallet_id, period, due_at, amount, currency,
                                          fee_amount, fee_currency, rate, status,
                                          transaction_id, charged_at)
                 SELECT wallet_id, period, due_at, amount, currency, $8, $9, rate,
                        CASE WHEN tx IS NULL THEN 'outstanding' ELSE 'charged' END,
                        tx, CASE WHEN tx IS NULL THEN NULL ELSE $10::timestamptz END
                 FROM input
                 ON CONFLICT (wallet_id, period) DO NOTHING
                 RETURNING wallet_id, period, transaction_id),
             charged AS (
                 SELECT i.*, f.id AS fees_account
                 FROM written w
                 JOIN input i ON i.wallet_id = w.wallet_id AND i.period = w.period
                 JOIN ledger_accounts f ON f.kind = 'fees' AND f.currency = i.currency
                 WHERE w.transaction_id IS NOT NULL),
             transactions AS (
                 INSERT INTO ledger_transactions (id, kind, from_wallet, from_amount,
                     from_currency, to_amount, to_currency, rate)
                 SELECT tx, 'fee', wallet_id, amount, currency, $8, $9, round(1 / rate, 18)
                 FROM charged)
             INSERT INTO ledger_entries (transaction_id, account_id, currency, amount)
             SELECT c.tx, e.account, c.currency, e.amount
             FROM charged c
             CROSS JOIN LATERAL (VALUES (c.wallet_id, -c.amount),
                                        (c.fees_account, c.amount)) AS e(account, amount)",
        )
        .bind::<sql_types::Array<sql_types::Uuid>, _>(&self.wallets)
        .bind::<sql_types::Array<sql_types::Integer>, _>(&self.periods)
        .bind::<sql_types::Array<sql_types::Timestamptz>, _>(&self.due)
        .bind::<sql_types::Array<sql_types::Numeric>, _>(&self.amounts)
        .bind::<sql_types::Array<sql_types::Text>, _>(&self.currencies)
        .bind::<sql_types::Array<sql_types::Numeric>, _>(&self.rates)
        .bind::<sql_types::Array<sql_types::Nullable<sql_types::Uuid>>, _>(&self.transactions)
        .bind::<sql_types::Numeric, _>(fees.amount)
        .bind::<sql_types::Text, _>(&fees.currency)
        .bind::<sql_types::Timestamptz, _>(now)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// The fee rows of a wallet, oldest period first.
#[derive(Debug, Clone, Queryable)]
pub struct WalletFee {
    pub period: i32,
    pub due_at: DateTime<Utc>,
    pub amount: Decimal,
    pub currency: String,
    pub status: String,
    pub transaction_id: Option<Uuid>,
}

pub async fn of_wallet(conn: &mut AsyncPgConnection, wallet: Uuid) -> QueryResult<Vec<WalletFee>> {
    use crate::schema::wallet_fees;
    wallet_fees::table
        .filter(wallet_fees::wallet_id.eq(wallet))
        .order(wallet_fees::period)
        .select((
            wallet_fees::period,
            wallet_fees::due_at,
            wallet_fees::amount,
            wallet_fees::currency,
            wallet_fees::status,
            wallet_fees::transaction_id,
        ))
        .load(conn)
        .await
}
