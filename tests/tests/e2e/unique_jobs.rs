//! Unique jobs (PRODUCT.md §10): a job may carry a uniqueness key
//! (`JobSpec::unique_key`); while a job of that name and key waits in its
//! queue, the relays drop another instead of pushing it, and the key is
//! free again once the waiting job starts (`queue::waiting`).

use std::time::Duration;

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use harness::{TestApp, TestAppBuilder, eventually, process::WorkerProcess};
use shared::{
    jobs::{ClearOrders, Queue},
    outbox,
    trading::Side,
};

const WAIT: Duration = Duration::from_secs(60);

/// Rows of `job` still in the outbox (not yet relayed).
async fn unrelayed(app: &TestApp, job: &str) -> i64 {
    app.count(&format!(
        "SELECT count(*) AS n FROM outbox WHERE job = '{job}'"
    ))
    .await
}

/// The jobs `processes` dropped as copies of a waiting job, in all.
async fn dropped(processes: &[&WorkerProcess], queue: &str) -> f64 {
    let series = format!(r#"bourse_outbox_coalesced_total{{queue="{queue}"}}"#);
    let mut total = 0.0;
    for process in processes {
        total += harness::poll::metric(&process.health_url, &series)
            .await
            .unwrap_or(0.0);
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_committed_at_once_and_relayed_by_three_processes_leave_one_job_per_key() {
    // Small relay batches, so the three relays share the rows between
    // them and push copies of one key at the same moments.
    let app = TestAppBuilder::new()
        .without_worker()
        .env("OUTBOX_BATCH_SIZE", 5)
        .env("OUTBOX_POLL_MS", 20)
        .env("RUST_LOG", "info,apalis_core=warn,apalis_redis=warn")
        .start()
        .await;
    // Paused: every job stays waiting, so every later copy must be dropped.
    let queues = app.queues();
    queues.set_paused(Queue::OrderClearing, true).await.unwrap();
    let processes = WorkerProcess::spawn_healthy(
        &app.settings,
        &["unique-a", "unique-b", "unique-c"],
        &["--queues", "order_clearing"],
    )
    .await;
    let refs: Vec<&WorkerProcess> = processes.iter().collect();

    // 300 copies of three keys, from 30 transactions committing together.
    let keys = [("BTC", Side::Buy), ("BTC", Side::Sell), ("ETH", Side::Buy)];
    let mut conns = Vec::new();
    for _ in 0..30 {
        conns.push(app.conn().await);
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(conns.len()));
    let commits = conns.into_iter().enumerate().map(|(n, mut conn)| {
        let barrier = barrier.clone();
        async move {
            conn.transaction(async |conn: &mut AsyncPgConnection| {
                for i in 0..10 {
                    let (currency, side) = keys[(n + i) % keys.len()];
                    let job = ClearOrders {
                        currency: currency.to_owned(),
                        side,
                    };
                    outbox::push(conn, &job, None).await?;
                }
                barrier.wait().await;
                Ok::<_, diesel::result::Error>(())
            })
            .await
        }
    });
    for committed in futures::future::join_all(commits).await {
        committed.unwrap();
    }

    eventually("every copy relayed", WAIT, || async {
        (unrelayed(&app, "clear_orders").await == 0).then_some(())
    })
    .await;
    let counts = queues.counts(Queue::OrderClearing).await.unwrap();
    assert_eq!(counts.pending, 3, "one waiting job per key: {counts:?}");
    assert_eq!(dropped(&refs, "order_clearing").await, 297.0);

    // Once they run, the keys are free: a new copy is a job of its own.
    queues
        .set_paused(Queue::OrderClearing, false)
        .await
        .unwrap();
    eventually("the three jobs ran", WAIT, || async {
        let counts = queues.counts(Queue::OrderClearing).await.ok()?;
        (counts.succeeded == 3 && counts.pending == 0).then_some(())
    })
    .await;
    let mut conn = app.conn().await;
    let again = ClearOrders {
        currency: "BTC".to_owned(),
        side: Side::Buy,
    };
    outbox::push(&mut conn, &again, None).await.unwrap();
    eventually("the new copy ran", WAIT, || async {
        let counts = queues.counts(Queue::OrderClearing).await.ok()?;
        (counts.succeeded == 4).then_some(())
    })
    .await;
    assert_eq!(dropped(&refs, "order_clearing").await, 297.0);
    let counts = queues.counts(Queue::OrderClearing).await.unwrap();
    assert_eq!(counts.dead, 0, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reconcilers_requeue_of_an_email_whose_job_waits_is_dropped() {
    let app = TestAppBuilder::new()
        .without_worker()
        .env("EMAIL_RECONCILE_CRON", "0 0 0 1 1 *")
        .env("RUST_LOG", "info,apalis_core=warn,apalis_redis=warn")
        .start()
        .await;
    let queues = app.queues();
    queues.set_paused(Queue::Email, true).await.unwrap();
    let worker =
        WorkerProcess::spawn_healthy(&app.settings, &["unique-mail"], &["--queues", "email"])
            .await
            .remove(0);

    let mail = shared::email::VerifyEmail {
        username: "sam".into(),
        email: "sam@example.com".into(),
        code: "123456".into(),
        expires_minutes: 15,
    };
    let mut conn = app.conn().await;
    conn.transaction(async |conn| {
        let shared: &AsyncPgConnection = conn;
        shared::email::enqueue_many_quiet_on(shared, &[(None, "sam@example.com".to_owned(), mail)])
            .await
    })
    .await
    .unwrap();
    eventually("the email's job waiting in Redis", WAIT, || async {
        let counts = queues.counts(Queue::Email).await.ok()?;
        (unrelayed(&app, "send_email").await == 0 && counts.pending == 1).then_some(())
    })
    .await;

    // The reconciler finds the email unsent and queues it again (as its
    // tick does once the email is `EMAIL_RECONCILE_AFTER_SECS` old)...
    let reconciled =
        shared::email::reconcile(&mut conn, Duration::ZERO, Duration::from_secs(60), 8, 100)
            .await
            .unwrap();
    assert_eq!(reconciled.queued, 1);
    // ...and the relay drops that copy: the first still waits.
    eventually("the copy handled by the relay", WAIT, || async {
        (unrelayed(&app, "send_email").await == 0).then_some(())
    })
    .await;
    assert_eq!(dropped(&[&worker], "email").await, 1.0);
    assert_eq!(queues.counts(Queue::Email).await.unwrap().pending, 1);

    queues.set_paused(Queue::Email, false).await.unwrap();
    eventually("the email received", WAIT, || async {
        (app.smtp.mails().len() == 1).then_some(())
    })
    .await;
    // Sent once, in one attempt, and its job recorded done.
    let (status, attempts) = eventually("the email's row marked sent", WAIT, || async {
        use diesel::QueryDsl as _;
        use diesel_async::RunQueryDsl as _;
        use shared::schema::emails;
        let mut conn = app.conn().await;
        let row: (String, i32) = emails::table
            .select((emails::status, emails::attempts))
            .first(&mut conn)
            .await
            .ok()?;
        (row.0 == "sent").then_some(row)
    })
    .await;
    assert_eq!((status.as_str(), attempts), ("sent", 1));
    eventually("the job counted done", WAIT, || async {
        let counts = queues.counts(Queue::Email).await.ok()?;
        (counts.succeeded == 1).then_some(())
    })
    .await;
    let counts = queues.counts(Queue::Email).await.unwrap();
    assert_eq!((counts.succeeded, counts.pending, counts.dead), (1, 0, 0));
}

/// A relay that takes over a dead relay's claimed rows finds their marks
/// already holding the same job ids: it pushes them (a repeated id is
/// skipped by apalis-redis) rather than dropping the only copy until the
/// dead relay wakes. Another job under a taken key is still dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mark_holding_the_same_job_is_that_jobs_own() {
    let app = TestAppBuilder::new().without_worker().start().await;
    let conn = app.queues().connection();
    let key = queue::waiting::key(&app.prefix, "settle_bet", "bet-1");
    let other = queue::waiting::key(&app.prefix, "settle_bet", "bet-2");
    let mark = |marks: Vec<(String, String)>| {
        let conn = conn.clone();
        async move { queue::waiting::mark(&conn, &marks).await.unwrap() }
    };
    assert_eq!(mark(vec![(key.clone(), "job-a".into())]).await, [true]);
    // The same job again (its row relayed by another relay): still its own.
    assert_eq!(
        mark(vec![
            (key.clone(), "job-a".into()),
            (other.clone(), "job-c".into())
        ])
        .await,
        [true, true]
    );
    // Another job under the same key waits behind it.
    assert_eq!(mark(vec![(key.clone(), "job-b".into())]).await, [false]);
    queue::waiting::clear(&conn, &key, "job-a").await.unwrap();
    assert_eq!(mark(vec![(key, "job-b".into())]).await, [true]);
}
