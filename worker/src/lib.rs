//! Bourse workers: the outbox relay, one supervised apalis worker per queue,
//! queue upkeep, and a small HTTP server for health and metrics.
//!
//! Any number of worker processes may run on any number of machines; they
//! coordinate only through PostgreSQL and Redis.

mod announce;
mod clearing_sweep;
mod execute;
mod health;
mod http;
mod jobs;
mod limits;
mod metrics;
mod pause;
mod relay;
mod runner;
mod scheduler;
mod schedules;
mod upgrade;
mod upkeep;
mod wake;

use std::{collections::HashMap, future::Future, sync::Arc, time::Instant};

use anyhow::Context as _;
use secrecy::ExposeSecret as _;
use shared::{config::Config, email::Mailer, jobs::Queue};
use tokio::{sync::watch, task::JoinHandle};

pub use crate::execute::Outcomes;
use crate::{
    execute::Executor, health::Health, jobs::JobContext, metrics::Metrics, pause::Pauses,
    relay::Relay, runner::QueueRunner, upkeep::Upkeep, wake::Wakers,
};
use queue::{JobQueues, wake::Wake};

/// Per-process choices, from the command line (they override the
/// `WORKER_*` settings).
#[derive(Debug, Clone)]
pub struct Options {
    pub queues: Vec<Queue>,
    pub concurrency: usize,
    pub name: String,
    /// Run the outbox relay in this process (on by default; any number of
    /// relays may run).
    pub relay: bool,
    /// "Now" for time-driven rules (the monthly fee); tests move it.
    pub clock: Arc<dyn shared::clock::Clock>,
}

impl Options {
    /// Options from the configuration alone, with a unique process name.
    pub fn from_config(config: &Config) -> Self {
        Self {
            queues: config.worker.queues.clone(),
            concurrency: config.worker.concurrency,
            name: config.worker.name.clone().unwrap_or_else(unique_name),
            relay: true,
            clock: Arc::new(shared::clock::SystemClock),
        }
    }
}

/// `host-pid-random`: unique per process even when containers share a
/// hostname or reuse pids. Two processes with one name would break each
/// other's orphan recovery.
pub fn unique_name() -> String {
    format!(
        "{}-{}-{:04x}",
        announce::host_name(),
        std::process::id(),
        rand::random::<u16>()
    )
}

/// How often a worker's Redis call is retried on a fresh connection before
/// it fails (see `queue::connect`).
pub const REDIS_RETRIES: usize = 2;

/// Runs a worker process until `shutdown` completes, then stops fetching,
/// lets in-flight jobs finish (up to `WORKER_SHUTDOWN_TIMEOUT_SECS`) and
/// returns. Health and metrics are served on `WORKER_HTTP_ADDR`.
pub async fn run(
    config: Config,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.worker.http_addr)
        .await
        .with_context(|| {
            format!(
                "WORKER_HTTP_ADDR: cannot listen on {}",
                config.worker.http_addr
            )
        })?;
    run_on(listener, config, options, shutdown).await
}

