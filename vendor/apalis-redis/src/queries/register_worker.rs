use apalis_core::worker::context::WorkerContext;
use redis::aio::ConnectionLike;

use crate::{Config, error::Error, queries::millis};

/// Every queue that ever had a worker, scored by its latest registration
/// (ms, the server's clock); read by `ListQueues` and `Metrics::global`.
pub(crate) const QUEUES_REGISTRY: &str = "core:apalis:queues:list";

pub(crate) async fn register_worker<Conn>(
    conn: &mut Conn,
    worker: &WorkerContext,
    config: &Config,
) -> Result<(), Error>
where
    Conn: ConnectionLike,
{
    let register_worker = redis::Script::new(include_str!("../../lua/register_worker.lua"));
    let workers_set = config.workers_set();

    let metadata_key = config.worker_metadata_key(worker);

    let now: u64 = register_worker
        .key(&workers_set)
        .key(metadata_key)
        .arg(0)
        .arg(worker.name())
        .arg(millis(config.orphaned_duration()))
        .arg("RedisStorage")
        .arg(worker.get_service())
        .invoke_async(conn)
        .await?;
    // A single-key command: on a cluster the registry's slot is usually
    // not the queue's, so it cannot be written by the script above.
    redis::cmd("ZADD")
        .arg(QUEUES_REGISTRY)
        .arg("GT")
        .arg(now)
        .arg(workers_set)
        .query_async::<()>(conn)
        .await?;
    Ok(())
}
