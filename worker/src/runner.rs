//! One supervised apalis worker per queue.
//!
//! apalis-redis traps this design avoids (see its source):
//! - Worker names are the identity of heartbeats and in-flight sets, and a
//!   name still "alive" cannot register again; two processes sharing a name
//!   break orphan recovery. Every (process, queue, restart) gets its own name.
//! - The default orphan timeout is minutes (30 s heartbeat × 10). We use a
//!   short heartbeat and a lease of a few seconds (`WORKER_LEASE_SECS`), after
//!   which the other workers of the queue re-enqueue a silent worker's jobs.
//! - A Redis error ends the worker's stream while the process stays up. The
//!   supervisor restarts it with backoff and reports the gap through
//!   `/healthz`.
//! - A paused queue (`pause`) has no worker: the running one is stopped
//!   gracefully (no fetch, jobs in flight finish) and a fresh one starts
//!   when the queue is resumed.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use apalis::{layers::WorkerBuilderExt, prelude::*};
use apalis_core::backend::ext::poll_strategy::Strategy;
use apalis_redis::RedisStorage;
use queue::JobQueues;
use shared::{
    config::WorkerConfig,
    jobs::{JobEnvelope, Queue},
};
use tokio::sync::watch;

use crate::{
    execute::{Executor, execute},
    health::Health,
    metrics::QueueLabels,
    wake::Wakers,
};

