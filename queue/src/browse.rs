//! Browsing jobs for operators (the jobs page, `GET /api/v1/admin/jobs/
//! scheduled` and `/dead`): pages over every queue at once, filtered by job
//! name and error text.
//!
//! Each source (one queue's scheduled or dead set in Redis, the outbox's
//! delayed rows) is read in its own order from a cursor, a batch at a time,
//! keeping what the filter matches. A filter that matches little would read
//! a whole set for one page, so a source stops after [`SCAN_BUDGET`]
//! entries and says where it stopped (its frontier). The page is then the
//! matches up to the nearest frontier, in one order over all sources, and
//! the next page starts from its last job or that frontier: a short page
//! with a cursor means "nothing more matched so far, keep going".

use std::future::Future;

use chrono::{DateTime, Utc};
use shared::{
    db::DbPool,
    jobs::{JobEnvelope, Queue},
    outbox::{self, DelayedFilter},
};

use crate::JobQueues;

/// What an operator looks for: a job name, text in the last error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    job: Option<String>,
    /// Lowercase: matching ignores case.
    error: Option<String>,
}

impl Filter {
    /// Empty strings filter nothing.
    pub fn new(job: Option<&str>, error: Option<&str>) -> Self {
        fn given(s: Option<&str>) -> Option<&str> {
            s.map(str::trim).filter(|s| !s.is_empty())
        }
        Self {
            job: given(job).map(str::to_owned),
            error: given(error).map(str::to_lowercase),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.job.is_none() && self.error.is_none()
    }

    pub fn job(&self) -> Option<&str> {
        self.job.as_deref()
    }

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Whether a job named `job` whose last error is `error` matches.
    pub fn matches(&self, job: Option<&str>, error: Option<&str>) -> bool {
        self.job.as_deref().is_none_or(|want| job == Some(want))
            && self
                .error
                .as_deref()
                .is_none_or(|want| error.is_some_and(|e| e.to_lowercase().contains(want)))
    }
}

/// The most entries one source reads for one page, matched or not.
pub const SCAN_BUDGET: usize = 5000;
/// Entries read per round trip while filtering.
const BATCH: usize = 200;

/// One source's part of a page.
#[derive(Debug)]
pub struct Scanned<T, K> {
    /// What matched, in the page's order: at most `limit + 1`.
    pub matches: Vec<T>,
    /// The last entry read, if the source was not read to its end.
    pub frontier: Option<K>,
}

/// Reads one source from `after` in its order through `fetch(cursor,
/// count)`, keeping what `keep` accepts, until `limit + 1` matched, the
/// source ended, or [`SCAN_BUDGET`] entries were read.
pub async fn scan<T, K, E, F, Fut>(
    mut fetch: F,
    after: Option<K>,
    keep: impl Fn(&T) -> bool,
    key: impl Fn(&T) -> K,
    limit: usize,
    filtered: bool,
) -> Result<Scanned<T, K>, E>
where
    K: Clone,
    F: FnMut(Option<K>, usize) -> Fut,
    Fut: Future<Output = Result<Vec<T>, E>>,
{
    // Unfiltered, every entry matches: read just one more than a page.
    let batch = if filtered { BATCH } else { limit + 1 };
    let mut cursor = after;
    let mut read = 0;
    let mut matches = Vec::new();
    loop {
        let entries = fetch(cursor.clone(), batch).await?;
        let ended = entries.len() < batch;
        for entry in entries {
            read += 1;
            cursor = Some(key(&entry));
            if keep(&entry) {
                matches.push(entry);
                if matches.len() > limit {
                    return Ok(Scanned {
                        matches,
                        frontier: cursor,
                    });
                }
            }
        }
        if ended {
            return Ok(Scanned {
                matches,
                frontier: None,
            });
        }
        if read >= SCAN_BUDGET {
            return Ok(Scanned {
                matches,
                frontier: cursor,
            });
        }
    }
}

/// One page over several sources: their matches up to the nearest
/// frontier in `K`'s order, at most `limit`, and where the next page
/// starts (none: every source was read to its end).
pub fn merge<T, K: Ord + Clone>(
    sources: Vec<Scanned<T, K>>,
    key: impl Fn(&T) -> K,
    limit: usize,
) -> (Vec<T>, Option<K>) {
    let frontier = sources.iter().filter_map(|s| s.frontier.clone()).min();
    let mut page: Vec<(K, T)> = sources
        .into_iter()
        .flat_map(|s| s.matches)
        .map(|t| (key(&t), t))
        .filter(|(k, _)| frontier.as_ref().is_none_or(|f| k <= f))
        .collect();
    page.sort_by(|a, b| a.0.cmp(&b.0));
    if page.len() > limit {
        page.truncate(limit);
        let next = page.last().map(|(k, _)| k.clone());
        return (page.into_iter().map(|(_, t)| t).collect(), next);
    }
    (page.into_iter().map(|(_, t)| t).collect(), frontier)
}

/// The job name in a stored envelope (`{id, job, v, args, ...}`).
pub fn job_name(payload: Option<&serde_json::Value>) -> Option<&str> {
    payload?.get("job")?.as_str()
}

/// A job waiting for a later time: in its queue's scheduled set (a retry
/// waiting out its backoff, or a delayed push) or in the outbox (a delayed
/// job not yet relayed, such as a bet's settlement).
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledJob {
    pub queue: Queue,
    pub id: String,
    pub job: Option<String>,
    pub run_at: DateTime<Utc>,
    /// Attempts made so far (0: it has not run).
    pub attempts: u32,
    pub last_error: Option<String>,
    /// The job's arguments.
    pub args: Option<serde_json::Value>,
    /// `scheduled` (Redis) or `outbox`.
    pub waiting_in: &'static str,
}

/// Where a page of scheduled jobs continues: soonest first, then by id.
/// Microseconds, the outbox's precision (Redis scores are milliseconds).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ScheduledKey {
    pub run_at_us: i64,
    pub id: String,
}

