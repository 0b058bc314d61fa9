use apalis_core::backend::{ListQueues, QueueInfo};

use crate::{RedisStorage, error::Error, queries::registry};

impl<Args, Conn> ListQueues for RedisStorage<Args, Conn>
where
    Args: 'static + Send,
    Conn: redis::aio::ConnectionLike + Send + Clone + Sync + 'static,
{
    fn list_queues(&self) -> impl Future<Output = Result<Vec<QueueInfo>, Error>> + Send {
        let mut conn = self.persist.conn.clone();

        async move {
            let mut queues = Vec::new();
            // One queue at a time: each call touches one hash slot.
            for name in registry::registered_queues(&mut conn).await? {
                let stats = registry::queue_stats(&mut conn, &name).await?;
                let workers: Vec<String> = redis::cmd("ZRANGE")
                    .arg(format!("{name}:workers"))
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await?;
                queues.push(QueueInfo {
                    name,
                    stats,
                    workers,
                    activity: Vec::new(),
                });
            }
            Ok(queues)
        }
    }
}
