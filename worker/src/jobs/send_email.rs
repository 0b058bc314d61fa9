use std::sync::Arc;

use shared::{
    email::{self, Delivery, DeliveryError},
    jobs::{JobEnvelope, ReconcileEmails, SendEmail},
};

use super::{JobContext, JobError, turn};

/// Sends one queued email, at most once (see `shared::email::deliver`),
/// in its turn under the cluster-wide SMTP limit (`SMTP_MAX_PER_SEC`): an
/// email over it runs later, its row untouched until the copy sends it.
pub async fn run(ctx: Arc<JobContext>, envelope: JobEnvelope) -> Result<(), JobError> {
    let job: SendEmail = envelope.decode()?;
    if !turn::take_turn(&ctx, ctx.limits.smtp.as_ref(), &job, "smtp").await? {
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
