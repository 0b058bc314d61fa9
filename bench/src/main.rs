//! `bourse-bench`: measures Bourse with real processes.
//!
//! - `jobs`: no-op jobs pushed, then drained by 1 and 2 `bourse-worker`
//!   processes: enqueue and completion rates, pick-up latency, peak RSS.
//! - `rates`: `GET /api/v1/rates` under load against a `bourse-api` it starts.
//! - `transfers`: authenticated transfers over HTTP among many wallets, then
//!   the ledger check.
//! - `delayed`: no-op jobs due uniformly over a window: lateness, duplicates.
//! - `settlement`: real bets falling due uniformly: settlement lateness,
//!   exactly-once payouts, the ledger check.
//! - `alerts`: a million active alerts; evaluation of an observation that
//!   crosses none, and of one that crosses ten thousand (triggers, emails).
//! - `liquidation`: 100,000 open bets and one observation that liquidates
//!   10,000 of them: time until the last is settled and its email queued.
//! - `fees`: a million fiat wallets due at once (10% short): time until all
//!   are charged or blocked, a rerun, transfers meanwhile, the ledger check.
//! - `idle`: Redis commands per second that 1, 10 and 50 idle worker
//!   processes cost, on a private `redis-server`.
//! - `house`: a deterministic simulation of 100,000 bets on the simulated
//!   price walk: the house's mean result per bet with and without
//!   liquidation.
//! - `hosts`: the API and workers on three network namespaces, PostgreSQL
//!   and Redis on a fourth, 2 ms ± 1 ms between them, two clocks skewed:
//!   job throughput, then settlement through a SIGKILL and a SIGSTOP.
//! - `webhooks`: 10,000 events to 10 endpoints, delivered by worker
//!   processes to a receiver in this process: deliveries per second,
//!   duplicates, signatures checked.
//! - `mixed`: a realistic mix (rates, transfers, orders, bets, alerts) over
//!   HTTP against one API and two workers serving every queue: per-route
//!   throughput and latency, the job backlog over time, settlement lateness,
//!   every process's RSS, the ledger check.
//!
//! ```text
//! cargo build --release -p bourse-worker -p bourse-api -p bourse-bench
//! target/release/bourse-bench jobs --count 20000 --processes 1,2
//! target/release/bourse-bench rates
//! target/release/bourse-bench transfers
//! target/release/bourse-bench delayed
//! target/release/bourse-bench settlement
//! target/release/bourse-bench alerts
//! target/release/bourse-bench liquidation
//! target/release/bourse-bench fees
//! target/release/bourse-bench mixed
//! target/release/bourse-bench idle --processes 1,10,50
//! target/release/bourse-bench hosts
//! target/release/bourse-bench house
//! target/release/bourse-bench webhooks --events 10000 --endpoints 10
//! ```
//!
//! Each scenario uses its own Redis prefix (and `transfers` its own
//! database) and cleans up after itself.

mod alerts;
mod delayed;
mod fees;
mod hosts;
mod house;
mod http;
mod idle;
mod jobs;
mod liquidation;
mod mixed;
mod outbox;
mod rates;
mod scale;
mod settlement;
mod support;
mod transfers;
mod webhooks;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret as _;
use shared::config::Config;

