//! What the scenarios share: percentiles, process handling, Redis clean-up
//! and a raw HTTP/1.1 load generator.

use std::{
    collections::HashMap,
    path::PathBuf,
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use secrecy::ExposeSecret as _;
use shared::config::Config;

use tokio::process::{Child, Command};

use testkit::with_database;

use crate::http::Connection;

/// Retries of a Redis call on a fresh connection, as the workers use
/// (`worker::REDIS_RETRIES`): the bench reads queues the way they do.
pub const REDIS_RETRIES: usize = 2;

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// CPU time (user and system) process `pid` has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    /// `/proc` counts in USER_HZ, 100 on every Linux architecture we run.
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it are
    // counted from its closing parenthesis: utime and stime are the 14th
    // and 15th fields, the 12th and 13th after the name.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) / USER_HZ)
}

/// CPU time used so far by every process of the kinds a run involves
/// (Bourse's binaries, PostgreSQL, Redis), read from `/proc`.
pub struct CpuSnapshot {
    at: Instant,
    /// pid → (command name, CPU seconds).
    by_pid: HashMap<u32, (String, f64)>,
}

/// Command names whose CPU a run reports (`/proc/PID/comm` is cut to 15
/// bytes).
const CPU_KINDS: [&str; 5] = [
    "bourse-api",
    "bourse-worker",
    "bourse-bench",
    "postgres",
    "redis-server",
];

impl CpuSnapshot {
    pub fn take() -> Self {
        let mut by_pid = HashMap::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Some(pid) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
                    continue;
                };
                let comm = comm.trim();
                if CPU_KINDS.contains(&comm)
                    && let Some(secs) = cpu_seconds(pid)
                {
                    by_pid.insert(pid, (comm.to_owned(), secs));
                }
            }
        }
        Self {
            at: Instant::now(),
            by_pid,
        }
    }

    /// CPU share (% of one core) between `self` and `later` of each named
    /// process (`label`, pid), then of every PostgreSQL and Redis process
    /// together, e.g. `cpu_api0=71 cpu_w0=38 cpu_postgres=64 cpu_redis=9`.
    /// Processes that exited in between (short PostgreSQL backends) are
    /// not counted.
    pub fn shares(&self, later: &Self, named: &[(String, u32)]) -> String {
        let window = later.at.duration_since(self.at).as_secs_f64().max(1e-6);
        let used = |pid: &u32| -> f64 {
            let before = self.by_pid.get(pid).map_or(0.0, |(_, secs)| *secs);
            later
                .by_pid
                .get(pid)
                .map_or(0.0, |(_, secs)| (secs - before).max(0.0))
        };
        let mut out: Vec<String> = named
            .iter()
            .map(|(label, pid)| format!("cpu_{label}={:.0}", 100.0 * used(pid) / window))
            .collect();
        for (kind, label) in [("postgres", "postgres"), ("redis-server", "redis")] {
            let total: f64 = later
                .by_pid
                .iter()
                .filter(|(_, (comm, _))| comm == kind)
                .map(|(pid, _)| used(pid))
                .sum();
            out.push(format!("cpu_{label}={:.0}", 100.0 * total / window));
        }
        out.join(" ")
    }
}

/// SIGTERM, up to 10 s to drain, then SIGKILL.
pub async fn stop(child: &mut Child) {
    testkit::stop(child, Duration::from_secs(10)).await;
}

pub async fn cleanup(conn: &queue::Conn, prefix: &str) -> anyhow::Result<()> {
    let mut conn = conn.clone();
    for pattern in queue::key_patterns(prefix) {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut conn)
            .await?;
        for chunk in keys.chunks(500) {
            redis::cmd("DEL")
                .arg(chunk)
                .query_async::<()>(&mut conn)
                .await?;
        }
    }
    Ok(())
}

/// A free local TCP port.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(testkit::free_port()?)
}

/// Starts the `bourse-api` next to this binary with `env`, on `port`.
pub fn spawn_api(port: u16, env: &[(&str, String)]) -> anyhow::Result<Child> {
    let exe = std::env::current_exe()?;
    let api = exe
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
        .join("bourse-api");
    Command::new(&api)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", api.display()))
}

/// The outcome of a load run.
pub struct Load {
    /// Microseconds per successful request, sorted.
    pub latencies_us: Vec<u32>,
    /// Answers with an unexpected status.
    pub failures: u64,
}

