//! Jobs and the outbox that feeds them: attempts, backoff, timeouts, the
//! dead set's bounds, the relay's pace. Reads `JOB_MAX_ATTEMPTS`,
//! `JOB_BACKOFF_BASE_MS`, `JOB_BACKOFF_MAX_MS`, `JOB_TIMEOUT_SECS`,
//! `DEAD_MAX_PER_QUEUE`, `DEAD_TTL_DAYS`, `JOBS_HISTORY_SAMPLE_SECS`,
//! `OUTBOX_POLL_MS`,
//! `OUTBOX_BATCH_SIZE`, `OUTBOX_CLAIM_TIMEOUT_SECS`, `OUTBOX_LOOKAHEAD_MS`,
//! `OUTBOX_SCHEDULED_SAMPLE_SECS`.

use std::time::Duration;

use super::env::{EnvReader, millis, secs};

#[derive(Debug, Clone)]
pub struct JobsConfig {
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub timeout: Duration,
    /// Dead jobs kept per queue; past it the oldest are dropped (and
    /// counted), so an outage that kills every email cannot fill Redis.
    pub dead_max_per_queue: usize,
    /// Dead jobs older than this are dropped.
    pub dead_ttl: Duration,
    /// How often the upkeep holder samples every queue's outcome counters
    /// for the jobs page's throughput chart (an hour of samples is kept).
    pub history_every: Duration,
}

#[derive(Debug, Clone)]
pub struct OutboxConfig {
    pub poll_interval: Duration,
    pub batch_size: i64,
    /// How long a relay may hold claimed rows before another relay may take
    /// them over.
    pub claim_timeout: Duration,
    /// Delayed jobs go to Redis this long before they are due; the worker
    /// holds each until its due time, so the relay's and the queue's own
    /// latency do not make it late.
    pub lookahead: Duration,
    /// How often a relay counts the scheduled (not yet due) rows per queue
    /// for the backlog gauge: a count over every waiting bet settlement,
    /// too dear for the 5 s of the due count.
    pub scheduled_sample: Duration,
}

impl JobsConfig {
    pub(super) fn read(env: &mut EnvReader) -> Self {
        Self {
            max_attempts: env.range_or("JOB_MAX_ATTEMPTS", 8, 1, 100),
            backoff_base: millis(env.range_or("JOB_BACKOFF_BASE_MS", 1000, 1, 3_600_000)),
            backoff_max: millis(env.range_or("JOB_BACKOFF_MAX_MS", 600_000, 1, 86_400_000)),
            timeout: secs(env.range_or("JOB_TIMEOUT_SECS", 60, 1, 86_400)),
            dead_max_per_queue: env.range_or("DEAD_MAX_PER_QUEUE", 10_000, 1, 10_000_000),
            dead_ttl: secs(env.range_or::<u64>("DEAD_TTL_DAYS", 30, 1, 3650) * 86_400),
            history_every: secs(env.range_or("JOBS_HISTORY_SAMPLE_SECS", 60, 1, 600)),
        }
    }
}

impl OutboxConfig {
    pub(super) fn read(env: &mut EnvReader) -> Self {
        Self {
            poll_interval: millis(env.range_or("OUTBOX_POLL_MS", 250, 10, 60_000)),
            batch_size: env.range_or("OUTBOX_BATCH_SIZE", 500, 1, 10_000),
            claim_timeout: secs(env.range_or("OUTBOX_CLAIM_TIMEOUT_SECS", 5, 1, 3600)),
            lookahead: millis(env.range_or("OUTBOX_LOOKAHEAD_MS", 100, 0, 10_000)),
            scheduled_sample: secs(env.range_or("OUTBOX_SCHEDULED_SAMPLE_SECS", 300, 1, 86_400)),
        }
    }
}
