//! Several hosts on one machine, for what only shows across a network:
//! Linux network namespaces on one bridge, each with its own address and
//! stack, and a data host running its own PostgreSQL and Redis.
//!
//! ```text
//!   data host 10.77.0.1 (PostgreSQL, Redis; the observer)
//!        │ br0
//!   ┌────┼────────────┐
//!   a 10.77.0.2   b 10.77.0.3   c 10.77.0.4   (Bourse's processes)
//! ```
//!
//! **Latency.** This machine's kernel has no `netem` (nor `fq`) queueing
//! discipline — `tc qdisc add … netem` answers "Specified qdisc kind is
//! unknown" and its config has `CONFIG_NET_SCH_NETEM` unset — so the delay
//! between hosts is added by [`DelayRelay`], a TCP relay on the data host's
//! address in front of PostgreSQL and Redis (which listen on the data
//! host's loopback only): every chunk in each direction waits a uniform
//! 1–3 ms (2 ms ± 1 ms), order kept. The other traffic (the observer's
//! HTTP to the API host) crosses the bridge undelayed.
//!
//! **Clocks.** A host's processes may run with Debian's libfaketime
//! preloaded ([`Lan::command`] with a skew), as a host whose clock is off.
//!
//! Everything needs root (`ip netns`, `setpriv`); nothing leaves the
//! namespaces made here.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    process::{Child, Command},
    sync::mpsc,
};

/// The data host's address; host `i` (0-based) is `10.77.0.{i + 2}`.
pub const DATA_ADDR: &str = "10.77.0.1";

pub fn host_addr(host: usize) -> String {
    format!("10.77.0.{}", host + 2)
}

type Result<T> = std::result::Result<T, String>;

/// The namespaces, the bridge and the veth pairs. Dropping it deletes the
/// namespaces (and with them every link and address).
pub struct Lan {
    tag: String,
    hosts: usize,
}

impl Lan {
    /// A data host and `hosts` more, named after a random tag so that runs
    /// side by side do not meet.
    pub async fn create(hosts: usize) -> Result<Self> {
        let tag = format!("bh{:06x}", random_u64() & 0xff_ffff);
        let lan = Self { tag, hosts };
        let data = lan.data_namespace();
        ip(&["netns", "add", &data]).await?;
        ip(&["-n", &data, "link", "set", "lo", "up"]).await?;
        ip(&["-n", &data, "link", "add", "br0", "type", "bridge"]).await?;
        ip(&[
            "-n",
            &data,
            "addr",
            "add",
            &format!("{DATA_ADDR}/24"),
            "dev",
            "br0",
        ])
        .await?;
        ip(&["-n", &data, "link", "set", "br0", "up"]).await?;
        for host in 0..hosts {
            let ns = lan.namespace(host);
            let port = format!("p{host}");
            ip(&["netns", "add", &ns]).await?;
            ip(&["-n", &ns, "link", "set", "lo", "up"]).await?;
            // Both ends are made inside their namespaces: no name is ever
            // taken in the machine's own namespace.
            ip(&[
                "link", "add", &port, "netns", &data, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ])
            .await?;
            ip(&["-n", &data, "link", "set", &port, "master", "br0"]).await?;
            ip(&["-n", &data, "link", "set", &port, "up"]).await?;
            let addr = format!("{}/24", host_addr(host));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"]).await?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"]).await?;
        }
        Ok(lan)
    }

    pub fn data_namespace(&self) -> String {
        format!("{}-d", self.tag)
    }

    pub fn namespace(&self, host: usize) -> String {
        format!("{}-{host}", self.tag)
    }

    /// `program` to run on `host`, its clock moved by `skew_secs` (0: the
    /// true time) through `libfaketime` (the library's path). Killing the
    /// child kills the program itself: `ip netns exec` execs it.
    pub fn command(
        &self,
        host: usize,
        program: &Path,
        skew_secs: i64,
        libfaketime: Option<&Path>,
    ) -> Result<Command> {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.namespace(host)])
            .arg(program);
        if skew_secs != 0 {
            let library = libfaketime.ok_or("a skewed clock needs libfaketime")?;
            command
                .env("LD_PRELOAD", library)
                .env("FAKETIME", format!("{skew_secs:+}s"))
                // Timers and timeouts keep the true pace; only the wall
                // clock (what a host with a wrong clock gets wrong) moves.
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_NO_CACHE", "1");
        }
        command.stdin(Stdio::null()).kill_on_drop(true);
        Ok(command)
    }

    /// Runs `work` on a thread of its own inside the data host's namespace
    /// (with a runtime made there, so every socket it opens is the data
    /// host's) and returns what it returns.
    pub fn run_on_data_host<F, T>(&self, work: F) -> Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let path = format!("/var/run/netns/{}", self.data_namespace());
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&file),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .map_err(|e| format!("setns {path}: {e}"))?;
            Ok(work())
        })
        .join()
        .map_err(|_| "the data host's thread panicked".to_owned())?
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        let mut names = vec![self.data_namespace()];
        names.extend((0..self.hosts).map(|h| self.namespace(h)));
        for name in names {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &name])
                .status();
        }
    }
}

async fn ip(args: &[&str]) -> Result<()> {
    run("ip", args).await
}

