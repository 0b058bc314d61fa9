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
//! to redo: apalis runs a lost job again, and it takes the turn afresh.
//! A delivery waiting out a backoff has its job queued for then (a job
//! that finds its delivery not due yet leaves it to that one); "due" is by
//! the database's clock, which also dates those jobs in the outbox.

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
        deliveries::{self, Due, Policy, Recorded},
        send::Request,
    },
};
use uuid::Uuid;

use super::{JobContext, JobError, turn};

/// Most deliveries one turn sends.
const TURN_MAX_DELIVERIES: usize = 500;

/// How long the rest of a failing endpoint's due deliveries wait after a
/// failed attempt: one to two seconds.
fn failure_pause() -> Duration {
    Duration::from_millis(1000 + rand::random::<u64>() % 1000)
}

pub async fn deliver(ctx: Arc<JobContext>, envelope: JobEnvelope) -> Result<(), JobError> {
    let job: DeliverWebhook = envelope.decode()?;
    let endpoint = job.endpoint_id;
    let lease = Lease::new(
        ctx.redis.clone(),
        &ctx.config.redis.prefix,
        &format!("webhook:{endpoint}"),
    );
    let holder = format!("{}:{}", ctx.worker_name, Uuid::now_v7());
    let ttl = lease_ttl(&ctx);
    loop {
        // Busy: the holder sends this delivery too, if it is due (it looks
        // again after letting the lease go, and this delivery was committed
        // before the lease was seen busy); if it is not, a job is queued
        // for when it is.
        if !lease.take(&holder, ttl).await.map_err(JobError::retry)? {
            return Ok(());
        }
        let ended = take_turn(&ctx, &lease, &holder, endpoint).await;
        if let Err(error) = lease.give_up(&holder).await {
            // It expires on its own after `ttl`.
            tracing::debug!(%error, "cannot give the webhook endpoint's lease up");
        }
        let next = {
            let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
            deliveries::next_due(&mut conn, endpoint)
                .await
                .map_err(JobError::retry)?
        };
        let Some(next) = next else {
            return ended.map(|_| ());
        };
        match ended? {
            // Something came due as the turn ended: take it again.
            TurnEnd::Empty => {}
            // The rest waits for a moment (a failing endpoint is not
            // hammered), in the job of the oldest due delivery.
            TurnEnd::Failed => {
                let later = Utc::now() + to_chrono(failure_pause());
                return run_later(&ctx, &next, Some(later)).await;
            }
            // The rest goes on at once in that job, so this worker slot is
            // free for others now and then.
            TurnEnd::Budget => return run_later(&ctx, &next, None).await,
            // The copy queued for later goes on from there.
            TurnEnd::OverLimit => return Ok(()),
        }
    }
}

/// How long a turn holds the lease without renewing it: one attempt, and
/// a wait for a turn under the rate limit, with room to spare. Renewed
/// every third of it.
fn lease_ttl(ctx: &JobContext) -> Duration {
    ctx.config.webhooks.timeout + ctx.config.jobs.timeout / 4 + Duration::from_secs(5)
}

/// Why a turn ended.
enum TurnEnd {
    /// No due delivery left.
    Empty,
    /// An attempt failed.
    Failed,
    /// Over the rate limit: the delivery's job runs later.
    OverLimit,
    /// It sent its most, used half the job's time, or lost the lease.
    Budget,
}

/// Sends `endpoint`'s due deliveries oldest first while holding its lease.
async fn take_turn(
    ctx: &JobContext,
    lease: &Lease,
    holder: &str,
    endpoint: Uuid,
) -> Result<TurnEnd, JobError> {
    let ttl = lease_ttl(ctx);
    let budget = Instant::now() + ctx.config.jobs.timeout / 2;
    let mut renewed = Instant::now();
    for _ in 0..TURN_MAX_DELIVERIES {
        if Instant::now() >= budget {
            return Ok(TurnEnd::Budget);
        }
        if renewed.elapsed() > ttl / 3 {
            if !lease.take(holder, ttl).await.map_err(JobError::retry)? {
                return Ok(TurnEnd::Budget);
            }
            renewed = Instant::now();
        }
        let next = {
            let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
            deliveries::next_due(&mut conn, endpoint)
                .await
                .map_err(JobError::retry)?
        };
        let Some(due) = next else {
            return Ok(TurnEnd::Empty);
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
        endpoint_id: due.endpoint_id,
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

/// Queues the job of `due` for `at` (now: `None`); this attempt ends
/// without failing.
async fn run_later(ctx: &JobContext, due: &Due, at: Option<DateTime<Utc>>) -> Result<(), JobError> {
    let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
    let job = DeliverWebhook {
        delivery_id: due.delivery_id,
        endpoint_id: due.endpoint_id,
    };
    outbox::push(&mut conn, &job, at)
        .await
        .map_err(JobError::retry)?;
    Ok(())
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::seconds(1))
}
