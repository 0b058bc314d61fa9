use std::sync::Arc;

use shared::{
    email::{self, Delivery, DeliveryError},
    jobs::{JobEnvelope, ReconcileEmails, SendEmail},
};

use super::{JobContext, JobError};

/// Sends one queued email, at most once (see `shared::email::deliver`).
pub async fn run(ctx: Arc<JobContext>, envelope: JobEnvelope) -> Result<(), JobError> {
    let job: SendEmail = envelope.decode()?;
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
        Err(
            error @ (DeliveryError::InProgress(_)
            | DeliveryError::Transient(_)
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
    let queued = email::reconcile(
        &mut conn,
        ctx.config.mail.reconcile_after,
        ctx.config.jobs.max_attempts,
        RECONCILE_LIMIT,
    )
    .await
    .map_err(JobError::retry)?;
    if queued > 0 {
        tracing::warn!(
            queued,
            "emails pending long after they were queued: queued again"
        );
    }
    Ok(())
}
