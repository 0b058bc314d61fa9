//! Runs one job attempt inside an apalis worker and decides what happens on
//! failure.
//!
//! A failed attempt that may be retried fails the task: apalis-redis (our
//! patched copy) schedules it again after the configured backoff
//! (exponential with jitter, `JOB_BACKOFF_BASE_MS` to `JOB_BACKOFF_MAX_MS`)
//! until it has run `JOB_MAX_ATTEMPTS` times. The last attempt, or a
//! permanent error, ends with `AbortError`, which apalis-redis files in the
//! queue's dead set for operators to inspect, retry or discard.

use std::{
    panic::AssertUnwindSafe,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use apalis::prelude::*;
use apalis_core::error::AbortError;
use chrono::Utc;
use futures::FutureExt;
use queue::JobQueues;
use shared::{
    jobs::{JobEnvelope, Queue},
    trace::{Origin, TraceParent},
};

use crate::{
    jobs::{self, JobContext, JobError},
    metrics::{JobLabels, Metrics, QueueLabels},
};

/// Outcome counts not yet added to the cluster-wide counters in Redis.
#[derive(Debug, Default)]
pub struct Outcomes {
    pub succeeded: AtomicU64,
    pub retried: AtomicU64,
    pub dead: AtomicU64,
}

impl Outcomes {
    /// Takes the counts accumulated since the last call.
    pub fn take(&self) -> (u64, u64, u64) {
        (
            self.succeeded.swap(0, Ordering::Relaxed),
            self.retried.swap(0, Ordering::Relaxed),
            self.dead.swap(0, Ordering::Relaxed),
        )
    }

    /// Gives counts back after a failed flush.
    pub fn restore(&self, (succeeded, retried, dead): (u64, u64, u64)) {
        self.succeeded.fetch_add(succeeded, Ordering::Relaxed);
        self.retried.fetch_add(retried, Ordering::Relaxed);
        self.dead.fetch_add(dead, Ordering::Relaxed);
    }
}

/// Everything one queue's job runs share.
pub struct Executor {
    pub queue: Queue,
    pub ctx: Arc<JobContext>,
    pub queues: JobQueues,
    /// `JOB_MAX_ATTEMPTS`: the attempt that fails last goes to the dead set.
    pub max_attempts: u32,
    pub metrics: Arc<Metrics>,
    pub outcomes: Arc<Outcomes>,
}

/// Makes the job's span continue the trace of what queued it (the request
/// and the relay's push, PRODUCT.md §10) and name the request in its logs;
/// the context the jobs it queues carry. A job queued outside any trace
/// starts one only when spans are exported: otherwise there is nothing to
/// join, and the hot path stays as it was.
fn continue_trace(span: &tracing::Span, envelope: &JobEnvelope) -> Option<Origin> {
    let parent = envelope.traceparent.as_deref().and_then(TraceParent::parse);
    if parent.is_none() && !shared::telemetry::exporting() {
        return None;
    }
    let traceparent = shared::telemetry::continue_trace(span, parent);
    span.record("trace.id", traceparent.trace_id_hex());
    if let Some(request) = &envelope.request_id {
        span.record("request.id", request.as_str());
    }
    Some(Origin {
        traceparent,
        request_id: envelope.request_id.clone(),
    })
}

/// The apalis handler: one attempt of one job.
pub async fn execute(
    envelope: JobEnvelope,
    attempt: Attempt,
    task_id: TaskId,
    executor: Data<Arc<Executor>>,
) -> Result<(), BoxDynError> {
    let attempt = u32::try_from(attempt.current()).unwrap_or(u32::MAX).max(1);
    let queue = executor.queue.as_str();
    let span = tracing::info_span!(
        "job",
        job.id = %envelope.id,
        job.name = %envelope.job,
        job.queue = queue,
        job.attempt = attempt,
        request.id = tracing::field::Empty,
        trace.id = tracing::field::Empty,
    );
    let origin = continue_trace(&span, &envelope);
    // Instrumented, not entered: a guard held across awaits would leave the
    // span off the log lines of polls that run on another thread.
    tracing::Instrument::instrument(
        attempt_job(envelope, attempt, task_id, executor, origin),
        span,
    )
    .await
}

async fn attempt_job(
    envelope: JobEnvelope,
    attempt: u32,
    task_id: TaskId,
    executor: Data<Arc<Executor>>,
    origin: Option<Origin>,
) -> Result<(), BoxDynError> {
    let queue = executor.queue.as_str();
    // A delayed job reaches us up to the relay's lookahead before it is
    // due: hold it until then (capped, in case this machine's clock is
    // behind the database's).
    if let Ok(early) = (envelope.due_at - Utc::now()).to_std() {
        let cap = executor.ctx.config.outbox.lookahead + std::time::Duration::from_millis(50);
        hold(early.min(cap)).await;
    }
    if attempt == 1 {
        let waited = (Utc::now() - envelope.due_at).to_std().unwrap_or_default();
        executor
            .metrics
            .pickup_latency
            .get_or_create(&QueueLabels { queue })
            .observe(waited.as_secs_f64());
    }

    if let Some(unique_key) = &envelope.unique_key {
        // Before the handler reads its work: what is committed from now on
        // gets a job of its own (queue::waiting). Best effort: a mark left
        // behind expires.
        let key = queue::waiting::key(&executor.ctx.config.redis.prefix, &envelope.job, unique_key);
        let task = task_id.to_string();
        if let Err(error) = queue::waiting::clear(&executor.ctx.redis, &key, &task).await {
            tracing::warn!(%error, "cannot clear the job's waiting mark; it expires");
        }
    }
    executor
        .metrics
        .jobs_started
        .get_or_create(&QueueLabels { queue })
        .inc();
    let started = Instant::now();
    let result = match jobs::handler_for(&envelope.job) {
        None => Err(JobError::Permanent(format!(
            "no handler for job {:?} in this worker build",
            envelope.job
        ))),
        Some(handler) => {
            let run = handler(executor.ctx.clone(), envelope.clone(), attempt);
            // Jobs this attempt queues continue its trace.
            let run = async move {
                match origin {
                    Some(origin) => shared::trace::scope(origin, run).await,
                    None => run.await,
                }
            };
            let timeout = executor.ctx.config.jobs.timeout;
            let (outcome, pushed) = shared::outbox::noting_pushes(
                AssertUnwindSafe(tokio::time::timeout(timeout, run)).catch_unwind(),
            )
            .await;
            if let Some(queue) = pushed {
                executor.ctx.relays.wake(queue);
            }
            match outcome {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(JobError::Retry(format!(
                    "timed out after {}s",
                    timeout.as_secs()
                ))),
                Err(panic) => Err(JobError::Retry(format!(
                    "panicked: {}",
                    panic_message(&panic)
                ))),
            }
        }
    };
    executor
        .metrics
        .job_duration
        .get_or_create(&QueueLabels { queue })
        .observe(started.elapsed().as_secs_f64());

    let verdict = verdict(&executor, &task_id.to_string(), attempt, result);
    let label = match &verdict {
        Verdict::Succeeded => "succeeded",
        Verdict::Retrying(_) => "retried",
        Verdict::Dead(_) => "failed",
    };
    executor
        .metrics
        .jobs
        .get_or_create(&JobLabels {
            queue,
            job: envelope.job.clone(),
            outcome: label,
        })
        .inc();
    match verdict {
        Verdict::Succeeded => Ok(()),
        Verdict::Retrying(reason) => Err(reason.into()),
        Verdict::Dead(reason) => Err(Box::new(AbortError::new(reason))),
    }
}

/// Waits `wait` precisely. tokio's timer fires on whole milliseconds,
/// rounding up, so a job held on it alone starts up to 1–2 ms after its
/// time; it takes the job to within [`FINE`] of its time, and a blocking
/// thread's sleep (precise to tens of microseconds) does the rest. The
/// blocking part is at most [`FINE`] per held job: at 1,000 delayed jobs a
/// second that is two threads asleep on average, and no CPU.
async fn hold(wait: std::time::Duration) {
    const FINE: std::time::Duration = std::time::Duration::from_millis(2);
    let started = Instant::now();
    if wait > FINE {
        tokio::time::sleep(wait - FINE).await;
    }
    let rest = wait.saturating_sub(started.elapsed());
    if !rest.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

/// What becomes of a job after an attempt.
enum Verdict {
    Succeeded,
    /// apalis-redis schedules the next attempt.
    Retrying(String),
    Dead(String),
}

fn verdict(
    executor: &Executor,
    task_id: &str,
    attempt: u32,
    result: Result<(), JobError>,
) -> Verdict {
    let max = executor.max_attempts;
    match result {
        Ok(()) => {
            executor.outcomes.succeeded.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("job succeeded");
            Verdict::Succeeded
        }
        Err(JobError::Permanent(reason)) => {
            executor.outcomes.dead.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%reason, "job failed permanently; moved to the dead set");
            Verdict::Dead(reason)
        }
        Err(JobError::Retry(reason)) if attempt >= max => {
            executor.outcomes.dead.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%reason, "job failed its last attempt ({max}); moved to the dead set");
            Verdict::Dead(format!("gave up after {attempt} attempts: {reason}"))
        }
        Err(JobError::Retry(reason)) => {
            let delay = executor.queues.retry_delay(task_id, attempt);
            promote_when_due(executor, delay);
            executor.outcomes.retried.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%reason, retry_in_ms = delay.as_millis() as u64, "job failed; will retry");
            Verdict::Retrying(reason)
        }
    }
}

