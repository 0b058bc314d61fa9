use std::{sync::Arc, time::Duration};

use shared::{
    jobs::{JobEnvelope, Probe},
    probe,
};

use super::{JobContext, JobError};

/// Runs a diagnostic probe: record the start, sleep, fail if asked to,
/// record the end. With `record: false` and no sleep it is a no-op (the
/// benchmark job).
pub async fn run(
    ctx: Arc<JobContext>,
    envelope: JobEnvelope,
    attempt: u32,
) -> Result<(), JobError> {
    let started_at = chrono::Utc::now();
    let job: Probe = envelope.decode()?;
    let attempt_i32 = i32::try_from(attempt).unwrap_or(i32::MAX);
    let run_id = if job.record {
        let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
        Some(
            probe::record_start(
                &mut conn,
                &job.tag,
                envelope.id,
                attempt_i32,
                &ctx.worker_name,
                started_at,
            )
            .await
            .map_err(JobError::retry)?,
        )
    } else {
        None
    };
    if job.sleep_ms > 0 {
        tokio::time::sleep(Duration::from_millis(job.sleep_ms)).await;
    }
    let fail = attempt <= job.fail_attempts;
    if let Some(run_id) = run_id {
        let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
        probe::record_finish(&mut conn, run_id, fail)
            .await
            .map_err(JobError::retry)?;
    }
    if fail {
        let reason = format!("probe {} fails attempt {attempt} as asked", job.tag);
        return Err(if job.fail_permanently {
            JobError::Permanent(reason)
        } else {
            JobError::Retry(reason)
        });
    }
    Ok(())
}
