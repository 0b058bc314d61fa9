//! The live worker processes, for operators (`GET /api/v1/admin/jobs`).
//!
//! apalis-redis keeps one heartbeat per queue worker but not what a process
//! serves or how many jobs it runs at once, so every worker process also
//! announces itself here on each heartbeat: a hash of process name → JSON
//! description, and a sorted set of process name → last heartbeat (ms) that
//! lets readers tell live processes from dead ones and prune old entries.
//! Heartbeats are scored, and silence judged, on the Redis server's clock:
//! a host whose clock is off is neither shown dead nor kept alive by it.

use chrono::{DateTime, Utc};
use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};

use crate::queues::JobQueues;

/// The time in milliseconds of the Redis server holding `key`: on a
/// cluster, the node whose clock scored the heartbeats compared with it (a
/// bare `TIME` would go to any node).
pub(crate) async fn server_millis(
    conn: &mut crate::Conn,
    key: &str,
) -> Result<u64, redis::RedisError> {
    static TIME: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
        redis::Script::new("local t = redis.call('TIME') return {tonumber(t[1]), tonumber(t[2])}")
    });
    let (secs, micros): (u64, u64) = TIME.key(key).invoke_async(conn).await?;
    Ok(secs.saturating_mul(1000).saturating_add(micros / 1000))
}

/// Records a process description and its heartbeat at the server's time.
static ANNOUNCE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "local t = redis.call('TIME') \
         redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) \
         redis.call('ZADD', KEYS[2], t[1] * 1000 + math.floor(t[2] / 1000), ARGV[1]) \
         return 1",
    )
});

/// What a worker process says about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkerProcess {
    pub name: String,
    pub host: String,
    pub pid: u32,
    pub queues: Vec<String>,
    /// Jobs run at once per queue.
    pub concurrency: usize,
    /// Whether it runs an outbox relay.
    pub relay: bool,
    pub started_at: DateTime<Utc>,
    /// How often it announces itself; a process silent for three of these
    /// is taken for dead.
    pub heartbeat_ms: u64,
}

/// A process as seen by a reader.
#[derive(Debug, Clone, Serialize)]
pub struct SeenProcess {
    #[serde(flatten)]
    pub process: WorkerProcess,
    pub last_heartbeat: DateTime<Utc>,
    pub alive: bool,
    /// Jobs it runs now, over all its queues.
    pub in_flight: u64,
}

/// Processes silent for longer than this are dropped from the list.
const FORGET_AFTER_MS: u64 = 3600 * 1000;

impl JobQueues {
    fn processes_key(&self) -> String {
        crate::keys::deployment_key(&self.prefix, "processes")
    }

    fn heartbeats_key(&self) -> String {
        crate::keys::deployment_key(&self.prefix, "processes:heartbeats")
    }

    /// Records `process` as alive now.
    pub async fn announce(&self, process: &WorkerProcess) -> Result<(), redis::RedisError> {
        let description = serde_json::to_string(process).unwrap_or_default();
        ANNOUNCE
            .key(self.processes_key())
            .key(self.heartbeats_key())
            .arg(&process.name)
            .arg(description)
            .invoke_async::<()>(&mut self.conn.clone())
            .await
    }

    /// Removes a process that stops cleanly.
    pub async fn retire(&self, name: &str) -> Result<(), redis::RedisError> {
        redis::pipe()
            .hdel(self.processes_key(), name)
            .ignore()
            .zrem(self.heartbeats_key(), name)
            .ignore()
            .query_async::<()>(&mut self.conn.clone())
            .await
    }

    /// Every process heard from in the last hour, live ones first.
    pub async fn processes(&self) -> Result<Vec<SeenProcess>, redis::RedisError> {
        let mut conn = self.conn.clone();
        let now = server_millis(&mut conn, &self.heartbeats_key()).await?;
        let forgotten: Vec<String> = conn
            .zrangebyscore(
                self.heartbeats_key(),
                0,
                now.saturating_sub(FORGET_AFTER_MS),
            )
            .await?;
        if !forgotten.is_empty() {
            redis::pipe()
                .hdel(self.processes_key(), &forgotten)
                .ignore()
                .zrem(self.heartbeats_key(), &forgotten)
                .ignore()
                .query_async::<()>(&mut conn)
                .await?;
        }
        let beats: Vec<(String, u64)> =
            conn.zrange_withscores(self.heartbeats_key(), 0, -1).await?;
        let descriptions: std::collections::HashMap<String, String> =
            conn.hgetall(self.processes_key()).await?;
        let mut in_flight: std::collections::HashMap<String, u64> = Default::default();
        for queue in shared::jobs::Queue::ALL {
            for (worker, n) in self.in_flight_by_worker(queue).await? {
                // apalis worker names are `{process}:{queue}:{generation}`
                // (the worker's runner).
                if let Some(process) = worker.rsplitn(3, ':').nth(2) {
                    *in_flight.entry(process.to_owned()).or_default() += n;
                }
            }
        }
        let mut seen: Vec<SeenProcess> = beats
            .into_iter()
            .filter_map(|(name, beat)| {
                let process: WorkerProcess = serde_json::from_str(descriptions.get(&name)?).ok()?;
                let silent = now.saturating_sub(beat);
                Some(SeenProcess {
                    in_flight: in_flight.get(&name).copied().unwrap_or(0),
                    alive: silent <= process.heartbeat_ms.saturating_mul(3) + 1000,
                    last_heartbeat: DateTime::from_timestamp_millis(
                        i64::try_from(beat).unwrap_or(i64::MAX),
                    )
                    .unwrap_or_default(),
                    process,
                })
            })
            .collect();
        seen.sort_by(|a, b| {
            b.alive
                .cmp(&a.alive)
                .then_with(|| a.process.name.cmp(&b.process.name))
        });
        Ok(seen)
    }
}
