//! What the Redis failover tests (`redis_cluster.rs`, `redis_sentinel.rs`)
//! share: the API in the test process beside two real worker processes,
//! bets that fall due while a Redis node is gone, and the check that each
//! of them ended exactly once (one settlement, one payout, one email) with
//! a balanced ledger.

use std::time::Duration;

use diesel::{prelude::*, sql_types};
use diesel_async::RunQueryDsl;
use reqwest::Method;
use serde_json::json;

use crate::{TestApp, TestAppBuilder, eventually, process::WorkerProcess, session::Session};

pub const WAIT: Duration = Duration::from_secs(120);

#[derive(QueryableByName, Debug)]
pub struct BetRow {
    #[diesel(sql_type = sql_types::Uuid)]
    pub id: uuid::Uuid,
    #[diesel(sql_type = sql_types::Text)]
    pub status: String,
    #[diesel(sql_type = sql_types::Nullable<sql_types::Text>)]
    pub result: Option<String>,
    /// Payout ledger transactions recorded for the bet.
    #[diesel(sql_type = sql_types::BigInt)]
    pub payouts: i64,
}

/// Every bet, the earliest due first.
pub async fn bets(app: &TestApp) -> Vec<BetRow> {
    let mut conn = app.conn().await;
    diesel::sql_query(
        "SELECT b.id, b.status, b.result,
                (SELECT count(*) FROM ledger_transactions t
                  WHERE t.id = b.payout_transaction_id) AS payouts
         FROM bets b ORDER BY b.settles_at",
    )
    .load(&mut conn)
    .await
    .expect("bets read")
}

/// The API (from `builder`, which picks the Redis) and two worker
/// processes serving every queue; refreshes every second so bets always
/// find a fresh price.
pub async fn start(
    builder: TestAppBuilder,
    extra: &[(&str, &str)],
) -> (TestApp, Vec<WorkerProcess>) {
    let mut builder = builder
        .without_worker()
        .env("RATE_REFRESH_CRON", "* * * * * *")
        .env("SIMULATED_SEED", "23")
        .env("JOB_MAX_ATTEMPTS", "20");
    for (name, value) in extra {
        builder = builder.env(name, value);
    }
    let app = builder.start().await;
    let workers = vec![
        WorkerProcess::spawn(&app.settings, "failover-a", &[]),
        WorkerProcess::spawn(&app.settings, "failover-b", &[]),
    ];
    for worker in &workers {
        crate::poll::healthy(
            &format!("{} healthy", worker.name),
            &worker.health_url,
            WAIT,
        )
        .await;
    }
    eventually(
        "a fresh BTC price from the cache in Redis",
        WAIT,
        || async {
            let rates = app.get("/api/v1/rates").await;
            rates.body["items"]
                .as_array()?
                .iter()
                .any(|r| r["symbol"] == "BTC" && r["fresh"] == true)
                .then_some(())
        },
    )
    .await;
    (app, workers)
}

/// A user of its own (registered, verified, with USD) per name.
pub struct Bettor {
    pub session: Session,
    pub email: String,
    pub placed: usize,
}

/// Registers `name` with 1000 USD and places one 10 USD BTC bet per
/// duration.
pub async fn bettor(app: &TestApp, name: &str, durations: &[u32]) -> Bettor {
    let mut bettor = Bettor {
        session: app.user_with_usd(name, "1000.00").await,
        email: format!("{name}@example.com"),
        placed: 0,
    };
    place_bets(app, &mut bettor, durations).await;
    bettor
}

/// One 10 USD BTC bet (up, leverage 2) per duration, in seconds.
pub async fn place_bets(app: &TestApp, bettor: &mut Bettor, durations: &[u32]) {
    for duration in durations {
        let bet = app
            .send_as(
                Method::POST,
                "/api/v1/bets",
                &bettor.session.access,
                &json!({ "symbol": "BTC", "direction": "up", "stake": "10", "leverage": 2, "duration_seconds": duration }),
            )
            .await;
        assert_eq!(bet.status, 201, "{}", bet.body);
        bettor.placed += 1;
    }
}

fn bet_mails(app: &TestApp, email: &str) -> usize {
    app.smtp
        .mails_to(email)
        .iter()
        .filter(|m| m.subject().contains("BTC bet"))
        .count()
}

/// Every bet settled, each with one payout transaction and no settlement
/// in the dead set; then, with the workers stopped, one email per bet, no
/// call that crossed hash slots in the workers' logs, and a balanced
/// ledger.
pub async fn assert_settled_once(app: &TestApp, workers: &mut [WorkerProcess], bettors: &[Bettor]) {
    let settled = eventually("every bet settled", WAIT, || async {
        let all = bets(app).await;
        all.iter().all(|b| b.status != "open").then_some(all)
    })
    .await;
    for bet in &settled {
        assert_eq!(bet.status, "settled", "bet voided: {bet:?}");
        assert!(bet.result.is_some(), "{bet:?}");
        assert_eq!(bet.payouts, 1, "one payout transaction: {bet:?}");
    }
    let dead = app
        .queues()
        .counts(shared::jobs::Queue::BetSettlement)
        .await
        .expect("queue counts")
        .dead;
    assert_eq!(dead, 0, "no settlement gave up");
    for bettor in bettors {
        eventually(
            &format!("the bet emails of {}", bettor.email),
            WAIT,
            || async { (bet_mails(app, &bettor.email) >= bettor.placed).then_some(()) },
        )
        .await;
    }
    for worker in workers.iter_mut() {
        worker.terminate().await;
        worker.wait(Duration::from_secs(30)).await;
    }
    for bettor in bettors {
        assert_eq!(
            bet_mails(app, &bettor.email),
            bettor.placed,
            "one email per bet"
        );
    }
    for worker in workers.iter() {
        let log = worker.log();
        assert!(
            !log.contains("CrossSlot") && !log.contains("CROSSSLOT"),
            "{} touched keys of two slots in one call:\n{log}",
            worker.name
        );
    }
    let mut conn = app.conn().await;
    let report = shared::ledger::check(&mut conn)
        .await
        .expect("ledger check");
    assert!(report.ok, "{report:?}");
}
