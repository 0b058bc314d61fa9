//! Our side of the Redis job queues.
//!
//! Workers fetch, heartbeat, acknowledge and recover orphans through
//! apalis-redis. A few of its paths do not hold up at our volumes, so this
//! crate replaces them while keeping its key layout (see `lua/`):
//! - pushing goes straight to the active list (apalis's push routes every task
//!   through the scheduled set, whose promotion breaks past ~8,000 due tasks);
//! - retries wait in our own millisecond-scored delayed set and are promoted
//!   in bounded chunks;
//! - finished tasks are swept in bounded chunks (apalis keeps them forever);
//! - every push publishes on one wake channel so idle workers fetch at once.

use std::{
    sync::LazyLock,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use redis::{AsyncCommands, Script, ScriptInvocation, aio::ConnectionManager};
use shared::jobs::{JobEnvelope, Queue};

use crate::keys::{self, QueueKeys};

static PUSH: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/push.lua")));
static SCHEDULE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/schedule.lua")));
static PROMOTE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/promote.lua")));
static SWEEP: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/sweep.lua")));
static REQUEUE_DEAD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/requeue_dead.lua")));
static DISCARD_DEAD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/discard_dead.lua")));
static CLAIM_TICK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/claim_tick.lua")));

/// Upper bound of ids moved per script call, so no call blocks Redis long.
pub const CHUNK: usize = 1000;

/// A job ready to push: its Redis task id and its envelope.
#[derive(Debug, Clone)]
pub struct ReadyJob {
    pub task_id: String,
    pub envelope: JobEnvelope,
}

/// Per-queue counts for operators (`bourse-worker queues`) and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueCounts {
    pub queue: String,
    pub pending: u64,
    pub delayed: u64,
    pub running: u64,
    pub dead: u64,
    pub succeeded: u64,
    pub retried: u64,
    pub failed_for_good: u64,
    pub workers: u64,
}

/// A dead job as shown to operators.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadJob {
    pub task_id: String,
    pub attempts: Option<String>,
    pub last_error: Option<String>,
    pub payload: Option<serde_json::Value>,
}

/// Handle on the queues under one key prefix. Cheap to clone.
#[derive(Clone)]
pub struct JobQueues {
    pub(crate) conn: ConnectionManager,
    pub(crate) prefix: String,
}

