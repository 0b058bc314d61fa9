//! Cluster-wide schedules. Every worker process carries every schedule; on
//! each tick each one tries to claim the tick in Redis (`SET NX` on a key
//! per tick, queueing the tick's job in the same atomic script) and only
//! the winner's job exists. So a tick runs once however many workers carry
//! the schedule, and ticks keep coming while any worker lives: there is no
//! scheduler process to lose.
//!
//! Schedules are six-field cron expressions in UTC (apalis-cron). Missed
//! ticks are not replayed after downtime: apalis-cron computes the next
//! tick from the current time, and a tick that fires late (a process that
//! was paused) is skipped when it is older than [`LATE_AFTER`]; if another
//! worker ran it, its claim key refuses it anyway.
//!
//! apalis-cron's stream also gets stuck in an error loop once a tick falls
//! into the past before its delay is armed (it keeps returning
//! `OutOfRange` for the same tick); the stream is rebuilt on any error.

use std::{str::FromStr, sync::Arc, time::Duration};

use apalis_cron::CronScheduler;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use queue::{JobQueues, ReadyJob};
use shared::jobs::{JobEnvelope, JobSpec, Queue};
use tokio::sync::watch;
use uuid::Uuid;

use crate::metrics::{Metrics, ScheduleLabels};

/// A tick noticed later than this is not fired: the next one catches up.
pub const LATE_AFTER: Duration = Duration::from_secs(2);

/// What a schedule queues on each tick: the job's queue and envelope
/// fields, built from the tick's time.
pub struct TickJob {
    pub queue: Queue,
    pub job: &'static str,
    pub version: u16,
    pub args: serde_json::Value,
}

impl TickJob {
    pub fn of<J: JobSpec>(job: &J) -> Self {
        Self {
            queue: J::QUEUE,
            job: J::NAME,
            version: J::VERSION,
            args: serde_json::to_value(job).unwrap_or_default(),
        }
    }
}

pub struct Scheduler {
    /// The schedule's name: part of its tick claim keys and metric labels.
    pub name: &'static str,
    pub make: fn(DateTime<Utc>) -> TickJob,
    pub queues: JobQueues,
    pub schedule: cron::Schedule,
    pub claimant: String,
    pub max_attempts: u32,
    pub metrics: Arc<Metrics>,
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

    async fn on_tick(&self, tick_secs: u64) {
        let labels = |outcome: &'static str| ScheduleLabels {
            schedule: self.name,
            outcome,
        };
        let tick_secs = i64::try_from(tick_secs).unwrap_or(i64::MAX);
        let Some(tick) = DateTime::<Utc>::from_timestamp(tick_secs, 0) else {
            return;
        };
        let late = (Utc::now() - tick).to_std().unwrap_or_default();
        if late > LATE_AFTER {
            tracing::info!(%tick, late_ms = late.as_millis() as u64, "skipping a late tick");
            self.metrics
                .schedule_ticks
                .get_or_create(&labels("late"))
                .inc();
            return;
        }
        let job = (self.make)(tick);
        let id = Uuid::now_v7();
        let ready = ReadyJob {
            task_id: format!("{}:{tick_secs}", self.name),
            envelope: JobEnvelope {
                id,
                job: job.job.to_owned(),
                v: job.version,
                args: job.args,
                due_at: tick,
            },
        };
        match self
            .queues
            .claim_tick(
                self.name,
                tick_secs,
                &self.claimant,
                &ready,
                job.queue,
                self.max_attempts,
            )
            .await
        {
            Ok(true) => {
                self.metrics
                    .schedule_ticks
                    .get_or_create(&labels("claimed"))
                    .inc();
            }
            Ok(false) => {
                self.metrics
                    .schedule_ticks
                    .get_or_create(&labels("taken"))
                    .inc();
            }
            Err(error) => {
                self.metrics
                    .schedule_ticks
                    .get_or_create(&labels("failed"))
                    .inc();
                tracing::warn!(%error, %tick, "cannot claim the tick (Redis unreachable?)");
            }
        }
    }
}
