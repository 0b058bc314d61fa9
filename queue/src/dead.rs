//! Operator commands for queues and dead jobs (`bourse-worker queues`,
//! `bourse-worker dead ...`).

use shared::jobs::Queue;

use crate::{CHUNK, DeadJob, JobQueues, QueueCounts};

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

/// A dead job and its queue, for the admin API.
#[derive(Debug, Clone)]
pub struct QueuedDeadJob {
    pub queue: Queue,
    pub job: DeadJob,
}

/// Dead jobs of one queue, or of all, in a stable order (queue, then id),
/// `limit` at a time after `after` (the last one of the previous page).
/// Dead sets are small (operators drain them), so reading the ids whole
/// and sorting is cheaper than keeping a sorted copy in step.
pub async fn page(
    queues: &JobQueues,
    only: Option<Queue>,
    after: Option<(Queue, String)>,
    limit: usize,
) -> Result<(Vec<QueuedDeadJob>, bool), redis::RedisError> {
    let mut chosen: Vec<Queue> = match only {
        Some(queue) => vec![queue],
        None => Queue::ALL.to_vec(),
    };
    // Pages run in name order, the order the cursor compares.
    chosen.sort_by_key(|queue| queue.as_str());
    let mut picked: Vec<(Queue, String)> = Vec::new();
    let mut more = false;
    for queue in chosen {
        if let Some((after_queue, _)) = &after
            && queue.as_str() < after_queue.as_str()
        {
            continue;
        }
        let mut ids = queues.dead_ids(queue).await?;
        ids.sort_unstable();
        for id in ids {
            let past_cursor = match &after {
                Some((after_queue, after_id)) if after_queue == &queue => id > *after_id,
                _ => true,
            };
            if !past_cursor {
                continue;
            }
            if picked.len() == limit {
                more = true;
                break;
            }
            picked.push((queue, id));
        }
        if more {
            break;
        }
    }
    let mut jobs = Vec::with_capacity(picked.len());
    for queue in Queue::ALL {
        let ids: Vec<String> = picked
            .iter()
            .filter(|(q, _)| *q == queue)
            .map(|(_, id)| id.clone())
            .collect();
        if ids.is_empty() {
            continue;
        }
        for job in queues.dead_details(queue, ids).await? {
            jobs.push(QueuedDeadJob { queue, job });
        }
    }
    jobs.sort_by(|a, b| {
        (a.queue.as_str(), &a.job.task_id).cmp(&(b.queue.as_str(), &b.job.task_id))
    });
    Ok((jobs, more))
}

/// The queue whose dead set holds `id`, if any.
pub async fn find(queues: &JobQueues, id: &str) -> Result<Option<Queue>, redis::RedisError> {
    for queue in Queue::ALL {
        if queues.is_dead(queue, id).await? {
            return Ok(Some(queue));
        }
    }
    Ok(None)
}
