//! The scheduled set: tasks to run later (pushed with a future `run_at`,
//! or failed and waiting out their backoff), scored by when they fall due
//! in milliseconds on the Redis server's clock. Fetches promote due tasks
//! in bounded chunks; [`promote_due`] does the same for a caller that
//! knows when a task falls due (a timer) and wants it run then, not at
//! the next fetch.

use std::{sync::LazyLock, time::Duration};

use redis::{RedisError, Script, aio::ConnectionLike};

use crate::Config;

static PROMOTE_DUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/promote_due.lua")));
static UPGRADE_SCHEDULED: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/upgrade_scheduled.lua")));

/// What one [`promote_due`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promoted {
    /// Tasks moved to the active list (at most the chunk asked for).
    pub moved: usize,
    /// How long until the earliest task still scheduled falls due, if any.
    pub next_due_in: Option<Duration>,
}

/// Moves up to `chunk` due scheduled tasks to the active list and signals
/// the queue's workers. Call again while `moved == chunk`.
pub async fn promote_due<C: ConnectionLike>(
    conn: &mut C,
    config: &Config,
    chunk: usize,
) -> Result<Promoted, RedisError> {
    let (moved, next_due_ms): (usize, i64) = PROMOTE_DUE
        .key(config.scheduled_jobs_set())
        .key(config.active_jobs_list())
        .key(config.signal_list())
        .arg(chunk.max(1))
        .invoke_async(conn)
        .await?;
    Ok(Promoted {
        moved,
        next_due_in: u64::try_from(next_due_ms).ok().map(Duration::from_millis),
    })
}

/// Rescores the scheduled tasks that 1.0.0 scored in seconds, `chunk` per
/// call, until none is left. Returns how many.
pub(crate) async fn upgrade_scheduled<C: ConnectionLike>(
    conn: &mut C,
    config: &Config,
    chunk: usize,
) -> Result<usize, RedisError> {
    let mut rescored = 0;
    loop {
        let n: usize = UPGRADE_SCHEDULED
            .key(config.scheduled_jobs_set())
            .arg(chunk.max(1))
            .invoke_async(conn)
            .await?;
        if n == 0 {
            return Ok(rescored);
        }
        rescored += n;
    }
}