#[derive(Parser)]
#[command(name = "bourse-bench", about = "Benchmarks for Bourse")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Webhook events delivered to endpoints served by this process.
    Webhooks {
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        #[arg(long, default_value_t = 10)]
        endpoints: usize,
        /// Worker processes serving `webhook`.
        #[arg(long, default_value_t = 1)]
        processes: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// No-op jobs: enqueue rate, completion rate, pick-up latency, RSS.
    Jobs {
        /// Jobs pushed then drained, per run.
        #[arg(long, default_value_t = 20_000)]
        count: usize,
        /// Worker process counts to run, comma-separated.
        #[arg(long, default_value = "1,2")]
        processes: String,
        /// `--concurrency` of each worker process.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Jobs fetched per Redis round trip (WORKER_BATCH_SIZE).
        #[arg(long, default_value_t = 200)]
        batch_size: usize,
        /// Jobs pushed one by one for the latency measurement.
        #[arg(long, default_value_t = 2_000)]
        latency_count: usize,
        /// Seconds over which the latency jobs are spread.
        #[arg(long, default_value_t = 10)]
        latency_secs: u64,
    },
    /// `GET /api/v1/rates` under load from this process.
    Rates {
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Seconds of measured load (after one second of warm-up).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Authenticated transfers over HTTP, then the ledger check.
    Transfers {
        /// Wallets (one user each) money moves among.
        #[arg(long, default_value_t = 1_000)]
        wallets: usize,
        /// Concurrent clients (keep-alive connections).
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Seconds of measured load (after one second of warm-up).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Send half the transfers among 10 hot wallets.
        #[arg(long)]
        hot_spot: bool,
    },
    /// No-op delayed jobs due uniformly over a window: lateness.
    Delayed {
        #[arg(long, default_value_t = 2_000)]
        count: usize,
        /// Worker processes.
        #[arg(long, default_value_t = 2)]
        processes: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Seconds before the window opens.
        #[arg(long, default_value_t = 2.0)]
        lead: f64,
        /// Seconds the due times are spread over.
        #[arg(long, default_value_t = 10.0)]
        spread: f64,
        /// WORKER_LEASE_SECS of the workers.
        #[arg(long, default_value_t = 5)]
        lease_secs: u64,
        /// Extra jobs waiting an hour (never run here).
        #[arg(long, default_value_t = 0)]
        waiting: usize,
    },
    /// Real bets falling due uniformly over a window: settlement lateness.
    Settlement {
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        #[arg(long, default_value_t = 2)]
        processes: usize,
        #[arg(long, default_value_t = 128)]
        concurrency: usize,
        #[arg(long, default_value_t = 5.0)]
        lead: f64,
        #[arg(long, default_value_t = 10.0)]
        spread: f64,
        /// Queues the workers serve.
        #[arg(long, default_value = "all")]
        queues: String,
        /// Extra processes serving only `email`.
        #[arg(long, default_value_t = 0)]
        email_workers: usize,
        /// `--concurrency` of those.
        #[arg(long, default_value_t = 4)]
        email_concurrency: usize,
    },
    /// A million due fiat wallets: the monthly fee run.
    Fees {
        /// Due wallets (one USD, EUR and KZT wallet per user).
        #[arg(long, default_value_t = 1_000_000)]
        count: i64,
        #[arg(long, default_value_t = 2)]
        processes: usize,
        /// Concurrent transfer loops while the fees are charged.
        #[arg(long, default_value_t = 2)]
        transfer_clients: usize,
        /// Transfers per second, all loops together.
        #[arg(long, default_value_t = 200)]
        transfer_rate: u64,
    },
    /// A realistic mix over HTTP against one API and two workers.
    Mixed {
        /// Users, each with a funded USD and BTC wallet.
        #[arg(long, default_value_t = 2_000)]
        users: usize,
        /// Seconds of load.
        #[arg(long, default_value_t = 60)]
        secs: u64,
        /// Requests per second, all routes together (open loop); 0: closed
        /// loop, each connection sending as fast as it is answered.
        #[arg(long, default_value_t = 400)]
        rate: u64,
        /// Keep-alive connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// API processes (connections spread over them).
        #[arg(long, default_value_t = 1)]
        apis: usize,
        /// Worker processes (every queue).
        #[arg(long, default_value_t = 2)]
        processes: usize,
        /// `--concurrency` of each worker process.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Route weights.
        #[arg(
            long,
            default_value = mixed::DEFAULT_MIX
        )]
        mix: String,
        /// Seconds per row of the printed backlog series.
        #[arg(long, default_value_t = 5)]
        series_every: u64,
    },
    /// Idle worker processes: the Redis commands per second they cost.
    Idle {
        /// Worker process counts to run, comma-separated.
        #[arg(long, default_value = "1,10,50")]
        processes: String,
        /// Seconds between the last process registering and the window.
        #[arg(long, default_value_t = 10)]
        warmup: u64,
        /// Seconds of measurement.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// RATE_REFRESH_CRON of the workers (default: once a year, so no
        /// job runs; `"* * * * * *"` measures a default deployment).
        #[arg(long, default_value = "0 0 0 1 1 *")]
        refresh_cron: String,
    },
    /// Jobs through the outbox at full speed while scheduled bet
    /// settlements wait in it: throughput, lateness, relay CPU, table size.
    Outbox {
        /// Scheduled `settle_bet` rows waiting (due within a day).
        #[arg(long, default_value_t = 1_000_000)]
        scheduled: i64,
        /// Seconds of flow.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Recorded jobs due at random times in the flow: their lateness.
        #[arg(long, default_value_t = 2_000)]
        sample: usize,
        /// Worker processes running the jobs (the relay has its own).
        #[arg(long, default_value_t = 1)]
        processes: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Whether the house loses on average: a deterministic simulation of
    /// bets on the simulated price walk, with and without liquidation.
    House {
        #[arg(long, default_value_t = 100_000)]
        bets: usize,
        /// Days of the walk (one price a second).
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value = "1,2,5,10,25,50,100")]
        leverages: String,
        /// Bet durations in seconds.
        #[arg(long, default_value = "10,60,600,3600,86400")]
        durations: String,
    },
    /// Bourse across hosts (network namespaces, 2 ms ± 1 ms links, skewed
    /// clocks): job throughput, then settlement through a SIGKILL and a
    /// SIGSTOP. Needs root.
    Hosts {
        /// Recorded probe jobs for the throughput run.
        #[arg(long, default_value_t = 20_000)]
        probes: usize,
        /// Bets falling due through the faults.
        #[arg(long, default_value_t = 5_000)]
        bets: usize,
        /// Seconds before the bets' window opens.
        #[arg(long, default_value_t = 5.0)]
        lead: f64,
        /// Seconds the bets' due times are spread over.
        #[arg(long, default_value_t = 60.0)]
        spread: f64,
        /// `--concurrency` of each of the three worker processes.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Host b's clock is this many seconds ahead, host c's behind.
        #[arg(long, default_value_t = 3)]
        skew_secs: i64,
        /// Seconds host c's worker stays SIGSTOPped (longer than the
        /// default lease of 9 s, so its jobs are taken over).
        #[arg(long, default_value_t = 15)]
        freeze_secs: u64,
        /// WORKER_LEASE_SECS of the workers (the default's 9 s).
        #[arg(long, default_value_t = 9)]
        lease_secs: u64,
    },
    /// How throughput, lateness and CPU change with the number of
    /// processes: `jobs` and `settlement` with each worker count, then
    /// `mixed` with each API count (their usual lines, with CPU shares).
    Scale {
        /// Worker process counts for `jobs` and `settlement`.
        #[arg(long, default_value = "1,2,4,8")]
        workers: String,
        /// API process counts for `mixed` (two worker processes).
        #[arg(long, default_value = "1,2")]
        apis: String,
        /// `--concurrency` of each worker process, split so the total stays
        /// the same whatever the count (64 over 1 process, 8 each over 8).
        #[arg(long, default_value_t = 64)]
        total_concurrency: usize,
        /// Seconds of `mixed` load per API count.
        #[arg(long, default_value_t = 30)]
        mixed_secs: u64,
    },
    /// Open bets and one observation liquidating many of them.
    Liquidation {
        /// Open bets (half up, half down, leverage 1–100).
        #[arg(long, default_value_t = 100_000)]
        bets: usize,
        /// About how many `up` bets the observation reaches.
        #[arg(long, default_value_t = 10_000)]
        liquidated: i64,
        #[arg(long, default_value_t = 2)]
        processes: usize,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// A million active alerts: quiet and crossing observations.
    Alerts {
        /// Active alerts.
        #[arg(long, default_value_t = 1_000_000)]
        count: i64,
        /// How many of them the crossing observation crosses.
        #[arg(long, default_value_t = 10_000)]
        crossed: i64,
        #[arg(long, default_value_t = 2)]
        processes: usize,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::from_env().map_err(|e| anyhow::anyhow!("{e}"))?;
    match cli.scenario {
        Scenario::Jobs {
            count,
            processes,
            concurrency,
            batch_size,
            latency_count,
            latency_secs,
        } => {
            support::migrate(config.database.url.expose_secret()).await?;
            for workers in parse_counts(&processes)? {
                jobs::JobsRun {
                    config: &config,
                    count,
                    workers,
                    concurrency,
                    batch_size,
                    latency_count,
                    latency_secs,
                }
                .measure()
                .await?;
            }
        }
        Scenario::Rates {
            connections,
            seconds,
        } => {
            support::migrate(config.database.url.expose_secret()).await?;
            rates::run(&config, connections, seconds).await?;
        }
        Scenario::Transfers {
            wallets,
            clients,
            seconds,
            hot_spot,
        } => transfers::run(&config, wallets, clients, seconds, hot_spot).await?,
        Scenario::Delayed {
            count,
            processes,
            concurrency,
            lead,
            spread,
            lease_secs,
            waiting,
        } => {
            delayed::DelayedRun {
                config: &config,
                count,
                processes,
                concurrency,
                lead,
                spread,
                lease_secs,
                waiting,
            }
            .measure()
            .await?;
        }
        Scenario::Settlement {
            count,
            processes,
            concurrency,
            lead,
            spread,
            queues,
            email_workers,
            email_concurrency,
        } => {
            settlement::SettlementRun {
                config: &config,
                count,
                processes,
                concurrency,
                lead,
                spread,
                queues,
                email_workers,
                email_concurrency,
                pool_size: 32,
            }
            .measure()
            .await?;
        }
        Scenario::Webhooks {
            events,
            endpoints,
            processes,
            concurrency,
        } => {
            webhooks::WebhooksRun {
                config: &config,
                events,
                endpoints,
                processes,
                concurrency,
            }
            .measure()
            .await?;
        }
        Scenario::Fees {
            count,
            processes,
            transfer_clients,
            transfer_rate,
        } => {
            fees::FeesRun {
                config: &config,
                count,
                processes,
                transfer_clients,
                transfer_rate,
            }
            .measure()
            .await?;
        }
        Scenario::Mixed {
            users,
            secs,
            rate,
            connections,
            apis,
            processes,
            concurrency,
            mix,
            series_every,
        } => {
            mixed::MixedRun {
                config: &config,
                users,
                secs,
                rate,
                connections,
                apis,
                processes,
                concurrency,
                mix,
                series_every,
            }
            .measure()
            .await?;
        }
        Scenario::Idle {
            processes,
            warmup,
            seconds,
            refresh_cron,
        } => {
            support::migrate(config.database.url.expose_secret()).await?;
            for processes in parse_counts(&processes)? {
                idle::IdleRun {
                    config: &config,
                    processes,
                    warmup: std::time::Duration::from_secs(warmup),
                    window: std::time::Duration::from_secs(seconds),
                    refresh_cron: refresh_cron.clone(),
                }
                .measure()
                .await?;
            }
        }
        Scenario::House {
            bets,
            days,
            seed,
            leverages,
            durations,
        } => {
            let run = house::HouseRun {
                bets,
                days,
                seed,
                leverages: parse_counts(&leverages)?
                    .into_iter()
                    .map(u32::try_from)
                    .collect::<Result<_, _>>()?,
                durations: parse_counts(&durations)?
                    .into_iter()
                    .map(u32::try_from)
                    .collect::<Result<_, _>>()?,
            };
            let (lines, _, _) = run.simulate();
            for line in lines {
                println!("{line}");
            }
        }
        Scenario::Hosts {
            probes,
            bets,
            lead,
            spread,
            concurrency,
            skew_secs,
            freeze_secs,
            lease_secs,
        } => {
            hosts::HostsRun {
                probes,
                bets,
                lead,
                spread,
                concurrency,
                skew_secs,
                freeze_secs,
                lease_secs,
            }
            .measure()
            .await?;
        }
        Scenario::Scale {
            workers,
            apis,
            total_concurrency,
            mixed_secs,
        } => {
            scale::ScaleRun {
                config: &config,
                workers: parse_counts(&workers)?,
                apis: parse_counts(&apis)?,
                total_concurrency,
                mixed_secs,
            }
            .measure()
            .await?;
        }
        Scenario::Outbox {
            scheduled,
            seconds,
            sample,
            processes,
            concurrency,
        } => {
            outbox::OutboxRun {
                config: &config,
                scheduled,
                seconds,
                sample,
                processes,
                concurrency,
            }
            .measure()
            .await?;
        }
        Scenario::Alerts {
            count,
            crossed,
            processes,
            concurrency,
        } => {
            alerts::AlertsRun {
                config: &config,
                count,
                crossed,
                processes,
                concurrency,
            }
            .measure()
            .await?;
        }
        Scenario::Liquidation {
            bets,
            liquidated,
            processes,
            concurrency,
        } => {
            liquidation::LiquidationRun {
                config: &config,
                bets,
                liquidated,
                processes,
                concurrency,
            }
            .measure()
            .await?;
        }
    }
    Ok(())
}

/// `--processes 1,10,50`.
fn parse_counts(list: &str) -> anyhow::Result<Vec<usize>> {
    list.split(',')
        .map(|p| p.trim().parse())
        .collect::<Result<_, _>>()
        .context("--processes")
}
