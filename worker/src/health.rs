//! Liveness of this worker process as `/healthz` reports it.
//!
//! An apalis worker can stop (its Redis backend failed, its heartbeat was
//! refused) while the process keeps running; the supervisor restarts it, and
//! meanwhile this state makes `/healthz` answer 503 so an orchestrator sees
//! the outage. The outbox relay reports here too.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use shared::jobs::Queue;

#[derive(Debug, Clone)]
enum QueueState {
    Starting,
    Running {
        last_heartbeat: Instant,
    },
    Down {
        since: Instant,
        reason: String,
    },
    /// Paused by an operator: no worker, on purpose.
    Paused,
}

#[derive(Debug, Default)]
struct Inner {
    queues: BTreeMap<Queue, QueueState>,
    relay_error: Option<String>,
    /// Set while the process waits at start for its dependencies.
    waiting: Option<String>,
}

/// Shared, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<Mutex<Inner>>,
}

/// One line per problem; empty when healthy.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HealthReport {
    pub healthy: bool,
    pub problems: Vec<String>,
    /// Queues whose worker has not heartbeated yet (healthy within the
    /// start-up grace): a deploy check can wait for this to be empty.
    pub starting: Vec<String>,
}

impl Health {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A poisoned lock only means another thread panicked mid-update; the
        // map is still usable.
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    pub fn starting(&self, queue: Queue) {
        self.with(|i| i.queues.insert(queue, QueueState::Starting));
    }

    pub fn heartbeat(&self, queue: Queue) {
        self.with(|i| {
            i.queues.insert(
                queue,
                QueueState::Running {
                    last_heartbeat: Instant::now(),
                },
            )
        });
    }

    pub fn paused(&self, queue: Queue) {
        self.with(|i| i.queues.insert(queue, QueueState::Paused));
    }

    pub fn down(&self, queue: Queue, reason: impl Into<String>) {
        let reason = reason.into();
        self.with(|i| {
            i.queues.insert(
                queue,
                QueueState::Down {
                    since: Instant::now(),
                    reason,
                },
            )
        });
    }

    /// Unhealthy, saying why, until [`Health::ready`].
    pub fn waiting(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.with(|i| i.waiting = Some(reason));
    }

    pub fn ready(&self) {
        self.with(|i| i.waiting = None);
    }

    pub fn relay_ok(&self) {
        self.with(|i| i.relay_error = None);
    }

    pub fn relay_failed(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.with(|i| i.relay_error = Some(reason));
    }

    /// Healthy when every queue's worker heartbeat is younger than `lease`
    /// (a worker that has not heartbeated for a lease has lost its jobs to
    /// the others) and none is down. A relay error is reported but is not
    /// fatal: it usually means PostgreSQL is down, which `/readyz` covers.
    pub fn report(
        &self,
        lease: Duration,
        startup_grace: Duration,
        started: Instant,
    ) -> HealthReport {
        self.with(|i| {
            let mut problems: Vec<String> = i.waiting.iter().cloned().collect();
            let starting = i
                .queues
                .iter()
                .filter(|(_, state)| matches!(state, QueueState::Starting))
                .map(|(queue, _)| queue.to_string())
                .collect();
            for (queue, state) in &i.queues {
                match state {
                    QueueState::Starting if started.elapsed() > startup_grace => {
                        problems.push(format!("{queue}: worker has not started"));
                    }
                    QueueState::Starting => {}
                    QueueState::Running { last_heartbeat } if last_heartbeat.elapsed() > lease => {
                        problems.push(format!(
                            "{queue}: no heartbeat for {}s",
                            last_heartbeat.elapsed().as_secs()
                        ));
                    }
                    QueueState::Running { .. } | QueueState::Paused => {}
                    QueueState::Down { since, reason } => problems.push(format!(
                        "{queue}: worker down for {}s: {reason}",
                        since.elapsed().as_secs()
                    )),
                }
            }
            let healthy = problems.is_empty();
            if let Some(error) = &i.relay_error {
                problems.push(format!("outbox relay: {error}"));
            }
            HealthReport {
                healthy,
                problems,
                starting,
            }
        })
    }
}
