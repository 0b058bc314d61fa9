#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure must stop the test"
)]

//! Regression tests of our patches to apalis-redis (vendor/apalis-redis,
//! listed in its PATCHES.md). Each drives apalis-redis through its public
//! API against the real Redis, under a queue name of its own, and fails on
//! upstream's 1.0.0.

use std::time::Duration;

use apalis::prelude::*;
use apalis_redis::{Config, ConnectionManager, RedisStorage};
use harness::{app::REDIS_ADDR, random_suffix};
use redis::AsyncCommands;

async fn connection() -> ConnectionManager {
    apalis_redis::connect(format!("redis://{REDIS_ADDR}/0"))
        .await
        .expect("the shared Redis at 127.0.0.1:6379")
}

fn config() -> Config {
    Config::default()
        .queue(format!("apalis-patch-{}", random_suffix()))
        .heartbeat_interval(Duration::from_secs(1))
        .emit_events(false)
}

/// PATCHES.md 1: a worker that stops leaves the workers set. Upstream's
/// `poll_close` removed the in-flight set's key name, never a member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_leaves_the_workers_set() {
    let mut conn = connection().await;
    let config = config();
    let mut storage: RedisStorage<u32> =
        RedisStorage::new(conn.clone()).with_config(config.clone());
    storage.push(1).await.unwrap();
    let name = format!("patch-worker-{}", random_suffix());
    let worker = WorkerBuilder::new(name.as_str()).backend(storage).build(
        |_job: u32, worker: WorkerContext| async move {
            worker.stop().unwrap();
        },
    );
    tokio::time::timeout(Duration::from_secs(60), worker.run())
        .await
        .expect("the worker stops within a minute")
        .unwrap();
    let workers_set = config.workers_set();
    let members: Vec<String> = conn.zrange(&workers_set, 0, -1).await.unwrap();
    assert!(
        !members.contains(&name),
        "{name} is still in {workers_set} after stopping: {members:?}"
    );
    let _: () = conn.del(&workers_set).await.unwrap();
}
