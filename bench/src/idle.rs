//! Scenario `idle`: what idle worker processes cost Redis. Each run starts
//! its own `redis-server` (so nothing else's commands are counted), starts
//! N `bourse-worker` processes serving every queue with nothing to do,
//! waits until all are registered and a warm-up has passed, then reads the
//! server's `total_commands_processed` over a window. Commands run inside
//! scripts count, as Redis counts them. The bench's own two `INFO` calls
//! are taken off.

use std::{
    collections::BTreeMap,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use queue::JobQueues;
use tokio::process::{Child, Command};

use crate::support::{free_port, spawn_worker, stop};

pub struct IdleRun<'a> {
    pub config: &'a shared::config::Config,
    pub processes: usize,
    pub warmup: Duration,
    pub window: Duration,
    /// `RATE_REFRESH_CRON` of the workers: by default once a year, so
    /// that no job runs during the window (the per-second refresh of a
    /// default deployment is work, the same for any number of processes).
    pub refresh_cron: String,
}

/// `INFO` fields read: the total and each command's calls.
struct Counters {
    total: u64,
    per_command: BTreeMap<String, u64>,
}

async fn counters(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<Counters> {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    let mut total = None;
    let mut per_command = BTreeMap::new();
    for line in info.lines() {
        if let Some(value) = line.strip_prefix("total_commands_processed:") {
            total = value.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix("cmdstat_") {
            // cmdstat_evalsha:calls=12,usec=...
            let (name, fields) = rest.split_once(':').unwrap_or((rest, ""));
            let calls = fields
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            per_command.insert(name.to_owned(), calls);
        }
    }
    Ok(Counters {
        total: total.context("INFO has no total_commands_processed")?,
        per_command,
    })
}

/// A private, empty `redis-server` on a free port.
async fn private_redis() -> anyhow::Result<(Child, u16)> {
    let port = free_port()?;
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(["--maxclients", "10000"])
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start redis-server (is it installed?)")?;
    let url = format!("redis://127.0.0.1:{port}/0");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ping = async {
            let client = redis::Client::open(url.as_str())?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        if ping.await.is_ok() {
            return Ok((child, port));
        }
        if Instant::now() > deadline {
            bail!("redis-server on port {port} did not answer within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl IdleRun<'_> {
    pub async fn measure(&self) -> anyhow::Result<()> {
        let (mut server, port) = private_redis().await?;
        let url = format!("redis://127.0.0.1:{port}/0");
        let prefix = "idle";
        // One relay is enough (it reads PostgreSQL, not Redis, while idle;
        // its wake-up subscription is one more idle connection). One pooled
        // connection each (tick claims) keeps fifty processes within
        // PostgreSQL's default 100 connections.
        let env = [
            ("REDIS_URL", url.clone()),
            ("REDIS_PREFIX", prefix.to_owned()),
            ("DATABASE_POOL_SIZE", "1".to_owned()),
            ("RATE_REFRESH_CRON", self.refresh_cron.clone()),
        ];
        let mut children = Vec::new();
        for i in 0..self.processes {
            let name = format!("{prefix}-w{i}");
            let mut args = vec!["--concurrency", "16", "--name", &name, "--queues", "all"];
            if i > 0 {
                args.push("--no-relay");
            }
            children.push(spawn_worker(&args, &env)?);
        }
        let outcome = self.observe(&url, prefix, &mut children).await;
        for mut child in children {
            stop(&mut child).await;
        }
        let _ = server.kill().await;
        outcome
    }

    async fn observe(&self, url: &str, prefix: &str, children: &mut [Child]) -> anyhow::Result<()> {
        let redis_config = shared::config::RedisConfig {
            url: secrecy::SecretString::from(url.to_owned()),
            // The bench's own server, whatever the environment names.
            topology: shared::config::RedisTopology::Single,
            ..self.config.redis.clone()
        };
        let client = queue::client(&redis_config).map_err(anyhow::Error::msg)?;
        let (_, manager) = queue::connect(&redis_config, crate::support::REDIS_RETRIES)
            .map_err(anyhow::Error::msg)?;
        let queues = JobQueues::new(manager, prefix);
        let deadline = Instant::now() + Duration::from_secs(60 + 2 * self.processes as u64);
        loop {
            let alive = queues
                .processes()
                .await
                .map(|list| list.iter().filter(|p| p.alive).count())
                .unwrap_or(0);
            if alive == self.processes {
                break;
            }
            if let Some(exited) = children
                .iter_mut()
                .find_map(|c| c.try_wait().ok().flatten())
            {
                bail!("a worker exited before registering: {exited}");
            }
            if Instant::now() > deadline {
                bail!("{alive} of {} workers registered in time", self.processes);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(self.warmup).await;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let before = counters(&mut conn).await?;
        let started = Instant::now();
        tokio::time::sleep(self.window).await;
        let after = counters(&mut conn).await?;
        let secs = started.elapsed().as_secs_f64();
        // The first INFO is counted by the second read; the second is not.
        let total = after.total.saturating_sub(before.total).saturating_sub(1) as f64 / secs;
        let mut top: Vec<(String, f64)> = after
            .per_command
            .iter()
            .map(|(name, calls)| {
                let was = before.per_command.get(name).copied().unwrap_or(0);
                (name.clone(), calls.saturating_sub(was) as f64 / secs)
            })
            .filter(|(name, rate)| *rate > 0.0 && name != "info")
            .collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top: Vec<String> = top
            .iter()
            .take(8)
            .map(|(name, rate)| format!("{name} {rate:.1}"))
            .collect();
        println!(
            "idle processes={} commands/s={total:.1} per process={:.1} window={secs:.1}s | {}",
            self.processes,
            total / self.processes as f64,
            top.join(", ")
        );
        Ok(())
    }
}
