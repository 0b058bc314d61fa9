use apalis_core::backend::{Backend, Metrics, Statistic};

use crate::{RedisStorage, error::Error, queries::registry};

impl<Args, Conn> Metrics for RedisStorage<Args, Conn>
where
    RedisStorage<Args, Conn>: Backend<Error = Error>,
    Args: 'static + Send + Sync,
    Conn: redis::aio::ConnectionLike + Send + Clone + Sync + 'static,
{
    /// Every registered queue's statistics, combined. Read a queue at a
    /// time (one hash slot per call, so it works on Redis Cluster).
    fn global(&self) -> impl Future<Output = Result<Vec<Statistic>, Error>> + Send {
        let mut conn = self.persist.conn.clone();

        async move {
            let mut per_queue = Vec::new();
            for name in registry::registered_queues(&mut conn).await? {
                per_queue.push(registry::queue_stats(&mut conn, &name).await?);
            }
            Ok(registry::combine(&per_queue))
        }
    }
    fn fetch_by_queue(&self) -> impl Future<Output = Result<Vec<Statistic>, Self::Error>> + Send {
        let mut conn = self.persist.conn.clone();
        let queue_name = self.persist.config.queue.to_string();
        async move { registry::queue_stats(&mut conn, &queue_name).await }
    }
}
