use std::sync::Arc;

use shared::{
    email::{self, Delivery, DeliveryError},
    jobs::{JobEnvelope, ReconcileEmails, SendEmail},
    outbox,
};

use super::{JobContext, JobError};

/// Sends one queued email, at most once (see `shared::email::deliver`),
/// in its turn under the cluster-wide SMTP limit.
pub async fn run(ctx: Arc<JobContext>, envelope: JobEnvelope) -> Result<(), JobError> {
    let job: SendEmail = envelope.decode()?;
    if !take_turn(&ctx, &job).await? {
        return Ok(());
    }
    let outcome = email::deliver(
        &ctx.db,
        &ctx.mailer,
        job.email_id,
        &ctx.config.http.public_url,
        ctx.email_stale_after(),
        &ctx.worker_name,
    )
    .await;
    match outcome {
        Ok(Delivery::Sent) => {
            tracing::info!(email.id = %job.email_id, "email sent");
            Ok(())
        }
        Ok(Delivery::AlreadySent) => {
            tracing::info!(email.id = %job.email_id, "email already sent; duplicate delivery ignored");
            Ok(())
        }
        Ok(Delivery::Failed(reason)) => {
            tracing::warn!(email.id = %job.email_id, %reason, "email given up");
            Ok(())
        }
        Err(DeliveryError::NotFound(id)) => Err(JobError::Permanent(format!("no email {id}"))),
        // A duplicate of the job (orphan recovery, the reconciler) while
        // the first delivery is still talking to SMTP: that one records the
        // outcome, or, if its process died, the reconciler gives the claim
        // up once it is stale. Retrying here would only spend attempts.
        Err(DeliveryError::InProgress(id)) => {
            tracing::info!(email.id = %id, "email being sent by another delivery; this duplicate ends here");
            Ok(())
        }
        Err(
            error @ (DeliveryError::Transient(_)
            | DeliveryError::Pool(_)
            | DeliveryError::Database(_)),
        ) => Err(JobError::retry(error)),
    }
}

/// Waits for a turn under `SMTP_MAX_PER_SEC` for up to a quarter of the
/// job's time limit. With none by then the job runs later instead: a copy
/// is queued through the outbox for then and this attempt ends without
/// failing (no attempt is spent; the email's row is untouched, so the copy
/// delivers it). False in that case. Redis failing to answer lets the send
/// through: the limit is a courtesy to the provider, the email matters more.
async fn take_turn(ctx: &JobContext, job: &SendEmail) -> Result<bool, JobError> {
    let Some(limit) = &ctx.smtp_limit else {
        return Ok(true);
    };
    let budget = ctx.config.jobs.timeout / 4;
    match limit.take_within(budget).await {
        Ok(true) => Ok(true),
        Ok(false) => {
            let later = chrono::Utc::now()
                + chrono::Duration::from_std(budget).unwrap_or(chrono::Duration::seconds(1));
            let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
            outbox::push(&mut conn, job, Some(later))
                .await
                .map_err(JobError::retry)?;
            tracing::info!(email.id = %job.email_id, "over the SMTP rate limit; sending later");
            Ok(false)
        }
        Err(error) => {
            tracing::warn!(%error, "cannot reach the SMTP rate limit in Redis; sending anyway");
            Ok(true)
        }
    }
}

/// Emails re-queued per reconciler tick, at most.
const RECONCILE_LIMIT: i64 = 10_000;

/// The email reconciler's tick: queues again the emails whose job was lost.
pub async fn reconcile(ctx: Arc<JobContext>, envelope: JobEnvelope) -> Result<(), JobError> {
    let _tick: ReconcileEmails = envelope.decode()?;
    let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
    let done = email::reconcile(
        &mut conn,
        ctx.config.mail.reconcile_after,
        ctx.email_stale_after(),
        ctx.config.jobs.max_attempts,
        RECONCILE_LIMIT,
    )
    .await
    .map_err(JobError::retry)?;
    if done.queued > 0 {
        tracing::warn!(
            queued = done.queued,
            "emails pending long after they were queued: queued again"
        );
    }
    if done.given_up > 0 {
        tracing::warn!(
            given_up = done.given_up,
            "emails whose delivery was interrupted mid-send: marked failed, not resent"
        );
    }
    Ok(())
}
