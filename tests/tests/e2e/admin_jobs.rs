//! The operators' view of the job system (PRODUCT.md §10): per-queue
//! counts, the live workers, dead jobs with their payload and error,
//! retrying and discarding them, the workers' job metrics, pausing a
//! queue and cancelling a waiting job.

use std::time::Duration;

use diesel_async::RunQueryDsl;
use harness::{TestApp, TestAppBuilder, app::Reply, eventually, session::Session};
use reqwest::Method;
use serde_json::{Value, json};
use shared::{
    jobs::{Probe, Queue},
    outbox, probe,
};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

async fn admin(app: &TestApp) -> Session {
    app.register_verified("root", "root@example.com", "correct horse")
        .await;
    let mut conn = app.conn().await;
    shared::accounts::promote(&mut conn, "root").await.unwrap();
    app.login("root", "correct horse").await
}

async fn push(app: &TestApp, probe: Probe, run_at: Option<chrono::DateTime<chrono::Utc>>) -> Uuid {
    let mut conn = app.conn().await;
    outbox::push(&mut conn, &probe, run_at).await.unwrap()
}

fn doomed(tag: &str) -> Probe {
    Probe {
        tag: tag.to_owned(),
        record: true,
        fail_attempts: u32::MAX,
        ..Probe::default()
    }
}

async fn overview(app: &TestApp, session: &Session) -> Value {
    let reply = app.get_as("/api/v1/admin/jobs", &session.access).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

fn queue<'a>(overview: &'a Value, name: &str) -> &'a Value {
    overview["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == name)
        .unwrap_or_else(|| panic!("no queue {name} in {overview}"))
}

