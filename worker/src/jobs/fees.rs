//! The monthly fee run (see `shared::fees`).

use std::sync::Arc;

use shared::{
    fees, hygiene,
    jobs::{ChargeFees, JobEnvelope, PurgeExpired},
    outbox,
};

use super::{JobContext, JobError};

/// Charges every due wallet, batch after batch. The scheduled tick first
/// queues copies of itself so other workers share the batches.
pub async fn charge(ctx: Arc<JobContext>, envelope: JobEnvelope) -> Result<(), JobError> {
    let job: ChargeFees = envelope.decode()?;
    let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
    if job.fan_out == 0 {
        for _ in 1..ctx.config.fees.parallelism {
            let copy = ChargeFees {
                at: job.at,
                fan_out: 1,
            };
            outbox::push(&mut conn, &copy, None)
                .await
                .map_err(JobError::retry)?;
        }
    }
    let now = ctx.clock.now();
    // Stop well inside the attempt's time limit and hand the rest to a
    // continuation: an attempt cut off by the timeout would lose its
    // current batch's work (rolled back) and be retried from scratch.
    let limit = fees::Limit {
        max_batches: usize::MAX,
        deadline: Some(std::time::Instant::now() + ctx.config.jobs.timeout / 2),
    };
    let run = fees::charge_batches(&mut conn, &ctx.config.fees, &ctx.config.rates, now, limit)
        .await
        .map_err(JobError::retry)?;
    if run.unfinished {
        let next = ChargeFees {
            at: job.at,
            fan_out: 1,
        };
        outbox::push(&mut conn, &next, None)
            .await
            .map_err(JobError::retry)?;
    }
    if run.waiting_for_price {
        tracing::warn!(
            currency = %ctx.config.fees.currency,
            "no fresh price of the fee's currency: monthly fees wait for the next tick"
        );
    } else if run.batches > 0 || !run.unpriced.is_empty() {
        tracing::info!(
            charged = run.charged,
            blocked = run.blocked,
            outstanding = run.outstanding,
            batches = run.batches,
            unpriced = ?run.unpriced,
            "monthly fees charged"
        );
    }
    Ok(())
}

/// Deletes expired rows (see `shared::hygiene`), handing what is left at
/// half the job's time limit to a continuation, then keeps
/// `price_history`'s partitions (`shared::rates::partitions`).
pub async fn purge(ctx: Arc<JobContext>, envelope: JobEnvelope) -> Result<(), JobError> {
    let job: PurgeExpired = envelope.decode()?;
    let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
    let deadline = std::time::Instant::now() + ctx.config.jobs.timeout / 2;
    let purged = hygiene::purge(&mut conn, Some(deadline))
        .await
        .map_err(JobError::retry)?;
    if purged.unfinished {
        outbox::push(&mut conn, &job, None)
            .await
            .map_err(JobError::retry)?;
    }
    // A failure here is logged, not retried: the rows above are gone, and
    // the next hour's purge makes and drops the partitions just the same.
    match shared::rates::partitions::keep(&mut conn, ctx.config.rates.history_retention_days).await
    {
        Ok(kept) if kept.made > 0 || !kept.dropped.is_empty() => {
            tracing::info!(made = kept.made, dropped = ?kept.dropped, "price history partitions kept");
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot keep the price history partitions"),
    }
    tracing::info!(
        idempotency_keys = purged.idempotency_keys,
        codes = purged.codes,
        refresh_tokens = purged.refresh_tokens,
        cooldowns = purged.cooldowns,
        tick_claims = purged.tick_claims,
        unfinished = purged.unfinished,
        "expired rows purged"
    );
    Ok(())
}
