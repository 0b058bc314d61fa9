//! The job pipeline: outbox → relay → Redis → worker, retries and the dead
//! set, Redis outages, rollbacks, and email delivery guarantees.

use std::{collections::HashSet, time::Duration};

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use harness::{TestApp, TestAppBuilder, eventually};
use serde_json::json;
use shared::{
    jobs::{JobSpec, Probe, Queue, SendEmail},
    outbox, probe,
    schema::{emails, outbox as outbox_table},
};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

async fn push_probe(conn: &mut AsyncPgConnection, probe: Probe) -> Uuid {
    outbox::push(conn, &probe, None).await.unwrap()
}

fn recorded(tag: &str) -> Probe {
    Probe {
        tag: tag.to_owned(),
        record: true,
        ..Probe::default()
    }
}

async fn runs(app: &TestApp, tag: &str) -> Vec<probe::ProbeRun> {
    let mut conn = app.conn().await;
    probe::runs(&mut conn, tag).await.unwrap()
}

/// Undispatched outbox rows of the jobs these tests write (probes and
/// emails). The schedules write theirs meanwhile, Redis or not: reconciler
/// ticks, and the price refreshes' `prices_observed`.
async fn undispatched(app: &TestApp) -> i64 {
    let mut conn = app.conn().await;
    outbox_table::table
        .filter(outbox_table::dispatched_at.is_null())
        .filter(outbox_table::job.eq_any([<Probe as JobSpec>::NAME, <SendEmail as JobSpec>::NAME]))
        .count()
        .get_result(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_job_runs_once_and_a_rolled_back_one_never() {
    let app = TestAppBuilder::new().start().await;
    let mut conn = app.conn().await;

    // A change that rolls back takes its job with it.
    let rolled_back: Result<(), diesel::result::Error> = conn
        .transaction(async |conn| {
            push_probe(conn, recorded("rolled-back")).await;
            Err(diesel::result::Error::RollbackTransaction)
        })
        .await;
    assert!(rolled_back.is_err());
    let committed: Uuid = conn
        .transaction(async |conn| {
            Ok::<_, diesel::result::Error>(push_probe(conn, recorded("committed")).await)
        })
        .await
        .unwrap();

    let run = eventually("the committed job to finish", WAIT, || async {
        runs(&app, "committed")
            .await
            .into_iter()
            .find(|r| r.finished_at.is_some())
    })
    .await;
    assert_eq!(run.job_id, committed);
    assert_eq!(run.attempt, 1);
    assert!(!run.failed);
    // The relay deleted the committed row once it was pushed: the outbox
    // holds only what waits. (Only probe rows count: the schedules write
    // their own jobs to the outbox meanwhile.)
    let rows: i64 = outbox_table::table
        .filter(outbox_table::job.eq(<Probe as JobSpec>::NAME))
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    assert!(runs(&app, "rolled-back").await.is_empty());
    assert_eq!(runs(&app, "committed").await.len(), 1, "ran exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_an_earlier_release_marked_dispatched_are_purged_and_never_run_again() {
    // Before delete-on-dispatch, relays kept pushed rows, marked
    // `dispatched_at`; processes of that release may still run during a
    // rolling upgrade. A relay of this one purges those rows (at its start,
    // then every minute) and never pushes them again.
    let mut app = TestAppBuilder::new().without_worker().start().await;
    let mut conn = app.conn().await;
    let marked = push_probe(&mut conn, recorded("marked-earlier")).await;
    diesel::update(outbox_table::table.find(marked))
        .set(outbox_table::dispatched_at.eq(chrono::Utc::now()))
        .execute(&mut conn)
        .await
        .unwrap();
    let waiting = push_probe(&mut conn, recorded("still-waiting")).await;
    app.start_worker().await;
    eventually("the marked row to be purged", WAIT, || async {
        let left: i64 = outbox_table::table
            .filter(outbox_table::id.eq_any([marked, waiting]))
            .count()
            .get_result(&mut app.conn().await)
            .await
            .unwrap();
        (left == 0).then_some(())
    })
    .await;
    let run = eventually("the waiting job to run", WAIT, || async {
        runs(&app, "still-waiting")
            .await
            .into_iter()
            .find(|r| r.finished_at.is_some())
    })
    .await;
    assert_eq!(run.job_id, waiting);
    assert!(runs(&app, "marked-earlier").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_jobs_through_two_relays_and_workers_each_run_once() {
    // Few jobs at a time per worker, each taking a few milliseconds: one
    // worker alone needs well over a poll interval for all 500, so the
    // other always gets a share however the processes are scheduled.
    let mut app = TestAppBuilder::new()
        .env("WORKER_CONCURRENCY", 4)
        .env("WORKER_BATCH_SIZE", 4)
        .start()
        .await;
    app.start_worker().await;
    for worker in &app.workers {
        harness::poll::healthy("both workers healthy", &worker.health_url, WAIT).await;
    }
    let mut conn = app.conn().await;
    let mut ids = HashSet::new();
    for chunk in 0..10 {
        let batch: Vec<Uuid> = conn
            .transaction(async |conn| {
                let mut ids = Vec::new();
                for _ in 0..50 {
                    let probe = Probe {
                        sleep_ms: 5,
                        ..recorded("bulk")
                    };
                    ids.push(push_probe(conn, probe).await);
                }
                Ok::<_, diesel::result::Error>(ids)
            })
            .await
            .unwrap();
        assert_eq!(batch.len(), 50, "chunk {chunk}");
        ids.extend(batch);
    }
    let done = eventually("500 jobs to finish", WAIT, || async {
        let runs = runs(&app, "bulk").await;
        (runs.iter().filter(|r| r.finished_at.is_some()).count() >= 500).then_some(runs)
    })
    .await;
    let ran: HashSet<Uuid> = done.iter().map(|r| r.job_id).collect();
    assert_eq!(ran, ids);
    assert_eq!(done.len(), 500, "no job ran twice");
    let workers: HashSet<&str> = done.iter().map(|r| r.worker.as_str()).collect();
    assert_eq!(workers.len(), 2, "both workers took a share");
    assert_eq!(undispatched(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_job_is_retried_with_backoff_then_dead_and_can_be_retried_by_an_operator() {
    let app = TestAppBuilder::new().start().await;
    let mut conn = app.conn().await;
    // JOB_MAX_ATTEMPTS=3 in tests.
    let flaky = push_probe(
        &mut conn,
        Probe {
            fail_attempts: 2,
            ..recorded("flaky")
        },
    )
    .await;
    let doomed = push_probe(
        &mut conn,
        Probe {
            fail_attempts: u32::MAX,
            ..recorded("doomed")
        },
    )
    .await;

    let flaky_runs = eventually("the flaky job to succeed", WAIT, || async {
        let runs = runs(&app, "flaky").await;
        runs.iter()
            .any(|r| r.finished_at.is_some() && !r.failed)
            .then_some(runs)
    })
    .await;
    let attempts: Vec<(i32, bool)> = flaky_runs.iter().map(|r| (r.attempt, r.failed)).collect();
    assert_eq!(attempts, vec![(1, true), (2, true), (3, false)]);
    assert!(flaky_runs.iter().all(|r| r.job_id == flaky));
    // Backoff: each retry started after the previous attempt finished plus
    // at least half its step (base 50 ms, doubling).
    for (previous, next) in flaky_runs.iter().zip(&flaky_runs[1..]) {
        let gap = next.started_at - previous.finished_at.unwrap();
        assert!(
            gap >= chrono::Duration::milliseconds(25),
            "retry came after {gap}"
        );
    }

    let queues = app.queues();
    let dead = eventually("the doomed job in the dead set", WAIT, || async {
        let dead = queues.dead_page(Queue::Probe, None, 10).await.unwrap();
        (!dead.is_empty()).then_some(dead)
    })
    .await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].payload.as_ref().unwrap()["id"], json!(doomed));
    let reason = dead[0].last_error.clone().unwrap_or_default();
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    let doomed_runs = runs(&app, "doomed").await;
    assert_eq!(
        doomed_runs.iter().map(|r| r.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );

    let counts = eventually("outcome counters", WAIT, || async {
        let counts = queues.counts(Queue::Probe).await.unwrap();
        (counts.failed_for_good == 1 && counts.succeeded == 1).then_some(counts)
    })
    .await;
    assert_eq!(counts.retried, 4, "two retries each");
    assert_eq!(counts.dead, 1);

    // An operator retries it: it runs again (and fails again, as asked).
    let moved = queue::dead::retry(&queues, Queue::Probe, &[])
        .await
        .unwrap();
    assert_eq!(moved, 1);
    eventually("the operator retry to run", WAIT, || async {
        (runs(&app, "doomed").await.len() >= 4).then_some(())
    })
    .await;
    // ...and discards it once it is dead again.
    eventually("the job dead again", WAIT, || async {
        (queues.counts(Queue::Probe).await.unwrap().dead == 1).then_some(())
    })
    .await;
    assert_eq!(
        queue::dead::discard(&queues, Queue::Probe, &[])
            .await
            .unwrap(),
        1
    );
    assert_eq!(queues.counts(Queue::Probe).await.unwrap().dead, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_the_worker_cannot_read_goes_dead_at_once() {
    let app = TestAppBuilder::new().start().await;
    let mut conn = app.conn().await;
    diesel::sql_query(
        "INSERT INTO outbox (id, queue, job, payload) VALUES (gen_random_uuid(), 'probe', 'probe', '{\"tag\": 7}'),
                                                            (gen_random_uuid(), 'probe', 'no_such_job', '{}')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let queues = app.queues();
    let dead = eventually("both jobs dead", WAIT, || async {
        let dead = queues.dead_page(Queue::Probe, None, 10).await.unwrap();
        (dead.len() == 2).then_some(dead)
    })
    .await;
    let mut reasons: Vec<String> = dead.into_iter().filter_map(|d| d.last_error).collect();
    reasons.sort();
    assert!(reasons[0].contains("malformed payload"), "{reasons:?}");
    assert!(
        reasons[1].contains("no handler for job \"no_such_job\""),
        "{reasons:?}"
    );
    assert_eq!(
        queues.counts(Queue::Probe).await.unwrap().retried,
        0,
        "not retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_succeed_while_redis_is_down_and_their_jobs_go_out_when_it_returns() {
    let app = TestAppBuilder::new().redis_through_proxy().start().await;
    let proxy = app.proxy.as_ref().unwrap();
    // Wait for the worker to be up before cutting Redis off.
    let health = app.workers[0].health_url.clone();
    eventually("the worker to be healthy", WAIT, || async {
        let status = reqwest::get(&health).await.ok()?.status();
        status.is_success().then_some(())
    })
    .await;
    proxy.cut();

    let reply = app
        .post(
            "/api/v1/auth/register",
            &json!({ "username": "offline", "email": "offline@example.com", "password": "correct horse" }),
        )
        .await;
    assert_eq!(
        reply.status, 201,
        "the API does not need Redis to take a write"
    );

    // The worker notices the outage (its health goes red and the relay
    // reports the failed push); the job waits in the outbox.
    let report = eventually("the worker to report the outage", WAIT, || async {
        let response = reqwest::get(&health).await.ok()?;
        if response.status() != 503 {
            return None;
        }
        let body: serde_json::Value = response.json().await.ok()?;
        let problems = body["problems"].to_string();
        problems.contains("outbox relay").then_some(body)
    })
    .await;
    assert_eq!(report["status"], "unhealthy");
    assert_eq!(undispatched(&app).await, 1);
    assert!(app.smtp.mails().is_empty());

    proxy.restore();
    let mail = app
        .smtp
        .wait_for("offline@example.com", Duration::from_secs(30))
        .await;
    assert!(mail.subject().starts_with("Your Bourse verification code"));
    assert_eq!(undispatched(&app).await, 0);
    harness::poll::healthy(
        "the worker to be healthy again",
        &health,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(app.smtp.mails().len(), 1, "sent once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_in_flight_runs_to_its_end_when_redis_fails_under_its_worker() {
    // apalis ends a worker at the backend's first error and, run as it
    // shipped, dropped the jobs in flight with it: a Redis failover in the
    // middle of an SMTP exchange left the email claimed and never sent.
    let app = TestAppBuilder::new().redis_through_proxy().start().await;
    let health = app.workers[0].health_url.clone();
    harness::poll::healthy("the worker to be healthy", &health, WAIT).await;
    let mut conn = app.conn().await;
    push_probe(
        &mut conn,
        Probe {
            sleep_ms: 4_000,
            ..recorded("in-flight")
        },
    )
    .await;
    eventually("the probe to start", WAIT, || async {
        (!runs(&app, "in-flight").await.is_empty()).then_some(())
    })
    .await;
    // Redis goes away under the running job; PostgreSQL, where its effect
    // goes, stays.
    app.proxy.as_ref().unwrap().cut();
    let finished = eventually("the probe to finish with Redis cut off", WAIT, || async {
        let runs = runs(&app, "in-flight").await;
        runs.iter()
            .any(|run| run.finished_at.is_some())
            .then_some(runs)
    })
    .await;
    assert_eq!(finished.len(), 1, "one run, not cancelled: {finished:?}");
    assert_eq!(finished[0].attempt, 1);
    assert!(!finished[0].failed);
    // The failure did reach the worker, which then started a fresh one.
    eventually("the probe queue's worker to be restarted", WAIT, || async {
        harness::poll::metric(&health, r#"bourse_worker_restarts_total{queue="probe"}"#)
            .await
            .filter(|n| *n >= 1.0)
    })
    .await;
    app.proxy.as_ref().unwrap().restore();
    harness::poll::healthy("the worker to be healthy again", &health, WAIT).await;
}

async fn queued_email(app: &TestApp, to: &str) -> Uuid {
    let mut conn = app.conn().await;
    conn.transaction(async |conn| {
        shared::email::enqueue(
            conn,
            None,
            to,
            &shared::email::VerifyEmail {
                username: "sam".into(),
                email: to.into(),
                code: "123456".into(),
                expires_minutes: 15,
            },
        )
        .await
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_failures_are_retried_and_the_email_is_sent_once() {
    let app = TestAppBuilder::new()
        .env("JOB_MAX_ATTEMPTS", 5)
        .start()
        .await;
    app.smtp.fail_next(2);
    let id = queued_email(&app, "retry@example.com").await;
    app.smtp.wait_for("retry@example.com", WAIT).await;
    assert_eq!(app.smtp.rejected(), 2);
    let mut conn = app.conn().await;
    let (status, attempts, error): (String, i32, Option<String>) = emails::table
        .find(id)
        .select((emails::status, emails::attempts, emails::last_error))
        .first(&mut conn)
        .await
        .unwrap();
    assert_eq!((status.as_str(), attempts, error), ("sent", 3, None));
    assert_eq!(app.smtp.mails_to("retry@example.com").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_email_job_sends_one_email() {
    // The email reconciler shares the email queue; kept to once a year here
    // so the queue's success count is exactly the four SendEmail jobs.
    let app = TestAppBuilder::new()
        .env("EMAIL_RECONCILE_CRON", "0 0 0 1 1 *")
        .start()
        .await;
    let id = queued_email(&app, "once@example.com").await;
    app.smtp.wait_for("once@example.com", WAIT).await;
    // The same job delivered again (a relay retry, a redelivery after a
    // crash) finds the email sent and does nothing. One at a time: copies
    // waiting together are one unique job (`unique_jobs`).
    let mut conn = app.conn().await;
    for done in 2..=4 {
        outbox::push(&mut conn, &SendEmail { email_id: id }, None)
            .await
            .unwrap();
        eventually("the duplicate to be processed", WAIT, || async {
            let counts = app.queues().counts(Queue::Email).await.unwrap();
            (counts.succeeded == done).then_some(())
        })
        .await;
    }
    assert_eq!(app.smtp.mails_to("once@example.com").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_sent_while_postgres_is_unreachable_is_recorded_sent_once_it_returns() {
    // Only the delivery that talked to SMTP knows the message went out: a
    // row it cannot mark `sent` stays `sending` and is given up, never
    // resent. So it keeps trying to record the outcome for a while.
    let app = TestAppBuilder::new().postgres_through_proxy().start().await;
    let health = app.workers[0].health_url.clone();
    harness::poll::healthy("the worker to be healthy", &health, WAIT).await;
    app.smtp.hold_answers(Duration::from_secs(2));
    let id = queued_email(&app, "saturated@example.com").await;
    app.smtp.wait_for("saturated@example.com", WAIT).await;
    // The server has the message and answers in a moment; PostgreSQL goes
    // away before the delivery can record it, for a few seconds.
    let proxy = app.postgres_proxy.as_ref().unwrap();
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(4)).await;
    proxy.restore();
    let status = eventually("the email recorded sent", WAIT, || async {
        let mut conn = app.conn().await;
        let status: String = emails::table
            .find(id)
            .select(emails::status)
            .first(&mut conn)
            .await
            .unwrap();
        (status != "sending").then_some(status)
    })
    .await;
    assert_eq!(status, "sent");
    assert_eq!(app.smtp.mails_to("saturated@example.com").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_of_an_email_being_sent_spends_no_attempt_and_a_dead_claim_is_given_up() {
    let mut app = TestAppBuilder::new()
        .env("EMAIL_RECONCILE_CRON", "* * * * * *")
        .env("JOB_MAX_ATTEMPTS", 2)
        .without_worker()
        .start()
        .await;
    // A delivery in another process has claimed each email: one just now,
    // one whose process died mid-send ten minutes ago, and whose job is
    // gone with it.
    let live = queued_email(&app, "live@example.com").await;
    let dead = queued_email(&app, "dead@example.com").await;
    let mut conn = app.conn().await;
    diesel::sql_query("DELETE FROM outbox WHERE job = $1 AND payload->>'email_id' = $2")
        .bind::<diesel::sql_types::Text, _>(<SendEmail as JobSpec>::NAME)
        .bind::<diesel::sql_types::Text, _>(dead.to_string())
        .execute(&mut conn)
        .await
        .unwrap();
    for (id, ago) in [(live, 0), (dead, 600)] {
        diesel::sql_query(
            "UPDATE emails SET status = 'sending', claimed_by = 'elsewhere',
                    claimed_at = now() - make_interval(secs => $2), attempts = 1
             WHERE id = $1",
        )
        .bind::<diesel::sql_types::Uuid, _>(id)
        .bind::<diesel::sql_types::Double, _>(f64::from(ago))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    // The live one's job, and a duplicate of it, find the claim taken:
    // each ends at once, none retried, none dead.
    outbox::push(&mut conn, &SendEmail { email_id: live }, None)
        .await
        .unwrap();
    app.start_worker().await;
    let status = |id: Uuid| {
        let app = &app;
        async move {
            let mut conn = app.conn().await;
            emails::table
                .find(id)
                .select((emails::status, emails::last_error))
                .first::<(String, Option<String>)>(&mut conn)
                .await
                .unwrap()
        }
    };
    // The dead claim is given up by the reconciler: failed, never resent.
    let (state, error) = eventually("the dead claim to be given up", WAIT, || async {
        let got = status(dead).await;
        (got.0 == "failed").then_some(got)
    })
    .await;
    assert_eq!(state, "failed");
    assert!(error.unwrap_or_default().starts_with("interrupted"));
    eventually("the email jobs to be processed", WAIT, || async {
        let counts = app.queues().counts(Queue::Email).await.unwrap();
        (counts.pending == 0 && counts.delayed == 0 && counts.succeeded >= 2).then_some(())
    })
    .await;
    let counts = app.queues().counts(Queue::Email).await.unwrap();
    assert_eq!((counts.retried, counts.dead), (0, 0), "{counts:?}");
    // The live claim is left to its delivery.
    assert_eq!(status(live).await.0, "sending");
    assert!(app.smtp.mails().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_job_waits_in_the_outbox_until_due() {
    let app = TestAppBuilder::new().start().await;
    let mut conn = app.conn().await;
    let due = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let id = outbox::push(&mut conn, &recorded("later"), Some(due))
        .await
        .unwrap();
    let run = eventually("the delayed job to run", WAIT, || async {
        runs(&app, "later").await.into_iter().next()
    })
    .await;
    assert_eq!(run.job_id, id);
    assert!(
        run.started_at >= due,
        "ran at {} before it was due at {due}",
        run.started_at
    );
}

/// Jobs queued by a version before hash-tagged key names
/// (`{prefix}:probe:active` rather than `{{prefix}:probe}:active`) run
/// after the upgrade: the worker renames the old keys at start, and moves
/// a retry left in the delayed set that version kept (beside apalis-redis's
/// keys) to apalis-redis's scheduled set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_queued_under_the_untagged_key_names_runs_after_the_upgrade() {
    let mut app = TestAppBuilder::new().without_worker().start().await;
    let queues = app.queues();
    let id = Uuid::now_v7();
    let job = queue::ReadyJob {
        task_id: id.to_string(),
        envelope: shared::jobs::JobEnvelope {
            id,
            job: Probe::NAME.to_owned(),
            v: Probe::VERSION,
            args: serde_json::to_value(recorded("untagged")).unwrap(),
            due_at: chrono::Utc::now(),
            unique_key: None,
            traceparent: None,
            request_id: None,
        },
    };
    let retry_id = Uuid::now_v7();
    let retry = queue::ReadyJob {
        task_id: retry_id.to_string(),
        envelope: shared::jobs::JobEnvelope {
            id: retry_id,
            args: serde_json::to_value(recorded("old-retry")).unwrap(),
            ..job.envelope.clone()
        },
    };
    assert_eq!(
        queues.push(Queue::Probe, &[job, retry], 3).await.unwrap(),
        2
    );
    let keys = queues.keys(Queue::Probe);
    let mut conn = queues.connection();
    // The previous version kept retries waiting out their backoff in a
    // sorted set of its own (scored in ms): put the second job there, due.
    let _: () = redis::pipe()
        .lrem(keys.active(), 1, retry_id.to_string())
        .ignore()
        .zadd(
            keys.old_delayed(),
            retry_id.to_string(),
            chrono::Utc::now().timestamp_millis() - 1000,
        )
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    // Give the queued jobs the names the previous version used.
    let tagged = keys.apalis_queue().to_owned();
    let untagged = format!("{}:probe", app.prefix);
    let queued: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{tagged}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!queued.is_empty());
    for key in &queued {
        let old = key.replacen(&tagged, &untagged, 1);
        let _: () = redis::cmd("RENAME")
            .arg(key)
            .arg(&old)
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    app.start_worker().await;
    eventually("the job queued under the old names ran", WAIT, || async {
        (runs(&app, "untagged").await.len() == 1).then_some(())
    })
    .await;
    eventually(
        "the retry left in the old delayed set ran",
        WAIT,
        || async { (runs(&app, "old-retry").await.len() == 1).then_some(()) },
    )
    .await;
    let waiting: u64 = redis::cmd("EXISTS")
        .arg(keys.old_delayed())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(waiting, 0, "the old delayed set is retired");
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{untagged}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(left.is_empty(), "keys left under the old names: {left:?}");
}

/// Relays wake on the Redis channel `{prefix}:outbox`, on which the API
/// publishes after a request that queued a job due now (no `pg_notify`,
/// whose commit lock serialised the hot write paths), and they act on a
/// wake-up at once: with every schedule a year away and the relays' poll
/// at a minute, a row written without a wake-up runs only once a message
/// arrives on the channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_wake_on_the_redis_channel_not_on_their_poll() {
    let never = "0 0 0 1 1 *";
    let app = TestAppBuilder::new()
        .env("OUTBOX_POLL_MS", 60_000)
        .env("RATE_REFRESH_CRON", never)
        .env("MONTHLY_FEE_CRON", never)
        .env("BET_RECONCILE_CRON", never)
        .env("EMAIL_RECONCILE_CRON", never)
        .start()
        .await;
    let channel = queue::keys::relay_wake_channel(&app.prefix);
    let client = redis::Client::open(format!("redis://{}/0", harness::app::REDIS_ADDR)).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(&channel).await.unwrap();
    let mut messages = pubsub.on_message();

    // The API publishes the queue after a registration (its email).
    let reply = app
        .post(
            "/api/v1/auth/register",
            &json!({ "username": "woken", "email": "woken@example.com", "password": "correct horse" }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let message = tokio::time::timeout(WAIT, futures::StreamExt::next(&mut messages))
        .await
        .expect("a wake-up within the wait")
        .expect("the subscription is open");
    assert_eq!(message.get_payload::<String>().unwrap(), "email");
    app.smtp.wait_for("woken@example.com", WAIT).await;

    // A row committed with no wake-up (outside any request or job) waits
    // for the poll, a minute away; a message on the channel sends it now.
    let mut conn = app.conn().await;
    push_probe(&mut conn, recorded("woken")).await;
    let publisher = client.get_multiplexed_async_connection().await.unwrap();
    eventually("the probe relayed after a wake-up", WAIT, || {
        let (app, channel, publisher) = (&app, &channel, publisher.clone());
        async move {
            let mut publisher = publisher;
            let _: () = redis::AsyncCommands::publish(&mut publisher, channel, "probe")
                .await
                .ok()?;
            (!runs(app, "woken").await.is_empty()).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_share_one_smtp_rate_limit() {
    const RATE: u64 = 50;
    const EMAILS: usize = 1000;
    let app = TestAppBuilder::new()
        .without_worker()
        .env("SMTP_MAX_PER_SEC", RATE)
        .env("EMAIL_RECONCILE_CRON", "0 0 0 1 1 *")
        .start()
        .await;
    let _workers: Vec<_> = ["limit-a", "limit-b", "limit-c"]
        .iter()
        .map(|name| {
            harness::process::WorkerProcess::spawn(&app.settings, name, &["--queues", "email"])
        })
        .collect();
    let mails: Vec<_> = (0..EMAILS)
        .map(|i| {
            let to = format!("limited{i}@example.com");
            let mail = shared::email::VerifyEmail {
                username: "sam".into(),
                email: to.clone(),
                code: "123456".into(),
                expires_minutes: 15,
            };
            (None, to, mail)
        })
        .collect();
    let mut conn = app.conn().await;
    conn.transaction(async |conn| {
        let shared: &AsyncPgConnection = conn;
        shared::email::enqueue_many_quiet_on(shared, &mails).await
    })
    .await
    .unwrap();

    let received = eventually("every email received", Duration::from_secs(180), || async {
        let mails = app.smtp.mails();
        (mails.len() >= EMAILS).then_some(mails)
    })
    .await;
    // Each once.
    let recipients: HashSet<String> = received.iter().flat_map(|m| m.to.clone()).collect();
    assert_eq!(received.len(), EMAILS);
    assert_eq!(recipients.len(), EMAILS);
    // At the rate, across the three processes: no calendar second got more
    // than the limit (and a little for network jitter), and the whole took
    // at least as long as the limit allows (without it, three processes
    // send a thousand in a few seconds).
    let arrivals: Vec<_> = received.iter().map(|m| m.received_at).collect();
    let spread = harness::poll::spread(&arrivals);
    assert!(spread.busiest_second <= RATE + RATE / 10, "{spread:?}");
    let least = (EMAILS as f64 - 1.0) / RATE as f64;
    assert!(spread.span_secs >= least * 0.95, "{spread:?}");
    // Waiting for a turn spent no attempt and failed nothing.
    let counts: Vec<(String, i32)> = emails::table
        .select((emails::status, emails::attempts))
        .load(&mut conn)
        .await
        .unwrap();
    assert!(
        counts.iter().all(|(s, a)| s == "sent" && *a == 1),
        "{:?}",
        counts.iter().find(|(s, a)| s != "sent" || *a != 1)
    );
    let queue = app.queues().counts(Queue::Email).await.unwrap();
    assert_eq!(queue.dead, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_kept_waiting_by_the_limit_runs_later_without_spending_an_attempt() {
    // Two a second, and a job may wait a quarter of its 1 s limit for its
    // turn: most of eight emails at once run later, as copies.
    let app = TestAppBuilder::new()
        .env("SMTP_MAX_PER_SEC", 2)
        .env("JOB_TIMEOUT_SECS", 1)
        .env("EMAIL_RECONCILE_CRON", "0 0 0 1 1 *")
        .start()
        .await;
    for i in 0..8 {
        queued_email(&app, &format!("later{i}@example.com")).await;
    }
    eventually("all eight received", WAIT, || async {
        (app.smtp.mails().len() >= 8).then_some(())
    })
    .await;
    let mut conn = app.conn().await;
    let rows: Vec<(String, i32)> = emails::table
        .select((emails::status, emails::attempts))
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().all(|(s, a)| s == "sent" && *a == 1), "{rows:?}");
    assert_eq!(app.smtp.mails().len(), 8, "each once");
    let counts = app.queues().counts(Queue::Email).await.unwrap();
    assert!(counts.succeeded > 8, "no job ran later: {counts:?}");
    assert_eq!((counts.retried, counts.dead), (0, 0), "{counts:?}");
}
