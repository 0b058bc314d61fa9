//! The upkeep lease: one worker process at a time runs the cluster-wide
//! queue upkeep (promoting retries whose promoter died, vacuuming done
//! jobs, trimming dead sets, sampling queue depths). Every process doing it
//! cost Redis a loop over every queue — and, for the depth sample, over
//! every registered worker — four times a second per process (issue 19).

use std::time::Duration;

use crate::{JobQueues, keys, lease};

impl JobQueues {
    /// Takes or renews the upkeep lease for `holder` for `ttl`; whether
    /// `holder` now holds it. A holder that stops renewing loses it after
    /// `ttl`, and the next caller takes it.
    pub async fn hold_upkeep(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, redis::RedisError> {
        lease::hold(&self.conn, &keys::upkeep_lease(&self.prefix), holder, ttl).await
    }

    /// Gives the upkeep lease up if `holder` still has it (a clean stop),
    /// so another process takes over at once. One script: a separate `GET`
    /// and `DEL` could delete a lease another process took in between.
    pub async fn release_upkeep(&self, holder: &str) -> Result<(), redis::RedisError> {
        lease::release(&self.conn, &keys::upkeep_lease(&self.prefix), holder).await
    }
}
