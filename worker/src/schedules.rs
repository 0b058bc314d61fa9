//! The schedules every worker process carries, whatever its queues. Each
//! tick runs once in the cluster (claimed in PostgreSQL, see `scheduler`);
//! most queue a job through the outbox, the price refresh runs in place.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::FutureExt as _;
use shared::{
    config::Config,
    jobs::{ChargeFees, PurgeExpired, Queue, ReconcileBets, ReconcileEmails},
    schedule::TickJob,
};
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    Options,
    jobs::{self, JobContext},
    scheduler::{self, OnTick, Scheduler},
};

/// Builds a schedule's job for a tick.
type MakeTickJob = fn(DateTime<Utc>) -> TickJob;

/// The parsed schedules, checked before anything starts.
pub struct Schedules {
    queued: Vec<(&'static str, cron::Schedule, MakeTickJob)>,
    refresh: cron::Schedule,
}

fn parse(variable: &str, expression: &str) -> anyhow::Result<cron::Schedule> {
    scheduler::parse(expression).map_err(|e| anyhow::anyhow!("{variable}: {e}"))
}

impl Schedules {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let queued: Vec<(&'static str, cron::Schedule, MakeTickJob)> = vec![
            (
                "bet_reconcile",
                parse("BET_RECONCILE_CRON", &config.bets.reconcile_cron)?,
                |tick| TickJob::of(&ReconcileBets { tick }),
            ),
            (
                "email_reconcile",
                parse("EMAIL_RECONCILE_CRON", &config.mail.reconcile_cron)?,
                |tick| TickJob::of(&ReconcileEmails { tick }),
            ),
            (
                "monthly_fee",
                parse("MONTHLY_FEE_CRON", &config.fees.cron)?,
                |tick| {
                    TickJob::of(&ChargeFees {
                        at: tick,
                        fan_out: 0,
                    })
                },
            ),
            (
                "purge",
                parse("PURGE_CRON", &config.fees.purge_cron)?,
                |tick| TickJob::of(&PurgeExpired { tick }),
            ),
        ];
        Ok(Self {
            queued,
            refresh: parse("RATE_REFRESH_CRON", &config.rates.refresh_cron)?,
        })
    }

    /// One scheduler task per schedule this process carries.
    pub fn start(
        self,
        ctx: &Arc<JobContext>,
        options: &Options,
        stop: &watch::Receiver<bool>,
    ) -> Vec<JoinHandle<()>> {
        let make_scheduler = |name, on_tick, schedule| Scheduler {
            name,
            on_tick,
            db: ctx.db.clone(),
            schedule,
            claimant: options.name.clone(),
            metrics: ctx.metrics.clone(),
            relays: ctx.relays.clone(),
        };
        let mut tasks = Vec::new();
        for (name, schedule, make) in self.queued {
            tasks.push(tokio::spawn(
                make_scheduler(name, OnTick::Queue(make), schedule).run(stop.clone()),
            ));
        }
        if options.queues.contains(&Queue::RateRefresh) {
            // The winner of a refresh tick refreshes here and now, with no
            // Redis on the way: prices must keep coming while Redis is down,
            // or bets due meanwhile are voided (see `scheduler`). Only
            // processes serving `rate_refresh` carry it, as only they ran
            // the job before.
            let (ctx, stop_refresh) = (ctx.clone(), stop.clone());
            let run: scheduler::RunTick = Arc::new(move |tick| {
                jobs::refresh_rates::run_here(ctx.clone(), tick, stop_refresh.clone()).boxed()
            });
            tasks.push(tokio::spawn(
                make_scheduler("rate_refresh", OnTick::RunHere(run), self.refresh)
                    .run(stop.clone()),
            ));
        }
        tasks
    }
}
