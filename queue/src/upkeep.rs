//! The upkeep lease: one worker process at a time runs the cluster-wide
//! queue upkeep (promoting retries whose promoter died, vacuuming done
//! jobs, trimming dead sets, sampling queue depths). Every process doing it
//! cost Redis a loop over every queue — and, for the depth sample, over
//! every registered worker — four times a second per process (issue 19).

use std::{sync::LazyLock, time::Duration};

use redis::Script;

use crate::{JobQueues, keys};

static LEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/upkeep_lease.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new("if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end")
});

impl JobQueues {
    /// Takes or renews the upkeep lease for `holder` for `ttl`; whether
    /// `holder` now holds it. A holder that stops renewing loses it after
    /// `ttl`, and the next caller takes it.
    pub async fn hold_upkeep(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, redis::RedisError> {
        let held: u8 = LEASE
            .key(keys::upkeep_lease(&self.prefix))
            .arg(holder)
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(held == 1)
    }

    /// Gives the upkeep lease up if `holder` still has it (a clean stop),
    /// so another process takes over at once. One script: a separate `GET`
    /// and `DEL` could delete a lease another process took in between.
    pub async fn release_upkeep(&self, holder: &str) -> Result<(), redis::RedisError> {
        RELEASE
            .key(keys::upkeep_lease(&self.prefix))
            .arg(holder)
            .invoke_async::<()>(&mut self.conn.clone())
            .await
    }
}