async fn send(app: &TestApp, session: &Session, method: Method, path: &str) -> Reply {
    app.send_as(method, path, &session.access, &json!({})).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_see_queues_and_workers_and_retry_or_discard_dead_jobs() {
    let mut app = TestAppBuilder::new().start().await;
    let root = admin(&app).await;
    let (ada, _) = app.user_with_wallets("ada", &[]).await;

    // JOB_MAX_ATTEMPTS=3 in tests: two jobs die; one waits an hour.
    let first = push(&app, doomed("dead-1"), None).await;
    let second = push(&app, doomed("dead-2"), None).await;
    push(
        &app,
        Probe::default(),
        Some(chrono::Utc::now() + chrono::Duration::hours(1)),
    )
    .await;

    // The registration emails go out on their own queue meanwhile; on a
    // loaded machine they may finish after the probes die, so both are
    // awaited (the counts are then asserted below).
    let view = eventually("both jobs dead and the emails sent", WAIT, || async {
        let view = overview(&app, &root).await;
        let probes = queue(&view, "probe");
        let emails_done = queue(&view, "email")["done"].as_u64().unwrap_or(0);
        (probes["dead"] == 2 && probes["failed"] == 6 && emails_done >= 2).then_some(view)
    })
    .await;
    let names: Vec<&str> = view["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "email",
            "bet_settlement",
            "price_alert",
            "monthly_fee",
            "rate_refresh",
            "order_clearing",
            "webhook",
            "probe"
        ]
    );
    let probes = queue(&view, "probe");
    assert_eq!(
        probes["scheduled"], 1,
        "the delayed job in the outbox: {view}"
    );
    assert_eq!(probes["pending"], 0);
    assert_eq!(probes["running"], 0);
    assert_eq!(probes["failed"], 6, "three failed attempts each: {view}");
    assert!(
        queue(&view, "email")["done"].as_u64().unwrap() >= 2,
        "{view}"
    );
    let workers = view["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1, "{view}");
    let worker = &workers[0];
    assert_eq!(worker["alive"], true);
    assert_eq!(worker["concurrency"], 8);
    assert_eq!(worker["relay"], true);
    assert_eq!(worker["pid"], std::process::id());
    assert_eq!(worker["queues"].as_array().unwrap().len(), 8);
    let beat: chrono::DateTime<chrono::Utc> =
        worker["last_heartbeat"].as_str().unwrap().parse().unwrap();
    assert!(chrono::Utc::now() - beat < chrono::Duration::seconds(10));

    // The dead jobs, one page at a time, with payload, error and attempts.
    let page = app
        .get_as("/api/v1/admin/jobs/dead?queue=probe&limit=1", &root.access)
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let rest = app
        .get_as(
            &format!("/api/v1/admin/jobs/dead?queue=probe&limit=1&cursor={cursor}"),
            &root.access,
        )
        .await;
    assert_eq!(rest.status, 200, "{}", rest.body);
    assert!(rest.body["next_cursor"].is_null());
    let mut dead: Vec<Value> = [&page.body, &rest.body]
        .iter()
        .flat_map(|p| p["items"].as_array().unwrap().clone())
        .collect();
    let all = app.get_as("/api/v1/admin/jobs/dead", &root.access).await;
    assert_eq!(
        all.body["items"].as_array().unwrap().len(),
        2,
        "{}",
        all.body
    );
    // Newest first, each with its time of death.
    let died = |item: &Value| -> chrono::DateTime<chrono::Utc> {
        item["died_at"]
            .as_str()
            .unwrap_or_else(|| panic!("no died_at in {item}"))
            .parse()
            .unwrap()
    };
    assert!(
        died(&dead[0]) >= died(&dead[1]),
        "not newest first: {dead:?}"
    );
    for item in &dead {
        assert!(chrono::Utc::now() - died(item) < chrono::Duration::minutes(5));
    }
    // A retry is a new task (`{job}.{attempt}`); the payload names the job.
    dead.sort_by_key(|d| d["payload"]["id"].as_str().unwrap().to_owned());
    let mut expected = [first.to_string(), second.to_string()];
    expected.sort();
    for (item, id) in dead.iter().zip(&expected) {
        assert!(
            item["id"].as_str().unwrap().starts_with(id.as_str()),
            "{item}"
        );
        assert_eq!(item["queue"], "probe");
        assert_eq!(item["job"], "probe");
        assert_eq!(item["attempts"], 3);
        assert!(
            item["error"]
                .as_str()
                .unwrap()
                .contains("gave up after 3 attempts"),
            "{item}"
        );
        assert_eq!(item["payload"]["id"], id.as_str());
        assert!(
            item["payload"]["args"]["tag"]
                .as_str()
                .unwrap()
                .starts_with("dead-")
        );
    }

    let task = |job: Uuid| {
        dead.iter()
            .find(|d| d["payload"]["id"] == job.to_string())
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let (first_task, second_task) = (task(first), task(second));

    // Retry one: it runs again (and, as asked, fails again).
    let retried = send(
        &app,
        &root,
        Method::POST,
        &format!("/api/v1/admin/jobs/dead/{first_task}/retry"),
    )
    .await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(retried.body["status"], "queued");
    assert_eq!(retried.body["queue"], "probe");
    eventually("the retried job to run again", WAIT, || async {
        let mut conn = app.conn().await;
        let runs = probe::runs(&mut conn, "dead-1").await.unwrap();
        (runs.len() > 3).then_some(())
    })
    .await;
    // Discard the other: gone, and a second discard finds nothing.
    let discarded = send(
        &app,
        &root,
        Method::DELETE,
        &format!("/api/v1/admin/jobs/dead/{second_task}"),
    )
    .await;
    assert_eq!(discarded.status, 204, "{}", discarded.body);
    let again = send(
        &app,
        &root,
        Method::DELETE,
        &format!("/api/v1/admin/jobs/dead/{second_task}"),
    )
    .await;
    assert_eq!(again.status, 404);
    assert_eq!(again.body["code"], "not_found");
    let unknown = send(
        &app,
        &root,
        Method::POST,
        "/api/v1/admin/jobs/dead/no-such-job/retry",
    )
    .await;
    assert_eq!(unknown.status, 404);
    eventually(
        "the retried job dead again, the other gone",
        WAIT,
        || async {
            let view = overview(&app, &root).await;
            let dead = app.get_as("/api/v1/admin/jobs/dead", &root.access).await;
            let ids: Vec<String> = dead.body["items"]
                .as_array()?
                .iter()
                .map(|d| d["payload"]["id"].as_str().unwrap_or_default().to_owned())
                .collect();
            (queue(&view, "probe")["dead"] == 1 && ids == [first.to_string()]).then_some(())
        },
    )
    .await;

    // Refusals.
    let forbidden = app.get_as("/api/v1/admin/jobs", &ada.access).await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(forbidden.body["code"], "forbidden");
    let anonymous = app.get("/api/v1/admin/jobs/dead").await;
    assert_eq!(anonymous.status, 401);
    for bad in [
        "/api/v1/admin/jobs/dead?queue=nope",
        "/api/v1/admin/jobs/dead?limit=0",
        "/api/v1/admin/jobs/dead?cursor=garbage",
    ] {
        let reply = app.get_as(bad, &root.access).await;
        assert_eq!(reply.status, 400, "{bad}: {}", reply.body);
        assert_eq!(reply.body["code"], "validation_failed");
    }

    // The worker's metrics count attempts by queue and outcome and show
    // the outbox backlog.
    let metrics_url = app.workers[0].health_url.replace("/healthz", "/metrics");
    // (The backlog gauge is sampled every 5 s.)
    let text = eventually("the backlog sampled", WAIT, || async {
        let text = reqwest::get(&metrics_url).await.ok()?.text().await.ok()?;
        text.contains("bourse_outbox_backlog{queue=\"probe\",state=\"scheduled\"} 1")
            .then_some(text)
    })
    .await;
    assert!(
        text.contains("bourse_jobs_started_total{queue=\"probe\"} 9"),
        "{text}"
    );
    assert!(
        text.contains("bourse_jobs_total{queue=\"probe\",job=\"probe\",outcome=\"failed\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("bourse_outbox_backlog{queue=\"email\",state=\"due\"} 0"),
        "{text}"
    );

    // A worker that stops cleanly leaves the list.
    app.stop_workers().await;
    let view = overview(&app, &root).await;
    assert_eq!(view["workers"], json!([]), "{view}");
}

/// DEAD_MAX_PER_QUEUE bounds each dead set: the oldest go first, the API
/// lists what is left, and the workers' metrics count what was dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_sets_are_bounded_and_what_they_drop_is_counted() {
    let app = TestAppBuilder::new()
        .env("DEAD_MAX_PER_QUEUE", 2)
        .env("JOB_MAX_ATTEMPTS", 1)
        .start()
        .await;
    let root = admin(&app).await;
    let mut pushed = Vec::new();
    for n in 0..5 {
        pushed.push(push(&app, doomed(&format!("bounded-{n}")), None).await);
    }
    let metrics_url = app.workers[0].health_url.replace("/healthz", "/metrics");
    eventually("three dead jobs dropped", WAIT, || async {
        let text = reqwest::get(&metrics_url).await.ok()?.text().await.ok()?;
        text.contains("bourse_dead_jobs_dropped{queue=\"probe\"} 3")
            .then_some(())
    })
    .await;
    let view = overview(&app, &root).await;
    assert_eq!(queue(&view, "probe")["dead"], 2, "{view}");
    let listed = app
        .get_as("/api/v1/admin/jobs/dead?queue=probe", &root.access)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{}", listed.body);
    for item in items {
        let job: Uuid = item["payload"]["id"].as_str().unwrap().parse().unwrap();
        assert!(pushed.contains(&job), "{item}");
    }
}

async fn probe_runs(app: &TestApp, tag: &str) -> Vec<probe::ProbeRun> {
    probe::runs(&mut app.conn().await, tag).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_queue_accepts_jobs_and_runs_none_on_any_process_until_resumed() {
    let app = TestAppBuilder::new()
        .without_worker()
        .env("RUST_LOG", "info,apalis_core=warn,apalis_redis=warn")
        .start()
        .await;
    let a = harness::process::WorkerProcess::spawn(
        &app.settings,
        "pause-a",
        &["--queues", "probe,email"],
    );
    let b =
        harness::process::WorkerProcess::spawn(&app.settings, "pause-b", &["--queues", "probe"]);
    // (registering needs the email queue served)
    let root = admin(&app).await;
    let (ada, _) = app.user_with_wallets("ada", &[]).await;
    eventually("both worker processes alive", WAIT, || async {
        let view = overview(&app, &root).await;
        let alive = view["workers"]
            .as_array()?
            .iter()
            .filter(|w| w["alive"] == true)
            .count();
        (alive == 2).then_some(())
    })
    .await;

    // Only administrators; only known queues.
    let path = "/api/v1/admin/queues/probe/pause";
    assert_eq!(send(&app, &ada, Method::POST, path).await.status, 403);
    let unknown = send(&app, &root, Method::POST, "/api/v1/admin/queues/nope/pause").await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(unknown.body["code"], "not_found");

    // A job running when the queue is paused runs to its end.
    push(
        &app,
        Probe {
            tag: "in-flight".into(),
            sleep_ms: 1500,
            record: true,
            ..Probe::default()
        },
        None,
    )
    .await;
    eventually("the long job started", WAIT, || async {
        (!probe_runs(&app, "in-flight").await.is_empty()).then_some(())
    })
    .await;
    for _ in 0..2 {
        // Idempotent.
        let paused = send(&app, &root, Method::POST, path).await;
        assert_eq!(paused.status, 200, "{}", paused.body);
        assert_eq!(paused.body, json!({ "queue": "probe", "paused": true }));
    }
    eventually("both processes stopped fetching", WAIT, || async {
        [&a, &b]
            .iter()
            .all(|w| w.log().contains("queue paused: not fetching"))
            .then_some(())
    })
    .await;
    let finished = eventually("the long job finished", WAIT, || async {
        let runs = probe_runs(&app, "in-flight").await;
        runs.iter().all(|r| r.finished_at.is_some()).then_some(runs)
    })
    .await;
    assert_eq!(finished.len(), 1);
    assert!(!finished[0].failed);

    // Jobs are still accepted: relayed to Redis, and waiting there.
    for _ in 0..6 {
        push(
            &app,
            Probe {
                tag: "held".into(),
                record: true,
                ..Probe::default()
            },
            None,
        )
        .await;
    }
    let view = eventually("six jobs waiting in Redis", WAIT, || async {
        let relayed = app
            .count("SELECT count(*) AS n FROM outbox WHERE job = 'probe'")
            .await
            == 0;
        let view = overview(&app, &root).await;
        (relayed && queue(&view, "probe")["pending"] == 6).then_some(view)
    })
    .await;
    assert_eq!(queue(&view, "probe")["paused"], true, "{view}");
    assert_eq!(queue(&view, "email")["paused"], false, "{view}");
    // A process started now reads the pause before it fetches.
    let c =
        harness::process::WorkerProcess::spawn(&app.settings, "pause-c", &["--queues", "probe"]);
    eventually("the new process sees the pause", WAIT, || async {
        c.log()
            .contains("paused queues: not fetching from them")
            .then_some(())
    })
    .await;
    // Shown in every process's metrics (sampled by the upkeep's holder).
    let metrics: Vec<String> = [&a, &b, &c]
        .iter()
        .map(|w| w.health_url.replace("/healthz", "/metrics"))
        .collect();
    eventually("queue_paused in the metrics", WAIT, || async {
        for url in &metrics {
            let text = app.client.get(url).send().await.ok()?.text().await.ok()?;
            if text.contains("queue_paused{queue=\"probe\"} 1") {
                return Some(());
            }
        }
        None
    })
    .await;
    // With every worker idle and woken by each push, a fetch would have
    // happened by now: the pending count above was read after the pushes.
    assert!(probe_runs(&app, "held").await.is_empty());

    // Resumed from the command line: every process fetches again.
    let resumed = tokio::process::Command::new(harness::process::binary("bourse-worker"))
        .args(["queue", "resume", "probe"])
        .envs(&app.settings)
        .current_dir(std::env::temp_dir())
        .output()
        .await
        .unwrap();
    assert!(resumed.status.success(), "{resumed:?}");
    let said: Value = serde_json::from_slice(&resumed.stdout).unwrap();
    assert_eq!(said, json!({ "queue": "probe", "paused": false }));
    let runs = eventually("the six held jobs ran", WAIT, || async {
        let runs = probe_runs(&app, "held").await;
        (runs.len() == 6 && runs.iter().all(|r| r.finished_at.is_some())).then_some(runs)
    })
    .await;
    let mut jobs: Vec<Uuid> = runs.iter().map(|r| r.job_id).collect();
    jobs.sort();
    jobs.dedup();
    assert_eq!(jobs.len(), 6, "each ran once");
    assert_eq!(
        queue(&overview(&app, &root).await, "probe")["paused"],
        false
    );
}

/// Cancelling a waiting job (PRODUCT.md §10): where it waits (the outbox,
/// or its queue in Redis), through the API and the command line, in queues
/// whose jobs carry no money; never a job that has started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_job_can_be_cancelled_where_no_money_rides_on_it() {
    use diesel_async::AsyncConnection as _;

    let app = TestAppBuilder::new()
        .without_worker()
        .env("EMAIL_RECONCILE_CRON", "0 0 0 1 1 *")
        .env("RUST_LOG", "info,apalis_core=warn,apalis_redis=warn")
        .start()
        .await;
    let worker = harness::process::WorkerProcess::spawn(
        &app.settings,
        "cancel-a",
        &["--queues", "probe,email"],
    );
    harness::poll::healthy("the worker", &worker.health_url, WAIT).await;
    let root = admin(&app).await;
    let (ada, _) = app.user_with_wallets("ada", &[]).await;
    let queues = app.queues();
    queues.set_paused(Queue::Probe, true).await.unwrap();
    queues.set_paused(Queue::Email, true).await.unwrap();

    // Administrators only; known queues; never where money rides on it.
    let nobody = Uuid::now_v7();
    let path = |queue: &str, id: &str| format!("/api/v1/admin/jobs/{queue}/{id}");
    let reply = send(
        &app,
        &ada,
        Method::DELETE,
        &path("probe", &nobody.to_string()),
    )
    .await;
    assert_eq!(reply.status, 403);
    for (queue, status, code) in [
        ("nope", 404, "not_found"),
        ("probe", 404, "not_found"),
        ("bet_settlement", 409, "conflict"),
        ("monthly_fee", 409, "conflict"),
        ("price_alert", 409, "conflict"),
    ] {
        let reply = send(
            &app,
            &root,
            Method::DELETE,
            &path(queue, &nobody.to_string()),
        )
        .await;
        assert_eq!(reply.status, status, "{queue}: {}", reply.body);
        assert_eq!(reply.body["code"], code, "{queue}");
    }

    // A probe pending in its queue, another delayed in the outbox.
    let cancelled = || Probe {
        tag: "cancelled".into(),
        record: true,
        ..Probe::default()
    };
    let pending = push(&app, cancelled(), None).await;
    let delayed = push(
        &app,
        cancelled(),
        Some(chrono::Utc::now() + chrono::Duration::hours(1)),
    )
    .await;
    eventually("the due probe waiting in Redis", WAIT, || async {
        let counts = queues.counts(Queue::Probe).await.ok()?;
        (counts.pending == 1).then_some(())
    })
    .await;
    let reply = send(
        &app,
        &root,
        Method::DELETE,
        &path("probe", &pending.to_string()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body,
        json!({ "queue": "probe", "id": pending.to_string(), "job": "probe", "waited_in": "pending" })
    );
    let again = send(
        &app,
        &root,
        Method::DELETE,
        &path("probe", &pending.to_string()),
    )
    .await;
    assert_eq!(again.status, 404, "{}", again.body);
    // From the command line, the delayed one.
    let output = tokio::process::Command::new(harness::process::binary("bourse-worker"))
        .args(["queue", "cancel", "probe", &delayed.to_string()])
        .envs(&app.settings)
        .current_dir(std::env::temp_dir())
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let said: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(said["waited_in"], "outbox", "{said}");
    assert_eq!(
        app.count("SELECT count(*) AS n FROM outbox WHERE job = 'probe'")
            .await,
        0
    );
    assert_eq!(queues.counts(Queue::Probe).await.unwrap().pending, 0);

    // An email waiting in its queue: cancelled, never sent, and out of the
    // reconciler's reach.
    let mail = shared::email::VerifyEmail {
        username: "sam".into(),
        email: "cancelled@example.com".into(),
        code: "123456".into(),
        expires_minutes: 15,
    };
    let mut conn = app.conn().await;
    let (email_id, job_id) = conn
        .transaction(async |conn| {
            let ids = {
                let shared: &diesel_async::AsyncPgConnection = conn;
                shared::email::enqueue_many_quiet_on(
                    shared,
                    &[(None, "cancelled@example.com".to_owned(), mail)],
                )
                .await?
            };
            let job: JobId =
                diesel::sql_query("SELECT id FROM outbox WHERE payload->>'email_id' = $1::text")
                    .bind::<diesel::sql_types::Text, _>(ids[0].to_string())
                    .get_result(conn)
                    .await?;
            Ok::<_, diesel::result::Error>((ids[0], job.id))
        })
        .await
        .unwrap();
    eventually("the email's job waiting in Redis", WAIT, || async {
        let counts = queues.counts(Queue::Email).await.ok()?;
        (counts.pending >= 1
            && app
                .count("SELECT count(*) AS n FROM outbox WHERE job = 'send_email'")
                .await
                == 0)
            .then_some(())
    })
    .await;
    let reply = send(
        &app,
        &root,
        Method::DELETE,
        &path("email", &job_id.to_string()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["job"], "send_email");
    assert_eq!(reply.body["waited_in"], "pending");
    let (status, error): (String, Option<String>) = {
        use diesel::QueryDsl as _;
        use shared::schema::emails;
        emails::table
            .find(email_id)
            .select((emails::status, emails::last_error))
            .first(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(status, "failed");
    assert_eq!(error.as_deref(), Some("cancelled by the operator root"));
    let reconciled = shared::email::reconcile(
        &mut conn,
        std::time::Duration::ZERO,
        std::time::Duration::from_secs(60),
        8,
        100,
    )
    .await
    .unwrap();
    assert_eq!(reconciled.queued, 0);

    // Resumed: a job pushed after the cancelled ones runs; they never do.
    queues.set_paused(Queue::Probe, false).await.unwrap();
    queues.set_paused(Queue::Email, false).await.unwrap();
    push(
        &app,
        Probe {
            tag: "after".into(),
            record: true,
            ..Probe::default()
        },
        None,
    )
    .await;
    eventually("the later probe ran", WAIT, || async {
        (!probe_runs(&app, "after").await.is_empty()).then_some(())
    })
    .await;
    assert!(probe_runs(&app, "cancelled").await.is_empty());
    assert!(
        !app.smtp
            .mails()
            .iter()
            .any(|m| m.to.iter().any(|to| to == "cancelled@example.com"))
    );

    // A job that has started is not waiting: it runs to its end.
    let long = push(
        &app,
        Probe {
            tag: "long".into(),
            sleep_ms: 3000,
            record: true,
            ..Probe::default()
        },
        None,
    )
    .await;
    eventually("the long probe started", WAIT, || async {
        (!probe_runs(&app, "long").await.is_empty()).then_some(())
    })
    .await;
    let reply = send(
        &app,
        &root,
        Method::DELETE,
        &path("probe", &long.to_string()),
    )
    .await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert_eq!(reply.body["code"], "conflict");
    let runs = eventually("the long probe finished", WAIT, || async {
        let runs = probe_runs(&app, "long").await;
        runs.iter().all(|r| r.finished_at.is_some()).then_some(runs)
    })
    .await;
    assert_eq!(runs.len(), 1);
    assert!(!runs[0].failed);
}

#[derive(diesel::QueryableByName)]
struct JobId {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

fn sum(series: &Value, queue: &str, field: &str) -> u64 {
    series["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == queue)
        .unwrap_or_else(|| panic!("no queue {queue} in {series}"))["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[field].as_u64().unwrap())
        .sum()
}

/// The jobs page's data, from two real worker processes: throughput
/// sampled server-side, retries waiting out their backoff with attempt and
/// error, delayed jobs still in the outbox, soonest first a page at a time,
/// and each process's jobs in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_see_throughput_scheduled_and_retrying_jobs_and_jobs_in_flight() {
    let app = TestAppBuilder::new()
        .without_worker()
        // A failed job waits ten minutes for its next attempt.
        .env("JOB_BACKOFF_BASE_MS", "600000")
        .env("JOB_BACKOFF_MAX_MS", "600000")
        .env("JOBS_HISTORY_SAMPLE_SECS", "1")
        .start()
        .await;
    let _workers = harness::process::WorkerProcess::spawn_healthy(
        &app.settings,
        &["page-a", "page-b"],
        // Email: the registrations' verification codes.
        &["--queues", "probe,email"],
    )
    .await;
    let root = admin(&app).await;
    let (ada, _) = app.user_with_wallets("ada", &[]).await;
    for path in ["/api/v1/admin/jobs/history", "/api/v1/admin/jobs/scheduled"] {
        assert_eq!(app.get_as(path, &ada.access).await.status, 403, "{path}");
    }

    for i in 0..5 {
        push(
            &app,
            Probe {
                tag: format!("quick-{i}"),
                ..Probe::default()
            },
            None,
        )
        .await;
    }
    let flaky = push(
        &app,
        Probe {
            tag: "flaky".into(),
            fail_attempts: 1,
            ..Probe::default()
        },
        None,
    )
    .await;
    let later = push(
        &app,
        Probe {
            tag: "later".into(),
            ..Probe::default()
        },
        Some(chrono::Utc::now() + chrono::Duration::hours(2)),
    )
    .await;

    // Throughput: what ran shows in the sampled history, per interval.
    let history = eventually(
        "five successes and a retry in the history",
        WAIT,
        || async {
            let reply = app.get_as("/api/v1/admin/jobs/history", &root.access).await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            (sum(&reply.body, "probe", "succeeded") == 5
                && sum(&reply.body, "probe", "retried") == 1)
                .then_some(reply.body)
        },
    )
    .await;
    assert_eq!(sum(&history, "probe", "failed"), 0);
    let points = history["queues"][0]["points"].as_array().unwrap();
    for pair in points.windows(2) {
        assert_eq!(pair[0]["to"], pair[1]["from"], "consecutive intervals");
    }

    // The retry waits out its backoff with its attempt and error; the
    // delayed job waits in the outbox. Soonest first.
    let page = app
        .get_as("/api/v1/admin/jobs/scheduled?queue=probe", &root.access)
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{}", page.body);
    assert_eq!(page.body["next_cursor"], Value::Null);
    let retry = &items[0];
    assert_eq!(retry["id"], flaky.to_string());
    assert_eq!(retry["job"], "probe");
    assert_eq!(retry["attempts"], 1);
    assert_eq!(retry["waiting_in"], "scheduled");
    assert!(
        retry["last_error"]
            .as_str()
            .unwrap()
            .contains("probe flaky fails attempt 1 as asked"),
        "{retry}"
    );
    assert_eq!(retry["args"]["tag"], "flaky");
    let run_at: chrono::DateTime<chrono::Utc> = retry["run_at"].as_str().unwrap().parse().unwrap();
    assert!(
        run_at > chrono::Utc::now() + chrono::Duration::minutes(5),
        "{retry}"
    );
    let waiting = &items[1];
    assert_eq!(waiting["id"], later.to_string());
    assert_eq!(waiting["waiting_in"], "outbox");
    assert_eq!(waiting["attempts"], 0);
    assert_eq!(waiting["last_error"], Value::Null);

    // A page at a time, from the cursor.
    let first = app
        .get_as("/api/v1/admin/jobs/scheduled?limit=1", &root.access)
        .await;
    assert_eq!(
        first.body["items"][0]["id"],
        flaky.to_string(),
        "{}",
        first.body
    );
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = app
        .get_as(
            &format!("/api/v1/admin/jobs/scheduled?limit=1&cursor={cursor}"),
            &root.access,
        )
        .await;
    assert_eq!(
        second.body["items"][0]["id"],
        later.to_string(),
        "{}",
        second.body
    );
    // Every source read to its end: the last page says so.
    assert_eq!(second.body["next_cursor"], Value::Null, "{}", second.body);

    // Filters: by job name and by error text (ignoring case).
    for (query, expected) in [
        ("job=probe&error=FAILS%20ATTEMPT", vec![flaky.to_string()]),
        ("error=nothing%20like%20this", vec![]),
        ("job=send_email", vec![]),
        ("queue=email", vec![]),
    ] {
        let reply = app
            .get_as(
                &format!("/api/v1/admin/jobs/scheduled?{query}"),
                &root.access,
            )
            .await;
        assert_eq!(reply.status, 200, "{query}: {}", reply.body);
        let ids: Vec<String> = reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, expected, "{query}");
    }
    for query in [
        "job=nope",
        "error=",
        "error=%07bell",
        "queue=nope",
        "cursor=garbage",
        "limit=0",
        "bogus=1",
    ] {
        let reply = app
            .get_as(
                &format!("/api/v1/admin/jobs/scheduled?{query}"),
                &root.access,
            )
            .await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert_eq!(reply.body["code"], "validation_failed", "{query}");
    }

    // Jobs in flight, per worker process.
    push(
        &app,
        Probe {
            tag: "slow".into(),
            sleep_ms: 15_000,
            ..Probe::default()
        },
        None,
    )
    .await;
    // The queue counts and the processes are read one after the other:
    // wait for a view in which both see the job.
    let view = eventually("one job in flight", WAIT, || async {
        let view = overview(&app, &root).await;
        let busy: u64 = view["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["in_flight"].as_u64().unwrap())
            .sum();
        (busy == 1 && queue(&view, "probe")["running"] == 1).then_some(view)
    })
    .await;
    let workers = view["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2, "{view}");
    let busy: Vec<&str> = workers
        .iter()
        .filter(|w| w["in_flight"] == 1)
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert!(busy == ["page-a"] || busy == ["page-b"], "{view}");
    assert_eq!(queue(&view, "probe")["running"], 1, "{view}");
}

/// Dead jobs found by job name and error text, and everything a filter
/// matches retried or discarded at once, with a real worker process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_jobs_are_filtered_and_retried_or_discarded_in_bulk() {
    let app = TestAppBuilder::new().without_worker().start().await;
    let _worker = harness::process::WorkerProcess::spawn_healthy(
        &app.settings,
        &["bulk-a"],
        &["--queues", "probe,email"],
    )
    .await;
    let root = admin(&app).await;
    let (ada, _) = app.user_with_wallets("ada", &[]).await;
    let fatal = |tag: &str| Probe {
        tag: tag.to_owned(),
        fail_attempts: u32::MAX,
        fail_permanently: true,
        ..Probe::default()
    };
    for tag in ["alpha", "alpha", "alpha", "beta", "beta"] {
        push(&app, fatal(tag), None).await;
    }
    let dead_count = |n: u64| {
        let app = &app;
        let root = &root;
        async move { (queue(&overview(app, root).await, "probe")["dead"] == n).then_some(()) }
    };
    eventually("five dead jobs", WAIT, || dead_count(5)).await;

    let listed = |query: &'static str| {
        let app = &app;
        let root = &root;
        async move {
            let reply = app
                .get_as(&format!("/api/v1/admin/jobs/dead?{query}"), &root.access)
                .await;
            assert_eq!(reply.status, 200, "{query}: {}", reply.body);
            reply.body
        }
    };
    let alpha = listed("error=ALPHA").await;
    assert_eq!(alpha["items"].as_array().unwrap().len(), 3, "{alpha}");
    assert!(
        alpha["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["error"].as_str().unwrap().contains("probe alpha fails")),
        "{alpha}"
    );
    assert_eq!(
        listed("job=probe&error=beta").await["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(listed("job=send_email").await["items"], json!([]));
    assert_eq!(listed("queue=email&error=alpha").await["items"], json!([]));
    // Filtered pages follow their cursor.
    let first = listed("error=alpha&limit=2").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let rest = app
        .get_as(
            &format!("/api/v1/admin/jobs/dead?error=alpha&limit=2&cursor={cursor}"),
            &root.access,
        )
        .await;
    assert_eq!(
        rest.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        rest.body
    );
    assert_eq!(rest.body["next_cursor"], Value::Null);

    // Bulk: administrators only, filters checked like the listing's.
    let bulk = |action: &str, body: Value| {
        let path = format!("/api/v1/admin/jobs/dead/{action}");
        let app = &app;
        let root = &root;
        async move { app.send_as(Method::POST, &path, &root.access, &body).await }
    };
    let refused = app
        .send_as(
            Method::POST,
            "/api/v1/admin/jobs/dead/retry",
            &ada.access,
            &json!({}),
        )
        .await;
    assert_eq!(refused.status, 403);
    for body in [
        json!({"job": "nope"}),
        json!({"queue": "nope"}),
        json!({"error": ""}),
        json!({"bogus": 1}),
    ] {
        let reply = bulk("discard", body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert_eq!(reply.body["code"], "validation_failed", "{body}");
    }
    eventually("nothing discarded by refused calls", WAIT, || dead_count(5)).await;

    // Retry the betas: they run again (and die again, as they must).
    let retried = bulk("retry", json!({"job": "probe", "error": "beta"})).await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(
        retried.body,
        json!({"matched": 2, "done": 2, "status": "queued"})
    );
    eventually("the betas ran again and died again", WAIT, || async {
        let view = overview(&app, &root).await;
        let probes = queue(&view, "probe");
        (probes["dead"] == 5 && probes["failed"] == 7).then_some(())
    })
    .await;

    // Discard the alphas, from the command line: only they go.
    let output = tokio::process::Command::new(harness::process::binary("bourse-worker"))
        .args(["dead", "discard", "probe", "--error", "alpha"])
        .envs(&app.settings)
        .current_dir(std::env::temp_dir())
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "3 dead job(s) discarded from probe"
    );
    let left = listed("queue=probe").await;
    let errors: Vec<&str> = left["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["error"].as_str().unwrap())
        .collect();
    assert_eq!(errors.len(), 2, "{left}");
    assert!(
        errors.iter().all(|e| e.contains("probe beta fails")),
        "{left}"
    );

    // `{}` matches every dead job.
    let all = bulk("discard", json!({})).await;
    assert_eq!(
        all.body,
        json!({"matched": 2, "done": 2, "status": "discarded"})
    );
    eventually("no dead jobs", WAIT, || dead_count(0)).await;
}
