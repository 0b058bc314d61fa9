//! The hook that runs after every stored refresh: price alert evaluation.

use std::{collections::BTreeSet, sync::Arc};

use shared::{
    alerts,
    jobs::{JobEnvelope, PricesObserved},
};

use super::{JobContext, JobError};

/// Triggers the alerts the new observations cross (and queues their
/// emails), then invalidates their owners' cached alert lists. Running it
/// again for the same observation triggers nothing new.
pub async fn run(ctx: Arc<JobContext>, envelope: JobEnvelope) -> Result<(), JobError> {
    let job: PricesObserved = envelope.decode()?;
    let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
    let triggered = alerts::evaluate(&mut conn, job.observed_at, &job.symbols)
        .await
        .map_err(JobError::retry)?;
    drop(conn);
    if triggered.is_empty() {
        return Ok(());
    }
    tracing::info!(
        observed_at = %job.observed_at,
        triggered = triggered.len(),
        "price alerts triggered"
    );
    let users: BTreeSet<_> = triggered.iter().map(|t| t.user_id).collect();
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
