//! The outbox relay: moves due outbox rows to their Redis queues.
//!
//! Any number of relays (one per worker process) run at once. Each claims a
//! batch of due rows with `FOR UPDATE SKIP LOCKED`, stamping a short claim
//! instead of holding the transaction open (no Redis call ever happens inside
//! a PostgreSQL transaction), pushes the batch, then deletes the rows. A
//! relay that dies between push and delete leaves rows whose claim
//! expires; another relay pushes them again, and the push skips ids Redis
//! still knows. Delivery is therefore at least once and usually
//! exactly once; handlers are idempotent either way.
//!
//! Relays wake on the Redis channel `{prefix}:outbox`, where the API and
//! the workers publish after committing a job due now (see
//! [`shared::outbox::noting_pushes`]; not `pg_notify`, whose commit lock
//! serialised the hot write paths), and poll every `OUTBOX_POLL_MS` for a
//! lost wake-up.
//!
//! **Delayed jobs** (a bet's settlement, a retry of a clearing) wait in the
//! outbox, in PostgreSQL, not in Redis and not in worker memory: a delay can
//! be a day and no lease or visibility timeout runs meanwhile. A relay
//! sleeps until the next row comes within `OUTBOX_LOOKAHEAD_MS` of its due
//! time (asking PostgreSQL how long that is, so the clocks of worker
//! machines do not matter), and pushes it that much early; the worker that
//! fetches it holds it until `due_at` (see `execute`). The relay's cycle
//! and the queue hop happen inside the lookahead, so the job starts on
//! time to within the timer's precision.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::Utc;
use queue::{JobQueues, ReadyJob};
use shared::{
    config::Config,
    db::DbPool,
    jobs::{JobEnvelope, Queue},
    outbox::{self, Claimed},
};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::{
    health::Health,
    metrics::{BacklogLabels, Metrics, QueueLabels},
};

pub struct Relay {
    pub config: Arc<Config>,
    pub db: DbPool,
    /// For the relays' wake-up channel.
    pub subscriber: queue::Subscriber,
    pub queues: JobQueues,
    pub metrics: Arc<Metrics>,
    pub health: Health,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database unavailable: {0}")]
    Pool(String),
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("redis push failed: {0}")]
    Push(String),
}

/// How often rows marked dispatched by an earlier release are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// Rows deleted per statement (short locks, bounded WAL per statement) and
/// statements per purge round: up to a million rows a minute per relay.
const PURGE_CHUNK: i64 = 10_000;
const PURGE_CHUNKS_PER_ROUND: usize = 100;

/// How often the outbox backlog gauge is refreshed.
const SAMPLE_BACKLOG_EVERY: Duration = Duration::from_secs(5);

/// The shortest pause between two timed cycles: delayed rows falling due
/// continuously are claimed in batches of this much time, not one by one
/// (the lookahead covers it).
const MIN_CYCLE: Duration = Duration::from_millis(10);

