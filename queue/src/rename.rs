//! The move to hash-tagged key names. Before Bourse ran on Redis Cluster a
//! queue's keys were named `{prefix}:{queue}:...` without braces
//! (`bourse:email:active`); they are now `{bourse:email}:active` (see
//! `keys`). A worker renames a queue's old keys at start, before its queue
//! workers run, so jobs queued by the previous version are not stranded.
//! Only a single server can hold the old names (they never worked on a
//! cluster), and `RENAME` there is atomic and cheap.
//!
//! Retries used to wait in a sorted set of ours beside apalis-redis's keys
//! (`{bourse:email}:delayed`); apalis-redis now schedules them itself, and
//! the retries still waiting there move to its scheduled set, same scores
//! (milliseconds), when a worker of this version starts.

use redis::AsyncCommands as _;
use shared::jobs::Queue;

use crate::{Conn, JobQueues};

/// Keys renamed per `SCAN` page.
const PAGE: usize = 1000;

impl JobQueues {
    /// Renames `queue`'s keys from the old layout to the hash-tagged one;
    /// returns how many were renamed. A key whose new name is already
    /// taken (a process of the new version wrote it first) is left and
    /// logged: stop every old process before starting new ones.
    pub async fn rename_untagged_keys(&self, queue: Queue) -> Result<usize, redis::RedisError> {
        let Conn::Single(manager) = &self.conn else {
            return Ok(0);
        };
        let mut conn = manager.clone();
        let old = format!("{}:{}", self.prefix, queue.as_str());
        let new = self.keys(queue).apalis_queue().to_owned();
        let mut renamed = 0;
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{old}:*"))
                .arg("COUNT")
                .arg(PAGE)
                .query_async(&mut conn)
                .await?;
            for key in keys {
                let Some(rest) = key.strip_prefix(&old) else {
                    continue;
                };
                let target = format!("{new}{rest}");
                if conn.rename_nx(&key, &target).await? {
                    renamed += 1;
                } else {
                    tracing::warn!(%key, %target, "cannot rename a key of the old layout: its new name is taken");
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        if renamed > 0 {
            // The old name's entry in apalis-redis's queue registry.
            let _: () = conn
                .zrem("core:apalis:queues:list", format!("{old}:workers"))
                .await?;
        }
        Ok(renamed)
    }

    /// Moves the retries still waiting in our old delayed set into
    /// apalis-redis's scheduled set (both scored by due time in
    /// milliseconds), in one transaction; returns how many there were.
    /// Run after [`JobQueues::upgrade_layout`] has rescored apalis-redis's
    /// own entries to milliseconds.
    pub async fn retire_delayed_set(&self, queue: Queue) -> Result<usize, redis::RedisError> {
        let keys = self.keys(queue);
        let mut conn = self.conn.clone();
        let (waiting, _, _): (usize, usize, usize) = redis::pipe()
            .atomic()
            .zcard(keys.old_delayed())
            .cmd("ZUNIONSTORE")
            .arg(keys.apalis_scheduled())
            .arg(2)
            .arg(keys.apalis_scheduled())
            .arg(keys.old_delayed())
            .arg("AGGREGATE")
            .arg("MIN")
            .del(keys.old_delayed())
            .query_async(&mut conn)
            .await?;
        Ok(waiting)
    }
}
