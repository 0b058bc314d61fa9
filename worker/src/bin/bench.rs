//! `bourse-bench`: measures the job system with real worker processes.
//!
//! Scenario `jobs`: N no-op probe jobs are pushed onto the probe queue, then
//! drained by `bourse-worker` processes started for the purpose (1, then 2 by
//! default). Reports enqueue and completion rates, pick-up latency (time from
//! a job being pushed to an idle worker starting it) and the workers' peak
//! RSS. Uses its own Redis prefix and cleans up after itself.
//!
//! ```text
//! cargo build --release -p bourse-worker
//! target/release/bourse-bench jobs --count 20000 --processes 1,2
//! ```

use std::{
    collections::HashMap,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use chrono::Utc;
use clap::{Parser, Subcommand};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use secrecy::ExposeSecret as _;
use shared::{
    config::Config,
    jobs::{JobEnvelope, JobSpec, Probe, Queue},
    schema::probe_runs,
};
use tokio::process::{Child, Command};
use uuid::Uuid;
use worker::{JobQueues, ReadyJob};

#[derive(Parser)]
#[command(name = "bourse-bench", about = "Benchmarks for the Bourse job system")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// No-op jobs: enqueue rate, completion rate, pick-up latency, RSS.
    Jobs {
        /// Jobs pushed then drained, per run.
        #[arg(long, default_value_t = 20_000)]
        count: usize,
        /// Worker process counts to run, comma-separated.
        #[arg(long, default_value = "1,2")]
        processes: String,
        /// `--concurrency` of each worker process.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Jobs fetched per Redis round trip (WORKER_BATCH_SIZE).
        #[arg(long, default_value_t = 200)]
        batch_size: usize,
        /// Jobs pushed one by one for the latency measurement.
        #[arg(long, default_value_t = 2_000)]
        latency_count: usize,
        /// Seconds over which the latency jobs are spread.
        #[arg(long, default_value_t = 10)]
        latency_secs: u64,
    },
    /// `GET /api/v1/rates` under load from this process against a
    /// `bourse-api` process it starts.
    Rates {
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Seconds of measured load (after one second of warm-up).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::from_env().map_err(|e| anyhow::anyhow!("{e}"))?;
    match cli.scenario {
        Scenario::Rates {
            connections,
            seconds,
        } => {
            shared::db::run_migrations(config.database.url.expose_secret()).await?;
            rates_load(&config, connections, seconds).await?;
        }
        Scenario::Jobs {
            count,
            processes,
            concurrency,
            batch_size,
            latency_count,
            latency_secs,
        } => {
            let processes: Vec<usize> = processes
                .split(',')
                .map(|p| p.trim().parse())
                .collect::<Result<_, _>>()
                .context("--processes")?;
            shared::db::run_migrations(config.database.url.expose_secret()).await?;
            for workers in processes {
                let run = JobsRun {
                    config: &config,
                    count,
                    workers,
                    concurrency,
                    batch_size,
                    latency_count,
                    latency_secs,
                };
                run.measure().await?;
            }
        }
    }
    Ok(())
}

struct JobsRun<'a> {
    config: &'a Config,
    count: usize,
    workers: usize,
    concurrency: usize,
    batch_size: usize,
    latency_count: usize,
    latency_secs: u64,
}

