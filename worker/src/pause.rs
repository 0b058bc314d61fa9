//! Following the queues operators pause (`queue::pause`): this process
//! keeps the paused set in a watch channel that every queue runner reads.
//! A runner whose queue is paused stops fetching (its jobs in flight run to
//! their end) and starts a fresh worker once the queue is resumed.
//!
//! The set is read at start, before any runner fetches; again at once when
//! the wake channel says it changed or the subscription (re)connected; and
//! every `queue::pause::REREAD` in case a message was lost.

use std::{collections::BTreeSet, sync::Arc};

use queue::JobQueues;
use shared::jobs::Queue;
use tokio::sync::{Notify, watch};

#[derive(Clone)]
pub struct Pauses {
    paused: watch::Sender<BTreeSet<Queue>>,
    reread: Arc<Notify>,
}

impl Pauses {
    /// Reads the paused set once. A failure is logged and leaves every
    /// queue running: the follower reads it again soon.
    pub async fn read(queues: &JobQueues) -> Self {
        let paused = match queues.paused().await {
            Ok(paused) => paused,
            Err(error) => {
                tracing::warn!(%error, "cannot read the paused queues; reading them again soon");
                BTreeSet::new()
            }
        };
        if !paused.is_empty() {
            let names: Vec<&str> = paused.iter().map(|q| q.as_str()).collect();
            tracing::info!(paused = %names.join(","), "paused queues: not fetching from them");
        }
        Self {
            paused: watch::Sender::new(paused),
            reread: Arc::new(Notify::new()),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<BTreeSet<Queue>> {
        self.paused.subscribe()
    }

    /// The set may have changed: read it now.
    pub fn reread(&self) {
        self.reread.notify_one();
    }

    /// Keeps the set current until shutdown.
    pub async fn follow(self, queues: JobQueues, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = self.reread.notified() => {}
                () = tokio::time::sleep(queue::pause::REREAD) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            match queues.paused().await {
                Ok(now) => {
                    self.paused.send_if_modified(|paused| {
                        if *paused == now {
                            return false;
                        }
                        *paused = now;
                        true
                    });
                }
                Err(error) => {
                    tracing::debug!(%error, "cannot read the paused queues; keeping the last known");
                }
            }
        }
    }
}
