//! Scenario `hosts` (ISSUE 21, item 2): Bourse across hosts. PostgreSQL
//! and Redis on a data host, the API and a worker on host a, a worker on
//! host b whose clock is ahead and one on host c whose clock is behind,
//! each host a network namespace of its own, 2 ms ± 1 ms between them
//! (`testkit::hosts` says how, and why not `tc netem`). This process is
//! the data host's operator: it places the bets and reads the outcome.
//!
//! 1. **Throughput, no faults**: recorded probe jobs, all due at once,
//!    through the outbox and Redis across the network: jobs/s, and how
//!    many ran twice (a repeat with no host down is a false orphan
//!    takeover, caused by the skew or the latency).
//! 2. **Settlement through faults**: real bets falling due over a window;
//!    a quarter in, host b's worker is SIGKILLed (and started again 5 s
//!    later, as a process manager would); half-way, host c's worker is
//!    SIGSTOPped for longer than the lease, then SIGCONTinued. Measured:
//!    settlement lateness (all bets, and those settled before the first
//!    fault), payouts
//!    made twice (must be 0), and each fault's recovery: the worst
//!    lateness of the bets due within a second of it, which the victim
//!    held until they were taken over (about the lease, when all works;
//!    the freeze, if a frozen process's locks held them up).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use shared::config::Config;
use testkit::hosts::{DATA_ADDR, DataServices, DelayRelay, Lan, host_addr, postgres_bin};
use tokio::process::Child;

use crate::{
    http::request_at,
    settlement::{place_bets, wait_until_settled},
    support::{
        Count, REDIS_RETRIES, insert_recorded_probes, migrate, percentile, stop,
        wait_for_probe_runs,
    },
};

#[derive(Clone)]
pub struct HostsRun {
    pub probes: usize,
    pub bets: usize,
    pub lead: f64,
    pub spread: f64,
    pub concurrency: usize,
    pub skew_secs: i64,
    pub freeze_secs: u64,
    /// WORKER_LEASE_SECS of the workers (their heartbeat a third of it).
    pub lease_secs: u64,
}

const WORKER_PORT: u16 = 9100;
const API_PORT: u16 = 8080;
/// Host a (0) runs the API and a worker on the true time; b (1) is ahead
/// by the skew, c (2) behind.
const HOSTS: usize = 3;

