use apalis_core::backend::{Backend, ListWorkers, RunningWorker};
use redis::Script;

use crate::{RedisStorage, error::Error, queries::registry};

impl<Args: Sync, Conn> ListWorkers for RedisStorage<Args, Conn>
where
    RedisStorage<Args, Conn>: Backend<Error = Error>,
    Args: 'static + Send,
    Conn: redis::aio::ConnectionLike + Sync + Send + Clone,
{
    fn list_workers(&self) -> impl Future<Output = Result<Vec<RunningWorker>, Self::Error>> + Send {
        let config = self.persist.config.clone();
        let mut conn = self.persist.conn.clone();

        async move {
            let worker_metadata_key = format!("{}:workers:", config.queue);
            let json: String = Script::new(include_str!("../../lua/list_workers.lua"))
                .key(config.workers_set())
                .key(worker_metadata_key)
                .invoke_async(&mut conn)
                .await?;
            let workers: Vec<RunningWorker> = serde_json::from_str(&json).map_err(Error::Json)?;

            Ok(workers)
        }
    }

    /// The workers of every registered queue, a queue at a time (one hash
    /// slot per call, so it works on Redis Cluster).
    fn list_all_workers(
        &self,
    ) -> impl Future<Output = Result<Vec<RunningWorker>, Self::Error>> + Send {
        let mut conn = self.persist.conn.clone();

        async move {
            let mut all = Vec::new();
            for queue in registry::registered_queues(&mut conn).await? {
                let json: String = Script::new(include_str!("../../lua/list_workers.lua"))
                    .key(format!("{queue}:workers"))
                    .key(format!("{queue}:workers:"))
                    .invoke_async(&mut conn)
                    .await?;
                let workers: Vec<RunningWorker> =
                    serde_json::from_str(&json).map_err(Error::Json)?;
                all.extend(workers);
            }
            Ok(all)
        }
    }
}