pub(crate) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl JobQueues {
    pub fn new(conn: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
        }
    }

    pub fn keys(&self, queue: Queue) -> QueueKeys {
        QueueKeys::new(&self.prefix, queue)
    }

    pub fn wake_channel(&self) -> String {
        keys::wake_channel(&self.prefix)
    }

    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// An invocation of `script`, one that moves jobs from `source` onto
    /// `queue`'s active list and wakes its workers (push.lua,
    /// requeue_dead.lua): the keys and first arguments both read, in their
    /// order. The caller adds the ids.
    fn onto_active<'a>(
        &self,
        script: &'a Script,
        queue: Queue,
        source: String,
    ) -> ScriptInvocation<'a> {
        let keys = self.keys(queue);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(source)
            .key(keys.active())
            .key(keys.meta_prefix())
            .key(keys.signal())
            .arg(self.wake_channel())
            .arg(queue.as_str());
        invocation
    }

    /// Pushes jobs onto `queue`'s active list in one round trip. Ids already
    /// known to Redis are skipped; returns how many were new.
    pub async fn push(
        &self,
        queue: Queue,
        jobs: &[ReadyJob],
        max_attempts: u32,
    ) -> Result<usize, PushError> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let mut invocation = self.onto_active(&PUSH, queue, self.keys(queue).data());
        for job in jobs {
            invocation
                .arg(&job.task_id)
                .arg(serde_json::to_vec(&job.envelope)?)
                .arg(max_attempts)
                .arg(0);
        }
        let pushed: usize = invocation.invoke_async(&mut self.conn.clone()).await?;
        Ok(pushed)
    }

    /// Stores a job to run after `delay` (a retry). `attempts` is how many
    /// runs it already had. Idempotent per task id.
    pub async fn schedule(
        &self,
        queue: Queue,
        task_id: &str,
        envelope: &JobEnvelope,
        attempts: u32,
        max_attempts: u32,
        delay: Duration,
    ) -> Result<bool, PushError> {
        let keys = self.keys(queue);
        let due = now_millis().saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        let stored: u32 = SCHEDULE
            .key(keys.data())
            .key(keys.delayed())
            .key(keys.meta_prefix())
            .arg(task_id)
            .arg(serde_json::to_vec(envelope)?)
            .arg(max_attempts)
            .arg(attempts)
            .arg(due)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(stored == 1)
    }

    /// Claims schedule tick `tick_secs` of `schedule` for `claimant` and
    /// queues `job` if the claim is won, atomically. Returns whether this
    /// caller won. The claim outlives any late wake-up of a paused worker.
    pub async fn claim_tick(
        &self,
        schedule: &str,
        tick_secs: i64,
        claimant: &str,
        job: &ReadyJob,
        queue: Queue,
        max_attempts: u32,
    ) -> Result<bool, PushError> {
        let keys = self.keys(queue);
        let claim_key = format!("{}:tick:{schedule}:{tick_secs}", self.prefix);
        let won: u32 = CLAIM_TICK
            .key(claim_key)
            .key(keys.data())
            .key(keys.active())
            .key(keys.meta_prefix())
            .key(keys.signal())
            .arg(claimant)
            .arg(24 * 3600)
            .arg(self.wake_channel())
            .arg(queue.as_str())
            .arg(&job.task_id)
            .arg(serde_json::to_vec(&job.envelope)?)
            .arg(max_attempts)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(won == 1)
    }

    /// Moves up to [`CHUNK`] due delayed jobs to the active list.
    pub async fn promote_due(&self, queue: Queue) -> Result<usize, redis::RedisError> {
        let keys = self.keys(queue);
        let now = now_millis();
        PROMOTE
            .key(keys.delayed())
            .key(keys.apalis_scheduled())
            .key(keys.active())
            .key(keys.signal())
            .arg(now)
            .arg(now / 1000)
            .arg(CHUNK)
            .arg(self.wake_channel())
            .arg(queue.as_str())
            .invoke_async(&mut self.conn.clone())
            .await
    }

    /// Deletes up to [`CHUNK`] finished jobs' data.
    pub async fn sweep_done(&self, queue: Queue) -> Result<usize, redis::RedisError> {
        let keys = self.keys(queue);
        SWEEP
            .key(keys.done())
            .key(keys.data())
            .key(keys.meta_prefix())
            .arg(CHUNK)
            .invoke_async(&mut self.conn.clone())
            .await
    }

    /// Adds to the cluster-wide outcome counters of `queue`.
    pub async fn add_outcomes(
        &self,
        queue: Queue,
        succeeded: u64,
        retried: u64,
        failed_for_good: u64,
    ) -> Result<(), redis::RedisError> {
        let key = self.keys(queue).stats();
        let mut pipe = redis::pipe();
        for (field, n) in [
            ("succeeded", succeeded),
            ("retried", retried),
            ("failed_for_good", failed_for_good),
        ] {
            if n > 0 {
                pipe.hincr(&key, field, n).ignore();
            }
        }
        pipe.query_async::<()>(&mut self.conn.clone()).await
    }

    /// Current counts of `queue`.
    pub async fn counts(&self, queue: Queue) -> Result<QueueCounts, redis::RedisError> {
        let keys = self.keys(queue);
        let mut conn = self.conn.clone();
        let (pending, delayed, scheduled, dead, workers, stats): (
            u64,
            u64,
            u64,
            u64,
            Vec<String>,
            std::collections::HashMap<String, u64>,
        ) = redis::pipe()
            .llen(keys.active())
            .zcard(keys.delayed())
            .zcard(keys.apalis_scheduled())
            .scard(keys.dead())
            .zrange(keys.workers(), 0, -1)
            .hgetall(keys.stats())
            .query_async(&mut conn)
            .await?;
        let mut running = 0;
        for worker in &workers {
            let n: u64 = conn.scard(keys.inflight_of(worker)).await?;
            running += n;
        }
        let stat = |name: &str| stats.get(name).copied().unwrap_or(0);
        Ok(QueueCounts {
            queue: queue.as_str().to_owned(),
            pending,
            delayed: delayed + scheduled,
            running,
            dead,
            succeeded: stat("succeeded"),
            retried: stat("retried"),
            failed_for_good: stat("failed_for_good"),
            workers: workers.len() as u64,
        })
    }

    /// Up to `limit` dead jobs of `queue`.
    pub async fn dead(
        &self,
        queue: Queue,
        limit: usize,
    ) -> Result<Vec<DeadJob>, redis::RedisError> {
        let ids: Vec<String> = redis::cmd("SRANDMEMBER")
            .arg(self.keys(queue).dead())
            .arg(limit)
            .query_async(&mut self.conn.clone())
            .await?;
        self.dead_details(queue, ids).await
    }

    /// The stored attempts, last error and payload of the given dead jobs.
    pub async fn dead_details(
        &self,
        queue: Queue,
        ids: Vec<String>,
    ) -> Result<Vec<DeadJob>, redis::RedisError> {
        let keys = self.keys(queue);
        let mut conn = self.conn.clone();
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            let meta_key = keys.meta_of(&id);
            let (attempts, result, payload): (Option<String>, Option<String>, Option<Vec<u8>>) =
                redis::pipe()
                    .hget(&meta_key, "attempts")
                    .hget(&meta_key, "result")
                    .hget(keys.data(), &id)
                    .query_async(&mut conn)
                    .await?;
            jobs.push(DeadJob {
                task_id: id,
                attempts,
                last_error: result.map(|r| dead_reason(&r)),
                payload: payload.and_then(|p| serde_json::from_slice(&p).ok()),
            });
        }
        Ok(jobs)
    }

    /// Puts dead jobs back on the queue with their attempts reset.
    pub async fn requeue_dead(
        &self,
        queue: Queue,
        ids: &[String],
    ) -> Result<usize, redis::RedisError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut invocation = self.onto_active(&REQUEUE_DEAD, queue, self.keys(queue).dead());
        for id in ids {
            invocation.arg(id);
        }
        invocation.invoke_async(&mut self.conn.clone()).await
    }

    /// Deletes dead jobs.
    pub async fn discard_dead(
        &self,
        queue: Queue,
        ids: &[String],
    ) -> Result<usize, redis::RedisError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let keys = self.keys(queue);
        let mut invocation = DISCARD_DEAD.prepare_invoke();
        invocation
            .key(keys.dead())
            .key(keys.data())
            .key(keys.meta_prefix());
        for id in ids {
            invocation.arg(id);
        }
        invocation.invoke_async(&mut self.conn.clone()).await
    }

    /// Whether `id` is in `queue`'s dead set.
    pub async fn is_dead(&self, queue: Queue, id: &str) -> Result<bool, redis::RedisError> {
        self.conn
            .clone()
            .sismember(self.keys(queue).dead(), id)
            .await
    }

    /// Every dead job id of `queue` (for "retry all" / "discard all").
    pub async fn dead_ids(&self, queue: Queue) -> Result<Vec<String>, redis::RedisError> {
        self.conn.clone().smembers(self.keys(queue).dead()).await
    }
}

/// apalis stores a task's result as JSON `{"Err": "..."}`; show the message.
fn dead_reason(stored: &str) -> String {
    serde_json::from_str::<serde_json::Value>(stored)
        .ok()
        .and_then(|v| v.get("Err").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| stored.to_owned())
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cannot encode job: {0}")]
    Encode(#[from] serde_json::Error),
}
