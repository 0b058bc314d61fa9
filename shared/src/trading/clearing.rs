//! Exchange clearing: the house hedges what users bought and sold.
//!
//! Two steps, each an idempotent job:
//!
//! 1. [`form_batches`] (job `clear_orders`, queued with every order) takes
//!    a transaction-scoped advisory lock for the order's currency and side,
//!    so batches of one currency and side are formed by one transaction at
//!    a time, cluster-wide. It reads the orders not in a batch yet (oldest
//!    first) and puts each order worth the threshold or more in a batch of
//!    its own, and runs of smaller ones in a batch as soon as their sum
//!    reaches the threshold; the rest wait for the next order. Each batch
//!    and its `submit_clearing_batch` job (outbox) commit together with the
//!    orders' `batch_id`, so an order joins exactly one batch, once, and
//!    every batch is submitted. An order committed while this runs is not
//!    seen, but its own job runs after its commit and sees it.
//! 2. [`submit`] (job `submit_clearing_batch`) places the batch at the
//!    exchange with the batch id as idempotency reference, then marks the
//!    batch and its orders cleared in one transaction (only if still
//!    pending). No transaction is open during the exchange call. A failed
//!    call leaves everything pending; the job retries with backoff, and
//!    [`resubmit_stale`] queues a batch again if it is still pending long
//!    after its last attempt (say its job went to the dead set).

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{
    OrderStatus, Side,
    exchange::{Exchange, ExchangeError, HedgeOrder},
};
use crate::{
    jobs::{ClearOrders, SubmitClearingBatch},
    outbox,
    schema::{clearing_batches, orders},
    webhooks::{self, EventType, payloads::OrderCleared},
};

/// An order waiting for a batch.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Unbatched {
    #[diesel(sql_type = sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = sql_types::Numeric)]
    pub amount: Decimal,
    #[diesel(sql_type = sql_types::Numeric)]
    pub usd_amount: Decimal,
}

/// Groups `orders` (oldest first) into batches: each order worth
/// `threshold` or more alone, runs of smaller ones once their sum reaches
/// it. Returns the groups as indexes into `orders`; orders in no group
/// keep waiting.
pub fn plan(orders: &[Unbatched], threshold: Decimal) -> Vec<Vec<usize>> {
    let mut groups = Vec::new();
    let mut small = Vec::new();
    let mut small_sum = Decimal::ZERO;
    for (index, order) in orders.iter().enumerate() {
        if order.usd_amount >= threshold {
            groups.push(vec![index]);
            continue;
        }
        small.push(index);
        small_sum += order.usd_amount;
        if small_sum >= threshold {
            groups.push(std::mem::take(&mut small));
            small_sum = Decimal::ZERO;
        }
    }
    groups
}

