//! "One waiting copy is enough": jobs that coalesce (`shared::jobs::coalesces`,
//! the clearing of one currency and side) while a copy with the same
//! payload waits in its queue.
//!
//! The relay marks a job waiting (`SET NX` of `{prefix}:waiting:{job}:{payload}`
//! holding the job's id) before it pushes it; a second row whose mark is
//! taken is not pushed, only marked dispatched. The worker clears the mark
//! when the job starts, before it reads its work, so anything committed
//! after that start gets a job of its own. Marks expire after
//! [`WAITING_TTL`]: a job lost with its queue (a Redis failover) holds
//! back others for that long at most, and the reconcilers queue what was
//! left behind.
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

/// The mark's key: the job's name and its payload as JSON (serde_json
/// writes an object's keys in order, so equal payloads are equal text).
pub fn key(prefix: &str, job: &str, payload: &serde_json::Value) -> String {
    keys::deployment_key(prefix, &format!("waiting:{job}:{payload}"))
}

/// Marks job `id` as the waiting copy under `key`: true when it is (push
/// it), false when another copy already waits (drop this one).
pub async fn mark(conn: &Conn, key: &str, id: &str) -> Result<bool, redis::RedisError> {
    let set: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(id)
        .arg("NX")
        .arg("PX")
        .arg(u64::try_from(WAITING_TTL.as_millis()).unwrap_or(u64::MAX))
        .query_async(&mut conn.clone())
        .await?;
    Ok(set.is_some())
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
    fn equal_payloads_make_one_key_in_the_deployment_slot() {
        let a = serde_json::json!({ "side": "buy", "currency": "BTC" });
        let b = serde_json::json!({ "currency": "BTC", "side": "buy" });
        assert_eq!(key("p", "clear_orders", &a), key("p", "clear_orders", &b));
        assert_eq!(
            key("p", "clear_orders", &a),
            r#"{p}:waiting:clear_orders:{"currency":"BTC","side":"buy"}"#
        );
    }
}
