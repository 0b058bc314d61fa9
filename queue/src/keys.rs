//! The Redis key layout. apalis-redis derives its keys from a queue name
//! (`{name}:active`, `{name}:data`, ...); our queue name for `email` under
//! the prefix `bourse` is `{bourse:email}`, and our own per-queue keys sit
//! beside its keys under the same name, so one prefix holds everything of
//! one deployment (or one test).
//!
//! The braces are Redis Cluster hash tags: only the part inside them picks
//! a key's hash slot, so every key of one queue lives in one slot and the
//! scripts that touch several of them (apalis-redis's fetch, acknowledge,
//! lease and dead-set scripts, our counts) run on a cluster. Different
//! queues hash to different slots, so a cluster spreads them over its
//! masters. Keys of the whole deployment (processes, wake channel, upkeep
//! lease, prices) share the tag `{bourse}`.

use shared::jobs::Queue;

/// A key of the whole deployment, tagged with the prefix.
pub fn deployment_key(prefix: &str, suffix: &str) -> String {
    format!("{{{prefix}}}:{suffix}")
}

/// The glob patterns that match every key under `prefix`, this layout's
/// and the one before hash tags (`prefix:...`), for tools that clean up.
pub fn patterns(prefix: &str) -> [String; 3] {
    [
        format!("{{{prefix}}}:*"),
        format!("{{{prefix}:*"),
        format!("{prefix}:*"),
    ]
}

/// The channel every push publishes its queue's name on (see `wake`).
pub fn wake_channel(prefix: &str) -> String {
    deployment_key(prefix, "wake")
}

/// The channel the outbox relays listen on: the API and the workers
/// publish a queue's name there after committing a job due now (see
/// `wake::wake_relays`).
pub fn relay_wake_channel(prefix: &str) -> String {
    deployment_key(prefix, "outbox")
}

/// The latest-price hash: one field per symbol (its JSON entry) and one
/// `{symbol}:ms` field (its time, so an older price never replaces a
/// newer one). Written by the workers, read by every API process.
pub fn rates_cache(prefix: &str) -> String {
    deployment_key(prefix, "rates")
}

/// Where the workers announce new prices (a JSON array of entries) and
/// every API process relays them to its SSE clients.
pub fn rates_stream(prefix: &str) -> String {
    deployment_key(prefix, "rates:stream")
}

/// The queues operators paused (see `pause`): a set of queue names.
pub fn paused(prefix: &str) -> String {
    deployment_key(prefix, "paused")
}

/// Who runs the cluster-wide queue upkeep (see `upkeep`): the holder's
/// name, with a time to live.
pub fn upkeep_lease(prefix: &str) -> String {
    deployment_key(prefix, "upkeep")
}

#[derive(Debug, Clone)]
pub struct QueueKeys {
    name: String,
}

impl QueueKeys {
    pub fn new(prefix: &str, queue: Queue) -> Self {
        Self {
            name: format!("{{{prefix}:{}}}", queue.as_str()),
        }
    }

    /// The queue name handed to apalis-redis.
    pub fn apalis_queue(&self) -> &str {
        &self.name
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.name)
    }

    // apalis-redis's keys (see its `config.rs`).
    pub fn active(&self) -> String {
        self.key("active")
    }
    pub fn data(&self) -> String {
        self.key("data")
    }
    pub fn meta_prefix(&self) -> String {
        self.key("meta")
    }
    pub fn signal(&self) -> String {
        self.key("signal")
    }
    pub fn workers(&self) -> String {
        self.key("workers")
    }
    pub fn inflight_of(&self, worker: &str) -> String {
        format!("{}:inflight:{worker}", self.name)
    }
    pub fn apalis_scheduled(&self) -> String {
        self.key("scheduled")
    }

    // Ours.
    /// Where retries waited before apalis-redis scheduled them itself (see
    /// `rename`); read once, at the upgrade.
    pub fn old_delayed(&self) -> String {
        self.key("delayed")
    }
    /// Cluster-wide outcome counters.
    pub fn stats(&self) -> String {
        self.key("stats")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_apalis_layout_under_our_prefix() {
        let keys = QueueKeys::new("t1", Queue::Email);
        assert_eq!(keys.apalis_queue(), "{t1:email}");
        assert_eq!(keys.active(), "{t1:email}:active");
        assert_eq!(keys.inflight_of("w1"), "{t1:email}:inflight:w1");
        assert_eq!(wake_channel("t1"), "{t1}:wake");
        assert_eq!(relay_wake_channel("t1"), "{t1}:outbox");
        assert_eq!(rates_cache("t1"), "{t1}:rates");
        assert_eq!(rates_stream("t1"), "{t1}:rates:stream");
        assert_eq!(paused("t1"), "{t1}:paused");
    }
}