/// [`run`] with an already bound listener for the health server.
///
/// In order: build the clients, serve health at once, wait for PostgreSQL
/// and Redis, upgrade old queue layouts, start a supervised runner per
/// queue and the background tasks, then drain on `shutdown`.
pub async fn run_on(
    listener: tokio::net::TcpListener,
    config: Config,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let started = Instant::now();
    let db = shared::db::pool(&config.database, &format!("bourse-worker {}", options.name))
        .map_err(anyhow::Error::msg)
        .context("DATABASE_URL")?;
    shared::email::render::self_check().context("email templates")?;
    let mailer = Mailer::from_config(&config.mail).map_err(anyhow::Error::msg)?;
    let schedules = schedules::Schedules::from_config(&config)?;
    let providers = shared::rates::Providers::from_config(&config.rates)
        .map_err(|e| anyhow::anyhow!("price providers: {e}"))?;
    let exchange = shared::trading::exchange::from_config(&config.trading)
        .map_err(|e| anyhow::anyhow!("exchange: {e}"))?;
    let webhooks = shared::webhooks::send::Sender::new(
        config.webhooks.allow_private_addresses,
        config.webhooks.timeout,
    )
    .map_err(anyhow::Error::msg)?;
    let (client, conn) =
        queue::connect(&config.redis, REDIS_RETRIES).map_err(anyhow::Error::msg)?;
    let queues = job_queues(conn.clone(), &config);
    let metrics = Arc::new(Metrics::new());
    let health = Health::default();
    // Before health is served: a check between the two must not see a
    // process with no queues and nothing awaited, and take it for healthy.
    health.waiting("starting: waiting for PostgreSQL, the migrations and Redis");
    let (stop_tx, stop_rx) = watch::channel(false);

    let http_addr = listener.local_addr()?;
    let http_task = http::spawn(
        listener,
        http::HttpState {
            health: health.clone(),
            lease: config.worker.lease,
            started,
            db: db.clone(),
            queues: queues.clone(),
            metrics: metrics.clone(),
            worker_name: options.name.clone(),
        },
        stop_rx.clone(),
    );

    // Nothing below works without PostgreSQL (with our migrations) and
    // Redis: wait for them, health answering 503 meanwhile, rather than
    // crash and be restarted in a loop.
    let mut shutdown = std::pin::pin!(shutdown);
    tokio::select! {
        ready = wait_for_dependencies(&config, &db, &conn) => {
            ready?;
            queue::check_eviction_policy(&conn).await;
            upgrade::queue_layouts(&queues, &options.queues).await?;
            // Every queue this process serves is starting from now (its
            // runner comes a moment later), so none is missing from health.
            for queue in &options.queues {
                health.starting(*queue);
            }
            health.ready();
        }
        () = &mut shutdown => {
            let _ = stop_tx.send(true);
            let _ = http_task.await;
            tracing::info!("stopped while waiting for PostgreSQL and Redis");
            return Ok(());
        }
    }

    let ctx = Arc::new(JobContext {
        config: config.clone(),
        db: db.clone(),
        mailer,
        worker_name: options.name.clone(),
        providers: limits::limit_providers(providers, &conn, &config),
        relays: queue::wake::RelayWaker {
            redis: conn.clone(),
            prefix: config.redis.prefix.clone(),
        },
        limits: limits::Limits::from_config(&conn, &config),
        redis: conn,
        metrics: metrics.clone(),
        exchange,
        webhooks,
        settler: jobs::bets::Settler::start(
            db.clone(),
            config.rates.clone(),
            config.bets.settle_in_flight,
        ),
        clock: options.clock.clone(),
    });
    let wakers = Wakers::default();
    let pauses = Pauses::read(&queues).await;
    let (supervisors, outcomes) = start_queue_runners(
        &ctx,
        &queues,
        &options,
        &health,
        (&wakers, &pauses),
        &stop_rx,
    );
    let told = pauses.clone();
    let mut background = vec![
        tokio::spawn(queue::wake::listen(
            client.clone(),
            queues.wake_channel(),
            move |wake| {
                if matches!(wake, Wake::Paused | Wake::All) {
                    told.reread();
                }
                wakers.apply(wake);
            },
            stop_rx.clone(),
        )),
        tokio::spawn(pauses.follow(queues.clone(), stop_rx.clone())),
        tokio::spawn(
            announce::Announcer::new(
                queues.clone(),
                &options,
                chrono::Utc::now(),
                config.worker.heartbeat,
            )
            .run(stop_rx.clone()),
        ),
        tokio::spawn(
            Upkeep {
                queues: queues.clone(),
                name: options.name.clone(),
                outcomes,
                metrics: metrics.clone(),
                history_every: config.jobs.history_every,
            }
            .run(stop_rx.clone()),
        ),
    ];
    background.extend(schedules.start(&ctx, &options, &stop_rx));
    if options.queues.contains(&Queue::OrderClearing) {
        background.push(tokio::spawn(
            clearing_sweep::ClearingSweep {
                db: db.clone(),
                after: config.trading.resubmit_after,
            }
            .run(stop_rx.clone()),
        ));
    }
    if options.relay {
        background.push(tokio::spawn(
            Relay {
                config: config.clone(),
                db: db.clone(),
                subscriber: client.clone(),
                queues: queues.clone(),
                metrics: metrics.clone(),
                health: health.clone(),
            }
            .run(stop_rx.clone()),
        ));
    }
    let queue_names: Vec<&str> = options.queues.iter().map(|q| q.as_str()).collect();
    tracing::info!(
        worker = %options.name,
        queues = %queue_names.join(","),
        concurrency = options.concurrency,
        relay = options.relay,
        http = %http_addr,
        "worker started"
    );

    shutdown.await;
    background.push(http_task);
    drain(&config, &stop_tx, supervisors, background).await;
    tracing::info!("worker stopped");
    Ok(())
}

