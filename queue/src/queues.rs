//! Our side of the Redis job queues.
//!
//! apalis-redis (our patched copy, vendor/apalis-redis) owns the queues'
//! layout and is the only writer of it: pushing (due jobs straight to the
//! active list, delayed ones to its millisecond-scored scheduled set),
//! fetching, heartbeats, acknowledging, retries after a backoff (up to each
//! job's `max_attempts`), promotion of due retries in bounded chunks,
//! vacuuming done jobs and the bounded dead set. This crate calls its
//! public API, adds the wake channel (every push publishes the queue's
//! name so idle workers fetch at once) and the counts operators read.

use std::time::Duration;

use apalis_core::task::{builder::TaskBuilder, task_id::TaskId};
use apalis_redis::dead::DeadCursor;
use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use shared::jobs::{JobEnvelope, Queue};

use crate::Conn;
use crate::keys::{self, QueueKeys};

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
    /// Dead jobs dropped by the bounds (`DEAD_MAX_PER_QUEUE`,
    /// `DEAD_TTL_DAYS`), ever.
    pub dead_dropped: u64,
    pub succeeded: u64,
    pub retried: u64,
    pub failed_for_good: u64,
    pub workers: u64,
    /// Paused by an operator: accepting jobs, running none.
    pub paused: bool,
}

/// A dead job as shown to operators.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadJob {
    pub task_id: String,
    /// When it died, on the Redis server's clock.
    pub died_at: DateTime<Utc>,
    pub attempts: Option<String>,
    pub last_error: Option<String>,
    pub payload: Option<serde_json::Value>,
}

impl DeadJob {
    fn from_task(task: apalis_redis::dead::DeadTask) -> Self {
        Self {
            died_at: i64::try_from(task.died_at_ms)
                .ok()
                .and_then(DateTime::from_timestamp_millis)
                .unwrap_or_default(),
            attempts: task.attempts,
            last_error: task.result.as_deref().map(crate::browse::stored_error),
            payload: task.data.and_then(|p| serde_json::from_slice(&p).ok()),
            task_id: task.task_id,
        }
    }

    /// Where the next page starts after this job.
    pub fn cursor(&self) -> DeadCursor {
        DeadCursor {
            died_at_ms: u64::try_from(self.died_at.timestamp_millis()).unwrap_or(0),
            task_id: self.task_id.clone(),
        }
    }
}

/// Bounds of every queue's dead set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadBounds {
    pub max_per_queue: usize,
    pub ttl: Duration,
}

/// What [`JobQueues::counts`] reads in one round trip: pending, scheduled,
/// dead, dead dropped, workers, outcome counters.
type CountsReply = (
    u64,
    u64,
    u64,
    Option<u64>,
    Vec<String>,
    std::collections::HashMap<String, u64>,
);

/// Handle on the queues under one key prefix. Cheap to clone.
#[derive(Clone)]
pub struct JobQueues {
    pub(crate) conn: Conn,
    pub(crate) prefix: String,
    dead_bounds: Option<DeadBounds>,
    retry_backoff: apalis_redis::Backoff,
}