impl HostsRun {
    pub async fn measure(&self) -> anyhow::Result<()> {
        let libfaketime = libfaketime()?;
        let pg_bin = postgres_bin().map_err(anyhow::Error::msg)?;
        let bin_dir = std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let lan = Arc::new(Lan::create(HOSTS).await.map_err(anyhow::Error::msg)?);
        let run = self.clone();
        let on_lan = lan.clone();
        // Everything from here runs on the data host; the runtime is made
        // there so that every socket it opens is the data host's.
        lan.run_on_data_host(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("a runtime on the data host")?
                .block_on(run.on_data_host(&on_lan, &pg_bin, &bin_dir, &libfaketime))
        })
        .map_err(anyhow::Error::msg)?
    }

    async fn on_data_host(
        &self,
        lan: &Lan,
        pg_bin: &Path,
        bin_dir: &Path,
        libfaketime: &Path,
    ) -> anyhow::Result<()> {
        let _services = DataServices::start(lan, pg_bin, 200)
            .await
            .map_err(anyhow::Error::msg)?;
        let relay = |port: u16| {
            let listen: SocketAddr = format!("{DATA_ADDR}:{port}").parse()?;
            let target: SocketAddr = format!("127.0.0.1:{port}").parse()?;
            anyhow::Ok((listen, target))
        };
        let (listen, target) = relay(5432)?;
        let pg_link = DelayRelay::start(listen, target)
            .await
            .map_err(anyhow::Error::msg)?;
        let (listen, target) = relay(6379)?;
        let redis_link = DelayRelay::start(listen, target)
            .await
            .map_err(anyhow::Error::msg)?;

        let mut admin = AsyncPgConnection::establish("postgres://postgres@127.0.0.1:5432/postgres")
            .await
            .context("the data host's PostgreSQL")?;
        diesel::sql_query("CREATE DATABASE bourse")
            .execute(&mut admin)
            .await?;
        let local_db = "postgres://postgres@127.0.0.1:5432/bourse";
        migrate(local_db).await?;
        let prefix = format!("hosts-{:08x}", rand::random::<u32>());
        let secret = format!(
            "{:032x}{:032x}",
            rand::random::<u128>(),
            rand::random::<u128>()
        );
        let observer = Config::from_map(
            [
                ("DATABASE_URL", local_db.to_owned()),
                ("REDIS_URL", "redis://127.0.0.1:6379/0".to_owned()),
                ("REDIS_PREFIX", prefix.clone()),
                ("JWT_SECRET", secret.clone()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;

        let mail_dir = std::env::temp_dir().join(format!("{prefix}-mail"));
        let env: Vec<(&str, String)> = vec![
            (
                "DATABASE_URL",
                format!("postgres://postgres@{DATA_ADDR}:5432/bourse"),
            ),
            ("REDIS_URL", format!("redis://{DATA_ADDR}:6379/0")),
            ("REDIS_PREFIX", prefix.clone()),
            ("JWT_SECRET", secret),
            ("DATABASE_POOL_SIZE", "16".to_owned()),
            ("MAIL_TRANSPORT", "file".to_owned()),
            ("MAIL_OUTBOX_DIR", mail_dir.display().to_string()),
            ("RUST_LOG", "warn".to_owned()),
            ("WORKER_LEASE_SECS", self.lease_secs.to_string()),
            (
                "WORKER_HEARTBEAT_SECS",
                (self.lease_secs / 3).max(1).to_string(),
            ),
        ];
        let spawn = Spawner {
            lan,
            bin_dir,
            libfaketime,
            env: &env,
            concurrency: self.concurrency,
            skew_secs: self.skew_secs,
        };
        let spawned_at = chrono::Utc::now();
        let mut api = spawn.api()?;
        let mut workers: Vec<Child> = (0..HOSTS)
            .map(|host| spawn.worker(host, &format!("{prefix}-{host}")))
            .collect::<anyhow::Result<_>>()?;
        let ready = wait_until_ready(&host_addr(0), API_PORT, "/readyz").await;
        for host in 0..HOSTS {
            wait_until_ready(&host_addr(host), WORKER_PORT, "/healthz").await?;
        }
        ready?;
        let offsets = clock_offsets(&observer, &prefix, spawned_at).await?;

        let pool =
            shared::db::pool(&observer.database, "bourse-bench").map_err(anyhow::Error::msg)?;
        let mut conn = AsyncPgConnection::establish(local_db).await?;

        // 1. Throughput with no faults.
        let now = db_now(&mut conn).await?;
        let rows: Vec<(uuid::Uuid, chrono::DateTime<chrono::Utc>)> = (0..self.probes)
            .map(|_| (uuid::Uuid::now_v7(), now))
            .collect();
        let started = Instant::now();
        insert_recorded_probes(&mut conn, "hosts", &rows).await?;
        let runs =
            wait_for_probe_runs(&mut conn, "hosts", self.probes, Duration::from_secs(600)).await?;
        let jobs_per_s = self.probes as f64 / started.elapsed().as_secs_f64();
        let repeats = runs.len() - self.probes;

        // 2. Settlement through faults.
        eprintln!(
            "[bench] {} bets due from {}s to {}s from now",
            self.bets,
            self.lead,
            self.lead + self.spread
        );
        place_bets(
            &pool,
            &observer,
            &mut conn,
            self.bets,
            self.lead,
            self.spread,
        )
        .await?;
        let window_opens = Instant::now() + Duration::from_secs_f64(self.lead);
        tokio::time::sleep_until(
            (window_opens + Duration::from_secs_f64(self.spread / 4.0)).into(),
        )
        .await;
        let killed_at = db_now(&mut conn).await?;
        if let Some(victim) = workers.get_mut(1) {
            victim.kill().await?;
            let _ = victim.wait().await;
        }
        eprintln!("[bench] host b's worker killed");
        tokio::time::sleep(Duration::from_secs(5)).await;
        workers[1] = spawn.worker(1, &format!("{prefix}-1-again"))?;
        tokio::time::sleep_until(
            (window_opens + Duration::from_secs_f64(self.spread / 2.0)).into(),
        )
        .await;
        let frozen_pid = workers
            .get(2)
            .and_then(Child::id)
            .context("host c's worker")?;
        let stopped_at = db_now(&mut conn).await?;
        testkit::signal(frozen_pid, "-STOP").await?;
        eprintln!("[bench] host c's worker frozen for {}s", self.freeze_secs);
        tokio::time::sleep(Duration::from_secs(self.freeze_secs)).await;
        testkit::signal(frozen_pid, "-CONT").await?;

        let deadline = window_opens + Duration::from_secs_f64(self.spread + 300.0);
        wait_until_settled(&mut conn, deadline).await?;
        // The resumed worker finishes what it held when frozen (those
        // bets were taken over meanwhile): wait until every job of the run
        // has left Redis before counting payouts.
        let queues = queue::JobQueues::new(
            queue::connect(&observer.redis, REDIS_RETRIES)
                .map_err(anyhow::Error::msg)?
                .1,
            prefix.clone(),
        );
        loop {
            let counts = queues.counts(shared::jobs::Queue::BetSettlement).await?;
            if counts.pending == 0 && counts.running == 0 {
                break;
            }
            if Instant::now() > deadline {
                bail!("bet settlement jobs still waiting: {counts:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let api_ready = request_at(
            &format!("{}:{API_PORT}", host_addr(0)),
            format!(
                "GET /readyz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                host_addr(0)
            )
            .as_bytes(),
        )
        .await
        .map(|(status, _)| status)
            == Some(200);

        let outcome = Outcome::read(&mut conn, killed_at, stopped_at).await?;
        for child in workers.iter_mut().chain(std::iter::once(&mut api)) {
            stop(child).await;
        }
        let _ = std::fs::remove_dir_all(&mail_dir);
        let (chunks, delay_ms) = {
            let (pg, pg_ms) = pg_link.delayed();
            let (redis, redis_ms) = redis_link.delayed();
            let all = pg + redis;
            let mean = (pg as f64 * pg_ms + redis as f64 * redis_ms) / all.max(1) as f64;
            (all, mean)
        };
        println!(
            "scenario=hosts hosts=4 link_delay_ms_mean={delay_ms:.2} chunks_delayed={chunks} clock_offsets_s={offsets} probes={} jobs_per_s={jobs_per_s:.0} probe_repeats_without_faults={repeats} bets={} settled={} payouts={} double_payouts={} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} p99_settled_before_faults_ms={:.2} kill_worst_late_s={:.2} lease_s={} freeze_s={} freeze_worst_late_s={:.2} api_ready={api_ready} ledger_ok={}",
            self.probes,
            self.bets,
            outcome.lateness.len(),
            outcome.payouts,
            outcome.double_payouts,
            percentile(&outcome.lateness, 50.0),
            percentile(&outcome.lateness, 99.0),
            outcome.lateness.last().copied().unwrap_or(f64::NAN),
            percentile(&outcome.before_faults, 99.0),
            outcome.kill_worst_late_s,
            self.lease_secs,
            self.freeze_secs,
            outcome.freeze_worst_late_s,
            outcome.ledger_ok,
        );
        ensure!(chunks > 0, "nothing crossed the delayed links");
        ensure!(
            repeats == 0,
            "{repeats} probe jobs ran twice with every host up"
        );
        ensure!(
            outcome.double_payouts == 0,
            "{} bets paid twice",
            outcome.double_payouts
        );
        ensure!(
            outcome.payouts == i64::try_from(self.bets)?,
            "{} payouts for {} bets",
            outcome.payouts,
            self.bets
        );
        ensure!(api_ready, "the API host is not ready at the end");
        ensure!(outcome.ledger_ok, "the ledger check failed");
        Ok(())
    }
}

/// Starts Bourse's processes on the hosts.
struct Spawner<'a> {
    lan: &'a Lan,
    bin_dir: &'a Path,
    libfaketime: &'a Path,
    env: &'a [(&'a str, String)],
    concurrency: usize,
    skew_secs: i64,
}

impl Spawner<'_> {
    fn command(&self, host: usize, binary: &str) -> anyhow::Result<tokio::process::Command> {
        let skew = match host {
            1 => self.skew_secs,
            2 => -self.skew_secs,
            _ => 0,
        };
        let mut command = self
            .lan
            .command(
                host,
                &self.bin_dir.join(binary),
                skew,
                Some(self.libfaketime),
            )
            .map_err(anyhow::Error::msg)?;
        for (name, value) in self.env {
            command.env(name, value);
        }
        command.stdout(std::process::Stdio::null());
        Ok(command)
    }

    fn api(&self) -> anyhow::Result<Child> {
        let mut command = self.command(0, "bourse-api")?;
        command.env("HTTP_ADDR", format!("{}:{API_PORT}", host_addr(0)));
        command.spawn().context("start bourse-api on host a")
    }

    fn worker(&self, host: usize, name: &str) -> anyhow::Result<Child> {
        let mut command = self.command(host, "bourse-worker")?;
        command
            .args(["--name", name, "--concurrency"])
            .arg(self.concurrency.to_string())
            .env(
                "WORKER_HTTP_ADDR",
                format!("{}:{WORKER_PORT}", host_addr(host)),
            );
        command
            .spawn()
            .with_context(|| format!("start bourse-worker on host {host}"))
    }
}

