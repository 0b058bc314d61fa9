//! Taking a turn under a cluster-wide limit on an outside service (see
//! `crate::limits`) before a job calls it.

use queue::limit::RateLimit;
use shared::{jobs::JobSpec, outbox};

use super::{JobContext, JobError};

/// Waits for a turn under `limit` (none: no limit) for up to a quarter of
/// the job's time limit. With none by then the job runs later instead: a
/// copy of `job` is queued through the outbox for then and this attempt
/// ends without failing (no attempt is spent, and nothing the job would
/// change has changed, so the copy does the work). False in that case.
/// Redis failing to answer lets the call through: the limit is a courtesy
/// to `service`, the job's work matters more.
pub async fn take_turn<J: JobSpec>(
    ctx: &JobContext,
    limit: Option<&RateLimit>,
    job: &J,
    service: &'static str,
) -> Result<bool, JobError> {
    let Some(limit) = limit else {
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
            tracing::info!(job = J::NAME, service, "over the rate limit; running later");
            Ok(false)
        }
        Err(error) => {
            tracing::warn!(%error, service, "cannot reach the rate limit in Redis; calling anyway");
            Ok(true)
        }
    }
}
