//! The two clearing jobs (see `shared::trading::clearing`): form batches
//! from waiting orders, and place one batch at the exchange.

use std::sync::Arc;

use shared::{
    jobs::{ClearOrders, JobEnvelope, SubmitClearingBatch},
    trading::{
        clearing::{self, SubmitError, Submitted},
        exchange::ExchangeError,
    },
};

use super::{JobContext, JobError, turn};

pub async fn form(ctx: Arc<JobContext>, envelope: JobEnvelope) -> Result<(), JobError> {
    let job: ClearOrders = envelope.decode()?;
    let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
    let formed = clearing::form_batches(
        &mut conn,
        ctx.config.trading.clearing_threshold_usd,
        &job.currency,
        job.side,
    )
    .await
    .map_err(JobError::retry)?;
    if !formed.is_empty() {
        tracing::info!(currency = %job.currency, side = %job.side, batches = formed.len(), "clearing batches formed");
    }
    Ok(())
}

pub async fn submit(ctx: Arc<JobContext>, envelope: JobEnvelope) -> Result<(), JobError> {
    let job: SubmitClearingBatch = envelope.decode()?;
    // One turn per placement under `EXCHANGE_MAX_PER_SEC`; the batch is
    // untouched until then, so a copy running later places it.
    if !turn::take_turn(&ctx, ctx.limits.exchange.as_ref(), &job, "exchange").await? {
        return Ok(());
    }
    let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
    match clearing::submit(&mut conn, ctx.exchange.as_ref(), job.batch_id).await {
        Ok(Submitted::Cleared { reference, orders }) => {
            tracing::info!(batch = %job.batch_id, %reference, orders, exchange = ctx.exchange.name(), "batch cleared");
            Ok(())
        }
        Ok(Submitted::AlreadyCleared) => Ok(()),
        Err(SubmitError::UnknownBatch(id)) => {
            Err(JobError::Permanent(format!("no clearing batch {id}")))
        }
        // The exchange refused this order: the same call cannot succeed;
        // the dead set holds it for an operator (the batch stays pending).
        Err(SubmitError::Exchange(error @ ExchangeError::Rejected(_))) => {
            Err(JobError::Permanent(error.to_string()))
        }
        Err(error) => Err(JobError::retry(error)),
    }
}
