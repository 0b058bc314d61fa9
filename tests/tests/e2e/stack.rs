//! The Docker deployment, for real: the image builds, `docker compose up
//! --scale worker=4` runs, a user registers and verifies through the
//! published API and mail catcher, jobs are spread over the worker
//! containers and a SIGKILLed worker's jobs are finished by the others.
//! And a fresh machine (a container of the Rust build image with nothing
//! else installed) runs `scripts/up` from a clean copy of the repository.
//!
//! No image registry is reachable here, so `scripts/docker/setup` makes the
//! base images from Debian's packages (README, "Docker without a
//! registry"); it installs and starts the engine when missing, and a part
//! that cannot be installed fails the test with its reason.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
    time::{Duration, Instant},
};

use harness::{
    docker::{ComposeStack, Docker, LOCAL_IMAGES, free_port, workspace},
    eventually, random_suffix,
};
use serde_json::{Value, json};

/// Between two looks that each start a process (`docker exec`, `docker
/// inspect`): the deadline still decides, this only keeps the polling cheap.
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// Probe jobs for the spread check: more than one worker's 32 slots.
const SPREAD_JOBS: usize = 160;
/// Probe jobs in flight when a worker is killed; each sleeps long enough to
/// still be running when the kill lands.
const KILL_JOBS: usize = 48;
const KILL_JOB_SLEEP_MS: u64 = 15_000;

fn push_probes(stack: &ComposeStack, tag: &str, count: usize, sleep_ms: u64) {
    stack.psql(&format!(
        "INSERT INTO outbox (id, queue, job, version, payload, run_at) \
         SELECT gen_random_uuid(), 'probe', 'probe', 1, \
                jsonb_build_object('tag', '{tag}', 'record', true, 'sleep_ms', {sleep_ms}), now() \
         FROM generate_series(1, {count})"
    ));
}

