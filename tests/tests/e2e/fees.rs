//! The monthly wallet fee: first after 30 days, then every 30 (time moved
//! by the injectable clock), exact converted amounts, blocking with one
//! email, unblocking by a deposit, an incoming transfer and sale proceeds,
//! reruns and racing runs charging once, a run dying between batches, the
//! scheduled job on real workers, and the ledger check.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::RunQueryDsl;
use harness::{TestApp, TestAppBuilder, app::Reply, eventually, session::Session};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use shared::{
    clock::{Clock, ManualClock},
    fees,
};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

/// Price refreshes and fee runs once a year (an hourly tick could land
/// inside a test): the test drives both.
fn builder() -> TestAppBuilder {
    TestAppBuilder::new()
        .env("RATE_REFRESH_CRON", "0 0 0 1 1 *")
        .env("MONTHLY_FEE_CRON", "0 0 0 1 1 *")
}

/// 200 KZT is 0.42 USD, 0.38 EUR (0.3888… rounded down), 200.00 KZT.
const PRICES: [(&str, &str); 4] = [
    ("KZT", "0.0021"),
    ("EUR", "1.08"),
    ("BTC", "50000"),
    ("ETH", "2000"),
];

/// Records `PRICES` as observed at `at`.
async fn prices_at(app: &TestApp, at: DateTime<Utc>) {
    let mut conn = app.conn().await;
    for (symbol, price) in PRICES {
        diesel::sql_query(
            "INSERT INTO price_history (symbol, price_usd, source, observed_at)
             VALUES ($1, $2::numeric, 'test', $3)",
        )
        .bind::<sql_types::Text, _>(symbol)
        .bind::<sql_types::Text, _>(price)
        .bind::<sql_types::Timestamptz, _>(at)
        .execute(&mut conn)
        .await
        .unwrap();
    }
}

async fn post(app: &TestApp, session: &Session, path: &str, body: Value) -> Reply {
    app.send_as(Method::POST, path, &session.access, &body)
        .await
}

async fn deposit(app: &TestApp, session: &Session, wallet: &Value, amount: &str) -> Reply {
    post(
        app,
        session,
        &format!("/api/v1/wallets/{}/deposit", wallet["id"].as_str().unwrap()),
        json!({ "amount": amount }),
    )
    .await
}

async fn wallet(app: &TestApp, session: &Session, wallet: &Value) -> Value {
    let reply = app
        .get_as(
            &format!("/api/v1/wallets/{}", wallet["id"].as_str().unwrap()),
            &session.access,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

fn id(wallet: &Value) -> Uuid {
    Uuid::parse_str(wallet["id"].as_str().unwrap()).unwrap()
}

#[derive(QueryableByName)]
struct At {
    #[diesel(sql_type = sql_types::Nullable<sql_types::Timestamptz>)]
    at: Option<DateTime<Utc>>,
}

async fn next_fee_at(app: &TestApp, wallet: Uuid) -> Option<DateTime<Utc>> {
    let mut conn = app.conn().await;
    diesel::sql_query("SELECT next_fee_at AS at FROM wallet_fee_schedule WHERE wallet_id = $1")
        .bind::<sql_types::Uuid, _>(wallet)
        .get_result::<At>(&mut conn)
        .await
        .optional()
        .unwrap()
        .and_then(|row| row.at)
}

/// Makes the wallets' fee due now (as if created 30 days ago).
async fn make_due(app: &TestApp, wallets: &[Uuid]) {
    let mut conn = app.conn().await;
    diesel::sql_query(
        "UPDATE wallet_fee_schedule SET next_fee_at = clock_timestamp() - interval '1 second'
         WHERE wallet_id = ANY($1)",
    )
    .bind::<sql_types::Array<sql_types::Uuid>, _>(wallets)
    .execute(&mut conn)
    .await
    .unwrap();
}

async fn charge(app: &TestApp, now: DateTime<Utc>) -> fees::FeeRun {
    let mut conn = app.conn().await;
    fees::charge_due(&mut conn, &app.config.fees, &app.config.rates, now)
        .await
        .unwrap()
}

async fn ledger_ok(app: &TestApp) {
    let mut conn = app.conn().await;
    let report = shared::ledger::check(&mut conn).await.unwrap();
    assert!(report.ok, "{report:?}");
}

async fn fee_rows(app: &TestApp, wallet: Uuid) -> Vec<(i32, String, String)> {
    let mut conn = app.conn().await;
    fees::of_wallet(&mut conn, wallet)
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.period, f.amount.normalize().to_string(), f.status))
        .collect()
}

