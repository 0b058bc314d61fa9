//! `bourse-worker`: runs jobs. See `bourse-worker --help`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shared::{config::Config, jobs::Queue};

#[derive(Parser)]
#[command(name = "bourse-worker", version, about = "Bourse background worker")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// Jobs run at once per queue (overrides WORKER_CONCURRENCY).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Comma-separated queues to serve, or `all` (overrides WORKER_QUEUES).
    #[arg(long)]
    queues: Option<String>,
    /// Unique process name (overrides WORKER_NAME; default host-pid-random).
    #[arg(long)]
    name: Option<String>,
    /// Do not run the outbox relay in this process.
    #[arg(long)]
    no_relay: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the worker (the default).
    Run(RunArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print per-queue counts as JSON.
    Queues,
    /// Inspect, retry or discard dead jobs.
    Dead {
        #[command(subcommand)]
        action: DeadAction,
    },
    /// Pause or resume a queue on every worker process; cancel a waiting job.
    Queue {
        #[command(subcommand)]
        action: QueueAction,
    },
}

#[derive(Subcommand)]
enum QueueAction {
    /// Stop every worker fetching from the queue; it keeps accepting jobs.
    Pause { queue: String },
    /// Let the workers fetch from the queue again.
    Resume { queue: String },
    /// Cancel a job that has not started (queues whose jobs carry no money:
    /// email, order_clearing, probe).
    Cancel { queue: String, id: String },
}

#[derive(Subcommand)]
enum DeadAction {
    /// List dead jobs of a queue as JSON.
    List {
        queue: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Put dead jobs back on their queue (all of them without ids or a
    /// filter).
    Retry {
        queue: String,
        ids: Vec<String>,
        #[command(flatten)]
        filter: DeadFilter,
    },
    /// Delete dead jobs (all of them without ids or a filter).
    Discard {
        queue: String,
        ids: Vec<String>,
        #[command(flatten)]
        filter: DeadFilter,
    },
}

/// Only the dead jobs of one job name, or whose last error contains some
/// text (ignoring case).
#[derive(clap::Args)]
struct DeadFilter {
    #[arg(long, conflicts_with = "ids")]
    job: Option<String>,
    #[arg(long, conflicts_with = "ids")]
    error: Option<String>,
}

impl DeadFilter {
    fn given(&self) -> Option<queue::browse::Filter> {
        let filter = queue::browse::Filter::new(self.job.as_deref(), self.error.as_deref());
        (!filter.is_empty()).then_some(filter)
    }
}

/// Retries (`retry`) or discards dead jobs of `queue`: the ids given, what
/// the filter matches, or all. How many it did.
async fn act_on_dead(
    queues: &queue::JobQueues,
    queue: Queue,
    ids: &[String],
    filter: &DeadFilter,
    retry: bool,
) -> anyhow::Result<usize> {
    Ok(match (filter.given(), retry) {
        (Some(filter), _) => {
            queue::dead::act_on_matching(queues, Some(queue), &filter, retry)
                .await?
                .done
        }
        (None, true) => queue::dead::retry(queues, queue, ids).await?,
        (None, false) => queue::dead::discard(queues, queue, ids).await?,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    shared::cli::run("info,apalis_core=warn,apalis_redis=warn", |config| {
        dispatch(cli, config)
    })
}

async fn dispatch(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command {
        None => run(cli.run, config).await,
        Some(Command::Run(args)) => run(args, config).await,
        Some(Command::Migrate) => {
            shared::startup::wait_for_connection(&config.database, config.startup_wait).await?;
            let conn = shared::db::connect_for_migrations(&config.database)
                .await
                .map_err(shared::db::MigrationError::Connect)?;
            let applied = shared::db::run_migrations(conn).await?;
            println!(
                "migrations applied: {}",
                if applied.is_empty() {
                    "none pending".to_owned()
                } else {
                    applied.join(", ")
                }
            );
            Ok(())
        }
        Some(Command::Queues) => {
            let queues = job_queues(&config)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&queue::dead::stats(&queues).await?)?
            );
            Ok(())
        }
        Some(Command::Dead { action }) => {
            let queues = job_queues(&config)?;
            match action {
                DeadAction::List { queue, limit } => {
                    let jobs = queue::dead::list(&queues, parse_queue(&queue)?, limit).await?;
                    println!("{}", serde_json::to_string_pretty(&jobs)?);
                }
                DeadAction::Retry { queue, ids, filter } => {
                    let n = act_on_dead(&queues, parse_queue(&queue)?, &ids, &filter, true).await?;
                    println!("{n} dead job(s) back on {queue}");
                }
                DeadAction::Discard { queue, ids, filter } => {
                    let n =
                        act_on_dead(&queues, parse_queue(&queue)?, &ids, &filter, false).await?;
                    println!("{n} dead job(s) discarded from {queue}");
                }
            }
            Ok(())
        }
        Some(Command::Queue { action }) => {
            let queues = job_queues(&config)?;
            let (queue, paused) = match action {
                QueueAction::Pause { queue } => (parse_queue(&queue)?, true),
                QueueAction::Resume { queue } => (parse_queue(&queue)?, false),
                QueueAction::Cancel { queue, id } => {
                    let db = shared::db::pool(&config.database, "bourse-worker cancel")
                        .map_err(anyhow::Error::msg)?;
                    let cancelled =
                        queue::cancel::cancel(&queues, &db, parse_queue(&queue)?, &id, "cli")
                            .await?;
                    println!(
                        "{}",
                        serde_json::json!({
                            "queue": cancelled.queue.as_str(),
                            "id": cancelled.id,
                            "job": cancelled.job,
                            "waited_in": cancelled.waited_in.as_str(),
                        })
                    );
                    return Ok(());
                }
            };
            queues.set_paused(queue, paused).await?;
            println!(
                "{}",
                serde_json::json!({ "queue": queue.as_str(), "paused": paused })
            );
            Ok(())
        }
    }
}

fn parse_queue(raw: &str) -> anyhow::Result<Queue> {
    Queue::parse(raw).ok_or_else(|| anyhow::anyhow!("unknown queue {raw:?}"))
}

fn job_queues(config: &Config) -> anyhow::Result<queue::JobQueues> {
    let (_, conn) =
        queue::connect(&config.redis, worker::REDIS_RETRIES).map_err(anyhow::Error::msg)?;
    Ok(worker::job_queues(conn, config))
}

async fn run(args: RunArgs, config: Config) -> anyhow::Result<()> {
    let mut options = worker::Options::from_config(&config);
    if let Some(concurrency) = args.concurrency {
        anyhow::ensure!(
            (1..=10_000).contains(&concurrency),
            "--concurrency must be 1 to 10000"
        );
        options.concurrency = concurrency;
    }
    if let Some(queues) = args.queues {
        options.queues =
            Queue::parse_list(&queues).map_err(|e| anyhow::anyhow!("--queues: {e}"))?;
    }
    if let Some(name) = args.name {
        options.name = name;
    }
    options.relay = !args.no_relay;
    worker::run(config, options, shared::cli::shutdown_signal()).await
}
