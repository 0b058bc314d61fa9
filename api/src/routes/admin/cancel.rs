//! `DELETE /api/v1/admin/jobs/{queue}/{id}`: cancel a waiting job (see the
//! queue crate's `cancel`).

use queue::cancel::{self, CancelError};

use super::*;

#[derive(Debug, Serialize, ToSchema)]
pub struct CancelledJob {
    pub queue: String,
    pub id: String,
    /// The job's name (`send_email`, `clear_orders`, ...), when readable.
    pub job: Option<String>,
    /// Where it was waiting: `outbox` (committed, not yet relayed, or
    /// delayed), `pending` (in its queue, due) or `scheduled` (a retry
    /// waiting out its backoff).
    #[schema(inline, value_type = String, example = "pending")]
    pub waited_in: &'static str,
}

/// Cancel a waiting job.
///
/// Only jobs that have not started: in the outbox, pending in their queue,
/// or scheduled for a retry. A job a worker has fetched runs to its end.
/// Only in queues whose jobs carry no money (`email`, `order_clearing`,
/// `probe`); the others answer 409 (pause them instead). A cancelled email
/// is never sent (marked failed); cancelled clearing work is queued again
/// by the clearing sweep after `CLEARING_RESUBMIT_SECS`.
#[utoipa::path(
    delete,
    path = "/admin/jobs/{queue}/{id}",
    tag = "admin",
    security(("bearer" = []), ("cookie" = [])),
    params(
        ("queue" = inline(QueueName), Path, description = "Queue name"),
        ("id" = String, Path, description = "Job id"),
    ),
    responses(
        spec::Unavailable, spec::AdminWrite,
        (status = 200, description = "Cancelled", body = CancelledJob),
        (status = 404, description = "No such queue, or no such waiting job (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The queue's jobs carry money, or the job is running, finished or dead, or being relayed this instant (`conflict`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel_job(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path((queue, id)): Path<(String, String)>,
) -> Result<axum::Json<CancelledJob>, ApiError> {
    let queue = Queue::parse(&queue).ok_or_else(|| ApiError::NotFound("no such queue".into()))?;
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(ApiError::NotFound("no such waiting job".into()));
    }
    let cancelled = cancel::cancel(&job_queues(&state), &state.db, queue, &id, &admin.username)
        .await
        .map_err(|error| match error {
            CancelError::NotFound(_) => ApiError::NotFound(error.to_string()),
            CancelError::NotCancellable(_)
            | CancelError::BeingRelayed(_)
            | CancelError::NotWaiting(_) => {
                ApiError::Conflict(error.to_string(), Default::default())
            }
            CancelError::Database(_) => ApiError::Unavailable,
            CancelError::Redis(error) => error.into(),
        })?;
    Ok(axum::Json(CancelledJob {
        queue: cancelled.queue.as_str().to_owned(),
        id: cancelled.id,
        job: cancelled.job,
        waited_in: cancelled.waited_in.as_str(),
    }))
}
