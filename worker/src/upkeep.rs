//! Queue upkeep. Every process publishes its own outcome counters. The
//! cluster-wide chores are done by one process at a time, the holder of
//! the upkeep lease (`JobQueues::hold_upkeep`): promoting due retries (their
//! scheduler promotes them on time, see `execute`; this catches those whose
//! scheduler died), vacuuming done jobs, trimming dead sets and sampling
//! queue depths for the metrics. When every process did all of it for its
//! own queues, an idle deployment's Redis load grew with the number of
//! processes, and the depth sample (one `SCARD` per registered worker) with
//! its square (issue 19). Every step is one atomic script or command, so a
//! brief overlap of two holders is harmless.

use std::{collections::HashMap, sync::Arc, time::Duration};

use queue::{CHUNK, JobQueues};
use shared::jobs::Queue;
use tokio::sync::watch;

use crate::{
    execute::Outcomes,
    metrics::{DepthLabels, Metrics, QueueLabels},
};

pub struct Upkeep {
    pub queues: JobQueues,
    /// This process's name: the upkeep lease's holder.
    pub name: String,
    pub outcomes: HashMap<Queue, Arc<Outcomes>>,
    pub metrics: Arc<Metrics>,
    /// How often the holder samples the outcome counters into the
    /// throughput history (`JOBS_HISTORY_SAMPLE_SECS`).
    pub history_every: Duration,
}

/// How often outcome counters are published and the lease is renewed.
const TICK: Duration = Duration::from_secs(1);
/// A holder silent this long loses the lease to another process.
const LEASE: Duration = Duration::from_secs(6);
/// Ticks between promotion and vacuum passes, and between depth samples
/// (a sample reads eight keys per queue and one per registered worker).
const SWEEP_EVERY: u32 = 10;
/// Ticks between passes over the dead sets' age bound.
const TRIM_EVERY: u32 = 60;

impl Upkeep {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut ticks: u32 = 0;
        let mut failing = false;
        let mut leading = false;
        loop {
            let result = self.tick(ticks, &mut leading).await;
            match result {
                Ok(()) => failing = false,
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "queue upkeep failed; will retry");
                }
                Err(_) => {}
            }
            ticks = ticks.wrapping_add(1);
            tokio::select! {
                () = tokio::time::sleep(TICK) => {}
                _ = shutdown.changed() => {
                    // Publish the last counts and let another process take
                    // the upkeep at once.
                    let _ = self.flush_outcomes().await;
                    if leading {
                        let _ = self.queues.release_upkeep(&self.name).await;
                    }
                    return;
                }
            }
        }
    }

    async fn tick(&self, ticks: u32, leading: &mut bool) -> Result<(), redis::RedisError> {
        self.flush_outcomes().await?;
        let held = self.queues.hold_upkeep(&self.name, LEASE).await?;
        if held != *leading {
            tracing::info!(
                upkeep = held,
                "queue upkeep {}",
                if held { "taken" } else { "handed over" }
            );
            *leading = held;
            if !held {
                // Another process samples now; stale depths would mislead.
                self.metrics.queue_depth.clear();
                self.metrics.dead_dropped.clear();
                self.metrics.queue_paused.clear();
            }
        }
        if !held {
            return Ok(());
        }
        if ticks.is_multiple_of(SWEEP_EVERY) {
            for queue in Queue::ALL {
                while self.queues.promote_due(queue).await?.moved == CHUNK {}
                while self.queues.sweep_done(queue).await? == CHUNK {}
            }
            self.sample().await?;
        }
        let history_ticks = u32::try_from(self.history_every.as_secs().max(1)).unwrap_or(u32::MAX);
        if ticks.is_multiple_of(history_ticks) {
            // A holder that just took over may find a fresh sample from
            // the last one: the script then keeps that one.
            self.queues.record_history(self.history_every).await?;
        }
        if ticks.is_multiple_of(TRIM_EVERY) {
            for queue in Queue::ALL {
                // Dead jobs also age out while none die.
                while self.queues.trim_dead(queue).await? == CHUNK {}
            }
        }
        Ok(())
    }

    /// Queue depths, dead-set drops and pauses, for this process's metrics.
    async fn sample(&self) -> Result<(), redis::RedisError> {
        for queue in Queue::ALL {
            let counts = self.queues.counts(queue).await?;
            let name = queue.as_str();
            for (state, value) in [
                ("pending", counts.pending),
                ("delayed", counts.delayed),
                ("running", counts.running),
                ("dead", counts.dead),
            ] {
                self.metrics
                    .queue_depth
                    .get_or_create(&DepthLabels { queue: name, state })
                    .set(i64::try_from(value).unwrap_or(i64::MAX));
            }
            self.metrics
                .dead_dropped
                .get_or_create(&QueueLabels { queue: name })
                .set(i64::try_from(counts.dead_dropped).unwrap_or(i64::MAX));
            self.metrics
                .queue_paused
                .get_or_create(&QueueLabels { queue: name })
                .set(i64::from(counts.paused));
        }
        Ok(())
    }

    async fn flush_outcomes(&self) -> Result<(), redis::RedisError> {
        for (&queue, outcomes) in &self.outcomes {
            let taken = outcomes.take();
            if taken == (0, 0, 0) {
                continue;
            }
            if let Err(error) = self
                .queues
                .add_outcomes(queue, taken.0, taken.1, taken.2)
                .await
            {
                outcomes.restore(taken);
                return Err(error);
            }
        }
        Ok(())
    }
}
