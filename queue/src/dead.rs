//! Operator commands for queues and dead jobs (`bourse-worker queues`,
//! `bourse-worker dead ...`, the admin API). Dead sets are apalis-redis's,
//! bounded and time-ordered (our patched copy): pages are read newest first
//! without loading a whole set.

use shared::jobs::Queue;

use crate::{CHUNK, DeadCursor, DeadJob, JobQueues, QueueCounts};

/// Counts for every queue.
pub async fn stats(queues: &JobQueues) -> Result<Vec<QueueCounts>, redis::RedisError> {
    let mut all = Vec::new();
    for queue in Queue::ALL {
        all.push(queues.counts(queue).await?);
    }
    Ok(all)
}

/// The newest `limit` dead jobs of a queue.
pub async fn list(
    queues: &JobQueues,
    queue: Queue,
    limit: usize,
) -> Result<Vec<DeadJob>, redis::RedisError> {
    queues.dead_page(queue, None, limit).await
}

/// Applies `act` to the given dead jobs, or to every job that was dead when
/// this started when none are given: oldest first, [`CHUNK`] at a time, and
/// never more than were dead, so jobs dying meanwhile cannot keep it going.
async fn each_chunk<F, Fut>(
    queues: &JobQueues,
    queue: Queue,
    ids: &[String],
    act: F,
) -> Result<usize, redis::RedisError>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = Result<usize, redis::RedisError>>,
{
    let mut done = 0;
    if !ids.is_empty() {
        for chunk in ids.chunks(CHUNK) {
            done += act(chunk.to_vec()).await?;
        }
        return Ok(done);
    }
    let mut left = queues.counts(queue).await?.dead;
    while left > 0 {
        let take = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        let chunk = queues.oldest_dead_ids(queue, take).await?;
        if chunk.is_empty() {
            break;
        }
        left = left.saturating_sub(chunk.len() as u64);
        done += act(chunk).await?;
    }
    Ok(done)
}

/// Retries the given dead jobs, or all of them when `ids` is empty.
pub async fn retry(
    queues: &JobQueues,
    queue: Queue,
    ids: &[String],
) -> Result<usize, redis::RedisError> {
    each_chunk(queues, queue, ids, |chunk| async move {
        queues.requeue_dead(queue, &chunk).await
    })
    .await
}

/// Discards the given dead jobs, or all of them when `ids` is empty.
pub async fn discard(
    queues: &JobQueues,
    queue: Queue,
    ids: &[String],
) -> Result<usize, redis::RedisError> {
    each_chunk(queues, queue, ids, |chunk| async move {
        queues.discard_dead(queue, &chunk).await
    })
    .await
}

/// A dead job and its queue, for the admin API.
#[derive(Debug, Clone)]
pub struct QueuedDeadJob {
    pub queue: Queue,
    pub job: DeadJob,
}

/// Where a page over several queues continues: the last job shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCursor {
    pub died_at_ms: u64,
    pub queue: Queue,
    pub id: String,
}

impl QueuedDeadJob {
    pub fn cursor(&self) -> PageCursor {
        let at = self.job.cursor();
        PageCursor {
            died_at_ms: at.died_at_ms,
            queue: self.queue,
            id: at.task_id,
        }
    }
}

/// The order of a page: newest first; jobs that died in the same
/// millisecond by queue name, then by id descending (each queue's own order).
fn page_order(a: &QueuedDeadJob, b: &QueuedDeadJob) -> std::cmp::Ordering {
    b.job
        .died_at
        .cmp(&a.job.died_at)
        .then_with(|| a.queue.as_str().cmp(b.queue.as_str()))
        .then_with(|| b.job.task_id.cmp(&a.job.task_id))
}

/// Where `queue`'s own page starts after `cursor`, in [`page_order`].
fn queue_cursor(queue: Queue, cursor: &PageCursor) -> Option<DeadCursor> {
    match queue.as_str().cmp(cursor.queue.as_str()) {
        // Same queue: after the cursor's job.
        std::cmp::Ordering::Equal => Some(DeadCursor {
            died_at_ms: cursor.died_at_ms,
            task_id: cursor.id.clone(),
        }),
        // A later queue: its jobs of the cursor's millisecond are still to
        // come (an empty id skips none of them).
        std::cmp::Ordering::Greater => Some(DeadCursor {
            died_at_ms: cursor.died_at_ms,
            task_id: String::new(),
        }),
        // An earlier queue: those were shown; start a millisecond older.
        std::cmp::Ordering::Less => cursor.died_at_ms.checked_sub(1).map(|ms| DeadCursor {
            died_at_ms: ms,
            task_id: String::new(),
        }),
    }
}

/// Dead jobs of one queue, or of all, newest first, `limit` at a time after
/// `after` (the last one of the previous page). Reads at most `limit + 1`
/// jobs per queue.
pub async fn page(
    queues: &JobQueues,
    only: Option<Queue>,
    after: Option<PageCursor>,
    limit: usize,
) -> Result<(Vec<QueuedDeadJob>, bool), redis::RedisError> {
    let chosen: Vec<Queue> = match only {
        Some(queue) => vec![queue],
        None => Queue::ALL.to_vec(),
    };
    let mut jobs = Vec::new();
    for queue in chosen {
        let cursor = match &after {
            Some(after) => match queue_cursor(queue, after) {
                Some(cursor) => Some(cursor),
                // Nothing of this queue is older than the epoch.
                None => continue,
            },
            None => None,
        };
        let page = queues.dead_page(queue, cursor.as_ref(), limit + 1).await?;
        jobs.extend(page.into_iter().map(|job| QueuedDeadJob { queue, job }));
    }
    jobs.sort_by(page_order);
    let more = jobs.len() > limit;
    jobs.truncate(limit);
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
