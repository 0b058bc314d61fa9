//! Bourse behind a real PgBouncer (Debian's 1.18) in transaction pooling
//! mode (README, "PgBouncer"; `DATABASE_POOLER=transaction`). PgBouncer
//! 1.18 keeps no prepared statements across transactions and no session
//! settings, so each transaction, and each statement outside one, may run
//! on another server session; its pool here is smaller than the
//! processes' pools together, so they do.
//!
//! Here: migrations through the pooler alone, then the whole pipeline
//! (registration and its email, login, deposits, bets settled by two
//! worker processes and their emails, the operators' counts) with and
//! without `DATABASE_DIRECT_URL`. The wallets, fees and chaos tests run
//! through it too (`wallets::concurrent_transfers_…_through_pgbouncer`,
//! `fees::…_through_pgbouncer`, `chaos::…_through_pgbouncer_…`).

use std::process::Stdio;

use harness::{
    TestAppBuilder,
    app::Direct,
    eventually,
    failover::{WAIT, assert_settled_once, bettor, start},
    pgbouncer::PgBouncer,
};
use shared::jobs::Queue;

/// `bourse-api migrate` on an empty database through the pooler alone (no
/// direct URL): every migration applied in one transaction, under a lock
/// that holds through the pooler; a second run finds nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_through_the_pooler_alone() {
    let bouncer = PgBouncer::start().await;
    let name = format!("pgb_migrate_{}", harness::random_suffix());
    let mut admin = shared::db::connect(
        &harness::db::admin_url(),
        None,
        diesel_async::StatementMode::Named,
    )
    .await
    .unwrap();
    diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!("CREATE DATABASE {name}")),
        &mut admin,
    )
    .await
    .unwrap();
    let url = bouncer.url(&testkit::with_database(&harness::db::admin_url(), &name));
    let migrate = || async {
        tokio::process::Command::new(harness::process::binary("bourse-api"))
            .arg("migrate")
            .env_clear()
            .env("DATABASE_URL", &url)
            .env("DATABASE_POOLER", "transaction")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap()
    };
    // Two at once: the lock makes one wait for the other.
    let (first, second) = tokio::join!(migrate(), migrate());
    for run in [&first, &second] {
        assert!(
            run.status.success(),
            "migrate failed: {}\n{}\nPgBouncer: {}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr),
            bouncer.log()
        );
    }
    let outputs = [first, second].map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    assert_eq!(
        outputs
            .iter()
            .filter(|o| o.contains("migrations applied"))
            .count(),
        1,
        "exactly one run applies them: {outputs:?}"
    );
    assert!(
        outputs.iter().any(|o| o.contains("none pending")),
        "{outputs:?}"
    );
    let again = migrate().await;
    assert!(String::from_utf8_lossy(&again.stdout).contains("none pending"));
    let config = shared::config::Config::from_map(
        [
            ("DATABASE_URL".to_owned(), url.clone()),
            ("DATABASE_POOLER".to_owned(), "transaction".to_owned()),
        ]
        .into(),
    )
    .unwrap();
    assert_eq!(
        shared::db::pending_migrations(&config.database).await,
        Ok(0)
    );
    drop(bouncer);
    let _ = diesel_async::RunQueryDsl::execute(
        diesel::sql_query(format!("DROP DATABASE {name} WITH (FORCE)")),
        &mut admin,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_through_pgbouncer_with_a_direct_url_beside_it() {
    pipeline(Direct::Yes).await;
}

/// Without `DATABASE_DIRECT_URL`: every connection, the workers' startup
/// check of the migrations included, goes through the pooler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_through_pgbouncer_alone() {
    pipeline(Direct::No).await;
}

async fn pipeline(direct: Direct) {
    let (app, mut workers) = start(TestAppBuilder::new().through_pgbouncer(direct), &[]).await;
    // Registration (its verification email through the email queue), login
    // (the API's session writes), a deposit and bets that fall due.
    let bettors = vec![
        bettor(&app, "pooled", &[10, 11, 12]).await,
        bettor(&app, "pooled2", &[10, 13]).await,
    ];
    let session = app.login("pooled", "correct horse").await;
    let wallets = app.get_as("/api/v1/wallets", &session.access).await;
    assert_eq!(wallets.status, 200, "{}", wallets.body);
    assert_eq!(
        wallets.body["items"][0]["currency"], "USD",
        "{}",
        wallets.body
    );

    let queues = app.queues();
    eventually("the settlements counted as succeeded", WAIT, || async {
        let counts = queues.counts(Queue::BetSettlement).await.ok()?;
        (counts.succeeded >= 5).then_some(())
    })
    .await;
    assert_settled_once(&app, &mut workers, &bettors).await;
    for worker in &workers {
        let log = worker.log();
        assert!(
            !log.contains("prepared statement"),
            "{}: {log}",
            worker.name
        );
    }
}