/// Runs `connections` keep-alive connections against `port` for `seconds`
/// after one second of warm-up. Each sends `make_request()`'s bytes and
/// reads the whole answer before the next; answers other than `expect`
/// count as failures.
pub async fn load(
    port: u16,
    connections: usize,
    seconds: u64,
    expect: u16,
    make_request: Arc<dyn Fn() -> Vec<u8> + Send + Sync>,
) -> anyhow::Result<Load> {
    let warm_until = Instant::now() + Duration::from_secs(1);
    let end = warm_until + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let make_request = make_request.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::with_capacity(1 << 16);
            let mut failures = 0u64;
            let mut conn = Connection::open(port).await?;
            loop {
                let started = Instant::now();
                if started >= end {
                    break;
                }
                let ok = conn.exchange(&make_request()).await? == expect;
                if started >= warm_until {
                    if ok {
                        latencies
                            .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
                    } else {
                        failures += 1;
                    }
                }
            }
            Ok::<_, anyhow::Error>((latencies, failures))
        }));
    }
    let mut latencies_us = Vec::new();
    let mut failures = 0;
    for task in tasks {
        let (mut l, f) = task.await??;
        latencies_us.append(&mut l);
        failures += f;
    }
    latencies_us.sort_unstable();
    Ok(Load {
        latencies_us,
        failures,
    })
}

impl Load {
    /// A percentile in milliseconds.
    pub fn ms(&self, p: f64) -> f64 {
        let sorted: Vec<f64> = self
            .latencies_us
            .iter()
            .map(|us| f64::from(*us) / 1000.0)
            .collect();
        percentile(&sorted, p)
    }

    pub fn max_ms(&self) -> f64 {
        self.latencies_us
            .last()
            .map_or(f64::NAN, |us| f64::from(*us) / 1000.0)
    }
}

/// A `SELECT count(*) AS n` answer.
#[derive(diesel::QueryableByName)]
pub struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub n: i64,
}

/// A fresh, migrated database `name` on the configured server (dropped
/// first if it exists).
pub async fn scratch_database(config: &Config, name: &str) -> anyhow::Result<String> {
    let url = config.database.url.expose_secret();
    let mut admin = AsyncPgConnection::establish(&with_database(url, "postgres")).await?;
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let scratch = with_database(url, name);
    migrate(&scratch).await?;
    Ok(scratch)
}

/// Applies the migrations to the database at `url` (a direct server
/// session: the bench never runs through a pooler).
pub async fn migrate(url: &str) -> anyhow::Result<()> {
    let conn = shared::db::connect(url, None, diesel_async::StatementMode::Named)
        .await
        .map_err(anyhow::Error::msg)?;
    shared::db::run_migrations(conn).await?;
    Ok(())
}

/// Stops `children` (their peak RSS read first) and removes the run's
/// Redis keys under `prefix`; returns the largest peak RSS in MB.
pub async fn finish_workers(
    children: Vec<Child>,
    config: &Config,
    prefix: &str,
) -> anyhow::Result<f64> {
    let peak_kb = children
        .iter()
        .filter_map(Child::id)
        .filter_map(peak_rss_kb)
        .max()
        .unwrap_or(0);
    for mut child in children {
        stop(&mut child).await;
    }
    let (_, redis) =
        queue::connect(&config.redis, crate::support::REDIS_RETRIES).map_err(anyhow::Error::msg)?;
    cleanup(&redis, prefix).await?;
    Ok(peak_kb as f64 / 1024.0)
}

/// Starts `count` `bourse-worker` processes named `{prefix}-w{i}`, each
/// serving `queues` with `concurrency` (see [`spawn_worker`]).
pub fn spawn_workers(
    prefix: &str,
    count: usize,
    concurrency: usize,
    queues: &str,
    env: &[(&str, String)],
) -> anyhow::Result<Vec<Child>> {
    let concurrency = concurrency.to_string();
    (0..count)
        .map(|i| {
            let name = format!("{prefix}-w{i}");
            spawn_worker(
                &[
                    "--concurrency",
                    &concurrency,
                    "--name",
                    &name,
                    "--queues",
                    queues,
                ],
                env,
            )
        })
        .collect()
}

