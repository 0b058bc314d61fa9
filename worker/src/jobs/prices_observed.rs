//! The hook that runs after every stored refresh: bet liquidation, then
//! price alert evaluation.

use std::{collections::BTreeSet, sync::Arc};

use shared::{
    alerts, bets,
    jobs::{JobEnvelope, PricesObserved},
    outbox,
};

use super::{JobContext, JobError};

/// Liquidates the bets the new observations reach (`BET_LIQUIDATION_BATCH_SIZE`
/// at a time), then triggers the alerts they cross (and queues their
/// emails), `ALERT_BATCH_SIZE` at a time, each batch its own transaction,
/// then invalidates their owners' cached alert lists. An attempt stops
/// well inside its time limit and queues a copy of itself for the rest
/// (as the fee run does): an attempt cut off by the timeout would be
/// retried, and the next observation would do the same. Running it again
/// for the same observation liquidates and triggers nothing new.
pub async fn run(ctx: Arc<JobContext>, envelope: JobEnvelope) -> Result<(), JobError> {
    let job: PricesObserved = envelope.decode()?;
    let deadline = std::time::Instant::now() + ctx.config.jobs.timeout / 2;
    let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
    let mut liquidated = 0usize;
    loop {
        let batch = bets::liquidate(
            &mut conn,
            job.observed_at,
            &job.symbols,
            ctx.config.bets.liquidation_batch_size,
        )
        .await
        .map_err(JobError::retry)?;
        liquidated += batch.bets.len();
        if !batch.maybe_more {
            break;
        }
        if std::time::Instant::now() >= deadline {
            outbox::push(&mut conn, &job, None)
                .await
                .map_err(JobError::retry)?;
            tracing::info!(
                observed_at = %job.observed_at,
                liquidated,
                "bets: more to liquidate; continued in a new job"
            );
            return Ok(());
        }
    }
    if liquidated > 0 {
        tracing::info!(observed_at = %job.observed_at, liquidated, "bets liquidated");
    }
    // Only what the cache invalidation needs is kept across batches.
    let mut triggered = 0usize;
    let mut users = BTreeSet::new();
    loop {
        let batch = alerts::evaluate(
            &mut conn,
            job.observed_at,
            &job.symbols,
            ctx.config.alerts.batch_size,
        )
        .await
        .map_err(JobError::retry)?;
        triggered += batch.triggered.len();
        users.extend(batch.triggered.iter().map(|t| t.user_id));
        if !batch.maybe_more {
            break;
        }
        if std::time::Instant::now() >= deadline {
            outbox::push(&mut conn, &job, None)
                .await
                .map_err(JobError::retry)?;
            tracing::info!(
                observed_at = %job.observed_at,
                "price alerts: more to trigger; continued in a new job"
            );
            break;
        }
    }
    drop(conn);
    if triggered == 0 {
        return Ok(());
    }
    tracing::info!(
        observed_at = %job.observed_at,
        triggered,
        "price alerts triggered"
    );
    invalidate(&ctx, users).await;
    Ok(())
}

/// Moves each user's alert cache to a new generation. A failure is only
/// logged: the triggers are committed, and cached answers expire within
/// `ALERT_CACHE_TTL_SECS` anyway.
async fn invalidate(ctx: &JobContext, users: BTreeSet<uuid::Uuid>) {
    let mut pipe = redis::pipe();
    for user in users {
        let key = alerts::cache_generation_key(&ctx.config.redis.prefix, user);
        pipe.incr(&key, 1)
            .ignore()
            .expire(&key, alerts::CACHE_GENERATION_TTL_SECS)
            .ignore();
    }
    let mut redis = ctx.redis.clone();
    if let Err(error) = pipe.query_async::<()>(&mut redis).await {
        tracing::warn!(%error, "cannot invalidate cached alert lists");
    }
}
