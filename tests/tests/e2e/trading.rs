//! Trading through the API and exchange clearing through real workers:
//! exact balances, refusals, idempotency, batches formed exactly once under
//! concurrency, an exchange outage, and the HTTP exchange client against a
//! local exchange speaking its protocol.

use std::{collections::HashSet, time::Duration};

use diesel::{prelude::*, sql_types};
use diesel_async::RunQueryDsl;
use harness::{
    TestApp, TestAppBuilder,
    app::Reply,
    eventually,
    exchange::{FakeExchange, Mode},
    session::Session,
};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use shared::jobs::Queue;

/// Price refreshes run once a year here so they never replace the test's prices.
fn builder() -> TestAppBuilder {
    TestAppBuilder::new().env("RATE_REFRESH_CRON", "0 0 0 1 1 *")
}

async fn with_prices(app: TestApp) -> TestApp {
    app.set_prices(&[
        ("BTC", "43210.99"),
        ("ETH", "3000"),
        ("USD", "1"),
        ("EUR", "1.08"),
    ])
    .await;
    app
}

async fn post(app: &TestApp, session: &Session, path: &str, body: Value) -> Reply {
    app.send_as(Method::POST, path, &session.access, &body)
        .await
}

/// A verified user with a USD wallet holding `usd`.
async fn trader(app: &TestApp, name: &str, usd: &str) -> (Session, Value) {
    let (session, wallets) = app.user_with_wallets(name, &["USD"]).await;
    let usd_wallet = wallets[0].clone();
    let reply = post(
        app,
        &session,
        &format!(
            "/api/v1/wallets/{}/deposit",
            usd_wallet["id"].as_str().unwrap()
        ),
        json!({ "amount": usd }),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    (session, usd_wallet)
}

/// The user's balance in `currency` (None without a wallet).
async fn balance(app: &TestApp, session: &Session, currency: &str) -> Option<String> {
    let reply = app.get_as("/api/v1/wallets", &session.access).await;
    assert_eq!(reply.status, 200);
    reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["currency"] == currency)
        .map(|w| w["balance"].as_str().unwrap().to_owned())
}

