//! Operator commands for queues and dead jobs (`bourse-worker queues`,
//! `bourse-worker dead ...`, the admin API). Dead sets are apalis-redis's,
//! bounded and time-ordered (our patched copy): pages are read newest first
//! without loading a whole set.

use shared::jobs::Queue;

use crate::{
    CHUNK, DeadCursor, DeadJob, JobQueues, QueueCounts,
    browse::{Filter, job_name, merge, scan},
};

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

/// A page's order: newest first; jobs that died in the same millisecond by
/// queue name, then by id descending (each queue's own order).
impl Ord for PageCursor {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other
            .died_at_ms
            .cmp(&self.died_at_ms)
            .then_with(|| self.queue.as_str().cmp(other.queue.as_str()))
            .then_with(|| other.id.cmp(&self.id))
    }
}

impl PartialOrd for PageCursor {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Where `queue`'s own page starts after `cursor`, in the page order.
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

fn keeps(filter: &Filter, dead: &QueuedDeadJob) -> bool {
    filter.matches(
        job_name(dead.job.payload.as_ref()),
        dead.job.last_error.as_deref(),
    )
}

/// Dead jobs of one queue, or of all, that match `filter`, newest first,
/// `limit` at a time after `after` (the last one of the previous page);
/// and where the next page starts. Unfiltered, reads at most `limit + 1`
/// jobs per queue; filtered, at most [`SCAN_BUDGET`](crate::browse::SCAN_BUDGET)
/// (a page may then come short, with a cursor to go on from).
pub async fn page(
    queues: &JobQueues,
    only: Option<Queue>,
    filter: &Filter,
    after: Option<PageCursor>,
    limit: usize,
) -> Result<(Vec<QueuedDeadJob>, Option<PageCursor>), redis::RedisError> {
    let chosen: Vec<Queue> = only.map_or_else(|| Queue::ALL.to_vec(), |q| vec![q]);
    let mut sources = Vec::new();
    for queue in chosen {
        let fetch = |cursor: Option<PageCursor>, n: usize| async move {
            let at = match &cursor {
                Some(cursor) => match queue_cursor(queue, cursor) {
                    Some(at) => Some(at),
                    // Nothing of this queue is older than the epoch.
                    None => return Ok(Vec::new()),
                },
                None => None,
            };
            let jobs = queues.dead_page(queue, at.as_ref(), n).await?;
            Ok::<_, redis::RedisError>(
                jobs.into_iter()
                    .map(|job| QueuedDeadJob { queue, job })
                    .collect(),
            )
        };
        let keep = |dead: &QueuedDeadJob| keeps(filter, dead);
        sources.push(
            scan(
                fetch,
                after.clone(),
                keep,
                QueuedDeadJob::cursor,
                limit,
                !filter.is_empty(),
            )
            .await?,
        );
    }
    Ok(merge(sources, QueuedDeadJob::cursor, limit))
}

/// Every dead job of `queue` that matches `filter` now, oldest last.
async fn matching_ids(
    queues: &JobQueues,
    queue: Queue,
    filter: &Filter,
) -> Result<Vec<String>, redis::RedisError> {
    let mut ids = Vec::new();
    let mut cursor: Option<DeadCursor> = None;
    loop {
        let page = queues.dead_page(queue, cursor.as_ref(), CHUNK).await?;
        let ended = page.len() < CHUNK;
        cursor = page.last().map(DeadJob::cursor);
        ids.extend(
            page.into_iter()
                .map(|job| QueuedDeadJob { queue, job })
                .filter(|dead| keeps(filter, dead))
                .map(|dead| dead.job.task_id),
        );
        if ended {
            return Ok(ids);
        }
    }
}

/// What a bulk retry or discard did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bulk {
    /// Dead jobs that matched when it ran.
    pub matched: usize,
    /// Those retried or discarded (fewer if others acted on some meanwhile).
    pub done: usize,
}

/// Retries (`retry`) or discards every dead job of one queue or all that
/// matches `filter` when this runs, [`CHUNK`] at a time. Reads each dead
/// set once: jobs dying meanwhile are left for the next call.
pub async fn act_on_matching(
    queues: &JobQueues,
    only: Option<Queue>,
    filter: &Filter,
    retry: bool,
) -> Result<Bulk, redis::RedisError> {
    let chosen: Vec<Queue> = only.map_or_else(|| Queue::ALL.to_vec(), |q| vec![q]);
    let mut bulk = Bulk::default();
    for queue in chosen {
        let ids = matching_ids(queues, queue, filter).await?;
        bulk.matched += ids.len();
        for chunk in ids.chunks(CHUNK) {
            bulk.done += if retry {
                queues.requeue_dead(queue, chunk).await?
            } else {
                queues.discard_dead(queue, chunk).await?
            };
        }
    }
    Ok(bulk)
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
