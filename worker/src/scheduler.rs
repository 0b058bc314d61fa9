//! Cluster-wide schedules. Every worker process carries the schedules; on
//! each tick each one tries to claim the tick in PostgreSQL
//! (`shared::schedule`: one `INSERT … ON CONFLICT DO NOTHING` of the tick's
//! `schedule_ticks` row) and only the winner acts on it. So a tick runs once
//! however many workers carry the schedule, and ticks keep coming while any
//! worker lives: there is no scheduler process to lose.
//!
//! What the winner does ([`OnTick`]):
//! - most schedules (the reconcilers, the fee run, the purge) queue their
//!   job through the outbox in the claim's own transaction. The job runs on
//!   whichever worker serves its queue; while Redis is unreachable it waits
//!   in PostgreSQL and the relays push it when Redis answers again;
//! - the price refresh runs in the winning process, at once, with no Redis
//!   on the way: a bet is settled at the price in force at its `settles_at`
//!   and voided without one, so prices must keep coming through a Redis
//!   outage. Only processes serving the `rate_refresh` queue carry that
//!   schedule, so `--queues` still says which processes call the providers.
//!
//! The election lived in Redis before (`SET NX` plus a push, in one script):
//! a Redis outage then stopped every schedule, the price refresh included.
//!
//! Schedules are six-field cron expressions in UTC (apalis-cron). Missed
//! ticks are not replayed after downtime: apalis-cron computes the next
//! tick from the current time, and a tick that fires late (a process that
//! was paused) is skipped when it is older than [`LATE_AFTER`]; if another
//! worker ran it, its claim refuses it anyway.
//!
//! apalis-cron's stream also gets stuck in an error loop once a tick falls
//! into the past before its delay is armed (it keeps returning
//! `OutOfRange` for the same tick); the stream is rebuilt on any error.

use std::{str::FromStr, sync::Arc, time::Duration};

use apalis_cron::CronScheduler;
use chrono::{DateTime, Utc};
use futures::{StreamExt, future::BoxFuture};
use shared::{
    db::DbPool,
    schedule::{self, TickJob},
};
use tokio::sync::watch;

use crate::metrics::{Metrics, ScheduleLabels};

/// A tick noticed later than this is not fired: the next one catches up.
pub const LATE_AFTER: Duration = Duration::from_secs(2);

/// Runs a won tick's work in this process; the future ends when the work is
/// done or given up.
pub type RunTick = Arc<dyn Fn(DateTime<Utc>) -> BoxFuture<'static, ()> + Send + Sync>;

/// What the winner of a tick does.
pub enum OnTick {
    /// Queues this job through the outbox, in the claim's transaction.
    Queue(fn(DateTime<Utc>) -> TickJob),
    /// Runs the work here, at once (the price refresh). It is spawned, so a
    /// slow run never delays the next tick's claim; the work must be
    /// idempotent per tick.
    RunHere(RunTick),
}

pub struct Scheduler {
    /// The schedule's name: part of its tick claims and metric labels.
    pub name: &'static str,
    pub on_tick: OnTick,
    pub db: DbPool,
    pub schedule: cron::Schedule,
    pub claimant: String,
    pub metrics: Arc<Metrics>,
    /// Wakes the outbox relays after a claim that queued the tick's job.
    pub relays: queue::wake::RelayWaker,
}

/// Parses a six-field cron expression (seconds first), UTC.
pub fn parse(expression: &str) -> Result<cron::Schedule, String> {
    cron::Schedule::from_str(expression)
        .map_err(|e| format!("invalid cron expression {expression:?}: {e}"))
}

impl Scheduler {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let mut ticks = CronScheduler::new(self.schedule.clone()).into_stream();
            loop {
                tokio::select! {
                    item = ticks.next() => match item {
                        Some(Ok(tick)) => self.on_tick(tick.get_timestamp()).await,
                        Some(Err(error)) => {
                            // apalis-cron reports a tick it noticed in the
                            // past (a paused process) this way: it is a late
                            // tick, skipped like one.
                            if matches!(error, apalis_cron::Error::OutOfRange { .. }) {
                                self.count("late");
                            }
                            tracing::warn!(%error, "schedule stream failed; rebuilding it");
                            break;
                        }
                        None => return,
                    },
                    _ = shutdown.changed() => return,
                }
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    fn count(&self, outcome: &'static str) {
        self.metrics
            .schedule_ticks
            .get_or_create(&ScheduleLabels {
                schedule: self.name,
                outcome,
            })
            .inc();
    }

    async fn on_tick(&self, tick_secs: u64) {
        let tick_secs = i64::try_from(tick_secs).unwrap_or(i64::MAX);
        let Some(tick) = DateTime::<Utc>::from_timestamp(tick_secs, 0) else {
            return;
        };
        let late = (Utc::now() - tick).to_std().unwrap_or_default();
        if late > LATE_AFTER {
            tracing::info!(%tick, late_ms = late.as_millis() as u64, "skipping a late tick");
            self.count("late");
            return;
        }
        match self.claim(tick).await {
            Ok(true) => {
                self.count("claimed");
                if let OnTick::RunHere(run) = &self.on_tick {
                    tokio::spawn(run(tick));
                }
            }
            Ok(false) => self.count("taken"),
            Err(error) => {
                self.count("failed");
                tracing::warn!(%error, %tick, "cannot claim the tick (PostgreSQL unreachable?)");
            }
        }
    }

    /// Claims `tick` in PostgreSQL, queueing its job in the same
    /// transaction when there is one. Returns whether this process won.
    async fn claim(&self, tick: DateTime<Utc>) -> Result<bool, String> {
        let mut conn = self.db.get().await.map_err(|e| e.to_string())?;
        let won = match &self.on_tick {
            OnTick::Queue(make) => {
                let (won, pushed) = shared::outbox::noting_pushes(schedule::claim_tick_and_queue(
                    &mut conn,
                    self.name,
                    tick,
                    &self.claimant,
                    &make(tick),
                ))
                .await;
                if let (Ok(true), Some(queue)) = (&won, pushed) {
                    self.relays.wake(queue);
                }
                won
            }
            OnTick::RunHere(_) => {
                schedule::claim_tick(&mut conn, self.name, tick, &self.claimant).await
            }
        };
        won.map_err(|e| e.to_string())
    }
}
