//! A Docker engine and Compose stacks for the stack tests
//! (`tests/tests/e2e/stack.rs`). The engine, the local base images, the vendored
//! crates and the Bourse image come from `scripts/docker/setup`, which
//! installs and starts what is missing; a stack is torn down (`docker
//! compose down -v`) by its guard, also when the test fails.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Instant,
};

/// The repository root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A port nobody listens on now, for publishing a container's port.
pub use crate::free_port;

/// The local images `scripts/docker/local-images` makes, as the variables
/// docker-compose.yml reads.
pub const LOCAL_IMAGES: [(&str, &str); 6] = [
    ("BOURSE_IMAGE", "bourse-local/bourse:latest"),
    ("POSTGRES_IMAGE", "bourse-local/postgres:15"),
    ("REDIS_IMAGE", "bourse-local/redis:7"),
    ("MAILPIT_IMAGE", "bourse-local/mailcatcher"),
    ("BUILD_IMAGE", "bourse-local/rust:bookworm"),
    ("RUNTIME_IMAGE", "bourse-local/debian:bookworm"),
];

fn check(what: &str, output: std::io::Result<Output>) -> String {
    let output = output.unwrap_or_else(|e| panic!("{what}: could not run: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A Docker engine that answers, and the client to talk to it.
#[derive(Clone)]
pub struct Docker {
    pub client: PathBuf,
}

impl Docker {
    /// Runs `scripts/docker/setup`: installs and starts the engine and
    /// Compose when missing, makes the local images and the Bourse image.
    /// Fails (never skips) with the script's message when a part cannot be
    /// installed or started.
    pub fn setup() -> Self {
        Self::setup_with(&[])
    }

    /// [`Docker::setup`] without the Bourse image: the engine, the local
    /// base images and the vendored crates.
    pub fn setup_base() -> Self {
        Self::setup_with(&["--base"])
    }

    fn setup_with(args: &[&str]) -> Self {
        let started = Instant::now();
        let output = Command::new(workspace().join("scripts/docker/setup"))
            .args(args)
            .stderr(std::process::Stdio::inherit())
            .output();
        let client = check(
            "scripts/docker/setup (Docker engine, Compose plugin, local images; see the lines above)",
            output,
        );
        eprintln!("docker setup took {:?}", started.elapsed());
        Self {
            client: PathBuf::from(client),
        }
    }

    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.client);
        command.env("DOCKER_BUILDKIT", "1");
        command
    }

    /// Runs the client with `args`; its stdout, or a panic with both outputs.
    pub fn run(&self, args: &[&str]) -> String {
        check(
            &format!("docker {}", args.join(" ")),
            self.command().args(args).output(),
        )
    }
}

/// A running `docker compose` project; `down -v` when dropped.
pub struct ComposeStack {
    pub docker: Docker,
    pub project: String,
    env: Vec<(String, String)>,
    env_file: PathBuf,
}

impl ComposeStack {
    /// Starts docker-compose.yml as project `project` with `env` for its
    /// variables (and nothing from a developer's `.env`), passing `args` to
    /// `up`. The guard exists before `up` runs, so a failed start is torn
    /// down too.
    pub fn up(docker: &Docker, project: &str, env: &[(&str, String)], args: &[&str]) -> Self {
        let dir = workspace().join("target/stack-tests");
        std::fs::create_dir_all(&dir).expect("target/stack-tests");
        let env_file = dir.join(format!("{project}.env"));
        std::fs::write(&env_file, "").expect("empty env file");
        let stack = Self {
            docker: docker.clone(),
            project: project.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            env_file,
        };
        let mut up = vec!["up"];
        up.extend_from_slice(args);
        stack.compose(&up);
        stack
    }

    fn compose_command(&self, args: &[&str]) -> Command {
        let mut command = self.docker.command();
        let file = workspace().join("docker-compose.yml");
        command
            .arg("compose")
            .arg("-p")
            .arg(&self.project)
            .arg("-f")
            .arg(file)
            .arg("--env-file")
            .arg(&self.env_file)
            .args(args);
        // The stack's variables come from the test alone.
        for name in ["EXCHANGE", "EXCHANGE_URL", "EXCHANGE_API_KEY", "JWT_SECRET"] {
            command.env_remove(name);
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Runs `docker compose <args>` on this project; its stdout.
    pub fn compose(&self, args: &[&str]) -> String {
        check(
            &format!("docker compose {}", args.join(" ")),
            self.compose_command(args).output(),
        )
    }

    /// The ids of the running containers of `service`.
    pub fn containers(&self, service: &str) -> Vec<String> {
        self.compose(&["ps", "-q", service])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// One SQL statement through `psql` in the `postgres` container
    /// (unaligned, tuples only).
    pub fn psql(&self, sql: &str) -> String {
        self.compose(&[
            "exec",
            "-T",
            "postgres",
            "psql",
            "-U",
            "bourse",
            "-d",
            "bourse",
            "-v",
            "ON_ERROR_STOP=1",
            "-Atc",
            sql,
        ])
    }
}

impl Drop for ComposeStack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What the services said, for the failure report.
            if let Ok(output) = self
                .compose_command(&["logs", "--no-color", "--tail", "40"])
                .output()
            {
                eprintln!("{}", String::from_utf8_lossy(&output.stdout));
            }
        }
        match self
            .compose_command(&["down", "-v", "--remove-orphans", "--timeout", "5"])
            .output()
        {
            Ok(output) if output.status.success() => {}
            Ok(output) => eprintln!(
                "docker compose down failed for {}: {}",
                self.project,
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(error) => eprintln!("docker compose down: {error}"),
        }
        let _ = std::fs::remove_file(&self.env_file);
    }
}
