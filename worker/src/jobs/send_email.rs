use std::sync::Arc;

use shared::{
    email::{self, Delivery, DeliveryError},
    jobs::{JobEnvelope, SendEmail},
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
