//! `deliver_webhook`: one attempt at one delivery (see
//! `shared::webhooks::deliveries`), one at a time per endpoint and under
//! the cluster-wide `WEBHOOK_MAX_PER_SEC`.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use queue::lease::Lease;
use shared::{
    jobs::{DeliverWebhook, JobEnvelope},
    outbox,
    webhooks::{
        deliveries::{self, Due, Policy, Recorded, Start},
        send::Request,
    },
};

use super::{JobContext, JobError, turn};

/// How long a delivery whose endpoint is busy with another waits before
/// its copy tries again: about a second, spread so the copies of a backlog
/// do not all come back at once.
fn busy_wait() -> Duration {
    Duration::from_millis(1000 + rand::random::<u64>() % 1000)
}

pub async fn deliver(ctx: Arc<JobContext>, envelope: JobEnvelope) -> Result<(), JobError> {
    let job: DeliverWebhook = envelope.decode()?;
    let due = {
        let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
        match deliveries::start(&mut conn, job.delivery_id)
            .await
            .map_err(JobError::retry)?
        {
            Start::Due(due) => due,
            Start::Done => return Ok(()),
            Start::EndpointDisabled => {
                tracing::info!(delivery.id = %job.delivery_id, "webhook endpoint disabled; delivery failed");
                return Ok(());
            }
        }
    };
    // One delivery at a time per endpoint: a slow receiver holds one
    // worker slot, never the queue. A busy endpoint's delivery does not
    // wait for it in a slot either: a copy runs a moment later.
    let lease = Lease::new(
        ctx.redis.clone(),
        &ctx.config.redis.prefix,
        &format!("webhook:{}", due.endpoint_id),
    );
    let holder = format!("{}:{}", ctx.worker_name, uuid::Uuid::now_v7());
    let ttl = ctx.config.webhooks.timeout + ctx.config.jobs.timeout / 4 + Duration::from_secs(5);
    if !lease.take(&holder, ttl).await.map_err(JobError::retry)? {
        run_later(&ctx, &job, busy_wait()).await?;
        return Ok(());
    }
    let outcome = attempt(&ctx, &job, &due).await;
    if let Err(error) = lease.give_up(&holder).await {
        // It expires on its own after `ttl`.
        tracing::debug!(%error, "cannot give the webhook endpoint's lease up");
    }
    outcome
}

async fn attempt(ctx: &JobContext, job: &DeliverWebhook, due: &Due) -> Result<(), JobError> {
    if !turn::take_turn(ctx, ctx.limits.webhook.as_ref(), job, "webhook").await? {
        return Ok(());
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
    match recorded {
        Recorded::Delivered => {
            tracing::info!(delivery.id = %due.delivery_id, event.id = %due.event_id, status, ms, "webhook delivered");
        }
        Recorded::Retrying(next) => {
            tracing::info!(delivery.id = %due.delivery_id, status, ms, error = answer.error.as_deref(), %next, "webhook attempt failed; retrying");
        }
        Recorded::GaveUp => {
            tracing::warn!(delivery.id = %due.delivery_id, error = answer.error.as_deref(), "webhook delivery given up");
        }
        Recorded::EndpointDisabled => {
            tracing::warn!(endpoint.id = %due.endpoint_id, error = answer.error.as_deref(), "webhook endpoint failing too long: disabled, owner emailed");
        }
    }
    Ok(())
}

/// Queues a copy of `job` to run after `wait`; this attempt ends without
/// failing.
async fn run_later(ctx: &JobContext, job: &DeliverWebhook, wait: Duration) -> Result<(), JobError> {
    let later =
        Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::seconds(1));
    let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
    outbox::push(&mut conn, job, Some(later))
        .await
        .map_err(JobError::retry)?;
    Ok(())
}
