//! `GET /api/v1/admin/jobs`, `POST /api/v1/admin/queues/{queue}/pause` and `/resume`.

use super::*;

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
    /// Paused by an operator: accepting jobs, running none.
    pub paused: bool,
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
    /// Jobs it runs now, over all its queues.
    pub in_flight: u64,
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
            in_flight: seen.in_flight,
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

/// Per queue: jobs in the outbox not yet relayed, (due, not yet due). The
/// delayed rows are counted exactly here, on an operator's request only
/// (the relays' gauge samples them rarely).
async fn outbox_counts(state: &AppState) -> Result<HashMap<String, (u64, u64)>, ApiError> {
    let mut conn = state.conn().await?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let mut counts: HashMap<String, (u64, u64)> = HashMap::new();
    for row in shared::outbox::due_backlog(&mut conn).await? {
        counts.entry(row.queue).or_default().0 = count(row.rows);
    }
    for row in shared::outbox::scheduled_backlog(&mut conn).await? {
        counts.entry(row.queue).or_default().1 = count(row.rows);
    }
    Ok(counts)
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
            paused: counts.paused,
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

#[derive(Debug, Serialize, ToSchema)]
pub struct QueuePause {
    pub queue: String,
    /// Whether the queue is paused now.
    pub paused: bool,
}

async fn set_paused(
    state: &AppState,
    admin: &str,
    queue: &str,
    paused: bool,
) -> Result<axum::Json<QueuePause>, ApiError> {
    let queue = Queue::parse(queue).ok_or_else(|| ApiError::NotFound("no such queue".into()))?;
    job_queues(state).set_paused(queue, paused).await?;
    tracing::info!(
        admin,
        queue = queue.as_str(),
        paused,
        "queue paused or resumed"
    );
    Ok(axum::Json(QueuePause {
        queue: queue.as_str().to_owned(),
        paused,
    }))
}

/// Pause a queue on every worker process.
///
/// The queue keeps accepting jobs (the relays still push them) and no
/// worker fetches from it, on any process, until it is resumed; jobs
/// already running finish. Idempotent.
#[utoipa::path(
    post,
    path = "/admin/queues/{queue}/pause",
    tag = "admin",
    security(("bearer" = []), ("cookie" = [])),
    params(("queue" = inline(QueueName), Path, description = "Queue name")),
    responses(
        spec::Unavailable, spec::AdminWrite,
        (status = 200, description = "Paused", body = QueuePause),
        (status = 404, description = "No such queue (`not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn pause_queue(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(queue): Path<String>,
) -> Result<axum::Json<QueuePause>, ApiError> {
    set_paused(&state, &admin.username, &queue, true).await
}

/// Resume a paused queue on every worker process. Idempotent.
#[utoipa::path(
    post,
    path = "/admin/queues/{queue}/resume",
    tag = "admin",
    security(("bearer" = []), ("cookie" = [])),
    params(("queue" = inline(QueueName), Path, description = "Queue name")),
    responses(
        spec::Unavailable, spec::AdminWrite,
        (status = 200, description = "Resumed", body = QueuePause),
        (status = 404, description = "No such queue (`not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn resume_queue(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(queue): Path<String>,
) -> Result<axum::Json<QueuePause>, ApiError> {
    set_paused(&state, &admin.username, &queue, false).await
}
