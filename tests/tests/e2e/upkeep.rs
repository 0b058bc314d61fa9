//! The cluster-wide queue upkeep runs in one worker process at a time (the
//! holder of the upkeep lease), not in every process: only the holder
//! samples queue depths, a killed holder is replaced once its lease runs
//! out, and a holder that stops cleanly hands over at once. A retry is
//! promoted on time by the process that scheduled it, with no process
//! polling for it.

use std::time::Duration;

use harness::{TestApp, TestAppBuilder, eventually, process::WorkerProcess};
use shared::{jobs::Probe, outbox, probe};

const WAIT: Duration = Duration::from_secs(30);

/// Whether `worker` exports the queue depths (only the upkeep holder does).
async fn samples_depths(worker: &WorkerProcess) -> Option<bool> {
    let url = worker.health_url.replace("/healthz", "/metrics");
    let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
    Some(text.contains("bourse_queue_jobs{"))
}

async fn lease_holder(app: &TestApp) -> Option<String> {
    let mut conn = app.queues().connection();
    redis::cmd("GET")
        .arg(queue::keys::upkeep_lease(&app.prefix))
        .query_async(&mut conn)
        .await
        .ok()
        .flatten()
}

/// The one worker that holds the lease and samples, once exactly one does.
async fn the_holder(app: &TestApp, workers: &[&WorkerProcess]) -> String {
    eventually("exactly one worker sampling queue depths", WAIT, || async {
        let holder = lease_holder(app).await?;
        let mut sampling = Vec::new();
        for worker in workers {
            if samples_depths(worker).await? {
                sampling.push(worker.name.clone());
            }
        }
        (sampling == [holder.clone()]).then_some(holder)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_at_a_time_runs_the_upkeep_and_another_takes_over() {
    let app = TestAppBuilder::new().without_worker().start().await;
    let mut workers: Vec<WorkerProcess> = ["upkeep-a", "upkeep-b", "upkeep-c"]
        .into_iter()
        .map(|name| WorkerProcess::spawn(&app.settings, name, &["--queues", "probe"]))
        .collect();

    let first = the_holder(&app, &workers.iter().collect::<Vec<_>>()).await;

    // A killed holder keeps its lease until it runs out; then another
    // process takes the upkeep.
    let index = workers.iter().position(|w| w.name == first).unwrap();
    let mut killed = workers.remove(index);
    killed.kill().await;
    let second = the_holder(&app, &workers.iter().collect::<Vec<_>>()).await;
    assert_ne!(second, first);

    // A holder that stops cleanly gives the lease up for the last one.
    let index = workers.iter().position(|w| w.name == second).unwrap();
    let mut stopped = workers.remove(index);
    stopped.terminate().await;
    let status = stopped.wait(WAIT).await;
    assert!(status.success(), "{status}: {}", stopped.log());
    let third = the_holder(&app, &workers.iter().collect::<Vec<_>>()).await;
    assert_eq!(third, workers[0].name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_runs_after_its_backoff_with_no_process_polling_for_it() {
    // Long heartbeats and a slow poll: nothing but the retry's own timer
    // (and the push's wake-up) can bring the retry back in time.
    let app = TestAppBuilder::new()
        .env("JOB_BACKOFF_BASE_MS", 300)
        .env("JOB_BACKOFF_MAX_MS", 300)
        .env("WORKER_HEARTBEAT_SECS", 30)
        .env("WORKER_LEASE_SECS", 60)
        .env("WORKER_POLL_MS", 60_000)
        .start()
        .await;
    let mut conn = app.conn().await;
    outbox::push(
        &mut conn,
        &Probe {
            tag: "retry-on-time".to_owned(),
            fail_attempts: 2,
            record: true,
            ..Probe::default()
        },
        None,
    )
    .await
    .unwrap();
    // Three runs: two failures and the success, within one heartbeat.
    let runs = eventually(
        "three runs of the probe",
        Duration::from_secs(20),
        || async {
            let mut conn = app.conn().await;
            let runs = probe::runs(&mut conn, "retry-on-time").await.ok()?;
            (runs.len() >= 3).then_some(runs)
        },
    )
    .await;
    assert_eq!(runs.len(), 3, "{runs:?}");
}
