//! `/admin/jobs`: the job system as operators see it (PRODUCT.md §10).
//! Administrators only.
//!
//! Counts come from the queues' own bookkeeping in Redis (the apalis-redis
//! key layout, read through the `queue` crate) plus the outbox in PostgreSQL:
//! a job that is committed but not yet relayed (say a bet's settlement due
//! tomorrow) is already the system's promise, so it is counted as pending
//! or scheduled like one waiting in Redis.
//!
//! Dead jobs are listed, retried and discarded through our apalis-redis
//! copy's dead-set API (vendor/apalis-redis, `dead`): newest first, a page
//! at a time. The counts read the queues' keys through the `queue` crate:
//! apalis's active list, per-worker in-flight sets, worker heartbeats and
//! scheduled and dead sets, plus our outcome counters and worker process
//! registry (apalis's own `ListWorkers` has no concurrency per worker).

use std::collections::HashMap;

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use queue::{
    JobQueues, SeenProcess,
    dead::{self, PageCursor},
};
use serde::{Deserialize, Serialize};
use shared::jobs::Queue;
use utoipa::{
    IntoParams, ToSchema,
    openapi::{ObjectBuilder, Schema, Type},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::pagination;
use crate::{
    auth::AdminUser,
    error::{ApiError, Problem},
    routes::spec,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(job_overview))
        .routes(routes!(list_dead))
        .routes(routes!(retry_dead))
        .routes(routes!(discard_dead))
}

fn job_queues(state: &AppState) -> JobQueues {
    JobQueues::new(state.redis.clone(), state.config.redis.prefix.clone())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueSummary {
    pub queue: String,
    /// Due and waiting for a worker: in Redis, or committed in the outbox
    /// and about to be relayed.
    pub pending: u64,
    /// Not due yet: retries waiting out their backoff, and delayed jobs
    /// (bet settlements) waiting in the outbox.
    pub scheduled: u64,
    /// Held by a worker right now.
    pub running: u64,
    /// Finished successfully (cluster-wide, since the queues were created).
    pub done: u64,
    /// Failed attempts (each retried or, at the last attempt, dead).
    pub failed: u64,
    /// In the dead set, waiting for an operator.
    pub dead: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerSummary {
    pub name: String,
    pub host: String,
    pub pid: u32,
    pub queues: Vec<String>,
    /// Jobs run at once per queue.
    pub concurrency: usize,
    /// Whether this process runs an outbox relay.
    pub relay: bool,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    /// False once the process missed three heartbeats (killed or cut off);
    /// its jobs go back to the queue after the lease.
    pub alive: bool,
}

impl From<SeenProcess> for WorkerSummary {
    fn from(seen: SeenProcess) -> Self {
        let p = seen.process;
        Self {
            name: p.name,
            host: p.host,
            pid: p.pid,
            queues: p.queues,
            concurrency: p.concurrency,
            relay: p.relay,
            started_at: p.started_at,
            last_heartbeat: seen.last_heartbeat,
            alive: seen.alive,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobOverview {
    pub queues: Vec<QueueSummary>,
    /// Worker processes heard from in the last hour, live ones first.
    pub workers: Vec<WorkerSummary>,
    pub generated_at: DateTime<Utc>,
}

/// Per queue: jobs in the outbox not yet relayed, (due, not yet due).
async fn outbox_counts(state: &AppState) -> Result<HashMap<String, (u64, u64)>, ApiError> {
    let mut conn = state.conn().await?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(shared::outbox::backlog(&mut conn)
        .await?
        .into_iter()
        .map(|b| (b.queue, (count(b.due), count(b.scheduled))))
        .collect())
}

/// Queues and workers at a glance.
///
/// Per queue: pending, scheduled, running, done, failed and dead jobs; and
/// the worker processes with their queues, concurrency and last heartbeat.
#[utoipa::path(
    get,
    path = "/admin/jobs",
    tag = "admin",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        spec::Unavailable, spec::AdminRead,
        (status = 200, description = "The overview", body = JobOverview),
    )
)]
pub async fn job_overview(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
) -> Result<axum::Json<JobOverview>, ApiError> {
    let queues = job_queues(&state);
    let outbox = outbox_counts(&state).await?;
    let mut summaries = Vec::with_capacity(Queue::ALL.len());
    for counts in dead::stats(&queues).await? {
        let (due, later) = outbox.get(&counts.queue).copied().unwrap_or((0, 0));
        summaries.push(QueueSummary {
            pending: counts.pending + due,
            scheduled: counts.delayed + later,
            running: counts.running,
            done: counts.succeeded,
            failed: counts.retried + counts.failed_for_good,
            dead: counts.dead,
            queue: counts.queue,
        });
    }
    let workers = queues
        .processes()
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(axum::Json(JobOverview {
        queues: summaries,
        workers,
        generated_at: Utc::now(),
    }))
}

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
    /// The previous page's `next_cursor`: the last job's `queue/id`.
    #[param(value_type = Option<DeadCursor>, inline)]
    cursor: Option<String>,
}

fn queue_names() -> Vec<&'static str> {
    Queue::ALL.iter().map(|q| q.as_str()).collect()
}

fn queue_name() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(queue_names()))
        .build()
        .into()
}

/// Every `died_at_ms/queue/id` with a known queue and a possible id is a
/// cursor.
fn dead_cursor() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!(
            "^[0-9]{{1,15}}/(?:{})/[A-Za-z0-9._-]{{1,{MAX_ID_LEN}}}$",
            queue_names().join("|")
        )))
        .build()
        .into()
}

spec::schema_type!(QueueName => queue_name());
spec::schema_type!(DeadCursor => dead_cursor());

/// Dead job ids are ours (UUIDs, with `.n` suffixes for retries) or
/// apalis's (ULIDs); anything longer is no id.
const MAX_ID_LEN: usize = 64;

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

fn parse_queue(raw: &str) -> Result<Queue, ApiError> {
    Queue::parse(raw).ok_or_else(|| {
        let names: Vec<&str> = Queue::ALL.iter().map(|q| q.as_str()).collect();
        ApiError::field("queue", format!("must be one of {}", names.join(", ")))
    })
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
/// first. Dead sets are bounded (`DEAD_MAX_PER_QUEUE`, `DEAD_TTL_DAYS`):
/// the oldest are dropped past the bounds.
#[utoipa::path(
    get,
    path = "/admin/jobs/dead",
    tag = "admin",
    security(("bearer" = []), ("cookie" = [])),
    params(DeadParams),
    responses(
        spec::Unavailable, spec::AdminRead,
        (status = 200, description = "One page", body = DeadJobPage),
        (status = 400, description = "Unknown queue, bad limit or cursor, or an unknown parameter (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_dead(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
    Query(params): Query<DeadParams>,
) -> Result<axum::Json<DeadJobPage>, ApiError> {
    let only = params.queue.as_deref().map(parse_queue).transpose()?;
    let limit = usize::try_from(pagination::limit(params.limit)?).unwrap_or(20);
    let after = params.cursor.as_deref().map(decode_cursor).transpose()?;
    let (jobs, more) = dead::page(&job_queues(&state), only, after, limit).await?;
    let next_cursor = more
        .then(|| jobs.last().map(|j| encode_cursor(&j.cursor())))
        .flatten();
    let items = jobs
        .into_iter()
        .map(|dead| DeadJobResponse {
            job: dead
                .job
                .payload
                .as_ref()
                .and_then(|p| p.get("job"))
                .and_then(|j| j.as_str())
                .map(str::to_owned),
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