/// Moves the retry to the active list when its backoff ends. The process
/// that failed the job wakes it, on time and at no cost while nothing
/// fails; otherwise a fetch promotes due retries (idle workers fetch once
/// per heartbeat), as does the upkeep holder's periodic pass
/// (`upkeep`).
///
/// The retry is scored when apalis-redis records the failure, a moment
/// after this timer starts, and on the Redis server's clock: when the
/// timer finds it not quite due, it waits the little that is left. The
/// failure itself may not be recorded yet: apalis-redis writes it from the
/// worker's fetch loop, and a worker parked in its idle wait did not write
/// it before its next heartbeat (`upkeep::a_retry_runs_after_its_backoff…`
/// failed 2 runs in 5 beside other tests, and in CI). A timer that moves
/// nothing wakes the queue's workers and looks again, at growing pauses,
/// for about 6 s.
fn promote_when_due(executor: &Executor, delay: std::time::Duration) {
    use std::time::Duration;
    /// Waits this short are for this retry (or one due as soon); longer
    /// ones are other retries with timers of their own.
    const CLOSE: Duration = Duration::from_millis(500);
    let queues = executor.queues.clone();
    let queue = executor.queue;
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        // 25 ms doubling to 1.6 s: about 6 s of looking in all.
        let mut unscored = Duration::from_millis(25);
        for _ in 0..12 {
            match queues.promote_due(queue).await {
                Ok(promoted) if promoted.moved == queue::CHUNK => {}
                Ok(promoted) => match promoted.next_due_in {
                    Some(wait) if wait <= CLOSE => {
                        tokio::time::sleep(wait + Duration::from_millis(1)).await;
                    }
                    // Nothing was due: this retry is not scored yet. The
                    // worker records the failure from its fetch loop, which
                    // may be parked in its idle wait: wake it.
                    _ if promoted.moved == 0 && unscored <= Duration::from_millis(1_600) => {
                        queues.wake(queue).await;
                        tokio::time::sleep(unscored).await;
                        unscored *= 2;
                    }
                    _ => break,
                },
                Err(error) => {
                    tracing::debug!(%error, "cannot promote a due retry; a fetch or the upkeep pass will");
                    break;
                }
            }
        }
    });
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hold_never_ends_before_its_time() {
        for micros in [0u64, 300, 1_500, 2_500, 7_000] {
            let wait = std::time::Duration::from_micros(micros);
            let started = Instant::now();
            hold(wait).await;
            assert!(
                started.elapsed() >= wait,
                "held {:?} of {wait:?}",
                started.elapsed()
            );
        }
    }
}
