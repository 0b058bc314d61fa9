//! Scenario `scale`: how job throughput, settlement lateness and the
//! `mixed` load change with the number of processes (ISSUE 21, item 7).
//! It runs `jobs` with each worker count, `settlement` with each worker
//! count, then `mixed` (closed loop, two workers) with each API count, and
//! prints their usual lines, each with the CPU share of every process of
//! the run and of PostgreSQL and Redis over its measured window. The total
//! concurrency stays the same whatever the count, so what changes is how
//! the work is split, not how much may run at once.

use secrecy::ExposeSecret as _;
use shared::config::Config;

use crate::{jobs, mixed, settlement, support};

pub struct ScaleRun<'a> {
    pub config: &'a Config,
    pub workers: Vec<usize>,
    pub apis: Vec<usize>,
    pub total_concurrency: usize,
    pub mixed_secs: u64,
}

impl ScaleRun<'_> {
    pub async fn measure(&self) -> anyhow::Result<()> {
        let config = self.config;
        support::migrate(config.database.url.expose_secret()).await?;
        let per = |n: usize| (self.total_concurrency / n).max(1);
        for &n in &self.workers {
            jobs::JobsRun {
                config,
                count: 20_000,
                workers: n,
                concurrency: per(n),
                batch_size: 200,
                latency_count: 0,
                latency_secs: 1,
            }
            .measure()
            .await?;
        }
        for &n in &self.workers {
            settlement::SettlementRun {
                config,
                count: 10_000,
                processes: n,
                concurrency: per(n) * 2,
                lead: 5.0,
                spread: 10.0,
                // Emails go out after the window, as in `settlement`'s
                // recorded runs: what is measured is the settlement.
                queues: "bet_settlement,rate_refresh,price_alert,order_clearing,monthly_fee,probe"
                    .to_owned(),
                email_workers: 0,
                email_concurrency: 4,
                // 64 connections in all: PostgreSQL's max_connections
                // (100) does not grow with the worker count.
                pool_size: (64 / n).max(4),
            }
            .measure()
            .await?;
        }
        for &apis in &self.apis {
            mixed::MixedRun {
                config,
                users: 2_000,
                secs: self.mixed_secs,
                rate: 0,
                connections: 64,
                apis,
                processes: 2,
                concurrency: 32,
                mix: mixed::DEFAULT_MIX.to_owned(),
                series_every: 5,
            }
            .measure()
            .await?;
        }
        Ok(())
    }
}