async fn wait_until_ready(host: &str, port: u16, path: &str) -> anyhow::Result<()> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let deadline = Instant::now() + Duration::from_secs(60);
    while request_at(&format!("{host}:{port}"), request.as_bytes())
        .await
        .map(|(status, _)| status)
        != Some(200)
    {
        if Instant::now() > deadline {
            bail!("{host}:{port}{path} is not ready after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Each worker's start time by its own clock less the data host's time
/// when it was started, as `a:+0.2,b:+3.2,c:-2.8` (the true start-up time
/// plus the skew): shows the skew is real.
async fn clock_offsets(
    observer: &Config,
    prefix: &str,
    spawned_at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<String> {
    let (_, redis) = queue::connect(&observer.redis, REDIS_RETRIES).map_err(anyhow::Error::msg)?;
    let queues = queue::JobQueues::new(redis, prefix.to_owned());
    let deadline = Instant::now() + Duration::from_secs(30);
    let seen = loop {
        let seen = queues.processes().await?;
        if seen.len() >= HOSTS {
            break seen;
        }
        if Instant::now() > deadline {
            bail!("only {} worker processes announced themselves", seen.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let started = |host: usize| {
        seen.iter()
            .find(|p| p.process.name == format!("{prefix}-{host}"))
            .map(|p| p.process.started_at)
    };
    let offset = |host: usize| {
        started(host).map_or(f64::NAN, |at| {
            (at - spawned_at).num_milliseconds() as f64 / 1000.0
        })
    };
    Ok(format!(
        "a:{:+.1},b:{:+.1},c:{:+.1}",
        offset(0),
        offset(1),
        offset(2)
    ))
}

#[derive(QueryableByName)]
struct Now {
    #[diesel(sql_type = sql_types::Timestamptz)]
    at: chrono::DateTime<chrono::Utc>,
}

async fn db_now(conn: &mut AsyncPgConnection) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    let now: Now = diesel::sql_query("SELECT clock_timestamp() AS at")
        .get_result(conn)
        .await?;
    Ok(now.at)
}

#[derive(QueryableByName)]
struct Settled {
    #[diesel(sql_type = sql_types::Timestamptz)]
    settles_at: chrono::DateTime<chrono::Utc>,
    #[diesel(sql_type = sql_types::Timestamptz)]
    settled_at: chrono::DateTime<chrono::Utc>,
}

struct Outcome {
    lateness: Vec<f64>,
    before_faults: Vec<f64>,
    payouts: i64,
    double_payouts: i64,
    kill_worst_late_s: f64,
    freeze_worst_late_s: f64,
    ledger_ok: bool,
}

impl Outcome {
    async fn read(
        conn: &mut AsyncPgConnection,
        killed_at: chrono::DateTime<chrono::Utc>,
        stopped_at: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<Self> {
        let bets: Vec<Settled> = diesel::sql_query(
            "SELECT settles_at, settled_at FROM bets WHERE settled_at IS NOT NULL",
        )
        .load(conn)
        .await?;
        let late_ms = |b: &Settled| {
            (b.settled_at - b.settles_at)
                .num_microseconds()
                .unwrap_or(0) as f64
                / 1000.0
        };
        let mut lateness: Vec<f64> = bets.iter().map(late_ms).collect();
        lateness.sort_by(f64::total_cmp);
        let mut before_faults: Vec<f64> = bets
            .iter()
            // Settled before the first fault: untouched by any.
            .filter(|b| b.settled_at < killed_at)
            .map(late_ms)
            .collect();
        before_faults.sort_by(f64::total_cmp);
        // The worst lateness of the bets due within a second of `fault`:
        // the victim held some of them (running, or fetched ahead of their
        // due time), and they waited until they were taken over.
        let worst_near = |fault: chrono::DateTime<chrono::Utc>| {
            let near = chrono::Duration::seconds(1);
            bets.iter()
                .filter(|b| b.settles_at >= fault - near && b.settles_at <= fault + near)
                .map(|b| late_ms(b) / 1000.0)
                .fold(0.0_f64, f64::max)
        };
        let payouts: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM ledger_transactions WHERE kind = 'bet_payout'",
        )
        .get_result(conn)
        .await?;
        // A second payout of a bet would be a payout no bet points at.
        let paid: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM bets WHERE payout_transaction_id IS NOT NULL",
        )
        .get_result(conn)
        .await?;
        let report = shared::ledger::check(conn).await?;
        Ok(Self {
            lateness,
            before_faults,
            payouts: payouts.n,
            double_payouts: payouts.n - paid.n,
            kill_worst_late_s: worst_near(killed_at),
            freeze_worst_late_s: worst_near(stopped_at),
            ledger_ok: report.ok,
        })
    }
}

/// Debian's libfaketime, which `tests/faketime/setup.sh` installs.
fn libfaketime() -> anyhow::Result<PathBuf> {
    let found = std::fs::read_dir("/usr/lib")?
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("faketime/libfaketime.so.1"))
        .find(|path| path.exists());
    found.context("libfaketime is missing: run tests/faketime/setup.sh (Debian's faketime)")
}
