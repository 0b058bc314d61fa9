use std::sync::Arc;

use shared::jobs::{JobEnvelope, PricesObserved};

use super::{JobContext, JobError};

/// The hook that runs after every stored refresh. Alert evaluation and bets
/// waiting for a price attach here (their issues); today it only checks
/// the payload.
pub async fn run(_ctx: Arc<JobContext>, envelope: JobEnvelope) -> Result<(), JobError> {
    let job: PricesObserved = envelope.decode()?;
    tracing::debug!(observed_at = %job.observed_at, symbols = job.symbols.len(), "new prices");
    Ok(())
}
