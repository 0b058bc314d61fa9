//! Periodic queue upkeep run by every worker process for its queues:
//! promote due retries, sweep finished jobs, keep dead sets within their
//! bounds, publish outcome counters and sample queue depths. Every step is safe to run from many processes at
//! once (each is one atomic script or command).

use std::{collections::HashMap, sync::Arc, time::Duration};

use queue::{CHUNK, JobQueues};
use shared::jobs::Queue;
use tokio::sync::watch;

use crate::{
    execute::Outcomes,
    metrics::{DepthLabels, Metrics, QueueLabels},
};

pub struct Maintenance {
    pub queues: JobQueues,
    pub served: Vec<Queue>,
    pub outcomes: HashMap<Queue, Arc<Outcomes>>,
    pub metrics: Arc<Metrics>,
    pub interval: Duration,
}

const SAMPLE_EVERY: u32 = 20;

impl Maintenance {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut ticks: u32 = 0;
        let mut failing = false;
        loop {
            let result = self.tick(ticks.is_multiple_of(SAMPLE_EVERY)).await;
            match result {
                Ok(()) => failing = false,
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "queue maintenance failed; will retry");
                }
                Err(_) => {}
            }
            ticks = ticks.wrapping_add(1);
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                _ = shutdown.changed() => {
                    // Publish the last counts before leaving.
                    let _ = self.flush_outcomes().await;
                    return;
                }
            }
        }
    }

    async fn tick(&self, sample: bool) -> Result<(), redis::RedisError> {
        for &queue in &self.served {
            while self.queues.promote_due(queue).await? == CHUNK {}
            while self.queues.sweep_done(queue).await? == CHUNK {}
        }
        self.flush_outcomes().await?;
        if sample {
            for &queue in &self.served {
                // Dead jobs also age out while none die.
                while self.queues.trim_dead(queue).await? == CHUNK {}
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
            }
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
