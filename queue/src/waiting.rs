//! Unique jobs: "one waiting copy is enough". A job may carry a uniqueness
//! key (`shared::jobs::JobSpec::unique_key`: the clearing of one currency
//! and side, the sending of one email, the settlement of one bet); while a
//! job of the same name and key waits in its queue, another is dropped.
//!
//! The relay marks a job waiting (`SET NX` of `{prefix}:waiting:{job}:{key}`
//! holding the job's id) before it pushes it; a row whose mark is taken is
//! not pushed, only removed from the outbox. `SET NX` is atomic on the
//! server, so any number of relays pushing copies at once push one. The
//! worker clears the mark when the job starts, before it reads its work, so
//! anything committed after that start gets a job of its own. Marks expire
//! after [`WAITING_TTL`]: a job lost with its queue (a Redis failover), or
//! cancelled, holds back others for that long at most, and the reconcilers
//! queue what was left behind.
//!
//! Our own keys, beside apalis-redis's; nothing here touches its layout.

use std::{sync::LazyLock, time::Duration};

use redis::Script;

use crate::{Conn, keys};

/// How long a mark outlives a job that never started.
pub const WAITING_TTL: Duration = Duration::from_secs(60);

/// Deletes the mark only if it is still this job's: a mark taken later by
/// another copy (after this one's expired) stays.
static CLEAR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
    )
});

/// The mark's key: the job's name and its uniqueness key, in the
/// deployment's hash slot.
pub fn key(prefix: &str, job: &str, unique_key: &str) -> String {
    keys::deployment_key(prefix, &format!("waiting:{job}:{unique_key}"))
}

/// Takes each free mark (`SET NX PX`) for its job; a mark that already
/// holds the same job's id is the job's own (its row relayed again after a
/// relay died between marking and pushing, or a push retried) and is
/// renewed. One call: every mark is a deployment key, in one hash slot.
static MARK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local ttl = ARGV[#KEYS + 1] \
         local out = {} \
         for i, key in ipairs(KEYS) do \
           if redis.call('SET', key, ARGV[i], 'NX', 'PX', ttl) then out[i] = 1 \
           elseif redis.call('GET', key) == ARGV[i] then \
             redis.call('PEXPIRE', key, ttl) out[i] = 1 \
           else out[i] = 0 end \
         end \
         return out",
    )
});

/// Marks each job (`(key, id)`) as the waiting copy under its key, in one
/// round trip: true for those that are (push them), false where another
/// copy already waits (drop it). A mark already holding the same id is
/// this job's: a relay that took over a dead relay's rows pushes them
/// (apalis-redis skips an id it knows), rather than dropping the only copy
/// until the dead one wakes. Keys must differ.
pub async fn mark(conn: &Conn, marks: &[(String, String)]) -> Result<Vec<bool>, redis::RedisError> {
    if marks.is_empty() {
        return Ok(Vec::new());
    }
    let ttl = u64::try_from(WAITING_TTL.as_millis()).unwrap_or(u64::MAX);
    let mut call = MARK.prepare_invoke();
    for (key, _) in marks {
        call.key(key);
    }
    for (_, id) in marks {
        call.arg(id);
    }
    call.arg(ttl);
    let set: Vec<i64> = call.invoke_async(&mut conn.clone()).await?;
    Ok(set.into_iter().map(|s| s == 1).collect())
}

/// Clears job `id`'s mark under `key` (when it starts, or when its push
/// failed).
pub async fn clear(conn: &Conn, key: &str, id: &str) -> Result<(), redis::RedisError> {
    CLEAR
        .key(key)
        .arg(id)
        .invoke_async::<i64>(&mut conn.clone())
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_the_job_and_its_key_in_the_deployment_slot() {
        assert_eq!(
            key("p", "clear_orders", "BTC:buy"),
            "{p}:waiting:clear_orders:BTC:buy"
        );
    }
}