/// Shutdown was asked for, or whoever could ask is gone.
fn stopping(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

pub struct QueueRunner {
    pub queue: Queue,
    pub queues: JobQueues,
    pub executor: Arc<Executor>,
    pub config: WorkerConfig,
    pub concurrency: usize,
    pub process_name: String,
    pub health: Health,
    pub wakers: Wakers,
    /// The queues paused now (see `pause`).
    pub paused: watch::Receiver<BTreeSet<Queue>>,
}

impl QueueRunner {
    /// Runs the queue's worker until `shutdown` turns true, restarting it
    /// whenever it stops on its own. On shutdown the worker stops fetching
    /// and finishes its in-flight jobs before this returns.
    pub async fn supervise(self, shutdown: watch::Receiver<bool>) {
        let mut generation: u32 = 0;
        loop {
            if stopping(&shutdown) || !self.wait_while_paused(&shutdown).await {
                break;
            }
            let name = format!("{}:{}:{generation}", self.process_name, self.queue);
            self.health.starting(self.queue);
            let result = self.run_once(&name, shutdown.clone()).await;
            if stopping(&shutdown) {
                if let Err(error) = result {
                    tracing::warn!(queue = %self.queue, %error, "worker stopped with an error during shutdown");
                }
                break;
            }
            if result.is_ok() && self.is_paused() {
                // Stopped for the pause: a fresh name when it resumes.
                generation = generation.wrapping_add(1);
                continue;
            }
            let reason = match result {
                Ok(()) => "worker stopped unexpectedly".to_owned(),
                Err(error) => error,
            };
            tracing::error!(queue = %self.queue, worker = %name, %reason, "queue worker died; restarting");
            self.health.down(self.queue, reason);
            self.executor
                .metrics
                .worker_restarts
                .get_or_create(&QueueLabels {
                    queue: self.queue.as_str(),
                })
                .inc();
            generation = generation.wrapping_add(1);
            let pause = Duration::from_millis(250 * 2u64.pow(generation.min(6)));
            let mut shutdown = shutdown.clone();
            tokio::select! {
                () = tokio::time::sleep(pause.min(Duration::from_secs(15))) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
    }

    fn is_paused(&self) -> bool {
        self.paused.borrow().contains(&self.queue)
    }

    /// Returns at once unless the queue is paused; then when it is resumed
    /// (true) or shutdown is asked (false).
    async fn wait_while_paused(&self, shutdown: &watch::Receiver<bool>) -> bool {
        if !self.is_paused() {
            return true;
        }
        self.health.paused(self.queue);
        tracing::info!(queue = %self.queue, "queue paused: not fetching");
        let (mut paused, mut shutdown) = (self.paused.clone(), shutdown.clone());
        let queue = self.queue;
        tokio::select! {
            resumed = paused.wait_for(|p| !p.contains(&queue)) => {
                if resumed.is_err() {
                    return false;
                }
                tracing::info!(queue = %self.queue, "queue resumed");
                true
            }
            _ = shutdown.wait_for(|stop| *stop) => false,
        }
    }

    async fn run_once(&self, name: &str, shutdown: watch::Receiver<bool>) -> Result<(), String> {
        let heartbeat = self.config.heartbeat;
        let missed =
            usize::try_from((self.config.lease.as_secs() / heartbeat.as_secs().max(1)).max(2))
                .unwrap_or(2);
        let redis_config = self
            .queues
            .apalis_config(self.queue)
            .batch_size(self.config.batch_size)
            .heartbeat_interval(heartbeat)
            .missed_heartbeats(missed)
            // Per-task leases cost an O(queue length) LREM per task and add
            // nothing here: the in-flight set written at fetch time is what
            // orphan recovery uses.
            .lock_tasks(false)
            // Acknowledgements must be written: they take the task out of the
            // worker's in-flight set.
            .persist_results(true)
            // Per-task pub/sub events nobody listens to; wake-ups use our own
            // channel, one message per push batch.
            .emit_events(false);
        let apalis = redis_config.clone();
        // Wake-driven; an idle worker fetches again after WORKER_POLL_MS
        // at most without a wake-up, and never waits past a heartbeat,
        // which apalis does not send while a fetch is pending (see `wake`).
        let idle_fetch = self.config.poll_interval.min(heartbeat);
        let (wakes, idle_wait) = self.wakers.subscribe(self.queue, idle_fetch);
        let storage: RedisStorage<JobEnvelope, queue::Conn> =
            RedisStorage::new(self.queues.connection())
                .with_config(redis_config)
                .with_idle_wait(idle_wait);
        // The interval only wakes the worker's task: apalis heartbeats (and
        // checks for other workers' orphans) only when its task is polled,
        // and a worker parked after an empty fetch is polled by nothing
        // else but a wake-up. The fetch it starts still waits in the idle
        // wait, so the tick costs Redis one heartbeat, not a poll.
        let strategy = Strategy::new().stream(wakes).interval(idle_fetch);
        let backend = storage.poll_with_strategy(strategy);

        let health = self.health.clone();
        let queue = self.queue;
        let beats = Beats::default();
        let beaten = beats.clone();
        let control = Control::default();
        let started = control.clone();
        let worker = WorkerBuilder::new(name)
            .backend(backend)
            .data(self.executor.clone())
            .concurrency(self.concurrency)
            .on_event(move |ctx, event| match event {
                Event::Start => {
                    started.keep(ctx);
                    beaten.record();
                    health.heartbeat(queue);
                }
                Event::HeartBeat => {
                    beaten.record();
                    health.heartbeat(queue);
                }
                // Job failures are logged where they are settled (execute.rs)
                // and backend failures where the supervisor restarts.
                Event::Error(error) => {
                    tracing::debug!(queue = %queue, error = %error, "worker event: error");
                }
                _ => {}
            })
            .build(execute);
        tracing::info!(queue = %self.queue, worker = name, "queue worker starting");
        // Longest a job in flight can still run once fetching has stopped.
        let config = &self.executor.ctx.config;
        let drain = config.jobs.timeout + config.outbox.lookahead + Duration::from_secs(5);
        let stops = Stops {
            shutdown,
            paused: self.paused.clone(),
            queue: self.queue,
        };
        tokio::select! {
            result = drive(worker.stream(), &control, stops, drain) => result,
            never = self.keep_leased(name, apalis, beats) => match never {},
        }
    }

    /// Renews the worker's lease when apalis has not: apalis heartbeats only
    /// when it polls for work, which it does not while every concurrency
    /// slot is busy, so a worker whose slots all run jobs longer than the
    /// lease would be taken for dead and its jobs run again. While apalis
    /// heartbeats on time this costs Redis nothing. Failures are left to
    /// apalis's heartbeat (before registration, or once taken for dead,
    /// they are expected).
    async fn keep_leased(
        &self,
        name: &str,
        config: apalis_redis::Config,
        beats: Beats,
    ) -> std::convert::Infallible {
        let mut conn = self.queues.connection();
        let heartbeat = self.config.heartbeat;
        let mut every = tokio::time::interval(heartbeat);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if beats.since_last() < heartbeat {
                continue;
            }
            match apalis_redis::queries::heartbeat(&mut conn, &config, name).await {
                // A renewed lease is a heartbeat for /healthz too: the
                // worker is alive, only busy.
                Ok(()) => self.health.heartbeat(self.queue),
                Err(error) => {
                    tracing::debug!(queue = %self.queue, worker = name, %error, "lease renewal failed");
                }
            }
        }
    }
}

/// Runs an apalis worker's event stream to its end.
///
/// apalis's own `run`/`run_until` return at the backend's first error and
/// drop the worker, and with it every job in flight: a Redis failover in
/// the middle of an SMTP exchange cancelled the delivery after its claim,
/// and the email was never sent (at most once: an interrupted claim is
/// given up, not resent). Here a backend error, like shutdown, only stops
/// fetching; the jobs in flight run to their end (their effects are in
/// PostgreSQL, which is still there), and then the error is returned for
/// the supervisor to start a fresh worker. Pausing the queue stops it the
/// same way, without an error. `drain` bounds the wait.
async fn drive<S>(events: S, control: &Control, stops: Stops, drain: Duration) -> Result<(), String>
where
    S: futures::Stream<Item = Result<Event, WorkerError>>,
{
    use futures::StreamExt as _;
    let Stops {
        mut shutdown,
        mut paused,
        queue,
    } = stops;
    let mut events = std::pin::pin!(events);
    // Made once, not per event: this loop turns for every job.
    let mut stop_wanted = std::pin::pin!(async move {
        tokio::select! {
            // A dropped sender means whoever could ask is gone: stop too.
            _ = shutdown.wait_for(|stop| *stop) => false,
            Ok(_) = paused.wait_for(|p| p.contains(&queue)) => true,
        }
    });
    let mut failure: Option<String> = None;
    let mut stop_asked = false;
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let draining = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            next = events.next() => match next {
                None => break,
                Some(Ok(_)) => {}
                // Closing can fail too (Redis still gone): once stopped,
                // an error ends the drive.
                Some(Err(error)) if stop_asked => {
                    failure.get_or_insert_with(|| error.to_string());
                    break;
                }
                Some(Err(error)) => {
                    let in_flight = control.in_flight();
                    tracing::warn!(%error, in_flight, "queue backend failed; finishing the jobs in flight before restarting");
                    failure = Some(error.to_string());
                    stop_asked = true;
                    deadline = Some(tokio::time::Instant::now() + drain);
                    if !control.stop() {
                        break;
                    }
                }
            },
            for_pause = &mut stop_wanted, if !stop_asked => {
                if for_pause {
                    tracing::info!(%queue, in_flight = control.in_flight(), "queue paused: stopping fetching; the jobs in flight finish");
                }
                stop_asked = true;
                deadline = Some(tokio::time::Instant::now() + drain);
                if !control.stop() {
                    break;
                }
            }
            () = draining => {
                tracing::error!(in_flight = control.in_flight(), "jobs in flight did not finish in time; abandoning them to orphan recovery");
                break;
            }
        }
    }
    failure.map_or(Ok(()), Err)
}

