//! The dead set: tasks that failed for good, kept for operators to inspect,
//! retry or discard. It is a sorted set scored by the Redis server's time
//! of death in milliseconds, bounded by [`Config::max_dead_tasks`] and
//! [`Config::dead_task_ttl`] (enforced as tasks die, and by [`trim`]).
//!
//! Free functions over any connection and a [`Config`], so that a process
//! that runs no worker (an admin API) can use them too.

use std::sync::LazyLock;

use redis::{RedisError, Script, aio::ConnectionLike};

use crate::Config;

static PAGE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/dead_page.lua")));
static RETRY: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/dead_retry.lua")));
static DISCARD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/dead_discard.lua")));
static TRIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/dead_trim.lua")));

/// A dead task as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadTask {
    /// The task's id.
    pub task_id: String,
    /// When it died: the Redis server's time, in milliseconds since the epoch.
    pub died_at_ms: u64,
    /// Its attempts, as stored in its metadata.
    pub attempts: Option<String>,
    /// Its last result (JSON, e.g. `{"Err":"..."}`), as stored.
    pub result: Option<String>,
    /// Its arguments as pushed (the codec's bytes).
    pub data: Option<Vec<u8>>,
}

/// Where a page of dead tasks continues: the last task of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadCursor {
    /// The last task's time of death, in milliseconds.
    pub died_at_ms: u64,
    /// The last task's id.
    pub task_id: String,
}

impl DeadCursor {
    /// The cursor after `task`.
    pub fn after(task: &DeadTask) -> Self {
        Self {
            died_at_ms: task.died_at_ms,
            task_id: task.task_id.clone(),
        }
    }
}

type Row = (
    String,
    u64,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
);

/// Up to `limit` dead tasks, newest first, after `cursor` (none: from the
/// newest). Reads only the page, not the whole set.
pub async fn page<C: ConnectionLike>(
    conn: &mut C,
    config: &Config,
    cursor: Option<&DeadCursor>,
    limit: usize,
) -> Result<Vec<DeadTask>, RedisError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let (score, id) = match cursor {
        Some(cursor) => (cursor.died_at_ms.to_string(), cursor.task_id.as_str()),
        None => ("+inf".to_owned(), ""),
    };
    let flat: Vec<redis::Value> = PAGE
        .key(config.dead_jobs_set())
        .key(config.job_data_hash())
        .key(config.job_meta_hash())
        .arg(score)
        .arg(id)
        .arg(limit)
        .invoke_async(conn)
        .await?;
    flat.chunks(5)
        .map(|row| {
            let (task_id, died_at_ms, attempts, result, data): Row =
                redis::FromRedisValue::from_redis_value(redis::Value::Array(row.to_vec()))?;
            Ok(DeadTask {
                task_id,
                died_at_ms,
                attempts,
                result,
                data,
            })
        })
        .collect()
}

/// How many tasks are dead.
pub async fn count<C: ConnectionLike>(conn: &mut C, config: &Config) -> Result<u64, RedisError> {
    redis::cmd("ZCARD")
        .arg(config.dead_jobs_set())
        .query_async(conn)
        .await
}

/// How many dead tasks the bounds have dropped, ever.
pub async fn dropped<C: ConnectionLike>(conn: &mut C, config: &Config) -> Result<u64, RedisError> {
    let n: Option<u64> = redis::cmd("GET")
        .arg(config.dead_dropped_counter())
        .query_async(conn)
        .await?;
    Ok(n.unwrap_or(0))
}

/// When `task_id` died (ms), if it is dead.
pub async fn died_at<C: ConnectionLike>(
    conn: &mut C,
    config: &Config,
    task_id: &str,
) -> Result<Option<u64>, RedisError> {
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg(config.dead_jobs_set())
        .arg(task_id)
        .query_async(conn)
        .await?;
    // Scores are whole milliseconds, well inside f64's exact integers.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(score.map(|s| s as u64))
}

/// Up to `limit` dead task ids, oldest first (for "retry all" in chunks:
/// each chunk retried or discarded leaves the set, so the next call reads
/// the next ones).
pub async fn oldest_ids<C: ConnectionLike>(
    conn: &mut C,
    config: &Config,
    limit: usize,
) -> Result<Vec<String>, RedisError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    redis::cmd("ZRANGE")
        .arg(config.dead_jobs_set())
        .arg(0)
        .arg(limit - 1)
        .query_async(conn)
        .await
}

/// Puts dead tasks back on the active list with their attempts reset and
/// signals the queue. Returns how many of `ids` were dead.
pub async fn retry<C: ConnectionLike>(
    conn: &mut C,
    config: &Config,
    ids: &[String],
) -> Result<usize, RedisError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut invocation = RETRY.prepare_invoke();
    invocation
        .key(config.dead_jobs_set())
        .key(config.active_jobs_list())
        .key(config.job_meta_hash())
        .key(config.signal_list());
    for id in ids {
        invocation.arg(id);
    }
    invocation.invoke_async(conn).await
}

/// Deletes dead tasks for good. Returns how many of `ids` were dead.
pub async fn discard<C: ConnectionLike>(
    conn: &mut C,
    config: &Config,
    ids: &[String],
) -> Result<usize, RedisError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut invocation = DISCARD.prepare_invoke();
    invocation
        .key(config.dead_jobs_set())
        .key(config.job_data_hash())
        .key(config.job_meta_hash());
    for id in ids {
        invocation.arg(id);
    }
    invocation.invoke_async(conn).await
}

/// Drops up to `chunk` dead tasks past the bounds (oldest first) and
/// counts them. Tasks also age out as others die; call this periodically
/// so they age out when none do. Returns how many were dropped.
pub async fn trim<C: ConnectionLike>(
    conn: &mut C,
    config: &Config,
    chunk: usize,
) -> Result<usize, RedisError> {
    let max = config.max_dead_tasks.unwrap_or(0);
    let ttl_ms = config
        .dead_task_ttl
        .map_or(0, |ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
    if (max == 0 && ttl_ms == 0) || chunk == 0 {
        return Ok(0);
    }
    TRIM.key(config.dead_jobs_set())
        .key(config.job_data_hash())
        .key(config.job_meta_hash())
        .key(config.dead_dropped_counter())
        .arg(max)
        .arg(ttl_ms)
        .arg(chunk)
        .invoke_async(conn)
        .await
}