impl Relay {
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let notify = Arc::new(Notify::new());
        let woken = notify.clone();
        tokio::spawn(queue::wake::listen(
            self.subscriber.clone(),
            queue::keys::relay_wake_channel(&self.config.redis.prefix),
            // A (re)connection wakes too: a wake-up may have been missed.
            move |_| woken.notify_one(),
            shutdown.clone(),
        ));
        // Rows an earlier release marked dispatched instead of deleting
        // (during a rolling upgrade) are purged beside the relay, so a long
        // purge never delays a due job.
        tokio::spawn(purge_forever(self.db.clone(), shutdown.clone()));
        let mut shutdown = shutdown;
        let mut failing = false;
        let mut last_sample: Option<tokio::time::Instant> = None;
        let mut last_scheduled_sample: Option<tokio::time::Instant> = None;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let cycle = self.dispatch_due().await;
            let cycle_ok = cycle.is_ok();
            match cycle {
                Ok(_) => {
                    if failing {
                        tracing::info!("outbox relay recovered");
                    }
                    failing = false;
                    self.health.relay_ok();
                }
                Err(error) => {
                    self.metrics.outbox_errors.inc();
                    if !failing {
                        tracing::warn!(%error, "outbox relay cycle failed; will retry");
                    }
                    failing = true;
                    self.health.relay_failed(error.to_string());
                }
            }
            if last_sample.is_none_or(|at| at.elapsed() >= SAMPLE_BACKLOG_EVERY) {
                last_sample = Some(tokio::time::Instant::now());
                if let Err(error) = self.sample_backlog("due").await {
                    tracing::debug!(%error, "cannot sample the outbox backlog");
                }
            }
            let every = self.config.outbox.scheduled_sample;
            if last_scheduled_sample.is_none_or(|at| at.elapsed() >= every) {
                last_scheduled_sample = Some(tokio::time::Instant::now());
                if let Err(error) = self.sample_backlog("scheduled").await {
                    tracing::debug!(%error, "cannot sample the scheduled outbox rows");
                }
            }
            // After a failure, the poll interval: no tight loop while
            // PostgreSQL or Redis is down.
            let wait = match cycle_ok.then_some(()) {
                Some(()) => match self.until_next_due().await {
                    Ok(Some(wait)) => wait.clamp(MIN_CYCLE, self.config.outbox.poll_interval),
                    Ok(None) | Err(_) => self.config.outbox.poll_interval,
                },
                None => self.config.outbox.poll_interval,
            };
            tokio::select! {
                () = notify.notified() => {}
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Relays due rows, batch after batch, until none are left. Returns the
    /// number pushed.
    pub async fn dispatch_due(&self) -> Result<usize, RelayError> {
        let mut total = 0;
        loop {
            let claimed = self.claim().await?;
            let count = claimed.len();
            if count == 0 {
                return Ok(total);
            }
            self.push_and_mark(claimed).await?;
            total += count;
            if i64::try_from(count).unwrap_or(i64::MAX) < self.config.outbox.batch_size {
                return Ok(total);
            }
        }
    }

    async fn conn(&self) -> Result<shared::db::DbConn, RelayError> {
        self.db
            .get()
            .await
            .map_err(|e| RelayError::Pool(e.to_string()))
    }

    async fn claim(&self) -> Result<Vec<Claimed>, RelayError> {
        let outbox = &self.config.outbox;
        let mut conn = self.conn().await?;
        Ok(outbox::claim(
            &mut conn,
            outbox.claim_timeout,
            outbox.batch_size,
            outbox.lookahead,
        )
        .await?)
    }

    async fn until_next_due(&self) -> Result<Option<Duration>, RelayError> {
        let mut conn = self.conn().await?;
        Ok(outbox::until_next_due(&mut conn, self.config.outbox.lookahead).await?)
    }

    async fn push_and_mark(&self, rows: Vec<Claimed>) -> Result<(), RelayError> {
        let mut by_queue: BTreeMap<Queue, Vec<ReadyJob>> = BTreeMap::new();
        let mut unroutable = Vec::new();
        // With traces exported, one span per traced job covers its push
        // (they close when this function returns) and is its job's parent.
        let mut hops: Vec<tracing::Span> = Vec::new();
        for row in rows {
            let traceparent = match relay_hop(&row) {
                Some((span, traceparent)) => {
                    hops.push(span);
                    Some(traceparent)
                }
                None => row.traceparent,
            };
            let Some(queue) = Queue::parse(&row.queue) else {
                unroutable.push(row.id);
                continue;
            };
            by_queue.entry(queue).or_default().push(ReadyJob {
                task_id: row.id.to_string(),
                envelope: JobEnvelope {
                    id: row.id,
                    job: row.job,
                    v: u16::try_from(row.version).unwrap_or(0),
                    args: row.payload,
                    due_at: row.run_at,
                    unique_key: row.unique_key,
                    traceparent,
                    request_id: row.request_id,
                },
            });
        }
        if !unroutable.is_empty() {
            self.set_aside(&unroutable).await?;
        }
        let max_attempts = self.config.jobs.max_attempts;
        for (queue, jobs) in by_queue {
            let ids: Vec<Uuid> = jobs.iter().map(|j| j.envelope.id).collect();
            let (jobs, marks) = match self.coalesce(jobs).await {
                Ok(kept) => kept,
                Err(error) => {
                    self.release(&ids, &error.to_string()).await?;
                    return Err(RelayError::Push(error.to_string()));
                }
            };
            if let Err(error) = self.queues.push(queue, &jobs, max_attempts).await {
                // Hand the rows back at once rather than after the claim
                // timeout; queues pushed earlier in this cycle are done.
                // The waiting marks go too, or the next copies would be
                // dropped for a job that is not there.
                let conn = self.queues.connection();
                for (key, id) in &marks {
                    let _ = queue::waiting::clear(&conn, key, id).await;
                }
                self.release(&ids, &error.to_string()).await?;
                return Err(RelayError::Push(error.to_string()));
            }
            self.remove_dispatched(&ids).await?;
            let labels = QueueLabels {
                queue: queue.as_str(),
            };
            self.metrics
                .outbox_dispatched
                .get_or_create(&labels)
                .inc_by(jobs.len() as u64);
            self.metrics
                .outbox_coalesced
                .get_or_create(&labels)
                .inc_by((ids.len() - jobs.len()) as u64);
        }
        Ok(())
    }

    /// Drops the jobs of which a copy with the same uniqueness key already
    /// waits (`shared::jobs::JobSpec::unique_key`): in this batch, or in the
    /// queue (`queue::waiting`, one round trip for the batch). Returns the
    /// jobs to push and the waiting marks this call took for them.
    async fn coalesce(
        &self,
        jobs: Vec<ReadyJob>,
    ) -> Result<(Vec<ReadyJob>, Vec<(String, String)>), redis::RedisError> {
        let mut kept = Vec::with_capacity(jobs.len());
        let mut candidates: Vec<(ReadyJob, String)> = Vec::new();
        // A batch of 500 emails has 500 keys: a set, not a scan per job.
        let mut seen = std::collections::HashSet::new();
        for job in jobs {
            let Some(unique_key) = &job.envelope.unique_key else {
                kept.push(job);
                continue;
            };
            let key = queue::waiting::key(&self.config.redis.prefix, &job.envelope.job, unique_key);
            if seen.insert(key.clone()) {
                candidates.push((job, key));
            }
        }
        let marks: Vec<(String, String)> = candidates
            .iter()
            .map(|(job, key)| (key.clone(), job.task_id.clone()))
            .collect();
        let marked = queue::waiting::mark(&self.queues.connection(), &marks).await?;
        let mut taken = Vec::with_capacity(marks.len());
        for (((job, _), mark), won) in candidates.into_iter().zip(marks).zip(marked) {
            if won {
                taken.push(mark);
                kept.push(job);
            }
        }
        Ok((kept, taken))
    }

    async fn remove_dispatched(&self, ids: &[Uuid]) -> Result<(), RelayError> {
        let mut conn = self.conn().await?;
        Ok(outbox::remove_dispatched(&mut conn, ids).await?)
    }

    async fn release(&self, ids: &[Uuid], error: &str) -> Result<(), RelayError> {
        let mut conn = self.conn().await?;
        Ok(outbox::release(&mut conn, ids, error).await?)
    }

    /// Rows naming a queue this build does not know (written by a newer
    /// version, say) wait an hour before the next try instead of spinning.
    async fn set_aside(&self, ids: &[Uuid]) -> Result<(), RelayError> {
        tracing::error!(
            count = ids.len(),
            "outbox rows name an unknown queue; set aside for an hour"
        );
        let mut conn = self.conn().await?;
        let until = Utc::now() + chrono::Duration::hours(1);
        Ok(outbox::set_aside(&mut conn, ids, until, "unknown queue").await?)
    }

    /// Sets the `outbox_backlog` gauge of `state` (`due`, every
    /// [`SAMPLE_BACKLOG_EVERY`]; `scheduled`, every
    /// `OUTBOX_SCHEDULED_SAMPLE_SECS`), zero for queues with none.
    async fn sample_backlog(&self, state: &'static str) -> Result<(), RelayError> {
        let mut conn = self.conn().await?;
        let backlog = match state {
            "due" => outbox::due_backlog(&mut conn).await?,
            _ => outbox::scheduled_backlog(&mut conn).await?,
        };
        for queue in Queue::ALL {
            let rows = backlog
                .iter()
                .find(|b| b.queue == queue.as_str())
                .map_or(0, |b| b.rows);
            self.metrics
                .outbox_backlog
                .get_or_create(&BacklogLabels {
                    queue: queue.as_str().to_owned(),
                    state,
                })
                .set(rows);
        }
        Ok(())
    }
}

/// Deletes rows marked dispatched by an earlier release: at start (the
/// upgrade's leftovers), then every [`PURGE_EVERY`].
async fn purge_forever(db: DbPool, mut shutdown: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(PURGE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.changed() => return,
        }
        if let Err(error) = purge_marked_dispatched(&db).await {
            tracing::warn!(%error, "outbox purge failed");
        }
    }
}

