//! Bets through the API and real workers: validation, escrow, settlement
//! at the price in force at `settles_at` (late workers, late commits),
//! exactly-once payouts (duplicate jobs, a worker killed mid-settlement),
//! void bets, the reconciler, and the email.

use std::time::Duration;

use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncConnection, RunQueryDsl};
use harness::{
    TestApp, TestAppBuilder, app::Reply, eventually, process::WorkerProcess, session::Session,
};
use reqwest::Method;
use serde_json::{Value, json};
use shared::{jobs::SettleBet, outbox};
use uuid::Uuid;

pub(crate) const WAIT: Duration = Duration::from_secs(40);

/// Price refreshes run once a year here so they never replace the test's prices.
pub(crate) fn builder() -> TestAppBuilder {
    TestAppBuilder::new().env("RATE_REFRESH_CRON", "0 0 0 1 1 *")
}

pub(crate) async fn post(app: &TestApp, session: &Session, path: &str, body: Value) -> Reply {
    app.send_as(Method::POST, path, &session.access, &body)
        .await
}

/// A verified user with a USD wallet holding 1000.00.
pub(crate) async fn bettor(app: &TestApp, name: &str) -> Session {
    let (session, wallets) = app.user_with_wallets(name, &["USD"]).await;
    let reply = post(
        app,
        &session,
        &format!(
            "/api/v1/wallets/{}/deposit",
            wallets[0]["id"].as_str().unwrap()
        ),
        json!({ "amount": "1000.00" }),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    session
}

pub(crate) async fn usd(app: &TestApp, session: &Session) -> String {
    let reply = app.get_as("/api/v1/wallets", &session.access).await;
    reply.body["items"][0]["balance"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub(crate) async fn bet(app: &TestApp, session: &Session, id: &str) -> Value {
    let reply = app
        .get_as(&format!("/api/v1/bets/{id}"), &session.access)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

pub(crate) async fn wait_settled(app: &TestApp, session: &Session, id: &str) -> Value {
    eventually(&format!("bet {id} to settle"), WAIT, || async {
        let bet = bet(app, session, id).await;
        (bet["status"] != "open").then_some(bet)
    })
    .await
}

/// Waits until the database's clock has passed the bet's `settles_at`.
pub(crate) async fn wait_due(app: &TestApp, id: &str) {
    #[derive(QueryableByName)]
    struct Due {
        #[diesel(sql_type = sql_types::Bool)]
        due: bool,
    }
    let id = Uuid::parse_str(id).unwrap();
    eventually("the bet to fall due", WAIT, || async {
        let mut conn = app.conn().await;
        let due: Due = diesel::sql_query(
            "SELECT clock_timestamp() > settles_at AS due FROM bets WHERE id = $1",
        )
        .bind::<sql_types::Uuid, _>(id)
        .get_result(&mut conn)
        .await
        .unwrap();
        due.due.then_some(())
    })
    .await;
}

/// Ledger transactions paying out bet `id`.
pub(crate) async fn payouts(app: &TestApp, id: &str) -> i64 {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.conn().await;
    let count: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM ledger_transactions t JOIN bets b ON b.user_id = t.created_by
         WHERE b.id = $1 AND t.kind = 'bet_payout'",
    )
    .bind::<sql_types::Uuid, _>(Uuid::parse_str(id).unwrap())
    .get_result(&mut conn)
    .await
    .unwrap();
    count.n
}

pub(crate) async fn ledger_ok(app: &TestApp) {
    let mut conn = app.conn().await;
    let report = shared::ledger::check(&mut conn).await.unwrap();
    assert!(report.ok, "{report:?}");
}

/// The bet email to ada.
async fn bet_mail(app: &TestApp) -> harness::smtp::ReceivedMail {
    eventually("the bet email", WAIT, || async {
        app.smtp
            .mails_to("ada@example.com")
            .into_iter()
            .find(|m| m.subject().contains("bet"))
    })
    .await
}

pub(crate) fn up(stake: &str, leverage: u32) -> Value {
    json!({ "symbol": "BTC", "direction": "up", "stake": stake, "leverage": leverage, "duration_seconds": 10 })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bets_are_validated_escrowed_listed_and_private() {
    let app = builder().start().await;
    app.set_prices(&[("BTC", "100")]).await;
    let ada = bettor(&app, "ada").await;

    let cases = [
        (
            json!({ "direction": "up", "stake": "10", "leverage": 1, "duration_seconds": 10 }),
            "symbol",
        ),
        (
            json!({ "symbol": "XYZ", "direction": "up", "stake": "10", "leverage": 1, "duration_seconds": 10 }),
            "symbol",
        ),
        (
            json!({ "symbol": "BTC", "direction": "sideways", "stake": "10", "leverage": 1, "duration_seconds": 10 }),
            "direction",
        ),
        (
            json!({ "symbol": "BTC", "stake": "10", "leverage": 1, "duration_seconds": 10 }),
            "direction",
        ),
        (
            json!({ "symbol": "BTC", "direction": "up", "stake": "10.001", "leverage": 1, "duration_seconds": 10 }),
            "stake",
        ),
        (
            json!({ "symbol": "BTC", "direction": "up", "stake": "-5", "leverage": 1, "duration_seconds": 10 }),
            "stake",
        ),
        (
            json!({ "symbol": "BTC", "direction": "up", "stake": "ten", "leverage": 1, "duration_seconds": 10 }),
            "stake",
        ),
        (
            json!({ "symbol": "BTC", "direction": "up", "stake": "10", "leverage": 0, "duration_seconds": 10 }),
            "leverage",
        ),
        (
            json!({ "symbol": "BTC", "direction": "up", "stake": "10", "leverage": 101, "duration_seconds": 10 }),
            "leverage",
        ),
        (
            json!({ "symbol": "BTC", "direction": "up", "stake": "10", "leverage": 2.5, "duration_seconds": 10 }),
            "leverage",
        ),
        (
            json!({ "symbol": "BTC", "direction": "up", "stake": "10", "leverage": 1, "duration_seconds": 9 }),
            "duration_seconds",
        ),
        (
            json!({ "symbol": "BTC", "direction": "up", "stake": "10", "leverage": 1, "duration_seconds": 86401 }),
            "duration_seconds",
        ),
        (
            json!({ "symbol": "BTC", "direction": "up", "stake": "10", "leverage": 1 }),
            "duration_seconds",
        ),
        (
            json!({ "symbol": "BTC", "direction": "up", "stake": "10", "leverage": 1, "duration_seconds": 10, "start_price": "1" }),
            "start_price",
        ),
        (
            json!({ "symbol": "BTC", "direction": "up", "stake": "10", "leverage": 1, "duration_seconds": 10, "price": 100 }),
            "price",
        ),
    ];
    for (body, field) in cases {
        let reply = post(&app, &ada, "/api/v1/bets", body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert_eq!(reply.body["code"], "validation_failed");
        assert!(
            reply.body["errors"][field].is_string(),
            "{body}: {}",
            reply.body
        );
    }
    let refusals = [
        (
            json!({ "symbol": "EUR", "direction": "up", "stake": "10", "leverage": 1, "duration_seconds": 10 }),
            "currency_not_supported",
        ),
        (
            json!({ "symbol": "BTC", "direction": "up", "stake": "10000.01", "leverage": 1, "duration_seconds": 10 }),
            "limit_exceeded",
        ),
        (
            json!({ "symbol": "BTC", "direction": "up", "stake": "0.50", "leverage": 1, "duration_seconds": 10 }),
            "limit_exceeded",
        ),
        (
            json!({ "symbol": "BTC", "direction": "up", "stake": "1000.01", "leverage": 1, "duration_seconds": 10 }),
            "insufficient_funds",
        ),
        (
            json!({ "symbol": "ETH", "direction": "up", "stake": "10", "leverage": 1, "duration_seconds": 10 }),
            "rate_unavailable",
        ),
    ];
    for (body, code) in refusals {
        let reply = post(&app, &ada, "/api/v1/bets", body.clone()).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.body);
        assert_eq!(reply.body["code"], code, "{body}");
    }
    assert_eq!(usd(&app, &ada).await, "1000.00", "refusals move nothing");

    // No USD wallet; not verified.
    let (bob, _) = app.user_with_wallets("bob", &[]).await;
    assert_eq!(
        post(&app, &bob, "/api/v1/bets", up("10", 1)).await.status,
        404
    );
    let reply = app
        .post(
            "/api/v1/auth/register",
            &json!({ "username": "eve", "email": "eve@example.com", "password": "correct horse" }),
        )
        .await;
    assert_eq!(reply.status, 201);
    let eve = app.login("eve", "correct horse").await;
    let reply = post(&app, &eve, "/api/v1/bets", up("10", 1)).await;
    assert_eq!(
        (reply.status, reply.body["code"].as_str()),
        (403, Some("email_not_verified"))
    );

    // A bet: the stake is escrowed at once, at the server's price.
    let placed = app
        .send(
            app.client
                .post(app.url("/api/v1/bets"))
                .bearer_auth(&ada.access)
                .header("idempotency-key", "bet-1")
                .json(&json!({ "symbol": "btc", "direction": "down", "stake": 12.5, "leverage": 3, "duration_seconds": 3600 })),
        )
        .await;
    assert_eq!(placed.status, 201, "{}", placed.body);
    let b = &placed.body;
    assert_eq!(b["symbol"], "BTC");
    assert_eq!(b["direction"], "down");
    assert_eq!(b["stake"], "12.50");
    assert_eq!(b["leverage"], 3);
    assert_eq!(b["status"], "open");
    assert_eq!(b["start_price"], "100");
    assert!(b["result"].is_null() && b["end_price"].is_null() && b["settled_at"].is_null());
    let created: chrono::DateTime<chrono::Utc> = b["created_at"].as_str().unwrap().parse().unwrap();
    let settles: chrono::DateTime<chrono::Utc> = b["settles_at"].as_str().unwrap().parse().unwrap();
    assert_eq!((settles - created).num_seconds(), 3600);
    assert_eq!(usd(&app, &ada).await, "987.50");
    // The same key replays without a second stake.
    let replay = app
        .send(
            app.client
                .post(app.url("/api/v1/bets"))
                .bearer_auth(&ada.access)
                .header("idempotency-key", "bet-1")
                .json(&json!({ "symbol": "btc", "direction": "down", "stake": 12.5, "leverage": 3, "duration_seconds": 3600 })),
        )
        .await;
    assert_eq!(replay.body["id"], b["id"]);
    assert_eq!(usd(&app, &ada).await, "987.50");

    let second = post(&app, &ada, "/api/v1/bets", json!({ "symbol": "BTC", "direction": "up", "stake": "1.00", "leverage": 100, "duration_seconds": 86400 })).await;
    assert_eq!(second.status, 201);
    let open = app
        .get_as("/api/v1/bets?status=open&limit=1", &ada.access)
        .await;
    assert_eq!(
        open.body["items"][0]["id"], second.body["id"],
        "newest first"
    );
    let cursor = open.body["next_cursor"].as_str().unwrap();
    let next = app
        .get_as(
            &format!("/api/v1/bets?status=open&limit=1&cursor={cursor}"),
            &ada.access,
        )
        .await;
    assert_eq!(next.body["items"][0]["id"], b["id"]);
    assert!(next.body["next_cursor"].is_null());
    let settled = app.get_as("/api/v1/bets?status=settled", &ada.access).await;
    assert_eq!(settled.body["items"], json!([]));
    assert_eq!(
        app.get_as("/api/v1/bets?status=won", &ada.access)
            .await
            .status,
        400
    );
    let theirs = app
        .get_as(
            &format!("/api/v1/bets/{}", b["id"].as_str().unwrap()),
            &bob.access,
        )
        .await;
    assert_eq!(theirs.status, 404);
    ledger_ok(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_worker_settles_at_the_price_in_force_when_the_bet_was_due() {
    let mut app = builder().start().await;
    app.set_prices(&[("BTC", "100")]).await;
    let ada = bettor(&app, "ada").await;
    app.stop_workers().await;
    let placed = post(&app, &ada, "/api/v1/bets", up("10.00", 10)).await;
    assert_eq!(placed.status, 201, "{}", placed.body);
    let id = placed.body["id"].as_str().unwrap().to_owned();
    assert_eq!(usd(&app, &ada).await, "990.00");

    // In force at settles_at: 101. After it, while no worker runs: 150.
    app.set_prices(&[("BTC", "101")]).await;
    wait_due(&app, &id).await;
    app.set_prices(&[("BTC", "150")]).await;
    app.start_worker().await;

    let settled = wait_settled(&app, &ada, &id).await;
    assert_eq!(settled["status"], "settled");
    assert_eq!(settled["end_price"], "101");
    assert_eq!(settled["result"], "W");
    // 10 × 10 × 1% = +1.00.
    assert_eq!(settled["payout"], "11.00");
    assert_eq!(settled["profit"], "1.00");
    assert_eq!(usd(&app, &ada).await, "1001.00");
    let mail = bet_mail(&app).await;
    assert!(mail.subject().contains("won"), "{}", mail.subject());
    assert!(mail.decoded().contains("101"));
    ledger_ok(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observation_committed_late_is_used_and_a_duplicate_job_pays_nothing() {
    let app = builder().start().await;
    app.set_prices(&[("BTC", "100")]).await;
    let ada = bettor(&app, "ada").await;
    let placed = post(&app, &ada, "/api/v1/bets", json!({ "symbol": "BTC", "direction": "down", "stake": "20", "leverage": 2, "duration_seconds": 10 })).await;
    assert_eq!(placed.status, 201);
    let id = placed.body["id"].as_str().unwrap().to_owned();

    // A price write stamped before settles_at whose commit comes after it
    // (a slow refresh): the settlement must wait for it, not miss it.
    let mut writer = app.conn().await;
    writer
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let stamp = shared::rates::lock_prices_for_writing(conn).await?;
            diesel::sql_query("INSERT INTO price_history (symbol, price_usd, source, observed_at) VALUES ('BTC', 95, 'test', $1)")
                .bind::<sql_types::Timestamptz, _>(stamp)
                .execute(conn)
                .await?;
            wait_due(&app, &id).await;
            // The settlement is now waiting for this write.
            #[derive(QueryableByName)]
            struct Waiting {
                #[diesel(sql_type = sql_types::BigInt)]
                n: i64,
            }
            eventually("the settlement to wait for the price lock", WAIT, || async {
                let mut conn = app.conn().await;
                let waiting: Waiting = diesel::sql_query(
                    "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                )
                .get_result(&mut conn)
                .await
                .unwrap();
                (waiting.n > 0).then_some(())
            })
            .await;
            Ok(())
        })
        .await
        .unwrap();

    let settled = wait_settled(&app, &ada, &id).await;
    assert_eq!(settled["end_price"], "95");
    assert_eq!(settled["result"], "W");
    // 20 × 2 × 5% = +2.00.
    assert_eq!(settled["payout"], "22.00");
    assert_eq!(usd(&app, &ada).await, "1002.00");

    // A duplicate settlement job (a redelivery) changes nothing.
    let duplicate = {
        let mut conn = app.conn().await;
        outbox::push(
            &mut conn,
            &SettleBet {
                bet_id: Uuid::parse_str(&id).unwrap(),
            },
            None,
        )
        .await
        .unwrap()
    };
    eventually("the duplicate to run", WAIT, || async {
        let mut conn = app.conn().await;
        // A pushed row leaves the outbox.
        let waiting: Option<uuid::Uuid> = shared::schema::outbox::table
            .find(duplicate)
            .select(shared::schema::outbox::id)
            .first(&mut conn)
            .await
            .optional()
            .unwrap();
        let counts = app
            .queues()
            .counts(shared::jobs::Queue::BetSettlement)
            .await
            .unwrap();
        (waiting.is_none() && counts.pending + counts.running == 0).then_some(())
    })
    .await;
    assert_eq!(payouts(&app, &id).await, 1);
    assert_eq!(usd(&app, &ada).await, "1002.00");
    bet_mail(&app).await;
    assert_eq!(
        app.smtp
            .mails_to("ada@example.com")
            .iter()
            .filter(|m| m.subject().contains("bet"))
            .count(),
        1
    );
    ledger_ok(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bet_whose_job_was_lost_is_reconciled_and_void_without_a_fresh_price() {
    let mut app = builder()
        .env("RATE_MAX_AGE_SECS", "3")
        .env("BET_RECONCILE_CRON", "* * * * * *")
        .env("BET_RECONCILE_AFTER_SECS", "1")
        .start()
        .await;
    app.set_prices(&[("BTC", "100")]).await;
    let ada = bettor(&app, "ada").await;
    app.stop_workers().await;
    let placed = post(&app, &ada, "/api/v1/bets", up("50", 5)).await;
    assert_eq!(placed.status, 201, "{}", placed.body);
    let id = placed.body["id"].as_str().unwrap().to_owned();
    assert_eq!(usd(&app, &ada).await, "950.00");
    // The job is lost before it ever ran (as if Redis lost its data).
    {
        let mut conn = app.conn().await;
        let deleted = diesel::sql_query("DELETE FROM outbox WHERE job = 'settle_bet'")
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(deleted, 1);
    }
    wait_due(&app, &id).await;
    app.start_worker().await;
    // The feed stopped after the bet was placed: at settles_at the last
    // price is 10 s old, past the 3 s limit. Void, stake back.
    let settled = wait_settled(&app, &ada, &id).await;
    assert_eq!(settled["status"], "void");
    assert!(settled["result"].is_null());
    assert_eq!(settled["payout"], "50.00");
    assert_eq!(settled["profit"], "0.00");
    assert_eq!(usd(&app, &ada).await, "1000.00");
    let mail = bet_mail(&app).await;
    assert!(mail.subject().contains("void"), "{}", mail.subject());
    assert_eq!(payouts(&app, &id).await, 1);
    ledger_ok(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_settlement_leaves_it_to_another_which_pays_once() {
    let mut app = builder().start().await;
    app.set_prices(&[("BTC", "100")]).await;
    let ada = bettor(&app, "ada").await;
    app.stop_workers().await;
    let placed = post(&app, &ada, "/api/v1/bets", up("10", 1)).await;
    let id = placed.body["id"].as_str().unwrap().to_owned();
    app.set_prices(&[("BTC", "110")]).await;

    // Hold the price lock so the settlement stops midway (bet row locked,
    // waiting for prices), then kill its worker there.
    let mut holder = app.conn().await;
    let mut first =
        WorkerProcess::spawn(&app.settings, "settler-a", &["--queues", "bet_settlement"]);
    holder
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            shared::rates::lock_prices_for_writing(conn).await?;
            #[derive(QueryableByName)]
            struct Waiting {
                #[diesel(sql_type = sql_types::BigInt)]
                n: i64,
            }
            eventually("the settlement to be midway", WAIT, || async {
                let mut conn = app.conn().await;
                let waiting: Waiting = diesel::sql_query(
                    "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                )
                .get_result(&mut conn)
                .await
                .unwrap();
                (waiting.n > 0).then_some(())
            })
            .await;
            first.kill().await;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(bet(&app, &ada, &id).await["status"], "open");

    let _second = WorkerProcess::spawn(&app.settings, "settler-b", &["--queues", "bet_settlement"]);
    let settled = wait_settled(&app, &ada, &id).await;
    assert_eq!(settled["end_price"], "110");
    assert_eq!(settled["payout"], "11.00");
    assert_eq!(payouts(&app, &id).await, 1);
    assert_eq!(usd(&app, &ada).await, "1001.00");
    ledger_ok(&app).await;
}
