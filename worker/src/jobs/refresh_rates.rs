//! The price refresh: providers → `price_history` (once per tick) → the
//! Redis cache and stream.
//!
//! The refresh schedule runs it in the process that won the tick
//! ([`run_here`], see `scheduler`), not as a queued job: prices must keep
//! coming while Redis is unreachable, or bets falling due meanwhile are
//! voided for want of a price. `refresh_rates` jobs are still understood
//! ([`run`]): one queued by an older version, or retried from the dead set,
//! does the same work, once per tick.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use shared::{
    jobs::{JobEnvelope, RefreshRates},
    rates,
};
use tokio::sync::watch;

use super::{JobContext, JobError};
use crate::metrics::ProviderLabels;

/// A refresh this late is dropped: newer ticks have the fresher prices (one
/// run catches up after an outage; ticks are not replayed).
const TOO_LATE: Duration = Duration::from_secs(30);

/// The longest the price cache may hold up a refresh. The observations are
/// committed by then and the cache is only a copy (the API reads PostgreSQL
/// when it lacks a price), so an unreachable Redis must not keep refresh
/// after refresh waiting on it.
const CACHE_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether this process's last price cache update failed, so a Redis outage
/// logs when the cache starts and stops failing, not once a tick.
static CACHE_FAILING: AtomicBool = AtomicBool::new(false);

/// Runs a `refresh_rates` job delivered through a queue.
pub async fn run(ctx: Arc<JobContext>, envelope: JobEnvelope) -> Result<(), JobError> {
    let job: RefreshRates = envelope.decode()?;
    refresh(&ctx, job.tick).await
}

/// Runs tick `tick`'s refresh in this process, which won the tick. A failed
/// attempt (PostgreSQL blinked) is tried again with backoff until the tick
/// is [`TOO_LATE`], as the queued job was; a stopping process stops trying.
pub async fn run_here(ctx: Arc<JobContext>, tick: DateTime<Utc>, mut stop: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(250);
    let mut failures = 0_u32;
    loop {
        match refresh(&ctx, tick).await {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(%tick, failures, "price refresh done after retries");
                }
                return;
            }
            Err(JobError::Permanent(error)) => {
                tracing::warn!(%error, %tick, "price refresh failed for good");
                return;
            }
            Err(JobError::Retry(error)) => {
                // One line per failing tick, not per attempt.
                if failures == 0 {
                    tracing::warn!(%error, %tick, "price refresh failed; retrying while the tick is fresh");
                }
                failures += 1;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(4));
    }
}

/// One refresh of tick `tick`, unless it is [`TOO_LATE`].
async fn refresh(ctx: &JobContext, tick: DateTime<Utc>) -> Result<(), JobError> {
    let late = (Utc::now() - tick).to_std().unwrap_or_default();
    if late > TOO_LATE {
        tracing::info!(%tick, late_s = late.as_secs(), "dropping a stale refresh");
        return Ok(());
    }
    let outcome = rates::refresh(
        &ctx.db,
        &ctx.config.rates,
        &ctx.providers,
        tick,
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
    // The observations are committed, and they are what settlement and
    // money movements read; the cache is a copy. If Redis is down the API
    // falls back to the database, and the refresh has succeeded all the
    // same.
    let store = queue::rates::store(&ctx.redis, &ctx.config.redis.prefix, &outcome.stored);
    let failure = match tokio::time::timeout(CACHE_TIMEOUT, store).await {
        Ok(Ok(_)) => None,
        Ok(Err(error)) => Some(error.to_string()),
        Err(_) => Some(format!("no answer within {CACHE_TIMEOUT:?}")),
    };
    match failure {
        Some(error) if !CACHE_FAILING.swap(true, Ordering::Relaxed) => {
            tracing::warn!(%error, "cannot update the price cache; the API reads PostgreSQL meanwhile");
        }
        None if CACHE_FAILING.swap(false, Ordering::Relaxed) => {
            tracing::info!("the price cache is updated again");
        }
        _ => {}
    }
    Ok(())
}
