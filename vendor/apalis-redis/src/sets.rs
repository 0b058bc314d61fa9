//! The done and dead sets' layout: sorted sets scored by the Redis
//! server's time in milliseconds. Done tasks are vacuumed from it in bounded
//! chunks, and sets written by 1.0.0 (plain sets) are converted.

use std::sync::LazyLock;

use redis::{RedisError, Script, aio::ConnectionLike};

use crate::Config;

static UPGRADE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/upgrade_sets.lua")));
static VACUUM_DONE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/vacuum_done.lua")));

/// Forgets up to `chunk` done tasks, oldest first (their data and
/// metadata). Returns how many; call again while it returns `chunk`.
pub async fn vacuum_done<C: ConnectionLike>(
    conn: &mut C,
    config: &Config,
    chunk: usize,
) -> Result<usize, RedisError> {
    VACUUM_DONE
        .key(config.done_jobs_set())
        .key(config.job_data_hash())
        .key(config.job_meta_hash())
        .arg(chunk)
        .invoke_async(conn)
        .await
}

/// Converts the done and dead sets that apalis-redis 1.0.0 wrote as plain
/// sets into the time-scored sorted sets this version keeps, and rescores
/// its scheduled tasks from seconds to milliseconds, `chunk` members per
/// call. Run before the queue's workers start; it does nothing once
/// converted. Returns how many members were converted.
pub async fn upgrade_sets<C: ConnectionLike>(
    conn: &mut C,
    config: &Config,
    chunk: usize,
) -> Result<usize, RedisError> {
    let mut converted = crate::scheduled::upgrade_scheduled(conn, config, chunk).await?;
    for set in [config.done_jobs_set(), config.dead_jobs_set()] {
        let scratch = format!("{set}:upgrading");
        loop {
            let n: usize = UPGRADE
                .key(&set)
                .key(config.job_meta_hash())
                .key(&scratch)
                .arg(chunk.max(1))
                .invoke_async(conn)
                .await?;
            if n == 0 {
                break;
            }
            converted += n;
        }
    }
    Ok(converted)
}
