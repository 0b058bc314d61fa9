//! Waiting tasks: those on the active list or in the scheduled set, which
//! no worker has fetched yet. [`cancel`] removes one for good, for an
//! operator who wants a queued task not to run; [`scheduled_page`] lists
//! the scheduled ones (delayed pushes and retries waiting out their
//! backoff) a page at a time, for an operator who wants to see them.
//!
//! Free functions over any connection and a [`Config`], like [`crate::dead`],
//! so that a process that runs no worker (an admin API) can use them.

use std::sync::LazyLock;

use redis::{RedisError, Script, aio::ConnectionLike};

use crate::Config;

static CANCEL: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/cancel_waiting.lua")));
static SCHEDULED_PAGE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/scheduled_page.lua")));

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

/// A scheduled task as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledTask {
    /// The task's id.
    pub task_id: String,
    /// When it falls due: the Redis server's time, in milliseconds since
    /// the epoch.
    pub due_at_ms: u64,
    /// Attempts made so far, as stored in its metadata (none for a task
    /// pushed with a later `run_at` that has not run yet).
    pub attempts: Option<String>,
    /// Its last result (JSON, e.g. `{"Err":"..."}`), as stored: a retry's
    /// last error.
    pub result: Option<String>,
    /// Its arguments as pushed (the codec's bytes).
    pub data: Option<Vec<u8>>,
}

/// Where a page of scheduled tasks continues: the last task of the
/// previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledCursor {
    /// The last task's due time, in milliseconds.
    pub due_at_ms: u64,
    /// The last task's id.
    pub task_id: String,
}

type Row = (
    String,
    u64,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
);

/// Up to `limit` scheduled tasks, soonest due first, after `cursor` (none:
/// from the soonest). Reads only the page, not the whole set.
pub async fn scheduled_page<C: ConnectionLike>(
    conn: &mut C,
    config: &Config,
    cursor: Option<&ScheduledCursor>,
    limit: usize,
) -> Result<Vec<ScheduledTask>, RedisError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let (score, id) = match cursor {
        Some(cursor) => (cursor.due_at_ms.to_string(), cursor.task_id.as_str()),
        None => ("-inf".to_owned(), ""),
    };
    let flat: Vec<redis::Value> = SCHEDULED_PAGE
        .key(config.scheduled_jobs_set())
        .key(config.job_data_hash())
        .key(config.job_meta_hash())
        .arg(score)
        .arg(id)
        .arg(limit)
        .invoke_async(conn)
        .await?;
    flat.chunks(5)
        .map(|row| {
            let (task_id, due_at_ms, attempts, result, data): Row =
                redis::FromRedisValue::from_redis_value(redis::Value::Array(row.to_vec()))?;
            Ok(ScheduledTask {
                task_id,
                due_at_ms,
                attempts,
                result,
                data,
            })
        })
        .collect()
}