/// PostgreSQL, our migrations and Redis, each within `STARTUP_WAIT_SECS`.
async fn wait_for_dependencies(
    config: &Config,
    db: &shared::db::DbPool,
    conn: &queue::Conn,
) -> anyhow::Result<()> {
    let url = config.database.url.expose_secret();
    shared::startup::wait_for_postgres(db, url, config.startup_wait).await?;
    shared::startup::wait_for_migrations(&config.database, config.startup_wait).await?;
    queue::wait_until_reachable(conn, &config.redis, config.startup_wait).await?;
    Ok(())
}

/// One supervised runner per queue served, each with the counts of its
/// jobs' outcomes (which the upkeep task publishes).
fn start_queue_runners(
    ctx: &Arc<JobContext>,
    queues: &JobQueues,
    options: &Options,
    health: &Health,
    (wakers, pauses): (&Wakers, &Pauses),
    stop: &watch::Receiver<bool>,
) -> (Vec<JoinHandle<()>>, HashMap<Queue, Arc<Outcomes>>) {
    let mut outcomes = HashMap::new();
    let mut supervisors = Vec::new();
    for &queue in &options.queues {
        let queue_outcomes = Arc::new(Outcomes::default());
        outcomes.insert(queue, queue_outcomes.clone());
        let runner = QueueRunner {
            queue,
            queues: queues.clone(),
            executor: Arc::new(Executor {
                queue,
                ctx: ctx.clone(),
                queues: queues.clone(),
                max_attempts: ctx.config.jobs.max_attempts,
                metrics: ctx.metrics.clone(),
                outcomes: queue_outcomes,
            }),
            config: ctx.config.worker.clone(),
            concurrency: options.concurrency,
            process_name: options.name.clone(),
            health: health.clone(),
            wakers: wakers.clone(),
            paused: pauses.subscribe(),
        };
        supervisors.push(tokio::spawn(runner.supervise(stop.clone())));
    }
    (supervisors, outcomes)
}

/// Stops fetching, lets in-flight jobs finish within
/// `WORKER_SHUTDOWN_TIMEOUT_SECS`, then gives the background tasks and the
/// HTTP server 2 s together, so a stop stays inside the drain timeout plus
/// 2 s (orchestrators' grace periods are set from that).
async fn drain(
    config: &Config,
    stop: &watch::Sender<bool>,
    supervisors: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
) {
    tracing::info!(
        timeout_secs = config.worker.shutdown_timeout.as_secs(),
        "shutting down: no new jobs, finishing in-flight ones"
    );
    let _ = stop.send(true);
    let drained = tokio::time::timeout(
        config.worker.shutdown_timeout,
        futures::future::join_all(supervisors),
    )
    .await;
    if drained.is_err() {
        tracing::warn!(
            "in-flight jobs did not finish in time; they return to the queue after the lease"
        );
    }
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        futures::future::join_all(background),
    )
    .await;
}

/// The queues as a worker process uses them: with the dead-set bounds
/// (`DEAD_MAX_PER_QUEUE`, `DEAD_TTL_DAYS`) applied as jobs die, and the
/// retry backoff (`JOB_BACKOFF_BASE_MS`, `JOB_BACKOFF_MAX_MS`).
pub fn job_queues(conn: queue::Conn, config: &Config) -> JobQueues {
    JobQueues::new(conn, config.redis.prefix.clone())
        .with_dead_bounds(queue::DeadBounds {
            max_per_queue: config.jobs.dead_max_per_queue,
            ttl: config.jobs.dead_ttl,
        })
        .with_retry_backoff(config.jobs.backoff_base, config.jobs.backoff_max)
}
