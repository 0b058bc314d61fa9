//! `deliver_webhook`: attempts at deliveries (see
//! `shared::webhooks::deliveries`), one at a time per endpoint and under
//! the cluster-wide `WEBHOOK_MAX_PER_SEC`.
//!
//! An endpoint's turn is a lease in Redis. The job that holds it sends the
//! endpoint's due deliveries oldest first — its own among them — until none
//! is left, one fails, or its budget is spent, so a backlog goes out in
//! order at the receiver's pace. A job whose endpoint is busy ends at once,
//! leaving its delivery to the holder: no worker slot waits on a slow
//! receiver, and a backlog costs no re-queued copies.
//!
//! Why nothing is missed: the holder, once it has let the lease go, looks
//! for due deliveries again and takes the lease back for any (a job that
//! found the lease busy did so after its delivery was committed, so this
//! look sees it). A turn that ends early (a failure, its budget) queues the
//! job of the oldest due delivery to go on a moment later; one over the
//! rate limit has queued that job already. A holder that dies is its job's
//! to redo: apalis runs a lost job again, and any job of an endpoint's that
//! finds its own delivery sent takes the turn if others are due. Deliveries
//! waiting out a backoff have a job queued for then.

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
        // Sent already, most likely by the endpoint's turn. If others are
        // due (a turn that died between deliveries leaves them so, their
        // jobs having found it busy), this job takes the turn for them.
        Start::Done {
            endpoint: Some(endpoint),
        } if next_due(&ctx, endpoint).await?.is_some() => endpoint,
        Start::Done { .. } | Start::EndpointDisabled => return Ok(()),
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
    loop {
        // Busy: the holder sends this delivery too. It looks for due
        // deliveries again after letting the lease go, and this one was
        // committed before it was seen busy, so it cannot be missed.
        if !lease.take(&holder, ttl).await.map_err(JobError::retry)? {
            return Ok(());
        }
        let ended = take_turn(&ctx, &lease, &holder, ttl, endpoint).await;
        if let Err(error) = lease.give_up(&holder).await {
            // It expires on its own after `ttl`.
            tracing::debug!(%error, "cannot give the webhook endpoint's lease up");
        }
        let Some(next) = next_due(&ctx, endpoint).await? else {
            return ended.map(|_| ());
        };
        match ended? {
            // Something came due as the turn ended: take it again.
            TurnEnd::Empty => {}
            // The rest waits for a moment (a failing endpoint is not
            // hammered) in the job of the oldest due delivery.
            TurnEnd::Failed | TurnEnd::Budget => {
                let later = Utc::now() + to_chrono(busy_wait());
                return run_later(&ctx, next, later).await;
            }
            // The copy queued for later goes on from there.
            TurnEnd::OverLimit => return Ok(()),
        }
    }
}

/// The oldest delivery to `endpoint` due now.
async fn next_due(ctx: &JobContext, endpoint: Uuid) -> Result<Option<Uuid>, JobError> {
    let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
    deliveries::next_due(&mut conn, endpoint, None)
        .await
        .map_err(JobError::retry)
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

/// Why a turn ended.
enum TurnEnd {
    /// No due delivery left.
    Empty,
    /// An attempt failed.
    Failed,
    /// Over the rate limit: the delivery's job runs later.
    OverLimit,
    /// It sent its most, or used half the job's time.
    Budget,
}

/// Sends `endpoint`'s due deliveries oldest first while holding its lease.
async fn take_turn(
    ctx: &JobContext,
    lease: &Lease,
    holder: &str,
    ttl: Duration,
    endpoint: Uuid,
) -> Result<TurnEnd, JobError> {
    let budget = Instant::now() + ctx.config.jobs.timeout / 2;
    let mut after = None;
    for _ in 0..TURN_MAX_DELIVERIES {
        if Instant::now() >= budget || !lease.take(holder, ttl).await.map_err(JobError::retry)? {
            return Ok(TurnEnd::Budget);
        }
        let next = {
            let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
            deliveries::next_due(&mut conn, endpoint, after)
                .await
                .map_err(JobError::retry)?
        };
        let Some(id) = next else {
            return Ok(TurnEnd::Empty);
        };
        after = Some(id);
        let Start::Due(due) = start(ctx, id).await? else {
            continue;
        };
        match attempt(ctx, &due).await? {
            Attempted::Delivered => {}
            Attempted::Failed => return Ok(TurnEnd::Failed),
            Attempted::OverLimit => return Ok(TurnEnd::OverLimit),
        }
    }
    Ok(TurnEnd::Budget)
}

enum Attempted {
    Delivered,
    Failed,
    OverLimit,
}

/// One attempt at `due`.
async fn attempt(ctx: &JobContext, due: &Due) -> Result<Attempted, JobError> {
    let job = DeliverWebhook {
        delivery_id: due.delivery_id,
    };
    if !turn::take_turn(ctx, ctx.limits.webhook.as_ref(), &job, "webhook").await? {
        return Ok(Attempted::OverLimit);
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
            return Ok(Attempted::Delivered);
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
    Ok(Attempted::Failed)
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
