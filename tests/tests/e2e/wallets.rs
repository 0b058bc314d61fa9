//! Wallets and the ledger through the API: every route, refusals, exact
//! balances, conversion rounding, concurrency, idempotency, history and the
//! ledger check.

use std::str::FromStr;

use harness::{TestApp, TestAppBuilder, session::Session};
use reqwest::Method;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Value, json};

/// A worker delivers the verification emails; its price refreshes run on
/// a yearly schedule here so they never replace the prices a test sets.
async fn app() -> TestApp {
    TestAppBuilder::new()
        .env("RATE_REFRESH_CRON", "0 0 0 1 1 *")
        .start()
        .await
}

fn id(wallet: &Value) -> String {
    wallet["id"].as_str().unwrap().to_owned()
}

fn number(wallet: &Value) -> String {
    wallet["wallet_number"].as_str().unwrap().to_owned()
}

async fn post(app: &TestApp, session: &Session, path: &str, body: Value) -> harness::app::Reply {
    app.send_as(Method::POST, path, &session.access, &body)
        .await
}

async fn balance(app: &TestApp, session: &Session, wallet: &Value) -> String {
    let reply = app
        .get_as(&format!("/api/v1/wallets/{}", id(wallet)), &session.access)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["balance"].as_str().unwrap().to_owned()
}

