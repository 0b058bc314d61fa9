//! `GET /api/v1/admin/jobs/history`: throughput over the last hour (see
//! the queue crate's `history`).

use queue::history;

use super::*;

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPoint {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Jobs that succeeded in the interval.
    pub succeeded: u64,
    /// Failed attempts that will be retried.
    pub retried: u64,
    /// Jobs that failed their last attempt (moved to the dead set).
    pub failed: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueHistory {
    pub queue: String,
    /// Oldest first, one per sampling interval.
    pub points: Vec<HistoryPoint>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobHistory {
    /// Every queue, each with the same intervals.
    pub queues: Vec<QueueHistory>,
    pub generated_at: DateTime<Utc>,
}

/// Throughput and failures per queue over the last hour.
///
/// The worker holding the upkeep lease samples every queue's cluster-wide
/// outcome counters every `JOBS_HISTORY_SAMPLE_SECS` (60 by default); each
/// point is what happened between two samples. Empty until two samples
/// were taken.
#[utoipa::path(
    get,
    path = "/admin/jobs/history",
    tag = "admin",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        spec::Unavailable, spec::AdminRead,
        (status = 200, description = "The last hour", body = JobHistory),
    )
)]
pub async fn job_history(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
) -> Result<axum::Json<JobHistory>, ApiError> {
    let samples = job_queues(&state).history().await?;
    let queues = history::intervals(&samples)
        .into_iter()
        .map(|series| QueueHistory {
            queue: series.queue,
            points: series
                .points
                .into_iter()
                .map(|p| HistoryPoint {
                    from: p.from,
                    to: p.to,
                    succeeded: p.succeeded,
                    retried: p.retried,
                    failed: p.failed,
                })
                .collect(),
        })
        .collect();
    Ok(axum::Json(JobHistory {
        queues,
        generated_at: Utc::now(),
    }))
}
