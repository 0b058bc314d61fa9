//! Paused queues (PRODUCT.md §10): a queue an operator pauses keeps
//! accepting jobs (the relays still push) and no worker fetches from it,
//! on any process, until it is resumed.
//!
//! The state is one set of queue names per deployment (`{prefix}:paused`),
//! so it holds across restarts and for processes started later. Every
//! change is announced on the wake channel (payload [`PAUSE_MESSAGE`]): each
//! worker process reads the set again at once, and also when its
//! subscription (re)connects and every [`REREAD`], so a lost message costs
//! at most that long. Nothing here is written by apalis-redis: the set is
//! ours, and workers stop fetching through apalis's own graceful stop.

use std::{collections::BTreeSet, time::Duration};

use redis::AsyncCommands as _;
use shared::jobs::Queue;

use crate::{JobQueues, keys};

/// The wake-channel payload that means "the paused set changed".
pub const PAUSE_MESSAGE: &str = "paused";

/// How often a worker process reads the paused set without being told.
pub const REREAD: Duration = Duration::from_secs(10);

impl JobQueues {
    /// Pauses or resumes `queue` (idempotent) and tells every worker
    /// process.
    pub async fn set_paused(&self, queue: Queue, paused: bool) -> Result<(), redis::RedisError> {
        let mut conn = self.conn.clone();
        let key = keys::paused(&self.prefix);
        if paused {
            let _: u64 = conn.sadd(&key, queue.as_str()).await?;
        } else {
            let _: u64 = conn.srem(&key, queue.as_str()).await?;
        }
        // Fire and forget like a push's wake-up: a worker that misses it
        // reads the set within REREAD.
        let told: Result<u64, _> = conn
            .publish(keys::wake_channel(&self.prefix), PAUSE_MESSAGE)
            .await;
        if let Err(error) = told {
            tracing::debug!(%error, "cannot announce the paused queues; workers read them soon");
        }
        Ok(())
    }

    /// The queues paused now.
    pub async fn paused(&self) -> Result<BTreeSet<Queue>, redis::RedisError> {
        let names: Vec<String> = self
            .conn
            .clone()
            .smembers(keys::paused(&self.prefix))
            .await?;
        Ok(names.iter().filter_map(|n| Queue::parse(n)).collect())
    }
}