/// Forms the batches of `currency` and `side` that are due (see the
/// module documentation) and queues their submission. Returns the new
/// batches' ids.
pub async fn form_batches(
    conn: &mut AsyncPgConnection,
    threshold: Decimal,
    currency: &str,
    side: Side,
) -> QueryResult<Vec<Uuid>> {
    conn.transaction(async |conn| {
        crate::db::lock_for_transaction(conn, &format!("bourse.clearing:{currency}:{side}"))
            .await?;
        let waiting: Vec<Unbatched> = diesel::sql_query(
            "SELECT id, amount, usd_amount FROM orders
             WHERE batch_id IS NULL AND currency = $1 AND side = $2
             ORDER BY created_at, id",
        )
        .bind::<sql_types::Text, _>(currency)
        .bind::<sql_types::Text, _>(side.as_str())
        .load(conn)
        .await?;
        let mut formed = Vec::new();
        for group in plan(&waiting, threshold) {
            let members: Vec<&Unbatched> = group.iter().map(|&i| &waiting[i]).collect();
            let ids: Vec<Uuid> = members.iter().map(|o| o.id).collect();
            let batch_id = Uuid::now_v7();
            diesel::insert_into(clearing_batches::table)
                .values((
                    clearing_batches::id.eq(batch_id),
                    clearing_batches::currency.eq(currency),
                    clearing_batches::side.eq(side.as_str()),
                    clearing_batches::amount.eq(members.iter().map(|o| o.amount).sum::<Decimal>()),
                    clearing_batches::usd_amount
                        .eq(members.iter().map(|o| o.usd_amount).sum::<Decimal>()),
                    clearing_batches::order_count.eq(i32::try_from(ids.len()).unwrap_or(i32::MAX)),
                ))
                .execute(conn)
                .await?;
            let joined = diesel::update(
                orders::table
                    .filter(orders::id.eq_any(&ids))
                    .filter(orders::batch_id.is_null()),
            )
            .set(orders::batch_id.eq(batch_id))
            .execute(conn)
            .await?;
            if joined != ids.len() {
                // Cannot happen under the lock; if it ever does, nothing
                // of this run is kept and the job retries.
                return Err(diesel::result::Error::RollbackTransaction);
            }
            outbox::push(conn, &SubmitClearingBatch { batch_id }, None).await?;
            formed.push(batch_id);
        }
        Ok(formed)
    })
    .await
}

#[derive(Debug, Clone, Queryable)]
struct Batch {
    currency: String,
    side: String,
    amount: Decimal,
    usd_amount: Decimal,
    /// A batch is pending or cleared as its orders are.
    status: OrderStatus,
}

/// What [`submit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Placed at the exchange now; this many orders are cleared.
    Cleared { reference: String, orders: usize },
    /// Already cleared by an earlier run.
    AlreadyCleared,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("no clearing batch {0}")]
    UnknownBatch(Uuid),
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
}

/// Places batch `batch_id` at `exchange` and marks it and its orders
/// cleared. Safe to run any number of times, concurrently too: the
/// exchange dedupes the reference and only a pending batch is marked.
pub async fn submit(
    conn: &mut AsyncPgConnection,
    exchange: &dyn Exchange,
    batch_id: Uuid,
) -> Result<Submitted, SubmitError> {
    let batch: Batch = clearing_batches::table
        .find(batch_id)
        .select((
            clearing_batches::currency,
            clearing_batches::side,
            clearing_batches::amount,
            clearing_batches::usd_amount,
            clearing_batches::status,
        ))
        .first(conn)
        .await
        .optional()?
        .ok_or(SubmitError::UnknownBatch(batch_id))?;
    if batch.status == OrderStatus::Cleared {
        return Ok(Submitted::AlreadyCleared);
    }
    let side = Side::parse(&batch.side).ok_or(SubmitError::UnknownBatch(batch_id))?;
    diesel::update(clearing_batches::table.find(batch_id))
        .set((
            clearing_batches::attempts.eq(clearing_batches::attempts + 1),
            clearing_batches::last_attempt_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    let order = HedgeOrder {
        reference: batch_id,
        currency: batch.currency,
        side,
        amount: batch.amount,
        usd_amount: batch.usd_amount,
    };
    let fill = match exchange.place(&order).await {
        Ok(fill) => fill,
        Err(error) => {
            diesel::update(clearing_batches::table.find(batch_id))
                .set(clearing_batches::last_error.eq(error.to_string()))
                .execute(conn)
                .await?;
            return Err(error.into());
        }
    };
    let cleared = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let marked = diesel::update(
                clearing_batches::table
                    .find(batch_id)
                    .filter(clearing_batches::status.eq(OrderStatus::Pending)),
            )
            .set((
                clearing_batches::status.eq(OrderStatus::Cleared),
                clearing_batches::exchange_reference.eq(&fill.reference),
                clearing_batches::exchange_price.eq(fill.price),
                clearing_batches::cleared_at.eq(fill.executed_at),
                clearing_batches::last_error.eq(None::<String>),
            ))
            .execute(conn)
            .await?;
            if marked == 0 {
                return Ok(None);
            }
            let cleared: Vec<(Uuid, Uuid, String, String)> =
                diesel::update(orders::table.filter(orders::batch_id.eq(batch_id)))
                    .set((
                        orders::status.eq(OrderStatus::Cleared),
                        orders::exchange_reference.eq(&fill.reference),
                        orders::cleared_at.eq(fill.executed_at),
                    ))
                    .returning((orders::id, orders::user_id, orders::side, orders::currency))
                    .get_results(conn)
                    .await?;
            let events: Vec<_> = cleared
                .iter()
                .map(|(order, user, side, currency)| {
                    let event = OrderCleared {
                        order_id: *order,
                        batch_id,
                        side: side.clone(),
                        currency: currency.clone(),
                    };
                    (*user, event)
                })
                .collect();
            webhooks::events::emit(conn, EventType::OrderCleared, &events).await?;
            Ok(Some(cleared.len()))
        })
        .await?;
    Ok(match cleared {
        Some(orders) => Submitted::Cleared {
            reference: fill.reference,
            orders,
        },
        None => Submitted::AlreadyCleared,
    })
}

