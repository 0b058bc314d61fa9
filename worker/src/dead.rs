//! Operator commands for queues and dead jobs (`bourse-worker queues`,
//! `bourse-worker dead ...`).

use shared::jobs::Queue;

use crate::queue::{CHUNK, DeadJob, JobQueues, QueueCounts};

/// Counts for every queue.
pub async fn stats(queues: &JobQueues) -> Result<Vec<QueueCounts>, redis::RedisError> {
    let mut all = Vec::new();
    for queue in Queue::ALL {
        all.push(queues.counts(queue).await?);
    }
    Ok(all)
}

/// Up to `limit` dead jobs of a queue.
pub async fn list(
    queues: &JobQueues,
    queue: Queue,
    limit: usize,
) -> Result<Vec<DeadJob>, redis::RedisError> {
    queues.dead(queue, limit).await
}

/// The given ids, or every dead job of the queue when none are given.
async fn chosen(
    queues: &JobQueues,
    queue: Queue,
    ids: &[String],
) -> Result<Vec<String>, redis::RedisError> {
    if ids.is_empty() {
        queues.dead_ids(queue).await
    } else {
        Ok(ids.to_vec())
    }
}

/// Retries the given dead jobs, or all of them when `ids` is empty.
pub async fn retry(
    queues: &JobQueues,
    queue: Queue,
    ids: &[String],
) -> Result<usize, redis::RedisError> {
    let mut moved = 0;
    for chunk in chosen(queues, queue, ids).await?.chunks(CHUNK) {
        moved += queues.requeue_dead(queue, chunk).await?;
    }
    Ok(moved)
}

/// Discards the given dead jobs, or all of them when `ids` is empty.
pub async fn discard(
    queues: &JobQueues,
    queue: Queue,
    ids: &[String],
) -> Result<usize, redis::RedisError> {
    let mut removed = 0;
    for chunk in chosen(queues, queue, ids).await?.chunks(CHUNK) {
        removed += queues.discard_dead(queue, chunk).await?;
    }
    Ok(removed)
}
