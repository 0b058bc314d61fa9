//! Redis must never evict our keys: a queued job whose data is evicted
//! while its id stays on the active list crashes every worker that fetches
//! it (apalis-redis finds the id and no job), and an evicted dead set or
//! delayed retry is a lost job. Only `maxmemory-policy noeviction` rules
//! that out (Redis then refuses writes when full, which the relay and the
//! API retry or report). Both binaries check it once at start.

use std::collections::HashMap;

use crate::Conn;

/// The one policy under which Redis keeps every key.
const SAFE_POLICY: &str = "noeviction";

/// Reads Redis's `maxmemory-policy` and logs one warning when it is not
/// `noeviction`; returns the policy read. Managed services often refuse
/// `CONFIG` (their policy is set in their console): that is logged at
/// debug only, and `None` returned, since the process can do nothing
/// about it.
pub async fn check_eviction_policy(conn: &Conn) -> Option<String> {
    let reply: Result<HashMap<String, String>, _> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(&mut conn.clone())
        .await;
    let policy = match reply {
        Ok(mut reply) => reply.remove("maxmemory-policy"),
        Err(error) => {
            tracing::debug!(%error, "cannot read Redis's maxmemory-policy");
            return None;
        }
    };
    let Some(policy) = policy else {
        tracing::debug!("Redis did not report its maxmemory-policy");
        return None;
    };
    if policy == SAFE_POLICY {
        tracing::debug!("Redis maxmemory-policy is {policy}");
    } else {
        tracing::warn!(
            "Redis maxmemory-policy is {policy}, not {SAFE_POLICY}: Redis may evict queued jobs under memory pressure; set maxmemory-policy {SAFE_POLICY}"
        );
    }
    Some(policy)
}
