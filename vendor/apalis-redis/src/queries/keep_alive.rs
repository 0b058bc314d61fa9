use apalis_core::worker::context::WorkerContext;
use redis::aio::ConnectionLike;

use crate::{Config, error::Error};

pub(crate) async fn keep_alive<Conn>(
    conn: &mut Conn,
    worker: &WorkerContext,
    config: &Config,
) -> Result<(), Error>
where
    Conn: ConnectionLike,
{
    let keep_alive = redis::Script::new(include_str!("../../lua/keep_alive.lua"));

    let workers_set = config.workers_set();

    keep_alive
        .key(workers_set)
        .arg(worker.name())
        .invoke_async::<bool>(conn)
        .await?;
    Ok(())
}