/// Queues again what a lost job would leave behind: batches pending more
/// than `after` since their last attempt (their job may be in the dead
/// set), and the clearing of any currency and side with orders waiting
/// longer than `after`. Claims the stale batches in the same statement
/// (their attempt time moves to now), so several workers sweeping at once
/// queue each batch once. Returns how many jobs it queued.
pub async fn resubmit_stale(
    conn: &mut AsyncPgConnection,
    after: std::time::Duration,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    let cutoff = now - chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX);
    conn.transaction(async |conn| {
        let stale: Vec<Uuid> = diesel::update(
            clearing_batches::table
                .filter(clearing_batches::status.eq(OrderStatus::Pending))
                .filter(
                    diesel::dsl::sql::<sql_types::Timestamptz>(
                        "coalesce(last_attempt_at, created_at)",
                    )
                    .lt(cutoff),
                ),
        )
        .set(clearing_batches::last_attempt_at.eq(now))
        .returning(clearing_batches::id)
        .get_results(conn)
        .await?;
        for batch_id in &stale {
            outbox::push(
                conn,
                &SubmitClearingBatch {
                    batch_id: *batch_id,
                },
                None,
            )
            .await?;
        }
        let waiting: Vec<(String, String)> = orders::table
            .filter(orders::batch_id.is_null())
            .filter(orders::created_at.lt(cutoff))
            .select((orders::currency, orders::side))
            .distinct()
            .load(conn)
            .await?;
        let mut queued = stale.len();
        for (currency, side) in waiting {
            if let Some(side) = Side::parse(&side) {
                outbox::push(conn, &ClearOrders { currency, side }, None).await?;
                queued += 1;
            }
        }
        Ok(queued)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orders(usd: &[i64]) -> Vec<Unbatched> {
        usd.iter()
            .map(|&u| Unbatched {
                id: Uuid::new_v4(),
                amount: Decimal::ONE,
                usd_amount: Decimal::from(u),
            })
            .collect()
    }

    #[test]
    fn big_orders_go_alone_and_small_ones_wait_for_the_threshold() {
        let ten = Decimal::TEN;
        assert_eq!(plan(&orders(&[3, 3, 3]), ten), Vec::<Vec<usize>>::new());
        assert_eq!(plan(&orders(&[3, 3, 3, 3]), ten), vec![vec![0, 1, 2, 3]]);
        assert_eq!(plan(&orders(&[10]), ten), vec![vec![0]]);
        // A big order between small ones does not wait for them, nor they
        // for it.
        assert_eq!(
            plan(&orders(&[4, 25, 4, 4, 9]), ten),
            vec![vec![1], vec![0, 2, 3]]
        );
        assert_eq!(plan(&orders(&[]), ten), Vec::<Vec<usize>>::new());
    }
}
