//! Leases: a named key one holder at a time keeps for a while, renews, and
//! gives up. The upkeep lease ([`crate::JobQueues::hold_upkeep`]) and the
//! per-endpoint turn of webhook deliveries ([`Lease`]) are both this.

use std::{sync::LazyLock, time::Duration};

use redis::Script;

use crate::{Conn, keys};

static HOLD: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/lease.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new("if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end")
});

/// Takes or renews the lease at `key` for `holder` for `ttl`; whether
/// `holder` now holds it. A holder that stops renewing loses it after
/// `ttl`, and the next caller takes it.
pub(crate) async fn hold(
    conn: &Conn,
    key: &str,
    holder: &str,
    ttl: Duration,
) -> Result<bool, redis::RedisError> {
    let held: u8 = HOLD
        .key(key)
        .arg(holder)
        .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
        .invoke_async(&mut conn.clone())
        .await?;
    Ok(held == 1)
}

/// Gives the lease at `key` up if `holder` still has it. One script: a
/// separate `GET` and `DEL` could delete a lease another holder took in
/// between.
pub(crate) async fn release(conn: &Conn, key: &str, holder: &str) -> Result<(), redis::RedisError> {
    RELEASE
        .key(key)
        .arg(holder)
        .invoke_async::<()>(&mut conn.clone())
        .await
}

/// A named lease, cluster-wide (`{prefix}:lease:{name}`), such as one
/// webhook endpoint's turn to be called.
#[derive(Clone)]
pub struct Lease {
    conn: Conn,
    key: String,
}

impl Lease {
    pub fn new(conn: Conn, prefix: &str, name: &str) -> Self {
        Self {
            conn,
            key: keys::deployment_key(prefix, &format!("lease:{name}")),
        }
    }

    /// Takes the lease for `holder` for `ttl` if it is free (or already
    /// `holder`'s).
    pub async fn take(&self, holder: &str, ttl: Duration) -> Result<bool, redis::RedisError> {
        hold(&self.conn, &self.key, holder, ttl).await
    }

    /// Gives it up if `holder` still has it.
    pub async fn give_up(&self, holder: &str) -> Result<(), redis::RedisError> {
        release(&self.conn, &self.key, holder).await
    }
}
