//! Cancelling a waiting job (PRODUCT.md §10; `DELETE
//! /api/v1/admin/jobs/{queue}/{id}`, `bourse-worker queue cancel`).
//!
//! A job waits in one of two places: the outbox in PostgreSQL (not yet
//! relayed, or delayed) and its queue in Redis (pending, or scheduled: a
//! retry waiting out its backoff). Cancelling removes it from both, in that
//! order: the outbox row first, so a relay cannot push it (again) after
//! Redis let it go; a row a relay holds a claim on right now is refused
//! (try again in a few seconds). Then our apalis-redis copy's
//! `waiting::cancel` takes it off the queue atomically against fetches: a
//! worker either fetched it first and it runs, or it never will.
//!
//! What a job stood for is settled too: a cancelled email is marked failed
//! (never sent, out of the reconciler's reach), a uniqueness mark the job
//! held is cleared so the next copy is not dropped for it. Only queues whose
//! jobs carry no money may be cancelled (`shared::jobs::cancellable`).

use apalis_redis::waiting::{Cancel, Waited};
use shared::{
    db::DbPool,
    jobs::{JobEnvelope, Queue},
    outbox::{self, Forget},
};
use uuid::Uuid;

use crate::{JobQueues, waiting};

/// Where a cancelled job was waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitedIn {
    /// The outbox: committed, not yet relayed (or delayed).
    Outbox,
    /// Its queue's active list: due, not yet fetched.
    Pending,
    /// Its queue's scheduled set: a retry waiting out its backoff.
    Scheduled,
}

impl WaitedIn {
    pub const fn as_str(self) -> &'static str {
        match self {
            WaitedIn::Outbox => "outbox",
            WaitedIn::Pending => "pending",
            WaitedIn::Scheduled => "scheduled",
        }
    }
}

/// A job cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancelled {
    pub queue: Queue,
    pub id: String,
    /// The job's name (`send_email`, ...), when its payload was readable.
    pub job: Option<String>,
    pub waited_in: WaitedIn,
}

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error(
        "jobs of queue {0} carry money or prices and cannot be cancelled; pause the queue to hold them"
    )]
    NotCancellable(Queue),
    #[error("job {0} is being relayed to its queue right now; try again in a few seconds")]
    BeingRelayed(String),
    #[error("job {0} is not waiting: it is running, finished or dead")]
    NotWaiting(String),
    #[error("no waiting job {0} in that queue")]
    NotFound(String),
    #[error("database: {0}")]
    Database(String),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Cancels job `id` of `queue` if it is waiting; `by` names the operator
/// (recorded on a cancelled email).
pub async fn cancel(
    queues: &JobQueues,
    db: &DbPool,
    queue: Queue,
    id: &str,
    by: &str,
) -> Result<Cancelled, CancelError> {
    if !shared::jobs::cancellable(queue) {
        return Err(CancelError::NotCancellable(queue));
    }
    let database = |e: &dyn std::fmt::Display| CancelError::Database(e.to_string());
    let mut conn = db.get().await.map_err(|e| database(&e))?;
    // Outbox rows are UUIDs; other ids (retry copies' suffixes) only ever
    // lived in Redis.
    let forgotten = match Uuid::parse_str(id) {
        Ok(uuid) => outbox::forget(&mut conn, queue, uuid)
            .await
            .map_err(|e| database(&e))?,
        Err(_) => Forget::Absent,
    };
    let (job, unique_key, from_outbox) = match forgotten {
        Forget::BeingRelayed => return Err(CancelError::BeingRelayed(id.to_owned())),
        Forget::Forgotten {
            job,
            payload,
            unique_key,
        } => (Some((job, payload)), unique_key, true),
        Forget::Absent => (None, None, false),
    };
    let in_redis =
        apalis_redis::waiting::cancel(&mut queues.connection(), &queues.apalis_config(queue), id)
            .await?;
    let (job, unique_key, waited_in) = match in_redis {
        Cancel::Cancelled { waited, data } => {
            let envelope: Option<JobEnvelope> = serde_json::from_slice(&data).ok();
            let waited_in = match waited {
                Waited::Pending => WaitedIn::Pending,
                Waited::Scheduled => WaitedIn::Scheduled,
            };
            match envelope {
                Some(envelope) => (
                    Some((envelope.job, envelope.args)),
                    envelope.unique_key,
                    waited_in,
                ),
                None => (job, unique_key, waited_in),
            }
        }
        // The row was a leftover of a relay that pushed it and died; the
        // job itself already ran or runs. Deleting the row changed nothing.
        Cancel::NotWaiting => return Err(CancelError::NotWaiting(id.to_owned())),
        Cancel::Unknown if from_outbox => (job, unique_key, WaitedIn::Outbox),
        Cancel::Unknown => return Err(CancelError::NotFound(id.to_owned())),
    };
    let prefix = &queues.prefix;
    if let (Some((name, _)), Some(unique_key)) = (&job, &unique_key) {
        // Only if it is still this job's mark (see `waiting::clear`); a mark
        // left behind would expire anyway.
        let key = waiting::key(prefix, name, unique_key);
        if let Err(error) = waiting::clear(&queues.connection(), &key, id).await {
            tracing::warn!(%error, "cannot clear a cancelled job's waiting mark; it expires");
        }
    }
    if let Some((name, args)) = &job {
        outbox::settle_cancelled(&mut conn, name, args, by)
            .await
            .map_err(|e| database(&e))?;
    }
    tracing::info!(
        queue = queue.as_str(),
        job.id = id,
        job.name = job.as_ref().map(|(name, _)| name.as_str()),
        waited_in = waited_in.as_str(),
        by,
        "waiting job cancelled"
    );
    Ok(Cancelled {
        queue,
        id: id.to_owned(),
        job: job.map(|(name, _)| name),
        waited_in,
    })
}
