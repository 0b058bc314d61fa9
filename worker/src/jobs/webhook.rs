//! `deliver_webhook`: attempts at deliveries (see
//! `shared::webhooks::deliveries`), one at a time per endpoint and under
//! the cluster-wide `WEBHOOK_MAX_PER_SEC`.
//!
//! An endpoint's turn is a lease in Redis. The attempt that holds it sends
//! the endpoint's due deliveries oldest first — its own among them — until
//! one fails, the backlog is empty or its budget is spent, so a backlog goes
//! out in order at the receiver's pace instead of each delivery waiting for
//! the turn on its own. A delivery whose endpoint is busy does not wait in a
//! worker slot: a copy of its job runs a moment later (and finds it sent,
//! usually). Every pending delivery keeps a job of its own queued, so none
//! depends on another attempt's draining.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use queue::lease::Lease;
use shared::{
    jobs::{DeliverWebhook, JobEnvelope},
    outbox,
    webhooks::{
        deliveries::{self, Due, Policy, Recorded, Start},
        send::Request,
    },
};
use uuid::Uuid;

use super::{JobContext, JobError, turn};

/// Most deliveries one turn sends.
const TURN_MAX_DELIVERIES: usize = 500;

/// How long a delivery whose endpoint is busy waits before its copy tries
/// again: one to two seconds, spread so the copies of a backlog do not all
/// come back at once.
fn busy_wait() -> Duration {
    Duration::from_millis(1000 + rand::random::<u64>() % 1000)
}

pub async fn deliver(ctx: Arc<JobContext>, envelope: JobEnvelope) -> Result<(), JobError> {
    let job: DeliverWebhook = envelope.decode()?;
    let endpoint = match start(&ctx, job.delivery_id).await? {
        Start::Due(due) => due.endpoint_id,
        Start::Done | Start::EndpointDisabled => return Ok(()),
        Start::NotYet(at) => return run_later(&ctx, job.delivery_id, at).await,
    };
    let lease = Lease::new(
        ctx.redis.clone(),
        &ctx.config.redis.prefix,
        &format!("webhook:{endpoint}"),
    );
    let holder = format!("{}:{}", ctx.worker_name, Uuid::now_v7());
    // Renewed before each delivery: one attempt, and a wait for a turn
    // under the rate limit, fit inside with room to spare.
    let ttl = ctx.config.webhooks.timeout + ctx.config.jobs.timeout / 4 + Duration::from_secs(5);
    if !lease.take(&holder, ttl).await.map_err(JobError::retry)? {
        let later = Utc::now() + to_chrono(busy_wait());
        return run_later(&ctx, job.delivery_id, later).await;
    }
    let outcome = take_turn(&ctx, &lease, &holder, ttl, endpoint, job.delivery_id).await;
    if let Err(error) = lease.give_up(&holder).await {
        // It expires on its own after `ttl`.
        tracing::debug!(%error, "cannot give the webhook endpoint's lease up");
    }
    outcome
}

async fn start(ctx: &JobContext, delivery: Uuid) -> Result<Start, JobError> {
    let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
    let start = deliveries::start(&mut conn, delivery)
        .await
        .map_err(JobError::retry)?;
    if matches!(start, Start::EndpointDisabled) {
        tracing::info!(delivery.id = %delivery, "webhook endpoint disabled; delivery failed");
    }
    Ok(start)
}

/// Sends `endpoint`'s due deliveries in order while holding its lease; if
/// `own` (this job's delivery) was not among them, its job runs again.
async fn take_turn(
    ctx: &JobContext,
    lease: &Lease,
    holder: &str,
    ttl: Duration,
    endpoint: Uuid,
    own: Uuid,
) -> Result<(), JobError> {
    let budget = Instant::now() + ctx.config.jobs.timeout / 2;
    let mut after = None;
    let mut reached_own = false;
    for _ in 0..TURN_MAX_DELIVERIES {
        if Instant::now() >= budget || !lease.take(holder, ttl).await.map_err(JobError::retry)? {
            break;
        }
        let next = {
            let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
            deliveries::next_due(&mut conn, endpoint, after)
                .await
                .map_err(JobError::retry)?
        };
        let Some(id) = next else { break };
        after = Some(id);
        reached_own |= id == own;
        let Start::Due(due) = start(ctx, id).await? else {
            continue;
        };
        if !attempt(ctx, &due).await? {
            break;
        }
    }
    if !reached_own {
        let later = Utc::now() + to_chrono(busy_wait());
        run_later(ctx, own, later).await?;
    }
    Ok(())
}

/// One attempt at `due`; whether it was delivered (and the turn may go on
/// to the next).
async fn attempt(ctx: &JobContext, due: &Due) -> Result<bool, JobError> {
    let job = DeliverWebhook {
        delivery_id: due.delivery_id,
    };
    if !turn::take_turn(ctx, ctx.limits.webhook.as_ref(), &job, "webhook").await? {
        return Ok(false);
    }
    let at = Utc::now();
    let request = Request {
        url: &due.url,
        event_id: due.event_id,
        secret: &due.secret,
        body: &due.body,
    };
    let answer = ctx.webhooks.post(&request, at.timestamp()).await;
    let config = &ctx.config.webhooks;
    let policy = Policy {
        retry_base: config.retry_base,
        retry_max: config.retry_max,
        retry_for: config.retry_for,
        disable_after: config.disable_after,
    };
    let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
    let recorded = deliveries::record(&mut conn, due, at, &answer, &policy)
        .await
        .map_err(JobError::retry)?;
    let status = answer.status.unwrap_or(0);
    let ms = answer.duration.as_millis();
    let error = answer.error.as_deref();
    match recorded {
        Recorded::Delivered => {
            tracing::debug!(delivery.id = %due.delivery_id, event.id = %due.event_id, status, ms, "webhook delivered");
            ctx.metrics.webhook_attempt("ok");
            return Ok(true);
        }
        Recorded::Retrying(next) => {
            tracing::info!(delivery.id = %due.delivery_id, status, ms, error, %next, "webhook attempt failed; retrying");
            ctx.metrics.webhook_attempt("failed");
        }
        Recorded::GaveUp => {
            tracing::warn!(delivery.id = %due.delivery_id, error, "webhook delivery given up");
            ctx.metrics.webhook_attempt("failed");
        }
        Recorded::EndpointDisabled => {
            tracing::warn!(endpoint.id = %due.endpoint_id, error, "webhook endpoint failing too long: disabled, owner emailed");
            ctx.metrics.webhook_attempt("failed");
        }
    }
    Ok(false)
}

/// Queues a copy of delivery `delivery`'s job for `at`; this attempt ends
/// without failing.
async fn run_later(ctx: &JobContext, delivery: Uuid, at: DateTime<Utc>) -> Result<(), JobError> {
    let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
    let job = DeliverWebhook {
        delivery_id: delivery,
    };
    outbox::push(&mut conn, &job, Some(at))
        .await
        .map_err(JobError::retry)?;
    Ok(())
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::seconds(1))
}