/// The data host's own PostgreSQL (a fresh cluster, `initdb` as user
/// `postgres`) and Redis, both on its loopback: the other hosts reach them
/// through [`DelayRelay`]s. Start it from [`Lan::run_on_data_host`]'s
/// runtime.
pub struct DataServices {
    postgres: Child,
    redis: Child,
    dir: PathBuf,
}

impl DataServices {
    pub async fn start(lan: &Lan, pg_bin: &Path, max_connections: u32) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("{}-pg", lan.tag));
        let dir_text = dir.display().to_string();
        run("mkdir", &["-p", &dir_text]).await?;
        run("chown", &["postgres:postgres", &dir_text]).await?;
        let initdb = pg_bin.join("initdb").display().to_string();
        run(
            "setpriv",
            &[
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                &initdb,
                "-D",
                &dir_text,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        )
        .await?;
        let namespace = lan.data_namespace();
        let postgres = Command::new("ip")
            .args(["netns", "exec", &namespace, "setpriv"])
            .args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(pg_bin.join("postgres"))
            .args(["-D", &dir_text, "-k", &dir_text])
            .args(["-c", "listen_addresses=127.0.0.1", "-p", "5432"])
            .args(["-c", &format!("max_connections={max_connections}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("start postgres: {e}"))?;
        let redis = Command::new("ip")
            .args(["netns", "exec", &namespace, "redis-server"])
            .args(["--bind", "127.0.0.1", "--port", "6379", "--save", ""])
            .args(["--appendonly", "no", "--dir", &dir_text])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("start redis-server: {e}"))?;
        let services = Self {
            postgres,
            redis,
            dir,
        };
        wait_for_port("127.0.0.1:6379", Duration::from_secs(30)).await?;
        // Accepting connections is not ready: until recovery ends it
        // answers "the database system is starting up".
        let deadline = Instant::now() + Duration::from_secs(30);
        let pg_isready = pg_bin.join("pg_isready");
        while !Command::new(&pg_isready)
            .args(["-q", "-h", &dir_text, "-p", "5432"])
            .status()
            .await
            .map_err(|e| format!("pg_isready cannot run: {e}"))?
            .success()
        {
            if Instant::now() > deadline {
                return Err("the data host's PostgreSQL is not ready after 30 s".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(services)
    }
}

impl Drop for DataServices {
    fn drop(&mut self) {
        // SIGQUIT: PostgreSQL's immediate shutdown, which also ends its
        // backends (SIGKILL would leave them to notice the postmaster's
        // death on their own).
        if let Some(pid) = self.postgres.id() {
            let _ = std::process::Command::new("kill")
                .args(["-QUIT", &pid.to_string()])
                .status();
        }
        let _ = self.redis.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn run(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(|e| format!("{program} cannot run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

async fn wait_for_port(addr: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("nothing listens on {addr} after {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A TCP relay from `listen` to `target` that holds every chunk, in each
/// direction, for a uniform 1–3 ms before passing it on, keeping order: a
/// network link with 2 ms ± 1 ms of one-way latency. Lives until dropped.
pub struct DelayRelay {
    task: tokio::task::JoinHandle<()>,
    stats: Arc<DelayStats>,
}

/// What the relay did, for the report: chunks passed and the delay they
/// were given.
#[derive(Default)]
pub struct DelayStats {
    chunks: AtomicU64,
    delay_us: AtomicU64,
}

impl DelayRelay {
    pub async fn start(listen: SocketAddr, target: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| format!("bind {listen}: {e}"))?;
        let stats = Arc::new(DelayStats::default());
        let shared = stats.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let stats = shared.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    let up = tokio::spawn(delayed_copy(client_read, server_write, stats.clone()));
                    delayed_copy(server_read, client_write, stats).await;
                    let _ = up.await;
                });
            }
        });
        Ok(Self { task, stats })
    }

    /// Chunks relayed and their mean delay in milliseconds.
    pub fn delayed(&self) -> (u64, f64) {
        let chunks = self.stats.chunks.load(Ordering::Relaxed);
        let us = self.stats.delay_us.load(Ordering::Relaxed);
        (chunks, us as f64 / 1000.0 / chunks.max(1) as f64)
    }
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads chunks from `from` and writes each to `to` no sooner than 1–3 ms
/// after it arrived, and never before the one read before it.
async fn delayed_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stats: Arc<DelayStats>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut seed = random_u64() | 1;
    let mut last_due = tokio::time::Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // xorshift: a uniform delay in [1000, 3000] µs.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(1_000 + seed % 2_001);
        let due = (tokio::time::Instant::now() + delay).max(last_due);
        last_due = due;
        stats.chunks.fetch_add(1, Ordering::Relaxed);
        stats.delay_us.fetch_add(
            u64::try_from(delay.as_micros()).unwrap_or(0),
            Ordering::Relaxed,
        );
        if tx.send((due, buf[..n].to_vec())).is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// The folder of PostgreSQL's server programs (`initdb`, `postgres`):
/// Debian keeps them out of `PATH`, under `/usr/lib/postgresql/<major>/bin`.
pub fn postgres_bin() -> Result<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let mut majors: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| format!("{}: {e}", root.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    majors.sort();
    majors
        .pop()
        .ok_or_else(|| format!("no PostgreSQL server programs under {}", root.display()))
}
