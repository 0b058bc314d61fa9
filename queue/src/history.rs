//! Throughput over the last hour, for the jobs page's chart
//! (`GET /api/v1/admin/jobs/history`).
//!
//! The outcome counters (`stats` of every queue: succeeded, retried,
//! failed for good) are cluster-wide running totals. The upkeep holder
//! samples them every `JOBS_HISTORY_SAMPLE_SECS` into one Redis list,
//! newest first, trimmed to an hour; readers turn consecutive samples into
//! counts per interval. Sampling on the server side means the chart shows
//! the last hour the moment an operator opens the page, whoever else was
//! watching, and costs one list however many processes run. Each sample is
//! stamped with the Redis server's time, and a sample closer than half an
//! interval to the previous one is refused by the script, so two holders
//! overlapping during a lease handover do not sample twice.

use std::{collections::BTreeMap, sync::LazyLock, time::Duration};

use chrono::{DateTime, Utc};
use redis::AsyncCommands as _;
use serde::Serialize;
use shared::jobs::Queue;

use crate::{JobQueues, keys};

/// The history kept and shown.
pub const WINDOW: Duration = Duration::from_secs(3600);

/// Pushes a sample stamped with the server's time unless the newest is
/// younger than ARGV[2] ms; keeps ARGV[3] samples.
static RECORD: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "local t = redis.call('TIME') \
         local now = t[1] * 1000 + math.floor(t[2] / 1000) \
         local head = redis.call('LINDEX', KEYS[1], 0) \
         if head then \
           local last = tonumber(string.match(head, '^(%d+) ')) \
           if last and now - last < tonumber(ARGV[2]) then return 0 end \
         end \
         redis.call('LPUSH', KEYS[1], now .. ' ' .. ARGV[1]) \
         redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[3]) - 1) \
         return 1",
    )
});

/// One queue's running totals at a sample.
pub type Totals = [u64; 3];

/// The outcome counters of every queue at one time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub totals: BTreeMap<String, Totals>,
}

/// Outcomes of one queue between two samples.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interval {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub succeeded: u64,
    pub retried: u64,
    /// Failed for good: moved to the dead set.
    pub failed: u64,
}

/// One queue's intervals over the window, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Series {
    pub queue: String,
    pub points: Vec<Interval>,
}

impl JobQueues {
    fn history_key(&self) -> String {
        keys::deployment_key(&self.prefix, "history")
    }

    /// Every queue's outcome counters now.
    pub async fn outcome_totals(&self) -> Result<BTreeMap<String, Totals>, redis::RedisError> {
        let mut totals = BTreeMap::new();
        let mut conn = self.conn.clone();
        for queue in Queue::ALL {
            // One key per queue, each in its queue's slot: a call each.
            let stats: std::collections::HashMap<String, u64> =
                conn.hgetall(self.keys(queue).stats()).await?;
            let stat = |name: &str| stats.get(name).copied().unwrap_or(0);
            totals.insert(
                queue.as_str().to_owned(),
                [stat("succeeded"), stat("retried"), stat("failed_for_good")],
            );
        }
        Ok(totals)
    }

    /// Samples the counters into the history, if the newest sample is at
    /// least half of `every` old. Returns whether it did.
    pub async fn record_history(&self, every: Duration) -> Result<bool, redis::RedisError> {
        let totals = self.outcome_totals().await?;
        let encoded = serde_json::to_string(&totals).unwrap_or_default();
        let keep = WINDOW.as_secs() / every.as_secs().max(1) + 2;
        let recorded: u8 = RECORD
            .key(self.history_key())
            .arg(encoded)
            .arg(u64::try_from(every.as_millis() / 2).unwrap_or(u64::MAX))
            .arg(keep)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(recorded == 1)
    }

    /// The samples of the last [`WINDOW`] (on the server's clock), oldest
    /// first. Unreadable entries are skipped.
    pub async fn history(&self) -> Result<Vec<Sample>, redis::RedisError> {
        let mut conn = self.conn.clone();
        let key = self.history_key();
        let now = crate::processes::server_millis(&mut conn, &key).await?;
        let since = now.saturating_sub(u64::try_from(WINDOW.as_millis()).unwrap_or(u64::MAX));
        let raw: Vec<String> = conn.lrange(&key, 0, -1).await?;
        let mut samples: Vec<Sample> = raw
            .iter()
            .filter_map(|entry| {
                let (ms, json) = entry.split_once(' ')?;
                let ms: u64 = ms.parse().ok()?;
                (ms >= since).then_some(())?;
                Some(Sample {
                    at: DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)?,
                    totals: serde_json::from_str(json).ok()?,
                })
            })
            .collect();
        samples.reverse();
        Ok(samples)
    }
}

/// Each queue's outcomes between consecutive samples. A counter that went
/// down (its key was lost, say by a Redis restart without persistence)
/// counts from zero again rather than negative.
pub fn intervals(samples: &[Sample]) -> Vec<Series> {
    Queue::ALL
        .iter()
        .map(|queue| {
            let name = queue.as_str();
            let points = samples
                .windows(2)
                .map(|pair| {
                    let before = pair[0].totals.get(name).copied().unwrap_or_default();
                    let after = pair[1].totals.get(name).copied().unwrap_or_default();
                    let delta = |i: usize| {
                        if after[i] >= before[i] {
                            after[i] - before[i]
                        } else {
                            after[i]
                        }
                    };
                    Interval {
                        from: pair[0].at,
                        to: pair[1].at,
                        succeeded: delta(0),
                        retried: delta(1),
                        failed: delta(2),
                    }
                })
                .collect();
            Series {
                queue: name.to_owned(),
                points,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(secs: i64, email: Totals) -> Sample {
        Sample {
            at: DateTime::from_timestamp(secs, 0).unwrap(),
            totals: BTreeMap::from([("email".to_owned(), email)]),
        }
    }

    #[test]
    fn consecutive_samples_become_counts_per_interval() {
        let samples = [
            sample(60, [10, 1, 0]),
            sample(120, [25, 3, 1]),
            // The counters were lost: count from zero.
            sample(180, [4, 0, 0]),
        ];
        let series = intervals(&samples);
        assert_eq!(series.len(), Queue::ALL.len());
        let email = &series[0];
        assert_eq!(email.queue, "email");
        assert_eq!(
            email
                .points
                .iter()
                .map(|p| (p.succeeded, p.retried, p.failed))
                .collect::<Vec<_>>(),
            [(15, 2, 1), (4, 0, 0)]
        );
        assert_eq!(email.points[0].from.timestamp(), 60);
        assert_eq!(email.points[1].to.timestamp(), 180);
        // A queue absent from the samples: zeros, same intervals.
        assert!(series[1].points.iter().all(|p| p.succeeded == 0));
        assert!(intervals(&samples[..1]).iter().all(|s| s.points.is_empty()));
    }
}
