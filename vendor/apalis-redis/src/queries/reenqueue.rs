use apalis_core::backend::WorkerFilter;
use redis::{Script, aio::ConnectionLike};

use crate::{Config, error::Error, queries::millis};

pub(crate) async fn reenqueue_orphaned<C>(
    conn: &mut C,
    config: &Config,
    worker_filter: &WorkerFilter,
) -> Result<u32, Error>
where
    C: ConnectionLike,
{
    let worker_set = config.workers_set();
    let active_jobs_list = config.active_jobs_list();
    let signal_list = config.signal_list();

    let script = Script::new(include_str!("../../lua/reenqueue_orphaned.lua"));

    let processed = match worker_filter {
        WorkerFilter::Only(worker_name) => {
            let dead_for = millis(config.heartbeat_interval);
            script
                .key(worker_set)
                .key(active_jobs_list)
                .key(signal_list)
                .key(config.inflight_jobs_set())
                .arg(dead_for)
                .arg(worker_name)
                .invoke_async::<u32>(conn)
                .await?
        }
        _ => {
            let dead_for = millis(config.orphaned_duration());
            script
                .key(worker_set)
                .key(active_jobs_list)
                .key(signal_list)
                .key(config.inflight_jobs_set())
                .arg(dead_for)
                .invoke_async::<u32>(conn)
                .await?
        }
    };

    Ok(processed)
}