/// `(job id, worker, finished)` for every recorded run of `tag`.
fn runs(stack: &ComposeStack, tag: &str) -> Vec<(String, String, bool)> {
    stack
        .psql(&format!(
            "SELECT job_id, worker, finished_at IS NOT NULL AND NOT failed \
             FROM probe_runs WHERE tag = '{tag}'"
        ))
        .lines()
        .filter_map(|line| {
            let mut cols = line.split('|');
            Some((
                cols.next()?.to_owned(),
                cols.next()?.to_owned(),
                cols.next()? == "t",
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_stack_registers_verifies_and_survives_a_killed_worker() {
    shared::tls::install_crypto_provider();
    // Builds the image too (scripts/docker/build-image), from this tree.
    let docker = Docker::setup();

    let api_port = free_port();
    let mail_port = free_port();
    let mut env: Vec<(&str, String)> = LOCAL_IMAGES
        .iter()
        .map(|(k, v)| (*k, (*v).to_owned()))
        .collect();
    env.push(("API_PORT", api_port.to_string()));
    env.push(("MAILPIT_PORT", mail_port.to_string()));
    env.push((
        "JWT_SECRET",
        format!("{}{}", random_suffix(), random_suffix()),
    ));
    let project = format!("bourse-stack-{}", random_suffix());
    let started = Instant::now();
    let stack = ComposeStack::up(
        &docker,
        &project,
        &env,
        &[
            "--no-build",
            "--wait",
            "--wait-timeout",
            "300",
            "--scale",
            "worker=4",
        ],
    );
    eprintln!("compose up --wait took {:?}", started.elapsed());

    // Register through the published API; the code arrives in the catcher.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let api = format!("http://127.0.0.1:{api_port}/api/v1");
    let email = format!("stack-{}@example.com", random_suffix());
    let reply = http
        .post(format!("{api}/auth/register"))
        .json(&json!({"username": format!("stack_{}", &random_suffix()[..8]), "email": email, "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201, "{}", reply.text().await.unwrap());

    let messages = format!("http://127.0.0.1:{mail_port}/api/v1/messages");
    let subject = eventually(
        "the verification email in the catcher",
        Duration::from_secs(60),
        || {
            let http = http.clone();
            let messages = messages.clone();
            let email = email.clone();
            async move {
                let list: Value = http.get(&messages).send().await.ok()?.json().await.ok()?;
                list["messages"].as_array()?.iter().find_map(|message| {
                    let to = message["To"].as_array()?;
                    to.iter()
                        .any(|a| a["Address"] == email.as_str())
                        .then(|| message["Subject"].as_str().map(str::to_owned))
                        .flatten()
                })
            }
        },
    )
    .await;
    let code = subject.rsplit(' ').next().unwrap_or_default().to_owned();
    assert!(
        code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()),
        "no code in {subject:?}"
    );
    let reply = http
        .post(format!("{api}/auth/verify-email"))
        .json(&json!({"email": email, "code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200, "{}", reply.text().await.unwrap());

    // Jobs are spread over the worker containers.
    let workers = stack.containers("worker");
    assert_eq!(workers.len(), 4, "{workers:?}");
    push_probes(&stack, "spread", SPREAD_JOBS, 200);
    let done_by = eventually("the spread probes done", Duration::from_secs(120), || {
        let runs = runs(&stack, "spread");
        let done: BTreeSet<&String> = runs.iter().filter(|r| r.2).map(|r| &r.0).collect();
        let names: BTreeSet<String> = runs.iter().map(|r| r.1.clone()).collect();
        let complete = done.len() == SPREAD_JOBS;
        async move {
            tokio::time::sleep(LOOK_EVERY).await;
            complete.then_some(names)
        }
    })
    .await;
    assert!(
        done_by.len() > 1,
        "all {SPREAD_JOBS} probes ran on one worker: {done_by:?}"
    );

    // SIGKILL a worker container with probes in flight: the others finish them.
    push_probes(&stack, "kill", KILL_JOBS, KILL_JOB_SLEEP_MS);
    let (victim_name, in_flight) = eventually(
        "a worker with probes in flight",
        Duration::from_secs(60),
        || {
            let mut running: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for (job, worker, done) in runs(&stack, "kill") {
                if !done {
                    running.entry(worker).or_default().insert(job);
                }
            }
            async move {
                tokio::time::sleep(LOOK_EVERY).await;
                running.into_iter().max_by_key(|(_, jobs)| jobs.len())
            }
        },
    )
    .await;
    // A worker is named host-pid-random; a container's host name is its id.
    let victim = workers
        .iter()
        .find(|id| victim_name.starts_with(&id[..12]))
        .unwrap_or_else(|| panic!("no container for worker {victim_name} in {workers:?}"))
        .clone();
    docker.run(&["kill", "--signal", "KILL", &victim]);
    eprintln!(
        "killed {victim_name} with {} probe(s) in flight",
        in_flight.len()
    );

    eventually(
        "the killed worker's probes finished by the others",
        Duration::from_secs(180),
        || {
            let runs = runs(&stack, "kill");
            let finished: BTreeSet<&String> = runs
                .iter()
                .filter(|(_, worker, done)| *done && *worker != victim_name)
                .map(|(job, _, _)| job)
                .collect();
            let all_done: BTreeSet<&String> = runs.iter().filter(|r| r.2).map(|r| &r.0).collect();
            let ok =
                in_flight.iter().all(|job| finished.contains(job)) && all_done.len() == KILL_JOBS;
            async move {
                tokio::time::sleep(LOOK_EVERY).await;
                ok.then_some(())
            }
        },
    )
    .await;
    drop(stack);
}

/// Removes the fresh-machine container, also when the test fails; the cache
/// volumes stay.
struct Container {
    docker: Docker,
    name: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Ok(output) = self
                .docker
                .command()
                .args(["logs", "--tail", "60", &self.name])
                .output()
        {
            eprintln!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let _ = self
            .docker
            .command()
            .args(["rm", "-f", &self.name])
            .output();
    }
}

/// The files a clone of this tree has (tracked, and new files not ignored),
/// as a tar with the prefix `src/`.
fn clean_copy() -> Vec<u8> {
    let root = workspace();
    let listed = Command::new("git")
        .current_dir(&root)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .unwrap();
    assert!(listed.status.success(), "git ls-files failed");
    let files: Vec<&[u8]> = listed
        .stdout
        .split(|b| *b == 0)
        .filter(|f| !f.is_empty())
        .filter(|f| root.join(String::from_utf8_lossy(f).as_ref()).is_file())
        .collect();
    let list = root.join(format!("target/stack-tests/files-{}", random_suffix()));
    std::fs::create_dir_all(list.parent().unwrap()).unwrap();
    std::fs::write(&list, files.join(&0u8)).unwrap();
    let tar = Command::new("tar")
        .current_dir(&root)
        .args(["--null", "--transform", "s,^,src/,", "-c", "-T"])
        .arg(&list)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&list);
    assert!(
        tar.status.success(),
        "tar failed: {}",
        String::from_utf8_lossy(&tar.stderr)
    );
    tar.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_machine_runs_scripts_up_with_nothing_installed_by_hand() {
    shared::tls::install_crypto_provider();
    let docker = Docker::setup_base();
    let port = free_port();
    let name = format!("bourse-fresh-{}", random_suffix());
    let container = Container {
        docker: docker.clone(),
        name: name.clone(),
    };
    // Only Debian and Rust: no PostgreSQL, Redis or psql; apt-get reaches
    // Debian's mirror as on any machine. crates.io is not reachable from a
    // container here (its TLS needs this machine's certificates), so cargo
    // reads the crates scripts/docker/setup vendored (a pre-fetched cargo
    // home, offline). The target directory is kept in a volume across runs,
    // as on a developer's machine, so only the first run compiles
    // everything.
    let root = workspace().canonicalize().unwrap();
    let vendor = root.join("var/docker/vendor");
    std::fs::create_dir_all(root.join("target/stack-tests")).unwrap();
    let config = root.join(format!("target/stack-tests/{name}.cargo.toml"));
    std::fs::write(
        &config,
        "[source.crates-io]\nreplace-with = \"vendored\"\n\
         [source.vendored]\ndirectory = \"/vendor\"\n\
         [net]\noffline = true\n",
    )
    .unwrap();
    docker.run(&[
        "create",
        "--name",
        &name,
        "-p",
        &format!("127.0.0.1:{port}:8080"),
        "-e",
        "HTTP_ADDR=0.0.0.0:8080",
        "-v",
        &format!("{}:/vendor:ro", vendor.display()),
        "-v",
        &format!("{}:/usr/local/cargo/config.toml:ro", config.display()),
        "-v",
        "bourse-fresh-target:/src/target",
        "-w",
        "/src",
        "bourse-local/rust:bookworm",
        "scripts/up",
    ]);
    let mut copy = docker
        .command()
        .args(["cp", "-", &format!("{name}:/")])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        copy.stdin.take().unwrap().write_all(&clean_copy()).unwrap();
    }
    assert!(
        copy.wait().unwrap().success(),
        "docker cp of the clean copy failed"
    );
    let started = Instant::now();
    docker.run(&["start", &name]);

    // A connection to a published port can hang while the process inside
    // is not listening yet: each look has its own timeout.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let readyz = format!("http://127.0.0.1:{port}/readyz");
    let logs = || {
        let output = docker.command().args(["logs", &name]).output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    // The first run installs PostgreSQL and Redis and compiles the
    // workspace on two cores.
    eventually(
        "scripts/up's API to be ready",
        Duration::from_secs(1500),
        || {
            let http = http.clone();
            let readyz = readyz.clone();
            let running = docker
                .command()
                .args(["inspect", "-f", "{{.State.Running}}", &name])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "true")
                .unwrap_or(false);
            assert!(running, "scripts/up stopped:\n{}", logs());
            async move {
                tokio::time::sleep(LOOK_EVERY).await;
                let reply = http.get(&readyz).send().await.ok()?;
                reply.status().is_success().then_some(())
            }
        },
    )
    .await;
    eprintln!(
        "fresh machine: scripts/up ready after {:?}",
        started.elapsed()
    );
    let printed = logs();
    for account in ["login admin", "login demo", "Bourse is running"] {
        assert!(
            printed.contains(account),
            "scripts/up did not print {account:?}:\n{printed}"
        );
    }
    drop(container);
    let _ = std::fs::remove_file(config);
}

/// Every running Docker engine's open files that are a `scripts/docker/setup`
/// lock. The engine is started by that script when none runs; it once
/// inherited the script's lock and held it for as long as it ran, so every
/// later setup — each stack test's — waited until CI ran out of time.
#[test]
fn the_docker_engine_holds_no_lock_of_the_setup() {
    let _docker = Docker::setup_base();
    let mut engines = 0;
    let mut held = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() != "dockerd" {
            continue;
        }
        engines += 1;
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && target.ends_with("var/docker/setup.lock")
            {
                held.push(format!("dockerd {pid}: {}", target.display()));
            }
        }
    }
    assert!(engines > 0, "no dockerd runs after scripts/docker/setup");
    assert!(held.is_empty(), "the engine holds the setup lock: {held:?}");
}
