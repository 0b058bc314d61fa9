use std::sync::LazyLock;

use apalis_core::worker::context::WorkerContext;
use redis::{Script, aio::ConnectionLike};

use crate::{Config, error::Error};

static KEEP_ALIVE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/keep_alive.lua")));

pub(crate) async fn keep_alive<Conn>(
    conn: &mut Conn,
    worker: &WorkerContext,
    config: &Config,
) -> Result<(), Error>
where
    Conn: ConnectionLike,
{
    heartbeat(conn, config, worker.name()).await
}

/// Renews the lease of registered worker `worker_name` now (on the Redis
/// server's clock); fails when the worker is not registered (never was, or
/// was taken for dead).
///
/// apalis heartbeats a worker from `poll_ready`, which it does not call
/// while every one of the worker's concurrency slots is busy: a worker
/// whose every slot runs a task longer than the orphan timeout is then
/// taken for dead and its tasks run again. Call this from a timer of your
/// own, beside the worker, to keep such a worker's lease.
pub async fn heartbeat<Conn>(conn: &mut Conn, config: &Config, worker_name: &str) -> Result<(), Error>
where
    Conn: ConnectionLike,
{
    KEEP_ALIVE
        .key(config.workers_set())
        .arg(worker_name)
        .invoke_async::<bool>(conn)
        .await?;
    Ok(())
}
