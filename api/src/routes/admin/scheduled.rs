//! `GET /api/v1/admin/jobs/scheduled`: jobs waiting for a later time (see
//! the queue crate's `browse`).

use queue::browse::{self, ScheduledKey};

use super::*;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ScheduledParams {
    /// One queue; all queues when absent.
    #[param(value_type = Option<QueueName>, inline)]
    queue: Option<String>,
    /// Only jobs of this name.
    #[param(value_type = Option<JobName>, inline)]
    job: Option<String>,
    /// Only jobs whose last error contains this text (ignoring case).
    #[param(value_type = Option<ErrorText>, inline)]
    error: Option<String>,
    /// Page size, default 20.
    #[param(minimum = 1, maximum = 100, nullable = false)]
    limit: Option<i64>,
    /// The previous page's `next_cursor`: where the page ended.
    #[param(value_type = Option<ScheduledCursor>, inline)]
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduledJobResponse {
    /// The job's id (cancel it with `DELETE /admin/jobs/{queue}/{id}`
    /// where its queue allows).
    pub id: String,
    pub queue: String,
    /// The job's name (`settle_bet`, `send_email`, ...), when readable.
    pub job: Option<String>,
    /// When it runs next.
    pub run_at: DateTime<Utc>,
    /// Attempts made so far: 0 for a delayed job that has not run, more
    /// for a retry waiting out its backoff.
    pub attempts: u32,
    /// The last attempt's error (a retry's), or the outbox relay's last
    /// error for a delayed job.
    pub last_error: Option<String>,
    /// `scheduled` (in its queue, in Redis) or `outbox` (committed, relayed
    /// when due).
    #[schema(inline, value_type = String, example = "scheduled")]
    pub waiting_in: &'static str,
    /// The job's arguments, when readable.
    pub args: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduledJobPage {
    pub items: Vec<ScheduledJobResponse>,
    pub next_cursor: Option<String>,
}

/// `{run_at in µs}/{id}`.
fn scheduled_cursor() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!(
            "^[0-9]{{1,18}}/[A-Za-z0-9._-]{{1,{MAX_ID_LEN}}}$"
        )))
        .build()
        .into()
}

spec::schema_type!(ScheduledCursor => scheduled_cursor());

/// Scheduled and retrying jobs.
///
/// Jobs waiting for a later time, soonest first: retries waiting out their
/// backoff (with their attempts and last error), and delayed jobs, in
/// their queue or still in the outbox (a bet's settlement is relayed when
/// due). Optionally only those of one queue, one job name or with some
/// text in their last error. A filtered page reads at most 5,000 jobs per
/// queue, so it may come back short (even empty) with a `next_cursor`:
/// nothing more matched so far; follow the cursor to go on.
#[utoipa::path(
    get,
    path = "/admin/jobs/scheduled",
    tag = "admin",
    security(("bearer" = []), ("cookie" = [])),
    params(ScheduledParams),
    responses(
        spec::Unavailable, spec::AdminRead,
        (status = 200, description = "One page", body = ScheduledJobPage),
        (status = 400, description = "Unknown queue or job name, bad error text, limit or cursor, or an unknown parameter (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_scheduled(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
    Query(params): Query<ScheduledParams>,
) -> Result<axum::Json<ScheduledJobPage>, ApiError> {
    let only = params.queue.as_deref().map(parse_queue).transpose()?;
    let filter = job_filter(params.job.as_deref(), params.error.as_deref())?;
    let limit = usize::try_from(pagination::limit(params.limit)?).unwrap_or(20);
    let after = params
        .cursor
        .as_deref()
        .map(|raw| {
            ScheduledKey::decode(raw, MAX_ID_LEN)
                .ok_or_else(|| ApiError::field("cursor", "is not a cursor from this endpoint"))
        })
        .transpose()?;
    let (jobs, next) =
        browse::scheduled(&job_queues(&state), &state.db, only, &filter, after, limit)
            .await
            .map_err(|error| match error {
                browse::BrowseError::Database(_) => ApiError::Unavailable,
                browse::BrowseError::Redis(error) => error.into(),
            })?;
    let items = jobs
        .into_iter()
        .map(|job| ScheduledJobResponse {
            id: job.id,
            queue: job.queue.as_str().to_owned(),
            job: job.job,
            run_at: job.run_at,
            attempts: job.attempts,
            last_error: job.last_error,
            waiting_in: job.waiting_in,
            args: job.args,
        })
        .collect();
    Ok(axum::Json(ScheduledJobPage {
        items,
        next_cursor: next.as_ref().map(ScheduledKey::encode),
    }))
}
