//! A worker keeps the lease on its jobs for as long as it runs them:
//! - judged on the Redis server's clock (apalis-redis patch 5,
//!   vendor/apalis-redis/PATCHES.md), a worker on a host whose clock is
//!   seconds behind keeps its jobs, runs each once and is not restarted;
//! - renewed beside apalis's own heartbeat (patch 6), a worker whose every
//!   slot runs a job longer than the lease keeps them too.
//!
//! For the first:
//! With heartbeats scored by each host's clock (upstream 1.0.0), the other
//! worker took its jobs as orphans after WORKER_LEASE_SECS and ran them
//! again, and the slow-clocked worker's queue worker restarted in a loop.
//!
//! The skewed host is one `bourse-worker` with Debian's libfaketime
//! preloaded (tests/faketime/setup.sh installs it).

use std::{collections::BTreeMap, process::Command, time::Duration};

use harness::{TestApp, TestAppBuilder, eventually, process::WorkerProcess};
use shared::{jobs::Probe, probe::ProbeRun};

/// How far behind the skewed worker's wall clock is: well past the
/// tests' 2 s lease (WORKER_LEASE_SECS in the harness).
const BEHIND_SECS: i64 = 6;
const JOBS: usize = 6;
const WAIT: Duration = Duration::from_secs(120);

pub(crate) fn libfaketime() -> String {
    let setup = harness::docker::workspace().join("tests/faketime/setup.sh");
    let output = Command::new("bash").arg(setup).output().unwrap();
    assert!(
        output.status.success(),
        "tests/faketime/setup.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Probe jobs tagged `tag` that each outlast the lease.
async fn push_long_probes(app: &TestApp, tag: &str, count: usize) {
    let mut conn = app.conn().await;
    for _ in 0..count {
        let probe = Probe {
            tag: tag.into(),
            sleep_ms: 4_000,
            record: true,
            ..Probe::default()
        };
        shared::outbox::push(&mut conn, &probe, None).await.unwrap();
    }
}

/// Waits until `count` runs of `tag` have started.
async fn started(app: &TestApp, tag: &str, count: usize) {
    eventually(&format!("{count} {tag} probes running"), WAIT, || async {
        let mut conn = app.conn().await;
        let runs = shared::probe::runs(&mut conn, tag).await.ok()?;
        (runs.len() >= count).then_some(())
    })
    .await;
}

/// Waits until every run of `tag` has finished, then checks that each of
/// the `count` jobs ran once, and none failed. Returns the runs.
async fn each_ran_once(app: &TestApp, tag: &str, count: usize) -> Vec<ProbeRun> {
    let runs = eventually(&format!("every {tag} probe finished"), WAIT, || async {
        let mut conn = app.conn().await;
        let runs = shared::probe::runs(&mut conn, tag).await.ok()?;
        let finished = runs.iter().filter(|r| r.finished_at.is_some()).count();
        (finished >= count).then_some(runs)
    })
    .await;
    let mut per_job: BTreeMap<uuid::Uuid, usize> = BTreeMap::new();
    for run in &runs {
        *per_job.entry(run.job_id).or_default() += 1;
    }
    let twice: Vec<_> = per_job.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "jobs ran more than once: {twice:?}\nruns: {runs:#?}"
    );
    assert_eq!(per_job.len(), count);
    assert!(runs.iter().all(|r| !r.failed), "{runs:#?}");
    runs
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
    push_long_probes(&app, "skew", JOBS).await;
    started(&app, "skew", JOBS).await;
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

    let runs = each_ran_once(&app, "skew", JOBS).await;
    assert!(
        runs.iter().all(|r| r.worker == "behind"),
        "the honest worker ran jobs the slow-clocked one held: {runs:#?}"
    );
    assert!(
        !skewed.log().contains("restarting"),
        "the slow-clocked worker's queue worker restarted:\n{}",
        skewed.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_every_slot_busy_past_the_lease_keeps_its_jobs() {
    let mut app = TestAppBuilder::new()
        .env("WORKER_CONCURRENCY", 2)
        .start()
        .await;
    app.stop_workers().await;
    // The first worker fetches three times as many jobs as it has slots,
    // each longer than the lease: while its slots are busy it stops
    // polling, and apalis heartbeats only when it polls. The second worker
    // checks for orphans at each of its heartbeats meanwhile.
    let busy = WorkerProcess::spawn(&app.settings, "busy", &["--queues", "probe"]);
    healthy(&busy).await;
    push_long_probes(&app, "busy", 6).await;
    started(&app, "busy", 2).await;
    let other = WorkerProcess::spawn(&app.settings, "other", &["--queues", "probe"]);
    healthy(&other).await;
    // (The second worker may run the jobs the first had not fetched.)
    each_ran_once(&app, "busy", 6).await;
    assert!(
        !busy.log().contains("restarting"),
        "the busy worker's queue worker restarted:\n{}",
        busy.log()
    );
}