/// Jobs of the monthly-fee queue (`charge_fees` and its copies) that ran
/// to success so far.
async fn fee_jobs_run(app: &TestApp) -> u64 {
    app.queues()
        .counts(shared::jobs::Queue::MonthlyFee)
        .await
        .unwrap()
        .succeeded
}

fn blocked_mails(app: &TestApp, to: &str) -> usize {
    app.smtp
        .mails_to(to)
        .into_iter()
        .filter(|m| m.subject().contains("is blocked"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fees_fall_due_after_30_days_then_every_30_at_exact_converted_amounts() {
    let app = builder().start().await;
    let (ada, wallets) = app
        .user_with_wallets("ada", &["USD", "EUR", "KZT", "BTC"])
        .await;
    prices_at(&app, Utc::now()).await;
    for w in &wallets[..3] {
        assert_eq!(deposit(&app, &ada, w, "1000").await.status, 201);
    }
    let [usd, eur, kzt, btc] = [0, 1, 2, 3].map(|i| id(&wallets[i]));
    assert_eq!(
        next_fee_at(&app, btc).await,
        None,
        "crypto wallets pay none"
    );
    let created = {
        let mut conn = app.conn().await;
        diesel::sql_query("SELECT created_at AS at FROM wallets WHERE id = $1")
            .bind::<sql_types::Uuid, _>(usd)
            .get_result::<At>(&mut conn)
            .await
            .unwrap()
            .at
            .unwrap()
    };
    let first = next_fee_at(&app, usd).await.unwrap();
    assert_eq!(first, created + chrono::Duration::days(30));

    // The wallets were opened a few milliseconds apart: the last is due
    // at `last`.
    let mut last = first;
    for w in [eur, kzt] {
        last = last.max(next_fee_at(&app, w).await.unwrap());
    }

    // The clock moves through the months; prices are fresh at each step.
    let clock = ManualClock::new(first - chrono::Duration::seconds(1));
    prices_at(&app, clock.now()).await;
    let run = charge(&app, clock.now()).await;
    assert_eq!(run.charged, 0, "not before 30 days: {run:?}");

    clock.set(last);
    prices_at(&app, clock.now()).await;
    let run = charge(&app, clock.now()).await;
    assert_eq!((run.charged, run.blocked), (3, 0), "{run:?}");
    assert_eq!(wallet(&app, &ada, &wallets[0]).await["balance"], "999.58");
    assert_eq!(wallet(&app, &ada, &wallets[1]).await["balance"], "999.62");
    assert_eq!(wallet(&app, &ada, &wallets[2]).await["balance"], "800.00");
    assert_eq!(
        fee_rows(&app, usd).await,
        vec![(1, "0.42".into(), "charged".into())]
    );
    // Rerunning the period charges nothing.
    assert_eq!(charge(&app, clock.now()).await.charged, 0);

    // Day 59: nothing; day 60: the second period, once.
    clock.advance(chrono::Duration::days(29));
    prices_at(&app, clock.now()).await;
    assert_eq!(charge(&app, clock.now()).await.charged, 0);
    clock.advance(chrono::Duration::days(1));
    prices_at(&app, clock.now()).await;
    assert_eq!(charge(&app, clock.now()).await.charged, 3);
    assert_eq!(charge(&app, clock.now()).await.charged, 0);
    assert_eq!(wallet(&app, &ada, &wallets[0]).await["balance"], "999.16");
    assert_eq!(fee_rows(&app, eur).await.len(), 2);
    assert_eq!(
        fee_rows(&app, kzt).await,
        vec![
            (1, "200".into(), "charged".into()),
            (2, "200".into(), "charged".into())
        ]
    );
    assert!(fee_rows(&app, btc).await.is_empty());
    assert_eq!(
        next_fee_at(&app, usd).await.unwrap(),
        created + chrono::Duration::days(90)
    );

    // Without a fresh price of the fee's currency the run waits: nothing
    // charged, nobody blocked.
    clock.advance(chrono::Duration::days(31));
    let run = charge(&app, clock.now()).await;
    assert!(run.waiting_for_price, "{run:?}");
    assert_eq!((run.charged, run.blocked), (0, 0));

    // The fees show in the history.
    let history = app
        .get_as(&format!("/api/v1/wallets/{usd}/transactions"), &ada.access)
        .await;
    let kinds: Vec<&str> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "fee").count(),
        2,
        "{kinds:?}"
    );
    ledger_ok(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_wallets_are_blocked_once_and_unblocked_by_the_first_covering_credit() {
    let app = builder().start().await;
    prices_at(&app, Utc::now()).await;
    let (ada, ada_w) = app.user_with_wallets("ada", &["USD"]).await;
    let (bob, bob_w) = app.user_with_wallets("bob", &["USD"]).await;
    let (cyd, cyd_w) = app.user_with_wallets("cyd", &["USD"]).await;
    assert_eq!(deposit(&app, &ada, &ada_w[0], "0.10").await.status, 201);
    assert_eq!(deposit(&app, &bob, &bob_w[0], "0.41").await.status, 201);
    assert_eq!(deposit(&app, &cyd, &cyd_w[0], "10.00").await.status, 201);
    // Cyd holds BTC to sell later; then spends her USD down to 0.20.
    let bought = post(
        &app,
        &cyd,
        "/api/v1/orders/buy",
        json!({ "currency": "BTC", "amount": "0.0001" }),
    )
    .await;
    assert_eq!(bought.status, 201, "{}", bought.body);
    let balance = wallet(&app, &cyd, &cyd_w[0]).await["balance"]
        .as_str()
        .unwrap()
        .parse::<Decimal>()
        .unwrap();
    let spend = balance - Decimal::new(20, 2);
    let reply = post(
        &app,
        &cyd,
        &format!(
            "/api/v1/wallets/{}/withdraw",
            cyd_w[0]["id"].as_str().unwrap()
        ),
        json!({ "amount": spend.to_string() }),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);

    let all = [id(&ada_w[0]), id(&bob_w[0]), id(&cyd_w[0])];
    make_due(&app, &all).await;
    let run = charge(&app, Utc::now()).await;
    assert_eq!((run.charged, run.blocked), (0, 3), "{run:?}");
    for (session, w, who) in [
        (&ada, &ada_w[0], "ada"),
        (&bob, &bob_w[0], "bob"),
        (&cyd, &cyd_w[0], "cyd"),
    ] {
        assert_eq!(wallet(&app, session, w).await["status"], "blocked", "{who}");
        assert_eq!(
            fee_rows(&app, id(w)).await,
            vec![(1, "0.42".into(), "outstanding".into())]
        );
    }
    eventually("one blocking email each", WAIT, || async {
        (blocked_mails(&app, "ada@example.com") == 1
            && blocked_mails(&app, "bob@example.com") == 1
            && blocked_mails(&app, "cyd@example.com") == 1)
            .then_some(())
    })
    .await;
    let mail = app
        .smtp
        .mails_to("ada@example.com")
        .into_iter()
        .find(|m| m.subject().contains("is blocked"))
        .unwrap();
    assert_eq!(
        mail.subject(),
        "Your USD wallet is blocked: monthly fee of 0.42 USD outstanding"
    );

    // A blocked wallet cannot send, withdraw, buy or bet.
    let ada_id = ada_w[0]["id"].as_str().unwrap();
    let refusals = [
        post(&app, &ada, &format!("/api/v1/wallets/{ada_id}/withdraw"), json!({ "amount": "0.01" })).await,
        post(
            &app,
            &ada,
            &format!("/api/v1/wallets/{ada_id}/transfer"),
            json!({ "to_wallet_number": bob_w[0]["wallet_number"], "amount": "0.01" }),
        )
        .await,
        post(&app, &ada, "/api/v1/orders/buy", json!({ "currency": "BTC", "amount": "0.000001" })).await,
        post(
            &app,
            &ada,
            "/api/v1/bets",
            json!({ "symbol": "BTC", "direction": "up", "stake": "1.00", "leverage": 1, "duration_seconds": 60 }),
        )
        .await,
    ];
    for reply in refusals {
        assert_eq!(reply.status, 422, "{}", reply.body);
        assert_eq!(reply.body["code"], "wallet_blocked", "{}", reply.body);
    }

    // A credit that does not cover the fee leaves it blocked; the next
    // period is added to what it owes, without another email.
    assert_eq!(deposit(&app, &ada, &ada_w[0], "0.20").await.status, 201);
    assert_eq!(wallet(&app, &ada, &ada_w[0]).await["status"], "blocked");
    make_due(&app, &[all[0]]).await;
    let run = charge(&app, Utc::now()).await;
    assert_eq!((run.blocked, run.outstanding), (0, 1), "{run:?}");
    // Ada: a deposit covering both periods (0.84) pays them and unblocks.
    let reply = deposit(&app, &ada, &ada_w[0], "1.00").await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let w = wallet(&app, &ada, &ada_w[0]).await;
    assert_eq!(w["status"], "active");
    assert_eq!(w["balance"], "0.46", "0.10 + 0.20 + 1.00 − 2 × 0.42");
    assert_eq!(
        fee_rows(&app, all[0]).await,
        vec![
            (1, "0.42".into(), "charged".into()),
            (2, "0.42".into(), "charged".into())
        ]
    );

    // Bob: an incoming transfer.
    let reply = post(
        &app,
        &ada,
        &format!("/api/v1/wallets/{ada_id}/transfer"),
        json!({ "to_wallet_number": bob_w[0]["wallet_number"], "amount": "0.01" }),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let w = wallet(&app, &bob, &bob_w[0]).await;
    assert_eq!(w["status"], "active");
    assert_eq!(w["balance"], "0.00");

    // Cyd: the proceeds of a sale.
    let sold = post(
        &app,
        &cyd,
        "/api/v1/orders/sell",
        json!({ "currency": "BTC", "amount": "0.0001" }),
    )
    .await;
    assert_eq!(sold.status, 201, "{}", sold.body);
    let w = wallet(&app, &cyd, &cyd_w[0]).await;
    assert_eq!(w["status"], "active");
    assert_eq!(w["balance"], "4.78", "0.20 + 5.00 − 0.42");
    assert_eq!(blocked_mails(&app, "ada@example.com"), 1);
    ledger_ok(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_runs_and_a_run_dying_between_batches_charge_each_wallet_once() {
    let mut app = builder().env("MONTHLY_FEE_BATCH", 16).start().await;
    app.stop_workers().await;
    prices_at(&app, Utc::now()).await;
    let mut conn = app.conn().await;
    let mut wallets = Vec::new();
    for i in 0..150 {
        let user = Uuid::now_v7();
        diesel::sql_query(
            "INSERT INTO users (id, username, email, password_hash, email_verified_at)
             VALUES ($1, $2, $2 || '@example.com', 'x', now())",
        )
        .bind::<sql_types::Uuid, _>(user)
        .bind::<sql_types::Text, _>(format!("payer{i}"))
        .execute(&mut conn)
        .await
        .unwrap();
        let w = shared::wallets::create(&mut conn, user, "USD", None)
            .await
            .unwrap();
        wallets.push(w.id);
        // Every tenth cannot pay.
        let amount = if i % 10 == 0 { "0.10" } else { "10" };
        shared::wallets::deposit(&mut conn, user, w, amount.parse().unwrap())
            .await
            .unwrap();
    }
    make_due(&app, &wallets).await;
    let now = Utc::now();

    // A run that dies after two batches (32 wallets)...
    let limit = fees::Limit {
        max_batches: 2,
        deadline: None,
    };
    let partial = fees::charge_batches(&mut conn, &app.config.fees, &app.config.rates, now, limit)
        .await
        .unwrap();
    assert!(partial.unfinished);
    assert_eq!(partial.charged + partial.blocked, 32, "{partial:?}");
    // ...then two runs at once finish the rest.
    let (a, b) = tokio::join!(charge(&app, now), charge(&app, now));
    assert_eq!(
        partial.charged + a.charged + b.charged,
        135,
        "{partial:?} {a:?} {b:?}"
    );
    assert_eq!(partial.blocked + a.blocked + b.blocked, 15);

    #[derive(QueryableByName)]
    struct Counts {
        #[diesel(sql_type = sql_types::BigInt)]
        rows: i64,
        #[diesel(sql_type = sql_types::BigInt)]
        txs: i64,
        #[diesel(sql_type = sql_types::BigInt)]
        blocked: i64,
    }
    let counts: Counts = diesel::sql_query(
        "SELECT (SELECT count(*) FROM wallet_fees) AS rows,
                (SELECT count(*) FROM ledger_transactions WHERE kind = 'fee') AS txs,
                (SELECT count(*) FROM wallets WHERE status = 'blocked') AS blocked",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!((counts.rows, counts.txs, counts.blocked), (150, 135, 15));
    // The period's rows are guarded by the key, not only by the code.
    let again = diesel::sql_query(
        "INSERT INTO wallet_fees (wallet_id, period, due_at, amount, currency, fee_amount,
                                  fee_currency, rate, status)
         SELECT wallet_id, period, due_at, amount, currency, fee_amount, fee_currency, rate,
                'outstanding'
         FROM wallet_fees LIMIT 1",
    )
    .execute(&mut conn)
    .await;
    assert!(again.is_err(), "a second row for one (wallet, period)");
    assert_eq!(charge(&app, now).await.charged, 0);
    ledger_ok(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_job_charges_due_wallets_on_the_workers() {
    scheduled_fee_run(builder()).await;
}

/// The same through PgBouncer in transaction mode (`pgbouncer.rs`): the
/// fee run's batches and continuations hold across its pooling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_job_charges_due_wallets_through_pgbouncer() {
    scheduled_fee_run(builder().through_pgbouncer(harness::app::Direct::No)).await;
}

async fn scheduled_fee_run(builder: TestAppBuilder) {
    let mut app = builder
        .env("MONTHLY_FEE_CRON", "* * * * * *")
        .env("MONTHLY_FEE_PARALLELISM", 3)
        .start()
        .await;
    app.start_worker().await;
    prices_at(&app, Utc::now() + chrono::Duration::seconds(30)).await;
    let (ada, wallets) = app.user_with_wallets("ada", &["USD", "KZT"]).await;
    assert_eq!(deposit(&app, &ada, &wallets[0], "10").await.status, 201);
    make_due(&app, &[id(&wallets[0]), id(&wallets[1])]).await;
    eventually("the fee run", WAIT, || async {
        let usd = wallet(&app, &ada, &wallets[0]).await;
        let kzt = wallet(&app, &ada, &wallets[1]).await;
        (usd["balance"] == "9.58" && kzt["status"] == "blocked").then_some(())
    })
    .await;
    eventually("the blocking email", WAIT, || async {
        (blocked_mails(&app, "ada@example.com") == 1).then_some(())
    })
    .await;
    // More ticks (and their copies) run and charge nothing more.
    let runs = fee_jobs_run(&app).await;
    eventually("three more fee jobs", WAIT, || async {
        (fee_jobs_run(&app).await >= runs + 3).then_some(())
    })
    .await;
    assert_eq!(fee_rows(&app, id(&wallets[0])).await.len(), 1);
    assert_eq!(wallet(&app, &ada, &wallets[0]).await["balance"], "9.58");
    ledger_ok(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bet_payout_covering_the_fees_unblocks_the_wallet() {
    let app = builder().start().await;
    prices_at(&app, Utc::now()).await;
    let (session, wallets) = app.user_with_wallets("gambler", &["USD"]).await;
    let usd = &wallets[0];
    assert_eq!(deposit(&app, &session, usd, "10.30").await.status, 201);
    let placed = post(
        &app,
        &session,
        "/api/v1/bets",
        json!({ "symbol": "BTC", "direction": "up", "stake": "10", "leverage": 1, "duration_seconds": 10 }),
    )
    .await;
    assert_eq!(placed.status, 201, "{}", placed.body);
    let bet = placed.body["id"].as_str().unwrap().to_owned();

    // 0.30 left cannot pay the 0.42 fee: blocked.
    make_due(&app, &[id(usd)]).await;
    let run = charge(&app, Utc::now()).await;
    assert_eq!(run.blocked, 1, "{run:?}");
    assert_eq!(wallet(&app, &session, usd).await["status"], "blocked");

    // The payout (the stake back: the price did not move) covers the fee:
    // charged and unblocked in the payout's transaction.
    let settled = eventually("the bet to settle", WAIT, || async {
        let reply = app
            .get_as(&format!("/api/v1/bets/{bet}"), &session.access)
            .await;
        (reply.body["status"] != "open").then_some(reply.body)
    })
    .await;
    assert_eq!(settled["payout"], "10.00", "{settled}");
    let after = wallet(&app, &session, usd).await;
    assert_eq!(after["status"], "active", "{after}");
    assert_eq!(after["balance"], "9.88");
    let rows = fee_rows(&app, id(usd)).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].2, "charged", "{rows:?}");
    ledger_ok(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_settlement_group_pays_a_blocked_and_an_active_wallet_together() {
    // The test settles both bets in one group itself (their jobs are a day
    // away), so the blocked wallet's `ledger_post` and the set-based payout
    // of the active one share a transaction.
    let app = builder().start().await;
    prices_at(&app, Utc::now()).await;
    let (short, short_wallets) = app.user_with_wallets("short", &["USD"]).await;
    let (rich, rich_wallets) = app.user_with_wallets("rich", &["USD"]).await;
    let (short_usd, rich_usd) = (&short_wallets[0], &rich_wallets[0]);
    assert_eq!(deposit(&app, &short, short_usd, "10.30").await.status, 201);
    assert_eq!(deposit(&app, &rich, rich_usd, "100").await.status, 201);
    let bet = json!({ "symbol": "BTC", "direction": "up", "stake": "10", "leverage": 1, "duration_seconds": 86_400 });
    let mut bets = Vec::new();
    for session in [&short, &rich] {
        let placed = post(&app, session, "/api/v1/bets", bet.clone()).await;
        assert_eq!(placed.status, 201, "{}", placed.body);
        bets.push(Uuid::parse_str(placed.body["id"].as_str().unwrap()).unwrap());
    }
    make_due(&app, &[id(short_usd)]).await;
    assert_eq!(charge(&app, Utc::now()).await.blocked, 1);

    let mut conn = app.conn().await;
    diesel::sql_query("UPDATE bets SET settles_at = clock_timestamp() WHERE id = ANY($1)")
        .bind::<sql_types::Array<sql_types::Uuid>, _>(&bets)
        .execute(&mut conn)
        .await
        .unwrap();
    let results = shared::bets::settle_many(&mut conn, &app.config.rates, &bets)
        .await
        .unwrap();
    for bet in &bets {
        assert_eq!(
            results.get(bet),
            Some(&shared::bets::Settled::Settled {
                result: "D".into(),
                payout: Decimal::new(1000, 2),
            }),
            "{results:?}"
        );
    }
    let short_after = wallet(&app, &short, short_usd).await;
    assert_eq!(
        (
            short_after["status"].as_str(),
            short_after["balance"].as_str()
        ),
        (Some("active"), Some("9.88")),
        "{short_after}"
    );
    assert_eq!(wallet(&app, &rich, rich_usd).await["balance"], "100.00");
    // Settled once: a second group finds both done.
    let again = shared::bets::settle_many(&mut conn, &app.config.rates, &bets)
        .await
        .unwrap();
    assert!(
        again
            .values()
            .all(|s| *s == shared::bets::Settled::AlreadySettled),
        "{again:?}"
    );
    ledger_ok(&app).await;
}