fn probe_job(tag: &str, record: bool) -> ReadyJob {
    let id = Uuid::now_v7();
    let args = serde_json::to_value(Probe {
        tag: tag.to_owned(),
        record,
        ..Probe::default()
    })
    .unwrap_or_default();
    ReadyJob {
        task_id: id.to_string(),
        envelope: JobEnvelope {
            id,
            job: Probe::NAME.to_owned(),
            v: Probe::VERSION,
            args,
            due_at: Utc::now(),
        },
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

impl JobsRun<'_> {
    async fn measure(&self) -> anyhow::Result<()> {
        let prefix = format!("bench-{:08x}", rand::random::<u32>());
        let (_, conn) = worker::redis_connection(&self.config.redis)?;
        let queues = JobQueues::new(conn.clone(), prefix.clone());
        eprintln!(
            "[bench] run with {} worker process(es), prefix {prefix}",
            self.workers
        );

        // 0. Enqueue one job per round trip (as a client enqueuing one task
        //    at a time does), on a throwaway prefix.
        let single_n = self.count.min(5_000);
        let scratch = JobQueues::new(conn.clone(), format!("{prefix}-single"));
        let started = Instant::now();
        for _ in 0..single_n {
            scratch
                .push(Queue::Probe, &[probe_job("bench", false)], 1)
                .await?;
        }
        let single_rate = single_n as f64 / started.elapsed().as_secs_f64();
        cleanup(&conn, &format!("{prefix}-single")).await?;

        // 1. Enqueue N jobs in batches of 1,000 (as the outbox relay does),
        //    with no worker running.
        let jobs: Vec<ReadyJob> = (0..self.count).map(|_| probe_job("bench", false)).collect();
        let started = Instant::now();
        for chunk in jobs.chunks(1000) {
            queues.push(Queue::Probe, chunk, 1).await?;
        }
        let enqueue_secs = started.elapsed().as_secs_f64();
        let pending = queues.counts(Queue::Probe).await?.pending;
        if pending != self.count as u64 {
            bail!("pushed {} jobs but {pending} are pending", self.count);
        }

        // 2. Start the workers and time the drain from the first fetch.
        let mut children = Vec::new();
        for i in 0..self.workers {
            children.push(self.spawn_worker(&prefix, i)?);
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut first_fetch = None;
        let drained_at = loop {
            let counts = queues.counts(Queue::Probe).await?;
            if first_fetch.is_none() && counts.pending < self.count as u64 {
                first_fetch = Some(Instant::now());
            }
            if counts.pending == 0 && counts.running == 0 {
                break Instant::now();
            }
            if Instant::now() > deadline {
                bail!("drain did not finish: {counts:?}");
            }
            // The Celery peer polls every 10 ms too.
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let drain_secs = drained_at
            .duration_since(first_fetch.unwrap_or(drained_at))
            .as_secs_f64()
            .max(1e-6);

        // 3. Pick-up latency: idle workers, jobs pushed one at a time.
        let latencies = self.measure_latency(&queues).await?;

        let rss_kb: Vec<u64> = children
            .iter()
            .filter_map(|c| c.id())
            .filter_map(peak_rss_kb)
            .collect();
        for mut child in children {
            stop(&mut child).await;
        }
        cleanup(&conn, &prefix).await?;

        let enqueue_rate = self.count as f64 / enqueue_secs;
        let completion_rate = self.count as f64 / drain_secs;
        let rss_peak_mb = rss_kb.iter().copied().max().unwrap_or(0) as f64 / 1024.0;
        println!(
            "scenario=jobs processes={} concurrency={} batch_size={} n={} enqueue_rate={:.0} enqueue_single_rate={:.0} completion_rate={:.0} pickup_p50_ms={:.2} pickup_p99_ms={:.2} pickup_max_ms={:.2} latency_n={} rss_peak_mb={:.1}",
            self.workers,
            self.concurrency,
            self.batch_size,
            self.count,
            enqueue_rate,
            single_rate,
            completion_rate,
            percentile(&latencies, 50.0),
            percentile(&latencies, 99.0),
            latencies.last().copied().unwrap_or(f64::NAN),
            latencies.len(),
            rss_peak_mb,
        );
        Ok(())
    }

    fn spawn_worker(&self, prefix: &str, index: usize) -> anyhow::Result<Child> {
        let exe = std::env::current_exe()?;
        let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
        let worker = dir.join("bourse-worker");
        Command::new(&worker)
            .args([
                "--queues",
                "probe",
                "--no-relay",
                "--concurrency",
                &self.concurrency.to_string(),
                "--name",
                &format!("{prefix}-w{index}"),
            ])
            .env("REDIS_PREFIX", prefix)
            .env("WORKER_HTTP_ADDR", "127.0.0.1:0")
            .env("WORKER_BATCH_SIZE", self.batch_size.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", worker.display()))
    }

    /// Pushes `latency_count` recorded probes evenly over `latency_secs` and
    /// returns each one's push-to-start time in milliseconds, sorted.
    async fn measure_latency(&self, queues: &JobQueues) -> anyhow::Result<Vec<f64>> {
        if self.latency_count == 0 {
            return Ok(Vec::new());
        }
        let tag = format!("bench-latency-{}", Uuid::new_v4());
        let gap = Duration::from_secs(self.latency_secs).div_f64(self.latency_count as f64);
        let mut due: HashMap<Uuid, chrono::DateTime<Utc>> = HashMap::new();
        let start = Instant::now();
        for i in 0..self.latency_count {
            let target = start + gap.mul_f64(i as f64);
            tokio::time::sleep_until(target.into()).await;
            let mut job = probe_job(&tag, true);
            job.envelope.due_at = Utc::now();
            due.insert(job.envelope.id, job.envelope.due_at);
            queues
                .push(Queue::Probe, std::slice::from_ref(&job), 1)
                .await?;
        }
        let mut conn =
            AsyncPgConnection::establish(self.config.database.url.expose_secret()).await?;
        let deadline = Instant::now() + Duration::from_secs(120);
        let rows = loop {
            let rows: Vec<(Uuid, chrono::DateTime<Utc>)> = probe_runs::table
                .filter(probe_runs::tag.eq(&tag))
                .select((probe_runs::job_id, probe_runs::started_at))
                .load(&mut conn)
                .await?;
            if rows.len() >= self.latency_count {
                break rows;
            }
            if Instant::now() > deadline {
                bail!(
                    "only {} of {} latency probes ran",
                    rows.len(),
                    self.latency_count
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        diesel::delete(probe_runs::table.filter(probe_runs::tag.eq(&tag)))
            .execute(&mut conn)
            .await?;
        let mut latencies: Vec<f64> = rows
            .iter()
            .filter_map(|(id, started)| {
                due.get(id)
                    .map(|d| (*started - *d).num_microseconds().unwrap_or(0) as f64 / 1000.0)
            })
            .collect();
        latencies.sort_by(f64::total_cmp);
        Ok(latencies)
    }
}

fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

async fn cleanup(conn: &redis::aio::ConnectionManager, prefix: &str) -> anyhow::Result<()> {
    let mut conn = conn.clone();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await?;
    for chunk in keys.chunks(500) {
        redis::cmd("DEL")
            .arg(chunk)
            .query_async::<()>(&mut conn)
            .await?;
    }
    Ok(())
}

/// Starts `bourse-api` on a free port with a private Redis prefix holding
/// six cached prices, loads `GET /api/v1/rates` with raw HTTP/1.1 keep-alive
/// connections and prints throughput, latency and the API's peak RSS.
async fn rates_load(config: &Config, connections: usize, seconds: u64) -> anyhow::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    let prefix = format!("bench-{:08x}", rand::random::<u32>());
    let (_, conn) = worker::redis_connection(&config.redis)?;
    let mut redis = conn.clone();
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    for (symbol, price) in [
        ("USD", "1"),
        ("EUR", "1.08"),
        ("KZT", "0.0021"),
        ("BTC", "95000.5"),
        ("ETH", "3500.25"),
        ("SOL", "180.75"),
    ] {
        let entry = serde_json::json!({ "symbol": symbol, "price_usd": price, "as_of": now, "source": "bench" });
        redis::cmd("HSET")
            .arg(format!("{prefix}:rates"))
            .arg(symbol)
            .arg(entry.to_string())
            .query_async::<()>(&mut redis)
            .await?;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let exe = std::env::current_exe()?;
    let api = exe
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
        .join("bourse-api");
    let mut child = Command::new(&api)
        .env("REDIS_PREFIX", &prefix)
        .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", api.display()))?;
    let pid = child.id().unwrap_or_default();
    let request = format!("GET /api/v1/rates HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");

    // Ready when the mirror lists all six prices.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = get_once(port, &request).await.unwrap_or_default();
        if body.matches("\"symbol\"").count() == 6 {
            break;
        }
        if Instant::now() > deadline {
            bail!("the API did not serve the cached rates: {body}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let warm_until = Instant::now() + Duration::from_secs(1);
    let end = warm_until + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::with_capacity(1 << 16);
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            stream.set_nodelay(true)?;
            let (read, mut write) = stream.into_split();
            let mut reader = BufReader::new(read);
            let mut line = String::new();
            let mut body = Vec::new();
            loop {
                let started = Instant::now();
                if started >= end {
                    break;
                }
                write.write_all(request.as_bytes()).await?;
                let mut length = 0usize;
                let mut status_ok = false;
                loop {
                    line.clear();
                    if reader.read_line(&mut line).await? == 0 {
                        bail!("connection closed");
                    }
                    if line.starts_with("HTTP/1.1 ") {
                        status_ok = line.starts_with("HTTP/1.1 200");
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(value) = lower.strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                body.resize(length, 0);
                reader.read_exact(&mut body).await?;
                if !status_ok {
                    bail!("non-200 answer");
                }
                if started >= warm_until {
                    latencies
                        .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
                }
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut all: Vec<u32> = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let rss_kb = peak_rss_kb(pid).unwrap_or(0);
    stop(&mut child).await;
    cleanup(&conn, &prefix).await?;
    all.sort_unstable();
    let ms = |p: f64| {
        let sorted: Vec<f64> = all.iter().map(|us| f64::from(*us) / 1000.0).collect();
        percentile(&sorted, p)
    };
    println!(
        "scenario=rates connections={connections} seconds={seconds} requests={} rate={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} api_rss_peak_mb={:.1}",
        all.len(),
        all.len() as f64 / seconds as f64,
        ms(50.0),
        ms(99.0),
        all.last().map_or(f64::NAN, |us| f64::from(*us) / 1000.0),
        rss_kb as f64 / 1024.0,
    );
    Ok(())
}

/// One request on a fresh connection; the body, if the answer was 200.
async fn get_once(port: u16, request: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let close = request.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
    stream.write_all(close.as_bytes()).await.ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.ok()?;
    answer.starts_with("HTTP/1.1 200").then(|| {
        answer
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    })
}
