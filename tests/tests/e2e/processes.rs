//! Real `bourse-worker` processes: a worker killed mid-job loses nothing,
//! a terminated one drains and exits 0, a bad setting stops a binary
//! with one line naming it, and a Redis that may evict keys is named in
//! one warning at start.

use std::time::Duration;

use harness::{
    TestApp, TestAppBuilder, eventually,
    process::{ApiProcess, WorkerProcess},
    proxy::TcpProxy,
    redis_server::RedisServer,
};
use shared::{jobs::Probe, outbox, probe};

const WAIT: Duration = Duration::from_secs(30);

async fn runs(app: &TestApp, tag: &str) -> Vec<probe::ProbeRun> {
    let mut conn = app.conn().await;
    probe::runs(&mut conn, tag).await.unwrap()
}

async fn push_probe(app: &TestApp, tag: &str, sleep_ms: u64) -> uuid::Uuid {
    let mut conn = app.conn().await;
    outbox::push(
        &mut conn,
        &Probe {
            tag: tag.to_owned(),
            sleep_ms,
            record: true,
            ..Probe::default()
        },
        None,
    )
    .await
    .unwrap()
}

async fn healthy(url: &str) -> bool {
    match reqwest::get(url).await {
        Ok(response) => response.status().is_success(),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_has_its_job_finished_by_another() {
    // No in-process worker: two real processes share the probe queue.
    let app = TestAppBuilder::new().without_worker().start().await;
    let mut a = WorkerProcess::spawn(&app.settings, "worker-a", &["--queues", "probe"]);
    let mut b = WorkerProcess::spawn(&app.settings, "worker-b", &["--queues", "probe"]);
    for worker in [&a, &b] {
        eventually("both workers healthy", WAIT, || async {
            healthy(&worker.health_url).await.then_some(())
        })
        .await;
    }

    let job = push_probe(&app, "kill", 3_000).await;
    let first = eventually("the job to start", WAIT, || async {
        runs(&app, "kill").await.into_iter().next()
    })
    .await;
    assert_eq!(first.job_id, job);
    let (victim, survivor) = if first.worker == a.name {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    victim.kill().await;

    // WORKER_LEASE_SECS=2: the survivor's heartbeat finds the silent worker
    // and puts its job back; the survivor then runs it to the end.
    let finished = eventually("the survivor to finish the job", WAIT, || async {
        runs(&app, "kill")
            .await
            .into_iter()
            .find(|r| r.finished_at.is_some())
    })
    .await;
    assert_eq!(finished.job_id, job);
    assert_eq!(finished.worker, survivor.name);
    assert!(!finished.failed);
    let all = runs(&app, "kill").await;
    assert_eq!(
        all.len(),
        2,
        "one interrupted run, one complete run: {all:?}"
    );
    assert!(
        all[0].finished_at.is_none(),
        "the killed run never finished"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_fetching_finishes_in_flight_jobs_and_exits_zero() {
    let app = TestAppBuilder::new().without_worker().start().await;
    let mut worker = WorkerProcess::spawn(&app.settings, "worker-term", &["--queues", "probe"]);
    eventually("the worker healthy", WAIT, || async {
        healthy(&worker.health_url).await.then_some(())
    })
    .await;

    push_probe(&app, "in-flight", 1_500).await;
    eventually("the job to start", WAIT, || async {
        runs(&app, "in-flight").await.into_iter().next()
    })
    .await;
    worker.terminate().await;
    let status = worker.wait(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0), "clean exit");

    let run = runs(&app, "in-flight").await;
    assert_eq!(run.len(), 1);
    assert!(
        run[0].finished_at.is_some(),
        "the in-flight job finished before exit"
    );
    assert!(!run[0].failed);

    // Nothing is fetched after the signal: a job pushed now waits for the
    // next worker.
    push_probe(&app, "after", 0).await;
    let mut next = WorkerProcess::spawn(&app.settings, "worker-next", &["--queues", "probe"]);
    let after = eventually("the next worker to run the new job", WAIT, || async {
        runs(&app, "after")
            .await
            .into_iter()
            .find(|r| r.finished_at.is_some())
    })
    .await;
    assert_eq!(after.worker, next.name);
    next.terminate().await;
    assert_eq!(next.wait(Duration::from_secs(20)).await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_setting_stops_the_binaries_with_one_line_naming_it() {
    for binary in ["bourse-api", "bourse-worker"] {
        let output = tokio::process::Command::new(harness::process::binary(binary))
            .env("HTTP_ADDR", "not-an-address")
            .env("WORKER_CONCURRENCY", "0")
            .env("BCRYPT_COST", "12")
            .current_dir(std::env::temp_dir())
            .output()
            .await
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{binary}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(
            lines,
            [
                "configuration error: HTTP_ADDR: invalid value \"not-an-address\" (expected a socket address such as 0.0.0.0:8080)",
                "configuration error: WORKER_CONCURRENCY: 0 is out of range (expected a number from 1 to 10000)",
            ],
            "{binary}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_worker_started_before_postgres_and_redis_wait_for_them() {
    let app = TestAppBuilder::new().without_worker().start().await;
    // Both servers "down": proxies that refuse every connection.
    let postgres = TcpProxy::start(&harness::db::server_addr()).await;
    let redis = TcpProxy::start("127.0.0.1:6379").await;
    postgres.cut();
    redis.cut();
    let mut settings = app.settings.clone();
    settings.insert(
        "DATABASE_URL".into(),
        harness::db::through(&app.db.url, postgres.port),
    );
    settings.insert(
        "REDIS_URL".into(),
        format!("redis://127.0.0.1:{}/0", redis.port),
    );
    let mut api = ApiProcess::spawn(&settings);
    let mut worker = WorkerProcess::spawn(&settings, "early-bird", &["--queues", "probe"]);

    // They stay up, say what they wait for, and report not ready.
    eventually(
        "the worker to say it waits for PostgreSQL",
        WAIT,
        || async {
            worker
                .log()
                .contains("waiting for PostgreSQL at postgres://127.0.0.1:")
                .then_some(())
        },
    )
    .await;
    eventually("the API to say it waits for both", WAIT, || async {
        let log = api.log();
        (log.contains("waiting for PostgreSQL") && log.contains("waiting for Redis")).then_some(())
    })
    .await;
    let secret = &settings["JWT_SECRET"];
    assert!(
        !worker.log().contains(secret.as_str()) && !api.log().contains(secret.as_str()),
        "no secrets in the logs"
    );
    let ready = reqwest::get(format!("{}/readyz", api.base_url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let health = reqwest::get(&worker.health_url).await.unwrap();
    assert_eq!(health.status(), 503);
    let report: serde_json::Value = health.json().await.unwrap();
    assert!(
        report["problems"]
            .to_string()
            .contains("waiting for PostgreSQL"),
        "{report}"
    );
    assert!(api.exit_status().is_none() && worker.exit_status().is_none());

    // PostgreSQL comes up first, then Redis: both carry on by themselves.
    postgres.restore();
    eventually("the worker to wait for Redis next", WAIT, || async {
        worker.log().contains("waiting for Redis").then_some(())
    })
    .await;
    redis.restore();
    eventually("the worker healthy", WAIT, || async {
        healthy(&worker.health_url).await.then_some(())
    })
    .await;
    eventually("the API ready", WAIT, || async {
        let ready = reqwest::get(format!("{}/readyz", api.base_url))
            .await
            .ok()?;
        ready.status().is_success().then_some(())
    })
    .await;
    push_probe(&app, "after-wait", 0).await;
    let run = eventually("the worker to run a job", WAIT, || async {
        runs(&app, "after-wait")
            .await
            .into_iter()
            .find(|r| r.finished_at.is_some())
    })
    .await;
    assert_eq!(run.worker, "early-bird");
    worker.terminate().await;
    assert_eq!(worker.wait(Duration::from_secs(20)).await.code(), Some(0));
}

/// The warning both binaries log at start when Redis may evict keys.
const EVICTION_WARNING: &str = "Redis maxmemory-policy is allkeys-lru, not noeviction: Redis may evict queued jobs under memory pressure; set maxmemory-policy noeviction";

/// The logs of the API and a worker run against `redis`, once each has
/// done its eviction check. They ask for the check's debug line too
/// (`queue=debug`), so a test can tell "checked and silent" from "not
/// checked yet".
async fn eviction_checked_logs(redis: &RedisServer) -> [(&'static str, String); 2] {
    let app = TestAppBuilder::new().without_worker().start().await;
    let mut settings = app.settings.clone();
    settings.insert("REDIS_URL".into(), redis.url());
    settings.insert("RUST_LOG".into(), "warn,queue=debug".into());
    let api = ApiProcess::spawn(&settings);
    let worker = WorkerProcess::spawn(&settings, "policy-check", &["--queues", "probe"]);
    [
        (
            "API",
            eviction_checked("the API's eviction check", || api.log()).await,
        ),
        (
            "worker",
            eviction_checked("the worker's eviction check", || worker.log()).await,
        ),
    ]
}

/// Waits until `log` shows the eviction check ran (its warning or its
/// debug line naming the policy).
async fn eviction_checked(what: &str, log: impl Fn() -> String) -> String {
    eventually(what, WAIT, || async {
        let log = log();
        log.contains("Redis maxmemory-policy is").then_some(log)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicting_redis_is_named_in_one_warning_by_the_api_and_the_worker() {
    let redis = RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]).await;
    for (name, log) in eviction_checked_logs(&redis).await {
        let warnings: Vec<&str> = log
            .lines()
            .filter(|line| line.contains("maxmemory-policy"))
            .collect();
        assert_eq!(warnings.len(), 1, "{name}: {log}");
        assert!(warnings[0].contains(EVICTION_WARNING), "{name}: {log}");
        assert!(warnings[0].contains("WARN"), "{name}: {log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noeviction_redis_gets_no_warning() {
    let redis = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]).await;
    for (name, log) in eviction_checked_logs(&redis).await {
        assert!(
            log.contains("Redis maxmemory-policy is noeviction"),
            "{name}: {log}"
        );
        assert!(!log.contains("not noeviction"), "{name}: {log}");
    }
}
