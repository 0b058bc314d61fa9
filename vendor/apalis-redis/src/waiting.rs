//! Waiting tasks: those on the active list or in the scheduled set, which
//! no worker has fetched yet. [`cancel`] removes one for good, for an
//! operator who wants a queued task not to run.
//!
//! A free function over any connection and a [`Config`], like [`crate::dead`],
//! so that a process that runs no worker (an admin API) can use it.

use std::sync::LazyLock;

use redis::{RedisError, Script, aio::ConnectionLike};

use crate::Config;

static CANCEL: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/cancel_waiting.lua")));

/// Where a cancelled task was waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// On the active list: due, not yet fetched.
    Pending,
    /// In the scheduled set: due later (a delayed push, or a retry waiting
    /// out its backoff).
    Scheduled,
}

/// What [`cancel`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancel {
    /// The task was waiting and is gone.
    Cancelled {
        /// Where it waited.
        waited: Waited,
        /// Its arguments as pushed (the codec's bytes).
        data: Vec<u8>,
    },
    /// The task is known but not waiting: a worker fetched it, or it
    /// finished or died. Left alone.
    NotWaiting,
    /// No such task.
    Unknown,
}

/// Cancels task `id` if it is waiting: off the active list or out of the
/// scheduled set, its data and metadata deleted, atomically (one script),
/// so a worker either fetched it first (and it runs) or never will. Pushing
/// the same task id again afterwards queues it anew (pushes skip only ids
/// whose data is stored), so a producer that pushes at least once must
/// forget the task first. Finding it on the active list is `O(n)` in the
/// list's length: an operator's command, not a hot path.
pub async fn cancel<C: ConnectionLike>(
    conn: &mut C,
    config: &Config,
    id: &str,
) -> Result<Cancel, RedisError> {
    let found: Option<(String, Vec<u8>)> = CANCEL
        .key(config.active_jobs_list())
        .key(config.scheduled_jobs_set())
        .key(config.job_data_hash())
        .key(config.job_meta_hash())
        .arg(id)
        .invoke_async(conn)
        .await?;
    Ok(match found {
        None => Cancel::Unknown,
        Some((state, _)) if state == "not_waiting" => Cancel::NotWaiting,
        Some((state, data)) => Cancel::Cancelled {
            waited: if state == "scheduled" {
                Waited::Scheduled
            } else {
                Waited::Pending
            },
            data,
        },
    })
}