/// What stops a running worker besides its backend failing.
struct Stops {
    shutdown: watch::Receiver<bool>,
    paused: watch::Receiver<BTreeSet<Queue>>,
    queue: Queue,
}

/// The running worker's context, kept from its `Start` event: what stops
/// it gracefully and counts its jobs in flight.
#[derive(Clone, Default)]
struct Control(Arc<std::sync::Mutex<Option<WorkerContext>>>);

impl Control {
    fn keep(&self, ctx: &WorkerContext) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ctx.clone());
    }

    fn context(&self) -> Option<WorkerContext> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Stops fetching; the jobs in flight go on. False when the worker
    /// never started (nothing is in flight then).
    fn stop(&self) -> bool {
        self.context().is_some_and(|ctx| ctx.stop().is_ok())
    }

    fn in_flight(&self) -> usize {
        self.context().map_or(0, |ctx| ctx.task_count())
    }
}

/// When apalis last heartbeated for a worker (its `HeartBeat` events).
#[derive(Clone)]
struct Beats(Arc<std::sync::Mutex<Option<tokio::time::Instant>>>);

impl Default for Beats {
    fn default() -> Self {
        Self(Arc::new(std::sync::Mutex::new(None)))
    }
}

impl Beats {
    fn record(&self) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tokio::time::Instant::now());
    }

    /// Time since the last heartbeat; forever when there was none.
    fn since_last(&self) -> Duration {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map_or(Duration::MAX, |at| at.elapsed())
    }
}
