#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure must stop the test"
)]

//! Leases are judged on the Redis server's clock (apalis-redis patch 5,
//! vendor/apalis-redis/PATCHES.md): a worker on a host whose clock is
//! seconds behind keeps its jobs, runs each once and is not restarted.
//! With heartbeats scored by each host's clock (upstream 1.0.0), the other
//! worker took its jobs as orphans after WORKER_LEASE_SECS and ran them
//! again, and the slow-clocked worker's queue worker restarted in a loop.
//!
//! The skewed host is one `bourse-worker` with Debian's libfaketime
//! preloaded (tests/faketime/setup.sh installs it).

use std::{collections::BTreeMap, process::Command, time::Duration};

use harness::{TestAppBuilder, eventually, process::WorkerProcess};
use shared::jobs::Probe;

/// How far behind the skewed worker's wall clock is: well past the
/// tests' 2 s lease (WORKER_LEASE_SECS in the harness).
const BEHIND_SECS: i64 = 6;
/// Fewer than one worker's slots (WORKER_CONCURRENCY 8 in the harness):
/// a worker whose every slot is busy does not heartbeat (apalis heartbeats
/// when it polls), which is a different fault from the one shown here.
const JOBS: usize = 6;
const WAIT: Duration = Duration::from_secs(120);

fn libfaketime() -> String {
    let setup = harness::docker::workspace().join("tests/faketime/setup.sh");
    let output = Command::new("bash").arg(setup).output().unwrap();
    assert!(
        output.status.success(),
        "tests/faketime/setup.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

async fn healthy(worker: &WorkerProcess) {
    eventually(&format!("{} healthy", worker.name), WAIT, || async {
        let reply = reqwest::get(&worker.health_url).await.ok()?;
        reply.status().is_success().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_clock_is_behind_keeps_its_jobs_and_runs_each_once() {
    let library = libfaketime();
    let mut app = TestAppBuilder::new().start().await;
    app.stop_workers().await;
    let mut behind = app.settings.clone();
    behind.insert("LD_PRELOAD".into(), library);
    behind.insert("FAKETIME".into(), format!("-{BEHIND_SECS}s"));
    // Timers and timeouts keep real time; only the wall clock is off.
    behind.insert("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into());
    // The slow-clocked worker takes every job first, and holds each longer
    // than the lease; then a worker with the right time joins, and checks
    // for orphans at each of its heartbeats.
    let skewed = WorkerProcess::spawn(&behind, "behind", &["--queues", "probe"]);
    healthy(&skewed).await;
    let mut conn = app.conn().await;
    for _ in 0..JOBS {
        let probe = Probe {
            tag: "skew".into(),
            sleep_ms: 4_000,
            record: true,
            ..Probe::default()
        };
        shared::outbox::push(&mut conn, &probe, None).await.unwrap();
    }
    eventually(
        "the slow-clocked worker running every probe",
        WAIT,
        || async {
            let mut conn = app.conn().await;
            let runs = shared::probe::runs(&mut conn, "skew").await.ok()?;
            (runs.len() == JOBS).then_some(())
        },
    )
    .await;
    let honest = WorkerProcess::spawn(&app.settings, "honest", &["--queues", "probe"]);
    healthy(&honest).await;

    // The skewed process really lives in the past: it reports its start
    // from its own clock. And on the server's clock it is alive.
    let queues = app.queues();
    let seen = eventually("both processes announced", WAIT, || async {
        let seen = queues.processes().await.ok()?;
        (seen.len() == 2).then_some(seen)
    })
    .await;
    let process = |name: &str| seen.iter().find(|p| p.process.name == name).unwrap();
    let lag = process("honest").process.started_at - process("behind").process.started_at;
    assert!(
        lag > chrono::Duration::seconds(BEHIND_SECS - 2),
        "libfaketime did not move the worker's clock (started {lag} apart)"
    );
    assert!(process("behind").alive, "{seen:?}");

    let runs = eventually("every probe finished", WAIT, || async {
        let mut conn = app.conn().await;
        let runs = shared::probe::runs(&mut conn, "skew").await.ok()?;
        let finished = runs.iter().filter(|r| r.finished_at.is_some()).count();
        (finished >= JOBS).then_some(runs)
    })
    .await;
    let mut per_job: BTreeMap<uuid::Uuid, usize> = BTreeMap::new();
    for run in &runs {
        *per_job.entry(run.job_id).or_default() += 1;
    }
    let twice: Vec<_> = per_job.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "jobs ran more than once (taken from the slow-clocked worker): {twice:?}\nruns: {runs:#?}\nslow-clocked worker's log:\n{}",
        skewed.log()
    );
    assert_eq!(per_job.len(), JOBS);
    assert!(
        runs.iter().all(|r| r.worker == "behind"),
        "the honest worker ran jobs the slow-clocked one held: {runs:?}"
    );
    assert!(runs.iter().all(|r| !r.failed), "{runs:?}");
    assert!(
        !skewed.log().contains("restarting"),
        "the slow-clocked worker's queue worker restarted:\n{}",
        skewed.log()
    );
}
