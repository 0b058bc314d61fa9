//! `GET /api/v1/admin/jobs/dead`, `POST /api/v1/admin/jobs/dead/{id}/retry`,
//! `DELETE /api/v1/admin/jobs/dead/{id}`, and in bulk for what a filter
//! matches: `POST /api/v1/admin/jobs/dead/retry` and `/discard`.

use super::*;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeadParams {
    /// One queue; all queues when absent.
    #[param(value_type = Option<QueueName>, inline)]
    queue: Option<String>,
    /// Page size, default 20.
    #[param(minimum = 1, maximum = 100, nullable = false)]
    limit: Option<i64>,
    /// Only jobs of this name.
    #[param(value_type = Option<JobName>, inline)]
    job: Option<String>,
    /// Only jobs whose last error contains this text (ignoring case).
    #[param(value_type = Option<ErrorText>, inline)]
    error: Option<String>,
    /// The previous page's `next_cursor`: where the page ended.
    #[param(value_type = Option<DeadCursor>, inline)]
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadJobResponse {
    /// The job's id (its outbox row), used to retry or discard it.
    pub id: String,
    pub queue: String,
    /// When it died (its last attempt ended).
    pub died_at: DateTime<Utc>,
    /// The job's name (`send_email`, `settle_bet`, ...), when readable.
    pub job: Option<String>,
    /// Attempts made before it died.
    pub attempts: Option<u32>,
    /// The last attempt's error.
    pub error: Option<String>,
    /// The stored job (`{id, job, v, args, due_at}`), when readable.
    pub payload: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadJobPage {
    pub items: Vec<DeadJobResponse>,
    pub next_cursor: Option<String>,
}

/// Cursors are the last item's `died_at_ms/queue/id`: pages run in that
/// order (newest first), so any such triple is a place to continue from
/// (see [`dead_cursor`]).
fn encode_cursor(cursor: &PageCursor) -> String {
    format!(
        "{}/{}/{}",
        cursor.died_at_ms,
        cursor.queue.as_str(),
        cursor.id
    )
}

/// Milliseconds since the epoch fit in 15 digits until the year 33658.
const MAX_MS_DIGITS: usize = 15;

fn decode_cursor(raw: &str) -> Result<PageCursor, ApiError> {
    let mut parts = raw.splitn(3, '/');
    let parsed = (|| {
        let ms = parts.next()?;
        let queue = Queue::parse(parts.next()?)?;
        let id = parts.next()?;
        let plausible_ms =
            !ms.is_empty() && ms.len() <= MAX_MS_DIGITS && ms.bytes().all(|b| b.is_ascii_digit());
        let plausible_id = !id.is_empty()
            && id.len() <= MAX_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        (plausible_ms && plausible_id).then_some(PageCursor {
            died_at_ms: ms.parse().ok()?,
            queue,
            id: id.to_owned(),
        })
    })();
    parsed.ok_or_else(|| ApiError::field("cursor", "is not a cursor from this endpoint"))
}

/// Dead jobs: those that failed every attempt or could not be read.
///
/// Each with its payload, last error, attempts and time of death, newest
/// first, optionally only those of one queue, one job name or with some
/// text in their last error. A filtered page reads at most 5,000 jobs per
/// queue, so it may come back short (even empty) with a `next_cursor`:
/// nothing more matched so far; follow the cursor to go on. Dead sets are
/// bounded (`DEAD_MAX_PER_QUEUE`, `DEAD_TTL_DAYS`): the oldest are dropped
/// past the bounds.
#[utoipa::path(
    get,
    path = "/admin/jobs/dead",
    tag = "admin",
    security(("bearer" = []), ("cookie" = [])),
    params(DeadParams),
    responses(
        spec::Unavailable, spec::AdminRead,
        (status = 200, description = "One page", body = DeadJobPage),
        (status = 400, description = "Unknown queue or job name, bad error text, limit or cursor, or an unknown parameter (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_dead(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
    Query(params): Query<DeadParams>,
) -> Result<axum::Json<DeadJobPage>, ApiError> {
    let only = params.queue.as_deref().map(parse_queue).transpose()?;
    let filter = job_filter(params.job.as_deref(), params.error.as_deref())?;
    let limit = usize::try_from(pagination::limit(params.limit)?).unwrap_or(20);
    let after = params.cursor.as_deref().map(decode_cursor).transpose()?;
    let (jobs, next) = dead::page(&job_queues(&state), only, &filter, after, limit).await?;
    let next_cursor = next.as_ref().map(encode_cursor);
    let items = jobs
        .into_iter()
        .map(|dead| DeadJobResponse {
            job: queue::browse::job_name(dead.job.payload.as_ref()).map(str::to_owned),
            died_at: dead.job.died_at,
            attempts: dead.job.attempts.as_deref().and_then(|a| a.parse().ok()),
            error: dead.job.last_error,
            payload: dead.job.payload,
            id: dead.job.task_id,
            queue: dead.queue.as_str().to_owned(),
        })
        .collect();
    Ok(axum::Json(DeadJobPage { items, next_cursor }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadJobAction {
    pub id: String,
    pub queue: String,
    /// `queued` (back on its queue with its attempts reset) or `discarded`.
    pub status: String,
}

/// The queue of dead job `id`, or 404.
async fn dead_queue(queues: &JobQueues, id: &str) -> Result<Queue, ApiError> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(ApiError::NotFound("no such dead job".into()));
    }
    dead::find(queues, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such dead job".into()))
}

/// Put a dead job back on its queue, with its attempts reset.
#[utoipa::path(
    post,
    path = "/admin/jobs/dead/{id}/retry",
    tag = "admin",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Dead job id")),
    responses(
        spec::Unavailable, spec::AdminWrite,
        (status = 200, description = "Queued again", body = DeadJobAction),
        (status = 404, description = "No such dead job (`not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn retry_dead(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
) -> Result<axum::Json<DeadJobAction>, ApiError> {
    let queues = job_queues(&state);
    let queue = dead_queue(&queues, &id).await?;
    if queues
        .requeue_dead(queue, std::slice::from_ref(&id))
        .await?
        == 0
    {
        // Another operator acted on it between the two calls.
        return Err(ApiError::NotFound("no such dead job".into()));
    }
    tracing::info!(admin = %admin.username, job = %id, queue = queue.as_str(), "dead job retried");
    Ok(axum::Json(DeadJobAction {
        id,
        queue: queue.as_str().to_owned(),
        status: "queued".into(),
    }))
}

/// Discard a dead job for good.
#[utoipa::path(
    delete,
    path = "/admin/jobs/dead/{id}",
    tag = "admin",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = String, Path, description = "Dead job id")),
    responses(
        spec::Unavailable, spec::AdminWrite,
        (status = 204, description = "Discarded"),
        (status = 404, description = "No such dead job (`not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn discard_dead(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let queues = job_queues(&state);
    let queue = dead_queue(&queues, &id).await?;
    if queues
        .discard_dead(queue, std::slice::from_ref(&id))
        .await?
        == 0
    {
        return Err(ApiError::NotFound("no such dead job".into()));
    }
    tracing::info!(admin = %admin.username, job = %id, queue = queue.as_str(), "dead job discarded");
    Ok(StatusCode::NO_CONTENT)
}

/// Which dead jobs a bulk retry or discard acts on: all of them, or those
/// of one queue, one job name, with some text in their last error.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadFilter {
    #[schema(value_type = Option<QueueName>, inline)]
    queue: Option<String>,
    #[schema(value_type = Option<JobName>, inline)]
    job: Option<String>,
    /// Text the last error contains (ignoring case).
    #[schema(value_type = Option<ErrorText>, inline)]
    error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkAction {
    /// Dead jobs that matched the filter.
    pub matched: u64,
    /// Those queued again (`retry`) or discarded; fewer than `matched` if
    /// another operator acted on some meanwhile.
    pub done: u64,
    /// `queued` or `discarded`.
    pub status: String,
}

async fn act_on_matching(
    state: &AppState,
    admin: &str,
    filter: DeadFilter,
    retry: bool,
) -> Result<axum::Json<BulkAction>, ApiError> {
    let only = filter.queue.as_deref().map(parse_queue).transpose()?;
    let matching = job_filter(filter.job.as_deref(), filter.error.as_deref())?;
    let bulk = dead::act_on_matching(&job_queues(state), only, &matching, retry).await?;
    let status = if retry { "queued" } else { "discarded" };
    tracing::info!(
        admin,
        queue = only.map(Queue::as_str),
        job = matching.job(),
        error = matching.error(),
        matched = bulk.matched,
        done = bulk.done,
        "dead jobs {status} in bulk"
    );
    Ok(axum::Json(BulkAction {
        matched: bulk.matched as u64,
        done: bulk.done as u64,
        status: status.into(),
    }))
}

/// Put every dead job that matches a filter back on its queue.
///
/// With attempts reset. `{}` matches every dead job of every queue. Acts
/// on the jobs dead when it runs; jobs dying meanwhile are left.
#[utoipa::path(
    post,
    path = "/admin/jobs/dead/retry",
    tag = "admin",
    security(("bearer" = []), ("cookie" = [])),
    request_body = DeadFilter,
    responses(
        spec::Unavailable, spec::JsonBody, spec::AdminWrite,
        (status = 200, description = "Queued again", body = BulkAction),
        (status = 400, description = "Unknown queue or job name, or bad error text (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn retry_matching(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiJson(filter): ApiJson<DeadFilter>,
) -> Result<axum::Json<BulkAction>, ApiError> {
    act_on_matching(&state, &admin.username, filter, true).await
}

/// Discard every dead job that matches a filter, for good.
///
/// `{}` matches every dead job of every queue. Acts on the jobs dead when
/// it runs; jobs dying meanwhile are left.
#[utoipa::path(
    post,
    path = "/admin/jobs/dead/discard",
    tag = "admin",
    security(("bearer" = []), ("cookie" = [])),
    request_body = DeadFilter,
    responses(
        spec::Unavailable, spec::JsonBody, spec::AdminWrite,
        (status = 200, description = "Discarded", body = BulkAction),
        (status = 400, description = "Unknown queue or job name, or bad error text (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn discard_matching(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiJson(filter): ApiJson<DeadFilter>,
) -> Result<axum::Json<BulkAction>, ApiError> {
    act_on_matching(&state, &admin.username, filter, false).await
}
