//! The real `bourse-worker` binary, for tests about processes: SIGKILL,
//! SIGTERM, several workers sharing queues.

use std::{collections::HashMap, path::PathBuf, process::Stdio, time::Duration};

use tokio::process::{Child, Command};

/// Where cargo put the workspace binaries: next to the test binary's
/// `deps/` folder. `scripts/test` builds them before the tests run.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`, which scripts/test does)",
        path.display()
    );
    path
}

pub struct WorkerProcess {
    pub name: String,
    pub health_url: String,
    child: Child,
    log: Log,
}

/// What a child process wrote to stderr (its logs), collected as it goes.
#[derive(Clone, Default)]
pub struct Log(std::sync::Arc<std::sync::Mutex<String>>);

impl Log {
    /// Starts copying `child`'s stderr into the log.
    fn collect(&self, child: &mut Child) {
        use tokio::io::AsyncBufReadExt as _;
        let Some(stderr) = child.stderr.take() else {
            return;
        };
        let buffer = self.0.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // Shown by the test runner when a test fails.
                eprintln!("{line}");
                if let Ok(mut text) = buffer.lock() {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
        });
    }

    pub fn text(&self) -> String {
        self.0.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

/// A `bourse-api` process serving on a free port.
pub struct ApiProcess {
    pub base_url: String,
    child: Child,
    log: Log,
}

impl ApiProcess {
    pub fn spawn(settings: &HashMap<String, String>) -> Self {
        let port = free_port();
        let (child, log) = start("bourse-api", settings, &[], ("HTTP_ADDR", port));
        Self {
            base_url: format!("http://127.0.0.1:{port}"),
            child,
            log,
        }
    }

    /// Its logs so far.
    pub fn log(&self) -> String {
        self.log.text()
    }

    /// `None` while it runs.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM: the graceful stop.
    pub async fn terminate(&mut self) {
        send_signal(self.child.id().expect("running"), "-TERM").await;
    }

    /// SIGINT: what Ctrl-C in a terminal sends.
    pub async fn interrupt(&mut self) {
        send_signal(self.child.id().expect("running"), "-INT").await;
    }

    /// Waits for exit; panics after `timeout`.
    pub async fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        wait_for_exit(&mut self.child, "bourse-api", timeout).await
    }
}

/// Starts binary `name` with `settings`, `args` and its listen address
/// variable set to a local `port`, collecting its logs.
fn start(
    name: &str,
    settings: &HashMap<String, String>,
    args: &[&str],
    (addr_var, port): (&str, u16),
) -> (Child, Log) {
    let mut command = Command::new(binary(name));
    command
        .args(args)
        .envs(settings)
        .env(addr_var, format!("127.0.0.1:{port}"))
        // A test may ask for more (a `RUST_LOG` in its settings) to see a
        // debug line; else the runner's, else warnings.
        .env(
            "RUST_LOG",
            settings
                .get("RUST_LOG")
                .cloned()
                .or_else(|| std::env::var("RUST_LOG").ok())
                .unwrap_or_else(|| "warn".into()),
        )
        // No stray .env from the developer's checkout.
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    let log = Log::default();
    log.collect(&mut child);
    (child, log)
}

use crate::free_port;

impl WorkerProcess {
    /// Starts `bourse-worker` with `settings` plus `extra` arguments.
    pub fn spawn(settings: &HashMap<String, String>, name: &str, extra: &[&str]) -> Self {
        let port = free_port();
        let mut args = vec!["--name", name];
        args.extend_from_slice(extra);
        let (child, log) = start("bourse-worker", settings, &args, ("WORKER_HTTP_ADDR", port));
        Self {
            name: name.to_owned(),
            health_url: format!("http://127.0.0.1:{port}/healthz"),
            child,
            log,
        }
    }

    /// Starts one process per name, each with `extra` arguments, and waits
    /// until every one is healthy.
    pub async fn spawn_healthy(
        settings: &HashMap<String, String>,
        names: &[&str],
        extra: &[&str],
    ) -> Vec<Self> {
        let workers: Vec<Self> = names
            .iter()
            .map(|name| Self::spawn(settings, name, extra))
            .collect();
        for worker in &workers {
            crate::poll::healthy(
                &format!("worker {}", worker.name),
                &worker.health_url,
                std::time::Duration::from_secs(60),
            )
            .await;
        }
        workers
    }

    /// Its logs so far.
    pub fn log(&self) -> String {
        self.log.text()
    }

    /// `None` while it runs.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// SIGKILL: no cleanup, no acknowledgements, no goodbye.
    pub async fn kill(&mut self) {
        self.child.start_kill().expect("SIGKILL");
        let _ = self.child.wait().await;
    }

    /// SIGTERM: the graceful stop.
    pub async fn terminate(&mut self) {
        self.signal("-TERM").await;
    }

    /// SIGSTOP: the process freezes (as in a long GC pause or a stalled VM).
    pub async fn pause(&self) {
        self.signal("-STOP").await;
    }

    /// SIGCONT: it wakes up where it was.
    pub async fn resume(&self) {
        self.signal("-CONT").await;
    }

    async fn signal(&self, signal: &str) {
        send_signal(self.pid(), signal).await;
    }

    /// Waits for exit; panics after `timeout`.
    pub async fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        wait_for_exit(&mut self.child, &self.name, timeout).await
    }
}

/// Sends `signal` (`-TERM`, `-STOP`, ...) to process `pid`.
async fn send_signal(pid: u32, signal: &str) {
    let status = testkit::signal(pid, signal).await.expect("run kill");
    assert!(status.success(), "kill {signal} failed");
}

/// Waits for `child` to exit; panics after `timeout`.
async fn wait_for_exit(
    child: &mut Child,
    name: &str,
    timeout: Duration,
) -> std::process::ExitStatus {
    tokio::time::timeout(timeout, child.wait())
        .await
        .unwrap_or_else(|_| panic!("{name} did not exit within {timeout:?}"))
        .expect("wait")
}