async fn purge_marked_dispatched(db: &DbPool) -> Result<usize, RelayError> {
    let mut conn = db
        .get()
        .await
        .map_err(|e| RelayError::Pool(e.to_string()))?;
    let mut total = 0;
    for _ in 0..PURGE_CHUNKS_PER_ROUND {
        let deleted = outbox::purge_marked_dispatched(&mut conn, PURGE_CHUNK).await?;
        total += deleted;
        if i64::try_from(deleted).unwrap_or(i64::MAX) < PURGE_CHUNK {
            break;
        }
    }
    Ok(total)
}

/// The relay's hop in a traced job's trace, when spans are exported: a span
/// child of what queued the job, and the context the job continues from.
/// Without export the job continues from what queued it directly.
fn relay_hop(row: &Claimed) -> Option<(tracing::Span, String)> {
    if !shared::telemetry::exporting() {
        return None;
    }
    let parent = shared::trace::TraceParent::parse(row.traceparent.as_deref()?)?;
    let span = tracing::info_span!(
        "outbox.relay",
        job.id = %row.id,
        job.name = %row.job,
        job.queue = %row.queue,
        request.id = row.request_id.as_deref(),
    );
    let traceparent = shared::telemetry::continue_trace(&span, Some(parent));
    Some((span, traceparent.to_string()))
}
