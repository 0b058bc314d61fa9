//! The queue registry and the per-queue statistics built on it, one hash
//! slot per call: on Redis Cluster a script may only touch keys of one
//! slot, and every queue's keys share one slot only if its name carries a
//! hash tag (`{name}`), so nothing here reads two queues in one call.

use std::collections::HashMap;

use apalis_core::backend::{StatType, Statistic};
use redis::{Script, aio::ConnectionLike};

use crate::error::Error;

pub(crate) use super::register_worker::QUEUES_REGISTRY;

/// Names of the queues that ever had a worker (the registry holds their
/// workers sets, `{queue}:workers`).
pub(crate) async fn registered_queues<C: ConnectionLike>(conn: &mut C) -> Result<Vec<String>, Error> {
    let sets: Vec<String> = redis::cmd("ZRANGE")
        .arg(QUEUES_REGISTRY)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await?;
    Ok(sets
        .into_iter()
        .map(|set| set.strip_suffix(":workers").map(str::to_owned).unwrap_or(set))
        .collect())
}

/// One queue's statistics (`lua/overview_by_queue.lua`, keys of one slot).
pub(crate) async fn queue_stats<C: ConnectionLike>(
    conn: &mut C,
    queue: &str,
) -> Result<Vec<Statistic>, Error> {
    let json: String = Script::new(include_str!("../../lua/overview_by_queue.lua"))
        .key(format!("{queue}:active"))
        .key(format!("{queue}:done"))
        .key(format!("{queue}:dead"))
        .key(format!("{queue}:inflight"))
        .key(format!("{queue}:workers"))
        .invoke_async(conn)
        .await?;
    serde_json::from_str(&json).map_err(Error::Json)
}

/// The statistics of all queues together: counts and hourly averages
/// summed, the latest job the newest of all, rates recomputed from the
/// summed counts (the 24-hour success rate weighted by each queue's jobs).
pub(crate) fn combine(per_queue: &[Vec<Statistic>]) -> Vec<Statistic> {
    let mut order: Vec<(String, StatType, Option<u64>)> = Vec::new();
    let mut sums: HashMap<String, f64> = HashMap::new();
    let mut weighted_24h = 0.0;
    for stats in per_queue {
        let value_of = |title: &str| {
            stats
                .iter()
                .find(|s| s.title == title)
                .and_then(|s| s.value.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        weighted_24h += value_of("SUCCESS_RATE_PAST_24H") * value_of("JOBS_PAST_24_HOURS");
        for stat in stats {
            if !order.iter().any(|(title, _, _)| *title == stat.title) {
                order.push((stat.title.clone(), stat.stat_type.clone(), stat.priority));
            }
            let value = stat.value.parse::<f64>().unwrap_or(0.0);
            let entry = sums.entry(stat.title.clone()).or_insert(0.0);
            *entry = match stat.stat_type {
                StatType::Timestamp => entry.max(value),
                _ => *entry + value,
            };
        }
    }
    let total = |title: &str| sums.get(title).copied().unwrap_or(0.0);
    let finished = total("DONE_JOBS") + total("FAILED_JOBS");
    let percent = |part: f64, whole: f64| if whole > 0.0 { part / whole * 100.0 } else { 0.0 };
    order
        .into_iter()
        .map(|(title, stat_type, priority)| {
            let value = match title.as_str() {
                "SUCCESS_RATE" => format!("{:.2}", percent(total("DONE_JOBS"), finished)),
                "FAILURE_RATE" => format!("{:.2}", percent(total("FAILED_JOBS"), finished)),
                "SUCCESS_RATE_PAST_24H" => format!(
                    "{:.2}",
                    percent(weighted_24h / 100.0, total("JOBS_PAST_24_HOURS"))
                ),
                _ if stat_type == StatType::Decimal => format!("{:.2}", total(&title)),
                _ => format!("{}", total(&title) as u64),
            };
            Statistic {
                title,
                stat_type,
                value,
                priority,
            }
        })
        .collect()
}