/// Starts a `bourse-worker` from the same folder as this binary with
/// `args`, `env` (on top of this process's environment) and no HTTP port
/// of its own.
pub fn spawn_worker(args: &[&str], env: &[(&str, String)]) -> anyhow::Result<Child> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    let worker = dir.join("bourse-worker");
    let mut command = Command::new(&worker);
    command
        .args(args)
        .env("WORKER_HTTP_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    command
        .spawn()
        .with_context(|| format!("cannot start {}", worker.display()))
}

/// A scenario's own world: a scratch database, a Redis prefix, a JWT
/// secret, and the configuration that points at them.
pub struct Scratch {
    pub database: String,
    pub secret: String,
    pub prefix: String,
    pub config: Config,
}

/// Creates database `name` afresh (see [`scratch_database`]) and the rest of
/// a [`Scratch`].
pub async fn scratch(config: &Config, name: &str) -> anyhow::Result<Scratch> {
    let database = scratch_database(config, name).await?;
    let secret = format!(
        "{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    );
    let prefix = format!("bench-{:08x}", rand::random::<u32>());
    let settings: HashMap<String, String> = [
        ("DATABASE_URL", database.clone()),
        ("JWT_SECRET", secret.clone()),
        ("REDIS_PREFIX", prefix.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = Config::from_map(settings).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Scratch {
        database,
        secret,
        prefix,
        config,
    })
}

/// `(w{i}, pid)` for each child process, for [`CpuSnapshot::shares`].
pub fn worker_labels(children: &[Child]) -> Vec<(String, u32)> {
    children
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.id().map(|pid| (format!("w{i}"), pid)))
        .collect()
}

/// Inserts recorded probe jobs tagged `tag` into the outbox, one per
/// (id, due time), in one statement.
pub async fn insert_recorded_probes(
    conn: &mut AsyncPgConnection,
    tag: &str,
    rows: &[(uuid::Uuid, chrono::DateTime<chrono::Utc>)],
) -> anyhow::Result<()> {
    use diesel::sql_types;
    let ids: Vec<uuid::Uuid> = rows.iter().map(|(id, _)| *id).collect();
    let times: Vec<chrono::DateTime<chrono::Utc>> = rows.iter().map(|(_, at)| *at).collect();
    diesel::sql_query(
        "INSERT INTO outbox (id, queue, job, version, payload, run_at)
         SELECT id, 'probe', 'probe', 1, jsonb_build_object('tag', $3, 'record', true), at
         FROM unnest($1::uuid[], $2::timestamptz[]) AS r(id, at)",
    )
    .bind::<sql_types::Array<sql_types::Uuid>, _>(&ids)
    .bind::<sql_types::Array<sql_types::Timestamptz>, _>(&times)
    .bind::<sql_types::Text, _>(tag)
    .execute(conn)
    .await?;
    Ok(())
}

/// Waits until `n` distinct probe jobs tagged `tag` have started; returns
/// every run (job id, start time), repeats included.
pub async fn wait_for_probe_runs(
    conn: &mut AsyncPgConnection,
    tag: &str,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<(uuid::Uuid, chrono::DateTime<chrono::Utc>)>> {
    use diesel::{ExpressionMethods as _, QueryDsl as _};
    use shared::schema::probe_runs;
    let deadline = Instant::now() + timeout;
    loop {
        let runs: Vec<(uuid::Uuid, chrono::DateTime<chrono::Utc>)> = probe_runs::table
            .filter(probe_runs::tag.eq(tag))
            .select((probe_runs::job_id, probe_runs::started_at))
            .load(conn)
            .await?;
        let distinct: std::collections::HashSet<uuid::Uuid> =
            runs.iter().map(|(id, _)| *id).collect();
        if distinct.len() >= n {
            return Ok(runs);
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "only {} of {n} jobs tagged {tag} ran in time",
                distinct.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until no `send_email` job is left in the outbox (every one is in
/// Redis); fails after `deadline`.
pub async fn wait_until_emails_relayed(
    conn: &mut AsyncPgConnection,
    deadline: Instant,
) -> anyhow::Result<()> {
    #[derive(diesel::QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    loop {
        let waiting: Waiting =
            diesel::sql_query("SELECT count(*) AS n FROM outbox WHERE job = 'send_email'")
                .get_result(conn)
                .await?;
        if waiting.n == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} email jobs not yet relayed",
            waiting.n
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