impl JobQueues {
    pub fn new(conn: Conn, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
            dead_bounds: None,
            retry_backoff: apalis_redis::Backoff::default(),
        }
    }

    /// The backoff between the attempts of a failed job (apalis-redis
    /// schedules the retry; see [`JobQueues::retry_delay`]).
    #[must_use]
    pub fn with_retry_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.retry_backoff = apalis_redis::Backoff { base, max };
        self
    }

    /// How long after its `failed_attempt`th run failed the job `task_id`
    /// is due again: the delay apalis-redis gives it (the jitter is a hash
    /// of the id and attempt, so both sides compute the same).
    pub fn retry_delay(&self, task_id: &str, failed_attempt: u32) -> Duration {
        self.retry_backoff.delay(
            task_id,
            usize::try_from(failed_attempt).unwrap_or(usize::MAX),
        )
    }

    /// Bounds the dead sets: enforced as jobs die (by apalis-redis) and by
    /// [`JobQueues::trim_dead`]. Without bounds, dead jobs are kept.
    #[must_use]
    pub fn with_dead_bounds(mut self, bounds: DeadBounds) -> Self {
        self.dead_bounds = Some(bounds);
        self
    }

    /// apalis-redis's configuration of `queue`: its name under our prefix
    /// and the dead-set bounds. Workers add their own settings to it.
    pub fn apalis_config(&self, queue: Queue) -> apalis_redis::Config {
        let config = apalis_redis::Config::default()
            .queue(self.keys(queue).apalis_queue())
            .retry_backoff(self.retry_backoff);
        match self.dead_bounds {
            Some(bounds) => config
                .max_dead_tasks(Some(bounds.max_per_queue))
                .dead_task_ttl(Some(bounds.ttl)),
            None => config,
        }
    }

    pub fn keys(&self, queue: Queue) -> QueueKeys {
        QueueKeys::new(&self.prefix, queue)
    }

    pub fn wake_channel(&self) -> String {
        keys::wake_channel(&self.prefix)
    }

    pub fn connection(&self) -> Conn {
        self.conn.clone()
    }

    /// Pushes jobs onto `queue`'s active list in one round trip (through
    /// apalis-redis), then wakes its workers. Ids already known to Redis are
    /// skipped (a relay pushing a batch again); returns how many were new.
    pub async fn push(
        &self,
        queue: Queue,
        jobs: &[ReadyJob],
        max_attempts: u32,
    ) -> Result<usize, PushError> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let tasks = jobs
            .iter()
            .map(|job| {
                Ok(TaskBuilder::new(serde_json::to_vec(&job.envelope)?)
                    .task_id(TaskId::from(job.task_id.clone()))
                    .max_attempts(usize::try_from(max_attempts).unwrap_or(usize::MAX))
                    .build())
            })
            .collect::<Result<Vec<_>, PushError>>()?;
        let mut conn = self.conn.clone();
        let (pushed, _) =
            apalis_redis::queries::push_tasks(&mut conn, &self.apalis_config(queue), &tasks)
                .await
                .map_err(|e| match e {
                    apalis_redis::Error::Database(e) => PushError::Redis(e),
                    apalis_redis::Error::Json(e) => PushError::Encode(e),
                    other => PushError::Redis(redis::RedisError::from((
                        redis::ErrorKind::Client,
                        "apalis-redis push",
                        other.to_string(),
                    ))),
                })?;
        if pushed > 0 {
            self.wake(queue).await;
        }
        Ok(pushed as usize)
    }

    /// Tells idle workers of `queue`, on every process, to fetch now. The
    /// jobs are queued whatever happens to the wake-up: a failed one only
    /// delays them to the workers' next idle fetch, so it is logged, never
    /// returned (a relay told its push failed would push again, find every
    /// id known, and then wake no one).
    pub async fn wake(&self, queue: Queue) {
        let woken: Result<(), _> = self
            .conn
            .clone()
            .publish(self.wake_channel(), queue.as_str())
            .await;
        if let Err(error) = woken {
            tracing::warn!(%error, queue = %queue, "jobs queued, but cannot wake the workers; they fetch at their next idle poll");
        }
    }

    /// Moves up to [`CHUNK`] due retries of `queue` to its active list and
    /// wakes its workers; says when the next one is due.
    pub async fn promote_due(
        &self,
        queue: Queue,
    ) -> Result<apalis_redis::Promoted, redis::RedisError> {
        let promoted =
            apalis_redis::promote_due(&mut self.conn.clone(), &self.apalis_config(queue), CHUNK)
                .await?;
        if promoted.moved > 0 {
            self.wake(queue).await;
        }
        Ok(promoted)
    }

    /// Forgets up to [`CHUNK`] finished jobs (their data and metadata),
    /// oldest first.
    pub async fn sweep_done(&self, queue: Queue) -> Result<usize, redis::RedisError> {
        apalis_redis::vacuum_done(&mut self.conn.clone(), &self.apalis_config(queue), CHUNK).await
    }

    /// Drops up to [`CHUNK`] dead jobs past the bounds (they also go as
    /// others die; this catches those that age out while none do).
    pub async fn trim_dead(&self, queue: Queue) -> Result<usize, redis::RedisError> {
        apalis_redis::dead::trim(&mut self.conn.clone(), &self.apalis_config(queue), CHUNK).await
    }

    /// Converts done and dead sets written by apalis-redis 1.0.0 (plain
    /// sets) to the sorted sets our copy keeps. Run by a worker before its
    /// queue workers start; does nothing once done.
    pub async fn upgrade_layout(&self, queue: Queue) -> Result<usize, redis::RedisError> {
        apalis_redis::upgrade_sets(&mut self.conn.clone(), &self.apalis_config(queue), CHUNK).await
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
        let apalis = self.apalis_config(queue);
        let (pending, delayed, dead, dead_dropped, workers, stats): CountsReply = redis::pipe()
            .llen(keys.active())
            .zcard(keys.apalis_scheduled())
            .zcard(apalis.dead_jobs_set())
            .get(apalis.dead_dropped_counter())
            .zrange(keys.workers(), 0, -1)
            .hgetall(keys.stats())
            .query_async(&mut conn)
            .await?;
        let running = self
            .in_flight_of(queue, &workers)
            .await?
            .iter()
            .map(|(_, n)| n)
            .sum();
        // A deployment key, in another hash slot than the queue's: its own
        // round trip (a cluster pipeline stays within one slot).
        let paused: bool = conn
            .sismember(keys::paused(&self.prefix), queue.as_str())
            .await?;
        let stat = |name: &str| stats.get(name).copied().unwrap_or(0);
        Ok(QueueCounts {
            paused,
            queue: queue.as_str().to_owned(),
            pending,
            delayed,
            running,
            dead,
            dead_dropped: dead_dropped.unwrap_or(0),
            succeeded: stat("succeeded"),
            retried: stat("retried"),
            failed_for_good: stat("failed_for_good"),
            workers: workers.len() as u64,
        })
    }

    /// Jobs each registered worker of `queue` runs now, by apalis worker
    /// name.
    pub async fn in_flight_by_worker(
        &self,
        queue: Queue,
    ) -> Result<Vec<(String, u64)>, redis::RedisError> {
        let workers: Vec<String> = self
            .conn
            .clone()
            .zrange(self.keys(queue).workers(), 0, -1)
            .await?;
        self.in_flight_of(queue, &workers).await
    }

    /// The in-flight set sizes of `workers` of `queue`: one pipeline (the
    /// queue's keys share a slot).
    async fn in_flight_of(
        &self,
        queue: Queue,
        workers: &[String],
    ) -> Result<Vec<(String, u64)>, redis::RedisError> {
        if workers.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.keys(queue);
        let mut pipe = redis::pipe();
        for worker in workers {
            pipe.scard(keys.inflight_of(worker));
        }
        let sizes: Vec<u64> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(workers.iter().cloned().zip(sizes).collect())
    }

    /// Up to `limit` dead jobs of `queue`, newest first, after `cursor`.
    pub async fn dead_page(
        &self,
        queue: Queue,
        cursor: Option<&DeadCursor>,
        limit: usize,
    ) -> Result<Vec<DeadJob>, redis::RedisError> {
        let tasks = apalis_redis::dead::page(
            &mut self.conn.clone(),
            &self.apalis_config(queue),
            cursor,
            limit,
        )
        .await?;
        Ok(tasks.into_iter().map(DeadJob::from_task).collect())
    }

    /// Puts dead jobs back on the queue with their attempts reset, and
    /// wakes the queue's workers.
    pub async fn requeue_dead(
        &self,
        queue: Queue,
        ids: &[String],
    ) -> Result<usize, redis::RedisError> {
        let mut conn = self.conn.clone();
        let moved = apalis_redis::dead::retry(&mut conn, &self.apalis_config(queue), ids).await?;
        if moved > 0 {
            let _: () = conn.publish(self.wake_channel(), queue.as_str()).await?;
        }
        Ok(moved)
    }

    /// Deletes dead jobs.
    pub async fn discard_dead(
        &self,
        queue: Queue,
        ids: &[String],
    ) -> Result<usize, redis::RedisError> {
        apalis_redis::dead::discard(&mut self.conn.clone(), &self.apalis_config(queue), ids).await
    }

    /// Whether `id` is in `queue`'s dead set.
    pub async fn is_dead(&self, queue: Queue, id: &str) -> Result<bool, redis::RedisError> {
        let died =
            apalis_redis::dead::died_at(&mut self.conn.clone(), &self.apalis_config(queue), id)
                .await?;
        Ok(died.is_some())
    }

    /// Up to `limit` dead job ids of `queue`, oldest first.
    pub async fn oldest_dead_ids(
        &self,
        queue: Queue,
        limit: usize,
    ) -> Result<Vec<String>, redis::RedisError> {
        apalis_redis::dead::oldest_ids(&mut self.conn.clone(), &self.apalis_config(queue), limit)
            .await
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cannot encode job: {0}")]
    Encode(#[from] serde_json::Error),
}