async fn deposit(app: &TestApp, session: &Session, wallet: &Value, amount: &str) {
    let reply = post(
        app,
        session,
        &format!("/api/v1/wallets/{}/deposit", id(wallet)),
        json!({ "amount": amount }),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
}

async fn admin_check(app: &TestApp) -> Value {
    let mut conn = app.conn().await;
    serde_json::to_value(shared::ledger::check(&mut conn).await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallets_are_opened_listed_renamed_and_private() {
    let app = app().await;
    let (ada, wallets) = app.user_with_wallets("ada", &["usd", "BTC"]).await;
    let usd = &wallets[0];
    assert_eq!(usd["currency"], "USD");
    assert_eq!(usd["name"], "US Dollar wallet");
    assert_eq!(usd["status"], "active");
    assert_eq!(usd["balance"], "0.00");
    assert_eq!(wallets[1]["balance"], "0.00000000");
    let number = number(usd);
    assert!(
        number.len() == 10
            && number.chars().all(|c| c.is_ascii_digit())
            && !number.starts_with('0')
    );

    let again = post(
        &app,
        &ada,
        "/api/v1/wallets",
        json!({ "currency": "USD", "name": "Second" }),
    )
    .await;
    assert_eq!(again.status, 409);
    assert_eq!(again.body["code"], "conflict");
    let unknown = post(&app, &ada, "/api/v1/wallets", json!({ "currency": "DOGE" })).await;
    assert_eq!(unknown.status, 400);
    assert_eq!(
        unknown.body["errors"]["currency"],
        "unknown currency \"DOGE\""
    );
    let named = post(
        &app,
        &ada,
        "/api/v1/wallets",
        json!({ "currency": "EUR", "name": "  Holidays " }),
    )
    .await;
    assert_eq!(named.body["name"], "Holidays");
    let bad_name = post(
        &app,
        &ada,
        "/api/v1/wallets",
        json!({ "currency": "KZT", "name": "" }),
    )
    .await;
    assert_eq!(bad_name.status, 400);

    let list = app.get_as("/api/v1/wallets", &ada.access).await;
    let currencies: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["currency"].as_str().unwrap())
        .collect();
    assert_eq!(currencies, ["BTC", "EUR", "USD"]);
    assert_eq!(list.body["next_cursor"], Value::Null);

    let renamed = app
        .send_as(
            Method::PATCH,
            &format!("/api/v1/wallets/{}", id(usd)),
            &ada.access,
            &json!({ "name": "Daily" }),
        )
        .await;
    assert_eq!(renamed.status, 200);
    assert_eq!(renamed.body["name"], "Daily");

    // Someone else's wallet does not exist for you; nor does a malformed id.
    let (grace, _) = app.user_with_wallets("grace", &[]).await;
    for path in [
        format!("/api/v1/wallets/{}", id(usd)),
        format!("/api/v1/wallets/{}/transactions", id(usd)),
        "/api/v1/wallets/not-a-uuid".to_owned(),
    ] {
        let reply = app.get_as(&path, &grace.access).await;
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.body["code"], "not_found");
    }
    let rename = app
        .send_as(
            Method::PATCH,
            &format!("/api/v1/wallets/{}", id(usd)),
            &grace.access,
            &json!({ "name": "Mine" }),
        )
        .await;
    assert_eq!(rename.status, 404);
    let deposit = post(
        &app,
        &grace,
        &format!("/api/v1/wallets/{}/deposit", id(usd)),
        json!({ "amount": "5" }),
    )
    .await;
    assert_eq!(deposit.status, 404);
    assert_eq!(app.get("/api/v1/wallets").await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposits_withdrawals_and_their_refusals_leave_exact_balances() {
    let app = app().await;
    let (ada, w) = app.user_with_wallets("ada", &["USD", "BTC"]).await;
    let (usd, btc) = (&w[0], &w[1]);
    let path = |wallet: &Value, action: &str| format!("/api/v1/wallets/{}/{action}", id(wallet));

    let reply = post(
        &app,
        &ada,
        &path(usd, "deposit"),
        json!({ "amount": "100.5" }),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["type"], "deposit");
    assert_eq!(reply.body["amount"], "100.50");
    assert_eq!(reply.body["wallet"]["balance"], "100.50");
    post(&app, &ada, &path(usd, "deposit"), json!({ "amount": 0.1 })).await;
    assert_eq!(balance(&app, &ada, usd).await, "100.60");

    let out = post(
        &app,
        &ada,
        &path(usd, "withdraw"),
        json!({ "amount": "40.60" }),
    )
    .await;
    assert_eq!(out.status, 201);
    assert_eq!(out.body["wallet"]["balance"], "60.00");
    let too_much = post(
        &app,
        &ada,
        &path(usd, "withdraw"),
        json!({ "amount": "60.01" }),
    )
    .await;
    assert_eq!(too_much.status, 422);
    assert_eq!(too_much.body["code"], "insufficient_funds");
    assert_eq!(balance(&app, &ada, usd).await, "60.00");

    for action in ["deposit", "withdraw"] {
        let crypto = post(&app, &ada, &path(btc, action), json!({ "amount": "1" })).await;
        assert_eq!(crypto.status, 422, "{action}");
        assert_eq!(crypto.body["code"], "currency_not_supported");
    }

    // Bad amounts never move money.
    for amount in [
        json!("1.001"),
        json!("0"),
        json!(0),
        json!("-5"),
        json!(-5),
        json!("1e3"),
        json!("lots"),
        json!(true),
        json!("10000000000000000000"),
        json!(null),
    ] {
        let reply = post(
            &app,
            &ada,
            &path(usd, "deposit"),
            json!({ "amount": amount }),
        )
        .await;
        assert_eq!(reply.status, 400, "{amount}: {}", reply.body);
        assert_eq!(reply.body["code"], "validation_failed");
        assert!(reply.body["errors"]["amount"].is_string(), "{amount}");
    }
    let missing = post(&app, &ada, &path(usd, "deposit"), json!({})).await;
    assert_eq!(missing.body["errors"]["amount"], "is required");
    assert_eq!(balance(&app, &ada, usd).await, "60.00");

    // A blocked wallet receives but does not pay.
    let mut conn = app.conn().await;
    use diesel_async::RunQueryDsl;
    diesel::sql_query(format!(
        "UPDATE wallets SET status = 'blocked' WHERE id = '{}'",
        id(usd)
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let blocked = post(&app, &ada, &path(usd, "withdraw"), json!({ "amount": "1" })).await;
    assert_eq!(blocked.body["code"], "wallet_blocked");
    assert_eq!(
        post(&app, &ada, &path(usd, "deposit"), json!({ "amount": "1" }))
            .await
            .status,
        201
    );
    assert_eq!(balance(&app, &ada, usd).await, "61.00");
    assert_eq!(admin_check(&app).await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_needs_a_verified_email() {
    let app = app().await;
    let reply = app
        .post("/api/v1/auth/register", &json!({ "username": "newbie", "email": "newbie@example.com", "password": "correct horse" }))
        .await;
    assert_eq!(reply.status, 201);
    let newbie = app.login("newbie", "correct horse").await;
    let wallet = post(
        &app,
        &newbie,
        "/api/v1/wallets",
        json!({ "currency": "USD" }),
    )
    .await;
    assert_eq!(
        wallet.status, 201,
        "opening a wallet is not a money movement"
    );
    let deposit_path = format!("/api/v1/wallets/{}/deposit", id(&wallet.body));
    let deposit_with_key = || {
        app.send(
            app.client
                .post(app.url(&deposit_path))
                .bearer_auth(&newbie.access)
                .header("idempotency-key", "first-deposit")
                .json(&json!({ "amount": "5" })),
        )
    };
    let refused = deposit_with_key().await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.body["code"], "email_not_verified");
    let transfer_path = format!("/api/v1/wallets/{}/transfer", id(&wallet.body));
    for body in [
        json!({ "to_wallet_number": "1234567890", "amount": "1" }),
        json!({ "to_wallet_number": "not a number", "amount": "1" }),
    ] {
        let refused = post(&app, &newbie, &transfer_path, body).await;
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert_eq!(refused.body["code"], "email_not_verified");
    }
    // Someone else's wallet id: still the verification comes first.
    let refused = post(
        &app,
        &newbie,
        &format!("/api/v1/wallets/{}/withdraw", uuid::Uuid::now_v7()),
        json!({ "amount": "1" }),
    )
    .await;
    assert_eq!(refused.body["code"], "email_not_verified");

    // Once verified, the key refused before was never used: it moves money.
    app.verify_email("newbie@example.com").await;
    let deposited = deposit_with_key().await;
    assert_eq!(deposited.status, 201, "{}", deposited.body);
    assert_eq!(balance(&app, &newbie, &wallet.body).await, "5.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_pay_any_wallet_and_convert_with_exact_rounding() {
    let app = app().await;
    app.set_prices(&[("USD", "1"), ("EUR", "1.0837"), ("BTC", "97123.45")])
        .await;
    let (ada, a) = app.user_with_wallets("ada", &["USD", "EUR"]).await;
    let (grace, g) = app.user_with_wallets("grace", &["USD", "BTC"]).await;
    deposit(&app, &ada, &a[0], "1000.00").await;
    let (app_ref, ada_ref) = (&app, &ada);
    let transfer = |from: &Value, to: &Value, amount: &str| {
        let path = format!("/api/v1/wallets/{}/transfer", id(from));
        let body = json!({ "to_wallet_number": number(to), "amount": amount });
        async move { post(app_ref, ada_ref, &path, body).await }
    };

    // Same currency: exact.
    let same = transfer(&a[0], &g[0], "250.25").await;
    assert_eq!(same.status, 201, "{}", same.body);
    assert_eq!(same.body["credited_amount"], "250.25");
    assert_eq!(same.body["rate"], Value::Null);
    assert_eq!(balance(&app, &ada, &a[0]).await, "749.75");
    assert_eq!(balance(&app, &grace, &g[0]).await, "250.25");

    // USD → BTC at 97,123.45: 100 / 97123.45 rounded down to 8 places.
    let cross = transfer(&a[0], &g[1], "100").await;
    assert_eq!(cross.status, 201, "{}", cross.body);
    let expected = (Decimal::from(100) / Decimal::from_str("97123.45").unwrap())
        .round_dp_with_strategy(8, RoundingStrategy::ToZero);
    assert_eq!(cross.body["credited_amount"], expected.to_string());
    assert_eq!(cross.body["credited_currency"], "BTC");
    assert_eq!(balance(&app, &grace, &g[1]).await, expected.to_string());
    let rate = Decimal::from_str(cross.body["rate"].as_str().unwrap()).unwrap();
    assert_eq!(
        rate,
        (Decimal::ONE / Decimal::from_str("97123.45").unwrap())
            .round_dp(18)
            .normalize()
    );

    // Into your own wallet of another currency, too: USD → EUR.
    let own = transfer(&a[0], &a[1], "10.00").await;
    let eur = (Decimal::from(10) / Decimal::from_str("1.0837").unwrap())
        .round_dp_with_strategy(2, RoundingStrategy::ToZero);
    assert_eq!(own.body["credited_amount"], format!("{eur:.2}"));
    assert_eq!(balance(&app, &ada, &a[0]).await, "639.75");

    // The house kept the rounding remainders: the ledger balances exactly.
    let report = admin_check(&app).await;
    assert_eq!(report["ok"], true, "{report}");

    // Refusals.
    let me = transfer(&a[0], &a[0], "1").await;
    assert_eq!(me.body["code"], "same_wallet");
    let broke = transfer(&a[0], &g[0], "639.76").await;
    assert_eq!(broke.body["code"], "insufficient_funds");
    let nobody = post(
        &app,
        &ada,
        &format!("/api/v1/wallets/{}/transfer", id(&a[0])),
        json!({ "to_wallet_number": "1000000001", "amount": "1" }),
    )
    .await;
    assert_eq!(nobody.status, 404);
    let malformed = post(
        &app,
        &ada,
        &format!("/api/v1/wallets/{}/transfer", id(&a[0])),
        json!({ "to_wallet_number": "12ab", "amount": "1" }),
    )
    .await;
    assert_eq!(malformed.status, 400);
    assert!(malformed.body["errors"]["to_wallet_number"].is_string());
    let dust = transfer(&a[0], &g[1], "0.01").await;
    assert_eq!(dust.status, 201, "a cent buys 10 satoshi: {}", dust.body);

    // Stale prices are never used.
    use diesel_async::RunQueryDsl;
    let mut conn = app.conn().await;
    diesel::sql_query("DELETE FROM price_history")
        .execute(&mut conn)
        .await
        .unwrap();
    diesel::sql_query("INSERT INTO price_history (symbol, price_usd, source, observed_at) VALUES ('BTC', 97123.45, 'test', now() - interval '10 minutes'), ('USD', 1, 'test', now())")
        .execute(&mut conn)
        .await
        .unwrap();
    let stale = transfer(&a[0], &g[1], "1").await;
    assert_eq!(stale.status, 422);
    assert_eq!(stale.body["code"], "rate_unavailable");
    assert_eq!(admin_check(&app).await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_shows_both_sides_and_pages() {
    let app = app().await;
    app.set_prices(&[("USD", "1"), ("EUR", "1.25")]).await;
    let (ada, a) = app.user_with_wallets("ada", &["USD"]).await;
    let (grace, g) = app.user_with_wallets("grace", &["EUR"]).await;
    deposit(&app, &ada, &a[0], "100").await;
    let sent = post(
        &app,
        &ada,
        &format!("/api/v1/wallets/{}/transfer", id(&a[0])),
        json!({ "to_wallet_number": number(&g[0]), "amount": "10" }),
    )
    .await;
    assert_eq!(sent.status, 201);
    post(
        &app,
        &ada,
        &format!("/api/v1/wallets/{}/withdraw", id(&a[0])),
        json!({ "amount": "5" }),
    )
    .await;

    let mine = app
        .get_as(
            &format!("/api/v1/wallets/{}/transactions", id(&a[0])),
            &ada.access,
        )
        .await;
    let items = mine.body["items"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["withdrawal", "transfer", "deposit"], "newest first");
    assert_eq!(items[0]["amount"], "-5.00");
    let transfer = &items[1];
    assert_eq!(transfer["amount"], "-10.00");
    assert_eq!(transfer["currency"], "USD");
    assert_eq!(transfer["counterparty_wallet_number"], number(&g[0]));
    assert_eq!(transfer["counterparty_amount"], "8.00");
    assert_eq!(transfer["counterparty_currency"], "EUR");
    assert_eq!(transfer["rate"], "0.8");
    assert_eq!(transfer["id"], sent.body["transaction_id"]);
    let theirs = app
        .get_as("/api/v1/transactions?type=transfer", &grace.access)
        .await;
    let received = &theirs.body["items"][0];
    assert_eq!(received["amount"], "8.00");
    assert_eq!(received["counterparty_wallet_number"], number(&a[0]));
    assert_eq!(received["counterparty_amount"], "10.00");

    let page1 = app
        .get_as("/api/v1/transactions?limit=2", &ada.access)
        .await;
    assert_eq!(page1.body["items"].as_array().unwrap().len(), 2);
    let cursor = page1.body["next_cursor"].as_str().unwrap();
    let page2 = app
        .get_as(
            &format!("/api/v1/transactions?limit=2&cursor={cursor}"),
            &ada.access,
        )
        .await;
    assert_eq!(page2.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(page2.body["next_cursor"], Value::Null);
    for bad in ["?type=gift", "?limit=0", "?limit=101", "?cursor=zzz"] {
        let reply = app
            .get_as(&format!("/api/v1/transactions{bad}"), &ada.access)
            .await;
        assert_eq!(reply.status, 400, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_replay_conflict_and_serialize() {
    let app = app().await;
    let (ada, a) = app.user_with_wallets("ada", &["USD"]).await;
    let path = format!("/api/v1/wallets/{}/deposit", id(&a[0]));
    let send = |key: &'static str, amount: &'static str| {
        let request = app
            .client
            .post(app.url(&path))
            .bearer_auth(&ada.access)
            .header("idempotency-key", key)
            .json(&json!({ "amount": amount }));
        app.send(request)
    };
    let first = send("k-1", "10.00").await;
    let again = send("k-1", "10.00").await;
    assert_eq!(first.status, 201);
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body, "the first answer, replayed");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(balance(&app, &ada, &a[0]).await, "10.00");
    let other_body = send("k-1", "11.00").await;
    assert_eq!(other_body.status, 409);
    assert_eq!(other_body.body["code"], "conflict");

    // Concurrent requests with one key move money once.
    let replies = futures::future::join_all((0..8).map(|_| send("k-2", "5.00"))).await;
    assert!(replies.iter().all(|r| r.status == 201));
    let ids: std::collections::HashSet<&str> = replies
        .iter()
        .map(|r| r.body["transaction_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(balance(&app, &ada, &a[0]).await, "15.00");

    // A refusal is an answer too: replayed, not retried.
    let withdraw = |key: &'static str| {
        let request = app
            .client
            .post(app.url(&format!("/api/v1/wallets/{}/withdraw", id(&a[0]))))
            .bearer_auth(&ada.access)
            .header("idempotency-key", key)
            .json(&json!({ "amount": "20.00" }));
        app.send(request)
    };
    assert_eq!(withdraw("k-3").await.body["code"], "insufficient_funds");
    send("k-4", "10.00").await;
    let replayed = withdraw("k-3").await;
    assert_eq!(replayed.status, 422);
    assert_eq!(replayed.body["code"], "insufficient_funds");
    assert_eq!(balance(&app, &ada, &a[0]).await, "25.00");
    // A key must be plain visible ASCII.
    let bad = app
        .send(
            app.client
                .post(app.url(&path))
                .bearer_auth(&ada.access)
                .header("idempotency-key", "bad key with spaces")
                .json(&json!({ "amount": "1" })),
        )
        .await;
    assert_eq!(bad.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transfers_neither_deadlock_nor_lose_money() {
    concurrent_transfers(TestAppBuilder::new()).await;
}

/// The same through PgBouncer in transaction mode (`pgbouncer.rs`): the
/// row locks and the ledger's transactions hold across its pooling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transfers_through_pgbouncer_neither_deadlock_nor_lose_money() {
    concurrent_transfers(TestAppBuilder::new().through_pgbouncer(harness::app::Direct::No)).await;
}

async fn concurrent_transfers(builder: TestAppBuilder) {
    let app = builder
        .env("RATE_REFRESH_CRON", "0 0 0 1 1 *")
        .env("DATABASE_POOL_SIZE", 16)
        .start()
        .await;
    let mut users = Vec::new();
    for i in 0..10 {
        let (session, wallets) = app.user_with_wallets(&format!("user{i}"), &["USD"]).await;
        deposit(&app, &session, &wallets[0], "1000.00").await;
        users.push((session, wallets[0].clone()));
    }
    let transfer = |from: usize, to: usize, amount: &'static str| {
        let (session, wallet) = &users[from];
        let request = app
            .client
            .post(app.url(&format!("/api/v1/wallets/{}/transfer", id(wallet))))
            .bearer_auth(&session.access)
            .json(&json!({ "to_wallet_number": number(&users[to].1), "amount": amount }));
        app.send(request)
    };
    // 64 transfers between two wallets, both directions at once.
    let pair = futures::future::join_all((0..64).map(|i| {
        if i % 2 == 0 {
            transfer(0, 1, "3.00")
        } else {
            transfer(1, 0, "2.00")
        }
    }))
    .await;
    assert!(
        pair.iter().all(|r| r.status == 201),
        "{:?}",
        pair.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(balance(&app, &users[0].0, &users[0].1).await, "968.00");
    assert_eq!(balance(&app, &users[1].0, &users[1].1).await, "1032.00");
    // A ring: each wallet pays the next, five times, all at once.
    let ring =
        futures::future::join_all((0..50).map(|i| transfer(i % 10, (i + 1) % 10, "7.00"))).await;
    assert!(ring.iter().all(|r| r.status == 201));
    let mut total = Decimal::ZERO;
    for (session, wallet) in &users {
        total += Decimal::from_str(&balance(&app, session, wallet).await).unwrap();
    }
    assert_eq!(total, Decimal::from(10_000));
    assert_eq!(admin_check(&app).await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_withdrawals_never_overdraw() {
    let app = TestAppBuilder::new()
        .env("RATE_REFRESH_CRON", "0 0 0 1 1 *")
        .env("DATABASE_POOL_SIZE", 16)
        .start()
        .await;
    let (ada, a) = app.user_with_wallets("ada", &["USD"]).await;
    deposit(&app, &ada, &a[0], "100.00").await;
    let path = format!("/api/v1/wallets/{}/withdraw", id(&a[0]));
    let replies = futures::future::join_all(
        (0..25).map(|_| post(&app, &ada, &path, json!({ "amount": "10.00" }))),
    )
    .await;
    let ok = replies.iter().filter(|r| r.status == 201).count();
    let refused = replies
        .iter()
        .filter(|r| r.body["code"] == "insufficient_funds")
        .count();
    assert_eq!((ok, refused), (10, 15));
    assert_eq!(balance(&app, &ada, &a[0]).await, "0.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_check_is_for_admins_and_reports_tampering() {
    let app = app().await;
    let (ada, a) = app.user_with_wallets("ada", &["USD"]).await;
    deposit(&app, &ada, &a[0], "42.00").await;
    assert_eq!(
        app.get_as("/api/v1/admin/ledger/check", &ada.access)
            .await
            .status,
        403
    );
    let mut conn = app.conn().await;
    shared::accounts::promote(&mut conn, "ada").await.unwrap();
    let report = app.get_as("/api/v1/admin/ledger/check", &ada.access).await;
    assert_eq!(report.status, 200);
    assert_eq!(report.body["ok"], true);
    assert_eq!(report.body["wallets_checked"], 1);
    // Someone edits a balance behind the ledger's back: the check says so.
    use diesel_async::RunQueryDsl;
    diesel::sql_query(format!(
        "UPDATE ledger_accounts SET balance = 1000 WHERE id = '{}'",
        id(&a[0])
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let report = app.get_as("/api/v1/admin/ledger/check", &ada.access).await;
    assert_eq!(report.body["ok"], false);
    assert_eq!(
        report.body["mismatched_wallets"][0]["wallet_id"],
        a[0]["id"]
    );
    // Entries of a transaction that does not exist: reported too.
    diesel::sql_query(format!(
        "UPDATE ledger_accounts SET balance = 42 WHERE id = '{}'",
        id(&a[0])
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query(
        "INSERT INTO ledger_entries (transaction_id, account_id, currency, amount)
         SELECT gen_random_uuid(), id, 'USD', x FROM ledger_accounts, (VALUES (1), (-1)) v(x)
         WHERE kind = 'outside' AND currency = 'USD'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let report = app.get_as("/api/v1/admin/ledger/check", &ada.access).await;
    assert_eq!(report.body["ok"], false, "{}", report.body);
    assert_eq!(report.body["orphan_entries"], 2, "{}", report.body);
    assert_eq!(report.body["mismatched_wallets"], json!([]));
    // And the database itself refuses a negative wallet balance.
    let negative = diesel::sql_query(format!(
        "UPDATE ledger_accounts SET balance = -1 WHERE id = '{}'",
        id(&a[0])
    ))
    .execute(&mut conn)
    .await;
    assert!(
        negative
            .unwrap_err()
            .to_string()
            .contains("wallet_balance_not_negative")
    );
}
