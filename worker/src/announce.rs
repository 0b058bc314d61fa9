//! Tells operators this process is alive: on every heartbeat it records its
//! name, queues and concurrency in Redis (`JobQueues::announce`), which
//! `GET /api/v1/admin/jobs` lists. A clean stop removes the record; a killed
//! process simply stops announcing and is shown as not alive.

use std::time::Duration;

use chrono::{DateTime, Utc};
use queue::{JobQueues, WorkerProcess};
use tokio::sync::watch;

pub struct Announcer {
    pub queues: JobQueues,
    pub process: WorkerProcess,
    pub every: Duration,
}

/// The host name as the process sees it (the container id under Docker).
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

impl Announcer {
    pub fn new(
        queues: JobQueues,
        options: &crate::Options,
        started_at: DateTime<Utc>,
        every: Duration,
    ) -> Self {
        let process = WorkerProcess {
            name: options.name.clone(),
            host: host_name(),
            pid: std::process::id(),
            queues: options
                .queues
                .iter()
                .map(|q| q.as_str().to_owned())
                .collect(),
            concurrency: options.concurrency,
            relay: options.relay,
            started_at,
            heartbeat_ms: u64::try_from(every.as_millis()).unwrap_or(u64::MAX),
        };
        Self {
            queues,
            process,
            every,
        }
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut failing = false;
        loop {
            match self.queues.announce(&self.process).await {
                Ok(()) => failing = false,
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "cannot announce this worker in Redis; will retry");
                }
                Err(_) => {}
            }
            tokio::select! {
                () = tokio::time::sleep(self.every) => {}
                _ = shutdown.changed() => break,
            }
        }
        if let Err(error) = self.queues.retire(&self.process.name).await {
            tracing::debug!(%error, "cannot remove this worker's record");
        }
    }
}
