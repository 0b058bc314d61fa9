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
mod maintenance;
mod metrics;
mod relay;
mod runner;
mod scheduler;
mod wake;

use std::{collections::HashMap, future::Future, sync::Arc, time::Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use futures::FutureExt as _;
use secrecy::ExposeSecret as _;
use shared::{
    config::Config,
    email::Mailer,
    jobs::{ChargeFees, PurgeExpired, Queue, ReconcileBets, ReconcileEmails},
    schedule::TickJob,
};
use tokio::sync::watch;

pub use crate::execute::Outcomes;
use crate::{
    execute::Executor, health::Health, jobs::JobContext, maintenance::Maintenance,
    metrics::Metrics, relay::Relay, runner::QueueRunner, scheduler::OnTick, wake::Wakers,
};
use queue::JobQueues;

/// Builds a schedule's job for a tick.
type MakeTickJob = fn(DateTime<Utc>) -> TickJob;

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
    // Every process carries these schedules, whatever its queues; each
    // tick runs once in the cluster and its job goes through the outbox
    // (see `scheduler`). The price refresh is apart, below.
    let refresh_cron = scheduler::parse(&config.rates.refresh_cron)
        .map_err(|e| anyhow::anyhow!("RATE_REFRESH_CRON: {e}"))?;
    let queued: Vec<(&'static str, cron::Schedule, MakeTickJob)> = vec![
        (
            "bet_reconcile",
            scheduler::parse(&config.bets.reconcile_cron)
                .map_err(|e| anyhow::anyhow!("BET_RECONCILE_CRON: {e}"))?,
            |tick| TickJob::of(&ReconcileBets { tick }),
        ),
        (
            "email_reconcile",
            scheduler::parse(&config.mail.reconcile_cron)
                .map_err(|e| anyhow::anyhow!("EMAIL_RECONCILE_CRON: {e}"))?,
            |tick| TickJob::of(&ReconcileEmails { tick }),
        ),
        (
            "monthly_fee",
            scheduler::parse(&config.fees.cron)
                .map_err(|e| anyhow::anyhow!("MONTHLY_FEE_CRON: {e}"))?,
            |tick| {
                TickJob::of(&ChargeFees {
                    at: tick,
                    fan_out: 0,
                })
            },
        ),
        (
            "purge",
            scheduler::parse(&config.fees.purge_cron)
                .map_err(|e| anyhow::anyhow!("PURGE_CRON: {e}"))?,
            |tick| TickJob::of(&PurgeExpired { tick }),
        ),
    ];
    let providers = shared::rates::Providers::from_config(&config.rates)
        .map_err(|e| anyhow::anyhow!("price providers: {e}"))?;
    let exchange = shared::trading::exchange::from_config(&config.trading)
        .map_err(|e| anyhow::anyhow!("exchange: {e}"))?;
    let (client, conn) =
        queue::connect(&config.redis, REDIS_RETRIES).map_err(anyhow::Error::msg)?;
    let queues = job_queues(conn.clone(), &config);
    let metrics = Arc::new(Metrics::new());
    let health = Health::default();
    let wakers = Wakers::default();
    let (stop_tx, stop_rx) = watch::channel(false);

    let http_addr = listener.local_addr()?;
    let app = http::router(http::HttpState {
        health: health.clone(),
        lease: config.worker.lease,
        started,
        db: db.clone(),
        queues: queues.clone(),
        metrics: metrics.clone(),
        worker_name: options.name.clone(),
    });
    let mut http_stop = stop_rx.clone();
    let http_task = tokio::spawn(async move {
        let stopped = async move {
            let _ = http_stop.wait_for(|stop| *stop).await;
        };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!(%error, "worker HTTP server failed");
        }
    });

    // Nothing below works without PostgreSQL (with our migrations) and
    // Redis: wait for them, health answering 503 meanwhile, rather than
    // crash and be restarted in a loop.
    let mut shutdown = std::pin::pin!(shutdown);
    let dependencies = async {
        let url = config.database.url.expose_secret();
        shared::startup::wait_for_postgres(&db, url, config.startup_wait).await?;
        shared::startup::wait_for_migrations(&config.database, config.startup_wait).await?;
        queue::wait_until_reachable(&conn, &config.redis, config.startup_wait).await
    };
    health.waiting("starting: waiting for PostgreSQL, the migrations and Redis");
    tokio::select! {
        ready = dependencies => {
            ready?;
            queue::check_eviction_policy(&conn).await;
            // Done and dead sets written by apalis-redis 1.0.0 are plain
            // sets; our copy keeps sorted sets. Converted once, before any
            // worker acknowledges a job into them.
            for &queue in &options.queues {
                // Keys named before hash tags (`bourse:email:active`) move
                // to their tagged names first.
                let renamed = queues.rename_untagged_keys(queue).await?;
                if renamed > 0 {
                    tracing::info!(queue = %queue, renamed, "renamed the queue's keys to hash-tagged names");
                }
                let converted = queues.upgrade_layout(queue).await?;
                if converted > 0 {
                    tracing::info!(queue = %queue, converted, "converted the done, dead and scheduled sets to the current layout");
                }
                let retries = queues.retire_delayed_set(queue).await?;
                if retries > 0 {
                    tracing::info!(queue = %queue, retries, "moved waiting retries to apalis-redis's scheduled set");
                }
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
        providers,
        redis: conn,
        metrics: metrics.clone(),
        exchange,
        settler: jobs::bets::Settler::start(
            db.clone(),
            config.rates.clone(),
            config.bets.settle_in_flight,
        ),
        clock: options.clock.clone(),
    });
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
                max_attempts: config.jobs.max_attempts,
                metrics: metrics.clone(),
                outcomes: queue_outcomes,
            }),
            config: config.worker.clone(),
            concurrency: options.concurrency,
            process_name: options.name.clone(),
            health: health.clone(),
            wakers: wakers.clone(),
        };
        supervisors.push(tokio::spawn(runner.supervise(stop_rx.clone())));
    }

    let mut background = vec![
        tokio::spawn(queue::wake::listen(
            client,
            queues.wake_channel(),
            move |wake| wakers.apply(wake),
            stop_rx.clone(),
        )),
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
            Maintenance {
                queues: queues.clone(),
                name: options.name.clone(),
                outcomes,
                metrics: metrics.clone(),
            }
            .run(stop_rx.clone()),
        ),
    ];
    let make_scheduler = |name, on_tick, schedule| scheduler::Scheduler {
        name,
        on_tick,
        db: db.clone(),
        schedule,
        claimant: options.name.clone(),
        metrics: metrics.clone(),
    };
    for (name, schedule, make) in queued {
        background.push(tokio::spawn(
            make_scheduler(name, OnTick::Queue(make), schedule).run(stop_rx.clone()),
        ));
    }
    if options.queues.contains(&Queue::RateRefresh) {
        // The winner of a refresh tick refreshes here and now, with no
        // Redis on the way: prices must keep coming while Redis is down, or
        // bets due meanwhile are voided (see `scheduler`). Only processes
        // serving `rate_refresh` carry it, as only they ran the job before.
        let (ctx, stop) = (ctx.clone(), stop_rx.clone());
        let run: scheduler::RunTick = Arc::new(move |tick| {
            jobs::refresh_rates::run_here(ctx.clone(), tick, stop.clone()).boxed()
        });
        background.push(tokio::spawn(
            make_scheduler("rate_refresh", OnTick::RunHere(run), refresh_cron).run(stop_rx.clone()),
        ));
    }
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
    tracing::info!(
        timeout_secs = config.worker.shutdown_timeout.as_secs(),
        "shutting down: no new jobs, finishing in-flight ones"
    );
    let _ = stop_tx.send(true);
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
    // Background tasks and the HTTP server stop together, within 2 s in all,
    // so a stop stays inside the drain timeout plus 2 s (orchestrators'
    // grace periods are set from that).
    background.push(http_task);
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        futures::future::join_all(background),
    )
    .await;
    tracing::info!("worker stopped");
    Ok(())
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
