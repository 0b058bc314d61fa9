//! A worker process: the queues it serves, how many jobs at once, its
//! heartbeat and lease. Reads `WORKER_HTTP_ADDR`, `WORKER_CONCURRENCY`,
//! `WORKER_QUEUES`, `WORKER_BATCH_SIZE`, `WORKER_HEARTBEAT_SECS`,
//! `WORKER_LEASE_SECS`, `WORKER_SHUTDOWN_TIMEOUT_SECS`, `WORKER_POLL_MS`,
//! `WORKER_NAME`.

use std::{net::SocketAddr, time::Duration};

use super::env::{EnvReader, millis, secs};
use crate::jobs::Queue;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub http_addr: SocketAddr,
    pub concurrency: usize,
    pub queues: Vec<Queue>,
    /// Jobs fetched from Redis per round trip.
    pub batch_size: usize,
    pub heartbeat: Duration,
    /// A worker silent for this long is presumed dead and its jobs go back
    /// to the queue for the others.
    pub lease: Duration,
    pub shutdown_timeout: Duration,
    /// Longest an idle worker waits for a wake-up before fetching anyway.
    pub poll_interval: Duration,
    pub name: Option<String>,
}

impl WorkerConfig {
    pub(super) fn read(env: &mut EnvReader) -> Self {
        let queues = match env.optional("WORKER_QUEUES") {
            None => Queue::ALL.to_vec(),
            Some(raw) => match Queue::parse_list(&raw) {
                Ok(queues) => queues,
                Err(message) => {
                    env.problem("WORKER_QUEUES", message);
                    Queue::ALL.to_vec()
                }
            },
        };
        // Each heartbeat costs Redis a few commands per queue served (and an
        // idle worker fetches once per heartbeat): 3 s keeps an idle process
        // serving every queue under 50 commands/s (bench `idle`).
        let heartbeat_secs: u64 = env.range_or("WORKER_HEARTBEAT_SECS", 3, 1, 300);
        let lease_secs: u64 = env.range_or("WORKER_LEASE_SECS", 9, 2, 3600);
        if lease_secs < heartbeat_secs * 2 {
            env.problem(
                "WORKER_LEASE_SECS",
                format!(
                    "{lease_secs} must be at least twice WORKER_HEARTBEAT_SECS ({heartbeat_secs})"
                ),
            );
        }
        Self {
            http_addr: env.parse_or(
                "WORKER_HTTP_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 9090)),
                "a socket address such as 0.0.0.0:9090",
            ),
            concurrency: env.range_or("WORKER_CONCURRENCY", 32, 1, 10_000),
            queues,
            batch_size: env.range_or("WORKER_BATCH_SIZE", 64, 1, 1000),
            heartbeat: secs(heartbeat_secs),
            lease: secs(lease_secs),
            shutdown_timeout: secs(env.range_or("WORKER_SHUTDOWN_TIMEOUT_SECS", 30, 1, 3600)),
            poll_interval: millis(env.range_or("WORKER_POLL_MS", 3000, 10, 60_000)),
            name: env.optional("WORKER_NAME"),
        }
    }
}