impl ScheduledJob {
    pub fn key(&self) -> ScheduledKey {
        ScheduledKey {
            run_at_us: self.run_at.timestamp_micros(),
            id: self.id.clone(),
        }
    }
}

impl ScheduledKey {
    /// `{microseconds}/{id}`.
    pub fn encode(&self) -> String {
        format!("{}/{}", self.run_at_us, self.id)
    }

    /// The inverse of [`ScheduledKey::encode`], for a plausible id.
    pub fn decode(raw: &str, max_id_len: usize) -> Option<Self> {
        let (us, id) = raw.split_once('/')?;
        let plausible_us =
            !us.is_empty() && us.len() <= 18 && us.bytes().all(|b| b.is_ascii_digit());
        let plausible_id = !id.is_empty()
            && id.len() <= max_id_len
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !(plausible_us && plausible_id) {
            return None;
        }
        Some(Self {
            run_at_us: us.parse().ok()?,
            id: id.to_owned(),
        })
    }

    /// The same place in a source scored in milliseconds: within the
    /// cursor's millisecond, after its id; past a fraction of one, from
    /// the next millisecond on.
    pub fn in_millis(&self) -> apalis_redis::waiting::ScheduledCursor {
        let ms = u64::try_from(self.run_at_us.div_euclid(1000)).unwrap_or(0);
        if self.run_at_us.rem_euclid(1000) == 0 {
            apalis_redis::waiting::ScheduledCursor {
                due_at_ms: ms,
                task_id: self.id.clone(),
            }
        } else {
            apalis_redis::waiting::ScheduledCursor {
                due_at_ms: ms + 1,
                task_id: String::new(),
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BrowseError {
    #[error("database: {0}")]
    Database(String),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// apalis stores a task's result as JSON `{"Err": "..."}`; the message.
pub(crate) fn stored_error(stored: &str) -> String {
    serde_json::from_str::<serde_json::Value>(stored)
        .ok()
        .and_then(|v| v.get("Err").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| stored.to_owned())
}

fn from_redis(queue: Queue, task: apalis_redis::waiting::ScheduledTask) -> ScheduledJob {
    let envelope: Option<JobEnvelope> = task
        .data
        .as_deref()
        .and_then(|d| serde_json::from_slice(d).ok());
    ScheduledJob {
        queue,
        job: envelope.as_ref().map(|e| e.job.clone()),
        run_at: i64::try_from(task.due_at_ms)
            .ok()
            .and_then(DateTime::from_timestamp_millis)
            .unwrap_or_default(),
        attempts: task
            .attempts
            .as_deref()
            .and_then(|a| a.parse().ok())
            .unwrap_or(0),
        last_error: task.result.as_deref().map(stored_error),
        args: envelope.map(|e| e.args),
        waiting_in: "scheduled",
        id: task.task_id,
    }
}

fn from_outbox(row: outbox::Delayed) -> Option<ScheduledJob> {
    Some(ScheduledJob {
        queue: Queue::parse(&row.queue)?,
        id: row.id.to_string(),
        job: Some(row.job),
        run_at: row.run_at,
        attempts: 0,
        last_error: row.last_error,
        args: Some(row.payload),
        waiting_in: "outbox",
    })
}

/// Jobs waiting for a later time, of one queue or all, soonest first:
/// retries waiting out their backoff and delayed pushes in Redis, and the
/// outbox's delayed rows (not relayed until due). A page of at most
/// `limit`, and where the next one starts.
pub async fn scheduled(
    queues: &JobQueues,
    db: &DbPool,
    only: Option<Queue>,
    filter: &Filter,
    after: Option<ScheduledKey>,
    limit: usize,
) -> Result<(Vec<ScheduledJob>, Option<ScheduledKey>), BrowseError> {
    let chosen: Vec<Queue> = only.map_or_else(|| Queue::ALL.to_vec(), |q| vec![q]);
    let keep = |job: &ScheduledJob| filter.matches(job.job.as_deref(), job.last_error.as_deref());
    let mut sources = Vec::new();
    for queue in chosen {
        let config = queues.apalis_config(queue);
        let fetch = |cursor: Option<ScheduledKey>, n: usize| {
            let mut conn = queues.connection();
            let config = config.clone();
            async move {
                let at = cursor.map(|c| c.in_millis());
                let tasks =
                    apalis_redis::waiting::scheduled_page(&mut conn, &config, at.as_ref(), n)
                        .await?;
                Ok::<_, redis::RedisError>(
                    tasks.into_iter().map(|t| from_redis(queue, t)).collect(),
                )
            }
        };
        sources.push(
            scan(
                fetch,
                after.clone(),
                keep,
                ScheduledJob::key,
                limit,
                !filter.is_empty(),
            )
            .await?,
        );
    }
    // The outbox filters in SQL: one query, one more row than a page.
    let database = |e: &dyn std::fmt::Display| BrowseError::Database(e.to_string());
    let mut conn = db.get().await.map_err(|e| database(&e))?;
    let from = after
        .as_ref()
        .and_then(|k| DateTime::from_timestamp_micros(k.run_at_us).map(|at| (at, k.id.as_str())));
    let rows = outbox::delayed_page(
        &mut conn,
        DelayedFilter {
            queue: only,
            job: filter.job(),
            error: filter.error(),
        },
        from,
        i64::try_from(limit + 1).unwrap_or(i64::MAX),
    )
    .await
    .map_err(|e| database(&e))?;
    let matches: Vec<ScheduledJob> = rows.into_iter().filter_map(from_outbox).collect();
    let frontier = (matches.len() > limit)
        .then(|| matches.last().map(ScheduledJob::key))
        .flatten();
    sources.push(Scanned { matches, frontier });
    Ok(merge(sources, ScheduledJob::key, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_job_names_exactly_and_errors_by_text_ignoring_case() {
        let any = Filter::new(Some(" "), None);
        assert!(any.is_empty());
        assert!(any.matches(None, None));
        let job = Filter::new(Some("probe"), None);
        assert!(job.matches(Some("probe"), None));
        assert!(!job.matches(Some("probes"), None));
        assert!(!job.matches(None, Some("x")));
        let error = Filter::new(None, Some("SMTP Refused"));
        assert!(error.matches(None, Some("send: smtp refused the recipient")));
        assert!(!error.matches(Some("send_email"), None));
        assert!(!error.matches(None, Some("timeout")));
    }

    fn scanned(matches: &[u32], frontier: Option<u32>) -> Scanned<u32, u32> {
        Scanned {
            matches: matches.to_vec(),
            frontier,
        }
    }

    #[test]
    fn a_page_stops_at_the_nearest_frontier_and_continues_from_it() {
        // Source A was read up to 5; B to its end. Nothing past 5 is shown
        // (A may hold matches between 5 and 9 not read yet).
        let (page, next) = merge(
            vec![scanned(&[1, 5], Some(5)), scanned(&[2, 9], None)],
            |k| *k,
            10,
        );
        assert_eq!(page, [1, 2, 5]);
        assert_eq!(next, Some(5));
        // Every source read to its end: no next page.
        let (page, next) = merge(vec![scanned(&[3], None), scanned(&[1], None)], |k| *k, 10);
        assert_eq!(page, [1, 3]);
        assert_eq!(next, None);
        // More matches than a page: the next starts after its last.
        let (page, next) = merge(
            vec![scanned(&[1, 2, 4], Some(4)), scanned(&[3], None)],
            |k| *k,
            3,
        );
        assert_eq!(page, [1, 2, 3]);
        assert_eq!(next, Some(3));
    }

    #[tokio::test]
    async fn a_scan_keeps_matches_and_stops_at_its_budget() {
        // 0..20000, even numbers match; pages of the source after a cursor.
        let fetch = |after: Option<u32>, n: usize| async move {
            let from = after.map_or(0, |a| a + 1);
            Ok::<_, ()>((from..20_000).take(n).collect::<Vec<u32>>())
        };
        let found = scan(fetch, None, |n| n % 2 == 0, |n| *n, 3, true)
            .await
            .unwrap();
        assert_eq!(found.matches, [0, 2, 4, 6]);
        assert_eq!(found.frontier, Some(6));
        // Nothing matches: the budget ends the read, with a frontier.
        let found = scan(fetch, None, |_| false, |n| *n, 3, true).await.unwrap();
        assert!(found.matches.is_empty());
        assert_eq!(
            found.frontier,
            Some(u32::try_from(SCAN_BUDGET).unwrap() - 1)
        );
        // Read to its end: no frontier.
        let found = scan(fetch, Some(19_990), |_| true, |n| *n, 100, false)
            .await
            .unwrap();
        assert_eq!(found.matches.len(), 9);
        assert_eq!(found.frontier, None);
    }

    #[test]
    fn scheduled_cursors_round_trip_and_map_onto_milliseconds() {
        let key = ScheduledKey {
            run_at_us: 1_700_000_000_123_000,
            id: "a1b2-c3.1".into(),
        };
        assert_eq!(ScheduledKey::decode(&key.encode(), 64), Some(key.clone()));
        assert_eq!(ScheduledKey::decode("12/", 64), None);
        assert_eq!(ScheduledKey::decode("x/abc", 64), None);
        assert_eq!(ScheduledKey::decode("12/a b", 64), None);
        let at_ms = key.in_millis();
        assert_eq!(at_ms.due_at_ms, 1_700_000_000_123);
        assert_eq!(at_ms.task_id, "a1b2-c3.1");
        let within = ScheduledKey {
            run_at_us: 1_700_000_000_123_456,
            id: "z".into(),
        }
        .in_millis();
        assert_eq!(within.due_at_ms, 1_700_000_000_124);
        assert_eq!(within.task_id, "");
    }
}
