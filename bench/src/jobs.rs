//! Scenario `jobs`: no-op jobs pushed, then drained by worker processes.

use std::{
    collections::HashMap,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use queue::{JobQueues, ReadyJob};
use secrecy::ExposeSecret as _;
use shared::{
    config::Config,
    jobs::{JobEnvelope, JobSpec, Probe, Queue},
    schema::probe_runs,
};
use tokio::process::{Child, Command};
use uuid::Uuid;

use crate::support::{CpuSnapshot, cleanup, peak_rss_kb, percentile, stop, worker_labels};

pub struct JobsRun<'a> {
    pub config: &'a Config,
    pub count: usize,
    pub workers: usize,
    pub concurrency: usize,
    pub batch_size: usize,
    pub latency_count: usize,
    pub latency_secs: u64,
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
            unique_key: None,
            traceparent: None,
            request_id: None,
        },
    }
}

impl JobsRun<'_> {
    pub async fn measure(&self) -> anyhow::Result<()> {
        let prefix = format!("bench-{:08x}", rand::random::<u32>());
        let (_, conn) = queue::connect(&self.config.redis, crate::support::REDIS_RETRIES)
            .map_err(anyhow::Error::msg)?;
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
        let named = worker_labels(&children);
        let cpu_before = CpuSnapshot::take();
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
        // CPU over the drain (the workers sit idle before their first
        // fetch, a moment).
        let cpu = cpu_before.shares(&CpuSnapshot::take(), &named);
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
            "scenario=jobs processes={} concurrency={} batch_size={} n={} enqueue_rate={:.0} enqueue_single_rate={:.0} completion_rate={:.0} pickup_p50_ms={:.2} pickup_p99_ms={:.2} pickup_max_ms={:.2} latency_n={} rss_peak_mb={:.1} {cpu}",
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