async fn order(app: &TestApp, session: &Session, id: &str) -> Value {
    let reply = app
        .get_as(&format!("/api/v1/orders/{id}"), &session.access)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

async fn wait_cleared(app: &TestApp, session: &Session, id: &str) -> Value {
    wait_cleared_within(app, session, id, Duration::from_secs(30)).await
}

async fn wait_cleared_within(
    app: &TestApp,
    session: &Session,
    id: &str,
    within: Duration,
) -> Value {
    eventually(&format!("order {id} to clear"), within, || async {
        let order = order(app, session, id).await;
        (order["status"] == "cleared").then_some(order)
    })
    .await
}

async fn ledger_ok(app: &TestApp) {
    let mut conn = app.conn().await;
    let report = shared::ledger::check(&mut conn).await.unwrap();
    assert!(report.ok, "{report:?}");
}

/// Waits until every clearing job queued so far has run.
async fn clearing_idle(app: &TestApp) {
    let queues = app.queues();
    eventually(
        "the clearing queue to go idle",
        Duration::from_secs(30),
        || async {
            let waiting = app
                .count("SELECT count(*) AS n FROM outbox WHERE queue = 'order_clearing'")
                .await;
            let queue = queues.counts(Queue::OrderClearing).await.unwrap();
            // A row leaves the outbox once it is pushed, so none left and
            // none waiting or running means every job ran (rows of a
            // coalesced clear_orders never became one).
            (waiting == 0
                && queue.pending + queue.delayed + queue.running == 0
                && queue.succeeded > 0)
                .then_some(())
        },
    )
    .await;
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buying_and_selling_move_exact_balances() {
    let app = with_prices(builder().start().await).await;
    let (ada, _) = trader(&app, "ada", "1000.00").await;
    let (bob, _) = trader(&app, "bob", "1.00").await;

    // Buy: 0.00012345 BTC at 43,210.99 is 5.3343967155 USD, paid 5.34.
    let bought = post(
        &app,
        &ada,
        "/api/v1/orders/buy",
        json!({ "currency": "btc", "amount": "0.00012345" }),
    )
    .await;
    assert_eq!(bought.status, 201, "{}", bought.body);
    let b = &bought.body;
    assert_eq!(b["side"], "buy");
    assert_eq!(b["currency"], "BTC");
    assert_eq!(b["amount"], "0.00012345");
    assert_eq!(b["price_usd"], "43210.99");
    assert_eq!(b["usd_amount"], "5.34");
    assert_eq!(b["status"], "pending");
    assert!(b["exchange_reference"].is_null());
    assert_eq!(balance(&app, &ada, "USD").await.unwrap(), "994.66");
    assert_eq!(
        balance(&app, &ada, "BTC").await.unwrap(),
        "0.00012345",
        "the BTC wallet is opened by the first buy"
    );

    // Sell: 0.0001 BTC is 4.321099 USD, received 4.32.
    let sold = post(
        &app,
        &ada,
        "/api/v1/orders/sell",
        json!({ "currency": "BTC", "amount": 0.0001 }),
    )
    .await;
    assert_eq!(sold.status, 201, "{}", sold.body);
    assert_eq!(sold.body["usd_amount"], "4.32");
    assert_eq!(sold.body["to_username"], Value::Null);
    assert_eq!(balance(&app, &ada, "USD").await.unwrap(), "998.98");
    assert_eq!(balance(&app, &ada, "BTC").await.unwrap(), "0.00002345");

    // Sell to another user: the USD lands in bob's wallet.
    let gift = post(
        &app,
        &ada,
        "/api/v1/orders/sell",
        json!({ "currency": "BTC", "amount": "0.00002345", "to_username": "BOB" }),
    )
    .await;
    assert_eq!(gift.status, 201, "{}", gift.body);
    assert_eq!(gift.body["to_username"], "bob");
    assert_eq!(gift.body["usd_wallet_id"], Value::Null);
    // 0.00002345 × 43,210.99 = 1.0132977155 → 1.01.
    assert_eq!(gift.body["usd_amount"], "1.01");
    assert_eq!(balance(&app, &bob, "USD").await.unwrap(), "2.01");
    assert_eq!(balance(&app, &ada, "USD").await.unwrap(), "998.98");
    assert_eq!(balance(&app, &ada, "BTC").await.unwrap(), "0.00000000");

    // The history shows both sides of each order.
    let history = app
        .get_as("/api/v1/transactions?type=buy", &ada.access)
        .await;
    let items = history.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "the USD and the BTC side: {}", history.body);

    // Refusals: nothing moves.
    let cases: Vec<(Value, &str, u16, &str)> = vec![
        (
            json!({ "currency": "BTC", "amount": "1" }),
            "buy",
            422,
            "insufficient_funds",
        ),
        (
            json!({ "currency": "BTC", "amount": "0.0001" }),
            "sell",
            422,
            "insufficient_funds",
        ),
        (
            json!({ "currency": "XYZ", "amount": "1" }),
            "buy",
            400,
            "validation_failed",
        ),
        (
            json!({ "currency": "EUR", "amount": "1" }),
            "buy",
            422,
            "currency_not_supported",
        ),
        (
            json!({ "currency": "BTC", "amount": "0.000000001" }),
            "buy",
            400,
            "validation_failed",
        ),
        (
            json!({ "currency": "BTC", "amount": "-1" }),
            "buy",
            400,
            "validation_failed",
        ),
        (
            json!({ "currency": "BTC", "amount": "0" }),
            "sell",
            400,
            "validation_failed",
        ),
        (
            json!({ "currency": "BTC", "amount": "abc" }),
            "buy",
            400,
            "validation_failed",
        ),
        (
            json!({ "currency": "BTC", "amount": "1e400" }),
            "buy",
            400,
            "validation_failed",
        ),
        (
            json!({ "currency": "BTC" }),
            "buy",
            400,
            "validation_failed",
        ),
        (
            json!({ "currency": "BTC", "amount": "0.00000001" }),
            "buy",
            400,
            "validation_failed",
        ),
        (
            json!({ "currency": "BTC", "amount": "1", "price": "1" }),
            "buy",
            400,
            "validation_failed",
        ),
        (
            json!({ "currency": "SOL", "amount": "1" }),
            "buy",
            422,
            "rate_unavailable",
        ),
        (
            json!({ "currency": "ETH", "amount": "0.001" }),
            "sell",
            404,
            "not_found",
        ),
        (
            json!({ "currency": "BTC", "amount": "0.00001", "to_username": "nobody" }),
            "sell",
            404,
            "not_found",
        ),
    ];
    // ada needs some BTC for the sale to a stranger to fail on the stranger.
    let again = post(
        &app,
        &ada,
        "/api/v1/orders/buy",
        json!({ "currency": "BTC", "amount": "0.00001" }),
    )
    .await;
    assert_eq!(again.status, 201);
    let usd_before = balance(&app, &ada, "USD").await.unwrap();
    for (body, side, status, code) in cases {
        let reply = post(&app, &ada, &format!("/api/v1/orders/{side}"), body.clone()).await;
        assert_eq!(reply.status, status, "{side} {body}: {}", reply.body);
        assert_eq!(reply.body["code"], code, "{side} {body}: {}", reply.body);
        assert!(reply.content_type().starts_with("application/problem+json"));
    }
    assert_eq!(balance(&app, &ada, "USD").await.unwrap(), usd_before);

    // A recipient without a USD wallet is not found either.
    let (_carol, _) = app.user_with_wallets("carol", &["EUR"]).await;
    let reply = post(
        &app,
        &ada,
        "/api/v1/orders/sell",
        json!({ "currency": "BTC", "amount": "0.00001", "to_username": "carol" }),
    )
    .await;
    assert_eq!(reply.status, 404, "{}", reply.body);

    // No USD wallet: nothing to pay with.
    let (dave, _) = app.user_with_wallets("dave", &[]).await;
    let reply = post(
        &app,
        &dave,
        "/api/v1/orders/buy",
        json!({ "currency": "BTC", "amount": "0.001" }),
    )
    .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert!(
        balance(&app, &dave, "BTC").await.is_none(),
        "a refused buy opens no wallet"
    );

    // An unverified user moves no money.
    let reply = app
        .post(
            "/api/v1/auth/register",
            &json!({ "username": "eve", "email": "eve@example.com", "password": "correct horse" }),
        )
        .await;
    assert_eq!(reply.status, 201);
    let eve = app.login("eve", "correct horse").await;
    let reply = post(
        &app,
        &eve,
        "/api/v1/orders/buy",
        json!({ "currency": "BTC", "amount": "0.001" }),
    )
    .await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.body["code"], "email_not_verified");

    // Idempotency: a replay moves nothing; another body is a conflict.
    let keyed = |body: Value| {
        app.send(
            app.client
                .post(app.url("/api/v1/orders/buy"))
                .bearer_auth(&ada.access)
                .header("idempotency-key", "buy-once")
                .json(&body),
        )
    };
    let first = keyed(json!({ "currency": "ETH", "amount": "0.01" })).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let usd_after_first = balance(&app, &ada, "USD").await.unwrap();
    let replay = keyed(json!({ "currency": "ETH", "amount": "0.01" })).await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.body["id"], first.body["id"]);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(balance(&app, &ada, "USD").await.unwrap(), usd_after_first);
    let conflict = keyed(json!({ "currency": "ETH", "amount": "0.02" })).await;
    assert_eq!(conflict.status, 409);

    // Listing, paging and privacy.
    let page = app.get_as("/api/v1/orders?limit=2", &ada.access).await;
    assert_eq!(page.status, 200);
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], first.body["id"], "newest first");
    let mut seen: Vec<Value> = items.iter().map(|o| o["id"].clone()).collect();
    let mut cursor = page.body["next_cursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let page = app
            .get_as(&format!("/api/v1/orders?limit=2&cursor={c}"), &ada.access)
            .await;
        assert_eq!(page.status, 200);
        seen.extend(
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].clone()),
        );
        cursor = page.body["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), 5, "buy, sell, gift, buy, ETH buy");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 5);
    let reply = app.get_as("/api/v1/orders?status=open", &ada.access).await;
    assert_eq!(reply.status, 400);
    let reply = app.get_as("/api/v1/orders?cursor=zzz", &ada.access).await;
    assert_eq!(reply.status, 400);
    let theirs = app
        .get_as(
            &format!("/api/v1/orders/{}", first.body["id"].as_str().unwrap()),
            &bob.access,
        )
        .await;
    assert_eq!(theirs.status, 404);
    let reply = app.get_as("/api/v1/orders/not-a-uuid", &ada.access).await;
    assert_eq!(reply.status, 404);

    ledger_ok(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_order_clears_alone_and_small_ones_wait_for_the_threshold() {
    let exchange = FakeExchange::start(Some("exchange-key")).await;
    let app = with_prices(
        builder()
            .env("EXCHANGE", "http")
            .env("EXCHANGE_URL", &exchange.url)
            .env("EXCHANGE_API_KEY", "exchange-key")
            .start()
            .await,
    )
    .await;
    let (ada, _) = trader(&app, "ada", "1000.00").await;

    // 0.001 BTC = 43.21 USD: at least the 10 USD threshold, cleared alone.
    let large = post(
        &app,
        &ada,
        "/api/v1/orders/buy",
        json!({ "currency": "BTC", "amount": "0.001" }),
    )
    .await;
    assert_eq!(large.status, 201, "{}", large.body);
    let cleared = wait_cleared(&app, &ada, large.body["id"].as_str().unwrap()).await;
    let placed = exchange.placed();
    assert_eq!(placed.len(), 1);
    assert_eq!(placed[0].symbol, "BTC-USD");
    assert_eq!(placed[0].side, "buy");
    assert_eq!(placed[0].quantity, d("0.001"));
    assert_eq!(cleared["exchange_reference"], placed[0].order_id.as_str());
    assert!(cleared["cleared_at"].is_string());

    // Four sales of 0.001 ETH = 3.00 USD each: the first three wait.
    let buy = post(
        &app,
        &ada,
        "/api/v1/orders/buy",
        json!({ "currency": "ETH", "amount": "0.01" }),
    )
    .await;
    assert_eq!(buy.status, 201);
    wait_cleared(&app, &ada, buy.body["id"].as_str().unwrap()).await;
    let mut small = Vec::new();
    for _ in 0..3 {
        let sold = post(
            &app,
            &ada,
            "/api/v1/orders/sell",
            json!({ "currency": "ETH", "amount": "0.001" }),
        )
        .await;
        assert_eq!(sold.status, 201, "{}", sold.body);
        assert_eq!(sold.body["usd_amount"], "3.00");
        small.push(sold.body["id"].as_str().unwrap().to_owned());
    }
    clearing_idle(&app).await;
    for id in &small {
        assert_eq!(order(&app, &ada, id).await["status"], "pending");
    }
    assert_eq!(exchange.placed().len(), 2, "no exchange call for 9 USD");

    let fourth = post(
        &app,
        &ada,
        "/api/v1/orders/sell",
        json!({ "currency": "ETH", "amount": "0.001" }),
    )
    .await;
    small.push(fourth.body["id"].as_str().unwrap().to_owned());
    let mut references = HashSet::new();
    for id in &small {
        references.insert(wait_cleared(&app, &ada, id).await["exchange_reference"].clone());
    }
    let placed = exchange.placed();
    assert_eq!(placed.len(), 3, "one call for the four small orders");
    assert_eq!(placed[2].side, "sell");
    assert_eq!(placed[2].symbol, "ETH-USD");
    assert_eq!(placed[2].quantity, d("0.004"));
    assert_eq!(references, HashSet::from([json!(placed[2].order_id)]));
    assert!(
        exchange.protocol_errors().is_empty(),
        "{:?}",
        exchange.protocol_errors()
    );
    ledger_ok(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_small_orders_clear_exactly_once() {
    let exchange = FakeExchange::start(None).await;
    let mut app = with_prices(
        builder()
            .env("EXCHANGE", "http")
            .env("EXCHANGE_URL", &exchange.url)
            .env("DATABASE_POOL_SIZE", "20")
            .start()
            .await,
    )
    .await;
    app.start_worker().await;
    let mut traders = Vec::new();
    for i in 0..10 {
        traders.push(trader(&app, &format!("trader{i}"), "100.00").await.0);
    }
    // 100 buys of 0.001 ETH (3.00 USD each), ten at a time per trader, all
    // at once.
    let orders = futures::future::join_all((0..100).map(|i| {
        let session = &traders[i % 10];
        let app = &app;
        async move {
            let reply = post(
                app,
                session,
                "/api/v1/orders/buy",
                json!({ "currency": "ETH", "amount": "0.001" }),
            )
            .await;
            assert_eq!(reply.status, 201, "{}", reply.body);
            (i % 10, reply.body["id"].as_str().unwrap().to_owned())
        }
    }))
    .await;
    let mut per_reference: std::collections::HashMap<String, usize> = Default::default();
    for (who, id) in &orders {
        let cleared = wait_cleared(&app, &traders[*who], id).await;
        *per_reference
            .entry(cleared["exchange_reference"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    // Every batch is four orders (12 USD ≥ 10): 25 exchange orders, each
    // placed once, together exactly the 0.1 ETH users bought.
    let placed = exchange.placed();
    assert_eq!(placed.len(), 25, "{placed:?}");
    assert!(per_reference.values().all(|&n| n == 4), "{per_reference:?}");
    assert_eq!(per_reference.len(), 25);
    let total: Decimal = placed.iter().map(|p| p.quantity).sum();
    assert_eq!(total, d("0.1"));
    let client_ids: HashSet<_> = placed.iter().map(|p| p.client_order_id.clone()).collect();
    assert_eq!(client_ids.len(), 25);

    let mut conn = app.conn().await;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = sql_types::BigInt)]
        n: i64,
    }
    let unbatched: Row = diesel::sql_query(
        "SELECT count(*) AS n FROM orders WHERE batch_id IS NULL OR status <> 'cleared'",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(unbatched.n, 0);
    let mismatched: Row = diesel::sql_query(
        "SELECT count(*) AS n FROM clearing_batches b
         WHERE b.amount <> (SELECT sum(amount) FROM orders o WHERE o.batch_id = b.id)
            OR b.order_count <> (SELECT count(*) FROM orders o WHERE o.batch_id = b.id)",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(mismatched.n, 0, "batch totals equal their orders' totals");
    ledger_ok(&app).await;
}

/// Under a burst of orders one clearing job per currency and side waits,
/// not one per order (`ClearOrders::unique_key`, `queue::waiting`): with no
/// process serving `order_clearing` yet, thirty buys of ETH leave one job
/// in its queue; once it runs, every order is cleared, and an order placed
/// after it started gets a job of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_orders_waits_as_one_clearing_job_per_currency_and_side() {
    let exchange = FakeExchange::start(None).await;
    let mut app = with_prices(
        builder()
            .without_worker()
            .env("EXCHANGE", "http")
            .env("EXCHANGE_URL", &exchange.url)
            .start()
            .await,
    )
    .await;
    // A worker process that relays and sends emails, and clears nothing.
    let mut relay =
        harness::process::WorkerProcess::spawn(&app.settings, "relay-only", &["--queues", "email"]);
    harness::poll::healthy(
        "the relay's worker",
        &relay.health_url,
        Duration::from_secs(60),
    )
    .await;
    let (ada, _) = trader(&app, "ada", "1000.00").await;
    let orders = futures::future::join_all((0..30).map(|_| {
        post(
            &app,
            &ada,
            "/api/v1/orders/buy",
            json!({ "currency": "ETH", "amount": "0.004" }),
        )
    }))
    .await;
    assert!(orders.iter().all(|r| r.status == 201));
    let queues = app.queues();
    eventually("every clearing row relayed", Duration::from_secs(30), || async {
        let undispatched = app
            .count("SELECT count(*) AS n FROM outbox WHERE job = 'clear_orders' AND dispatched_at IS NULL")
            .await;
        (undispatched == 0).then_some(())
    })
    .await;
    // Thirty rows were written; the relay pushed one and dropped the rest.
    assert_eq!(
        harness::poll::metric(
            &relay.health_url,
            r#"bourse_outbox_coalesced_total{queue="order_clearing"}"#
        )
        .await,
        Some(29.0)
    );
    let counts = queues.counts(Queue::OrderClearing).await.unwrap();
    assert_eq!(counts.pending, 1, "one waiting job: {counts:?}");

    // The clearing starts: every order is cleared by that one job.
    app.start_worker().await;
    for reply in &orders {
        wait_cleared(&app, &ada, reply.body["id"].as_str().unwrap()).await;
    }
    // An order after it started is not folded into a job that already ran.
    let late = post(
        &app,
        &ada,
        "/api/v1/orders/buy",
        json!({ "currency": "ETH", "amount": "0.004" }),
    )
    .await;
    assert_eq!(late.status, 201, "{}", late.body);
    wait_cleared(&app, &ada, late.body["id"].as_str().unwrap()).await;
    relay.terminate().await;
    ledger_ok(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_outage_leaves_orders_pending_and_they_clear_once_after_it() {
    let exchange = FakeExchange::start(None).await;
    exchange.set_mode(Mode::Down);
    let app = with_prices(
        builder()
            .env("EXCHANGE", "http")
            .env("EXCHANGE_URL", &exchange.url)
            .env("EXCHANGE_RETRIES", "0")
            // Two attempts, then the job is dead: the sweep must pick the
            // batch up again.
            .env("JOB_MAX_ATTEMPTS", "2")
            .env("CLEARING_RESUBMIT_SECS", "2")
            .start()
            .await,
    )
    .await;
    let (ada, _) = trader(&app, "ada", "1000.00").await;
    let placed = post(
        &app,
        &ada,
        "/api/v1/orders/buy",
        json!({ "currency": "BTC", "amount": "0.001" }),
    )
    .await;
    assert_eq!(placed.status, 201);
    let id = placed.body["id"].as_str().unwrap().to_owned();

    // The outage: calls fail, the job gives up, the order stays pending.
    let queues = app.queues();
    eventually(
        "the clearing job to give up",
        Duration::from_secs(20),
        || async { (queues.counts(Queue::OrderClearing).await.unwrap().dead >= 1).then_some(()) },
    )
    .await;
    assert!(exchange.requests() >= 2);
    assert!(exchange.placed().is_empty());
    assert_eq!(order(&app, &ada, &id).await["status"], "pending");

    // It comes back, but the first answer is lost after the order was
    // placed: the retry must find that order, not place another.
    exchange.set_mode(Mode::LoseAnswers);
    eventually(
        "the exchange to receive the order",
        Duration::from_secs(20),
        || async { (!exchange.placed().is_empty()).then_some(()) },
    )
    .await;
    exchange.set_mode(Mode::Normal);
    let cleared = wait_cleared(&app, &ada, &id).await;
    let placed = exchange.placed();
    assert_eq!(placed.len(), 1, "placed once: {placed:?}");
    assert!(placed[0].requests >= 2, "{placed:?}");
    assert_eq!(cleared["exchange_reference"], placed[0].order_id.as_str());
    ledger_ok(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_exchange_client_retries_what_may_succeed_and_reports_the_rest() {
    use shared::trading::{
        Side,
        exchange::{Exchange, ExchangeError, HedgeOrder, HttpExchange},
    };
    shared::tls::install_crypto_provider();
    let exchange = FakeExchange::start(Some("k")).await;
    let config = |key: &str, timeout_ms: u64, retries: u32| {
        let settings = [
            ("EXCHANGE", "http".to_owned()),
            ("EXCHANGE_URL", format!("{}/", exchange.url)),
            ("EXCHANGE_API_KEY", key.to_owned()),
            ("EXCHANGE_TIMEOUT_MS", timeout_ms.to_string()),
            ("EXCHANGE_RETRIES", retries.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        shared::config::Config::from_map(settings).unwrap().trading
    };
    let order = HedgeOrder {
        reference: uuid::Uuid::now_v7(),
        currency: "BTC".into(),
        side: Side::Sell,
        amount: d("0.25"),
        usd_amount: d("10000"),
    };
    let client = HttpExchange::new(&config("k", 2000, 2)).unwrap();

    // Filled; asking again with the same reference returns the same fill.
    let fill = client.place(&order).await.unwrap();
    assert_eq!(fill.reference, "EX-000001");
    assert_eq!(fill.price, Some(d("100.5")));
    assert_eq!(client.place(&order).await.unwrap().reference, "EX-000001");
    assert_eq!(exchange.placed().len(), 1);
    assert_eq!(exchange.placed()[0].requests, 2);

    // A refusal is final: one call, no retries.
    exchange.set_mode(Mode::Refuse);
    let before = exchange.requests();
    let refused = client
        .place(&HedgeOrder {
            reference: uuid::Uuid::now_v7(),
            ..order.clone()
        })
        .await;
    assert!(
        matches!(refused, Err(ExchangeError::Rejected(ref m)) if m.contains("halted")),
        "{refused:?}"
    );
    assert_eq!(exchange.requests(), before + 1);

    // An outage is retried (here twice) and then reported as unavailable.
    exchange.set_mode(Mode::Down);
    let before = exchange.requests();
    let down = client
        .place(&HedgeOrder {
            reference: uuid::Uuid::now_v7(),
            ..order.clone()
        })
        .await;
    assert!(
        matches!(down, Err(ExchangeError::Unavailable(_))),
        "{down:?}"
    );
    assert_eq!(exchange.requests(), before + 3);

    // A slow exchange times out: unavailable, worth retrying later.
    exchange.set_mode(Mode::Slow(Duration::from_secs(3)));
    let impatient = HttpExchange::new(&config("k", 200, 0)).unwrap();
    let slow = impatient
        .place(&HedgeOrder {
            reference: uuid::Uuid::now_v7(),
            ..order.clone()
        })
        .await;
    assert!(
        matches!(slow, Err(ExchangeError::Unavailable(ref m)) if m.contains("timed out")),
        "{slow:?}"
    );

    // A wrong key is refused by the exchange: final.
    exchange.set_mode(Mode::Normal);
    let wrong = HttpExchange::new(&config("not-k", 2000, 2)).unwrap();
    let unauthorized = wrong
        .place(&HedgeOrder {
            reference: uuid::Uuid::now_v7(),
            ..order.clone()
        })
        .await;
    assert!(
        matches!(unauthorized, Err(ExchangeError::Rejected(ref m)) if m.contains("401")),
        "{unauthorized:?}"
    );
    assert!(
        exchange.protocol_errors().is_empty(),
        "{:?}",
        exchange.protocol_errors()
    );

    // Nothing listens: unavailable.
    let nowhere = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let mut c = config("k", 500, 0);
        c.exchange_url = format!("http://127.0.0.1:{port}");
        HttpExchange::new(&c).unwrap()
    };
    let unreachable = nowhere.place(&order).await;
    assert!(
        matches!(unreachable, Err(ExchangeError::Unavailable(_))),
        "{unreachable:?}"
    );
}

/// Exchange calls obey one limit across every worker process
/// (`EXCHANGE_MAX_PER_SEC`, PRODUCT.md §10): thirty orders large enough to
/// clear alone, three processes clearing them, four placements a second.
/// A batch over the limit waits its turn or runs later as a copy; none
/// fails and none is placed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_share_one_exchange_rate_limit() {
    const RATE: u64 = 4;
    const ORDERS: usize = 30;
    let exchange = FakeExchange::start(None).await;
    let app = with_prices(
        builder()
            .without_worker()
            .env("EXCHANGE", "http")
            .env("EXCHANGE_URL", &exchange.url)
            .env("EXCHANGE_MAX_PER_SEC", RATE)
            // A turn may be waited for 1 s; most batches run later instead.
            .env("JOB_TIMEOUT_SECS", 4)
            .env("RUST_LOG", "info,apalis_core=warn,apalis_redis=warn")
            .start()
            .await,
    )
    .await;
    let _workers = harness::process::WorkerProcess::spawn_healthy(
        &app.settings,
        &["exchange-a", "exchange-b", "exchange-c"],
        &["--queues", "order_clearing,email"],
    )
    .await;
    let (ada, _) = trader(&app, "ada", "2000.00").await;
    let mut orders = Vec::new();
    for _ in 0..ORDERS {
        let reply = post(
            &app,
            &ada,
            "/api/v1/orders/buy",
            json!({ "currency": "BTC", "amount": "0.001" }),
        )
        .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        orders.push(reply);
    }
    for reply in &orders {
        wait_cleared_within(
            &app,
            &ada,
            reply.body["id"].as_str().unwrap(),
            Duration::from_secs(90),
        )
        .await;
    }
    // Each batch placed once, in one request.
    let placed = exchange.placed();
    assert_eq!(placed.len(), ORDERS);
    assert!(placed.iter().all(|p| p.requests == 1), "{placed:?}");
    let arrivals = exchange.arrivals();
    assert_eq!(arrivals.len(), ORDERS);
    // At the rate across the three processes: no calendar second had more
    // (one for network jitter), and the whole took at least as long as the
    // rate allows.
    let spread = harness::poll::spread(&arrivals);
    assert!(spread.busiest_second <= RATE + 1, "{spread:?}");
    let least = (ORDERS as f64 - 1.0) / RATE as f64;
    assert!(spread.span_secs >= least * 0.95, "{spread:?}");
    // Nothing failed on the way.
    let counts = app.queues().counts(Queue::OrderClearing).await.unwrap();
    assert_eq!((counts.dead, counts.retried), (0, 0), "{counts:?}");
    ledger_ok(&app).await;
}
