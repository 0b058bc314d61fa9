use std::{sync::Arc, time::Duration};

use chrono::Utc;
use shared::{
    jobs::{JobEnvelope, RefreshRates},
    rates,
};

use super::{JobContext, JobError};
use crate::metrics::ProviderLabels;

/// A refresh delivered this late is dropped: newer ticks have the fresher
/// prices (one run catches up after an outage; ticks are not replayed).
const TOO_LATE: Duration = Duration::from_secs(30);

/// Runs one scheduled price refresh: providers → `price_history` (once per
/// tick) → the Redis cache and stream.
pub async fn run(ctx: Arc<JobContext>, envelope: JobEnvelope) -> Result<(), JobError> {
    let job: RefreshRates = envelope.decode()?;
    let late = (Utc::now() - job.tick).to_std().unwrap_or_default();
    if late > TOO_LATE {
        tracing::info!(tick = %job.tick, late_s = late.as_secs(), "dropping a stale refresh");
        return Ok(());
    }
    let outcome = rates::refresh(
        &ctx.db,
        &ctx.config.rates,
        &ctx.providers,
        job.tick,
        &ctx.worker_name,
    )
    .await
    .map_err(JobError::retry)?;
    if outcome.already_done {
        return Ok(());
    }
    let label = if outcome.errors.is_empty() {
        "ok"
    } else {
        "failed"
    };
    ctx.metrics
        .rate_refreshes
        .get_or_create(&ProviderLabels { outcome: label })
        .inc();
    // The observations are committed; the cache is a copy. If Redis is
    // down the API falls back to the database.
    if let Err(error) =
        queue::rates::store(&ctx.redis, &ctx.config.redis.prefix, &outcome.stored).await
    {
        tracing::warn!(%error, "cannot update the price cache");
    }
    Ok(())
}
