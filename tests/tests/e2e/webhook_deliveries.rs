//! Webhook deliveries end to end (PRODUCT.md §11), with receivers the test
//! runs and real worker processes: every event type arrives signed and
//! verifiable, a failed attempt is retried with the same event id, a
//! receiver that never answers holds up no other endpoint and gets one
//! request at a time, one that answers gets its events in order, an endpoint failing too long is disabled and its
//! owner emailed, a redirect is not followed, and deliveries are listed and
//! re-sent through the API.

use std::time::Duration;

use chrono::Utc;
use diesel::sql_types;
use diesel_async::RunQueryDsl;
use harness::{
    TestApp, TestAppBuilder,
    app::Reply,
    eventually,
    session::Session,
    webhook_receiver::{Answer, Received, WebhookReceiver},
};
use reqwest::Method;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(40);

/// Receivers on this machine (loopback) are allowed; price refreshes and
/// fee runs happen when the test says.
fn builder() -> TestAppBuilder {
    TestAppBuilder::new()
        .env("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", "true")
        .env("RATE_REFRESH_CRON", "0 0 0 1 1 *")
        .env("MONTHLY_FEE_CRON", "0 0 0 1 1 *")
}

async fn post(app: &TestApp, session: &Session, path: &str, body: Value) -> Value {
    let reply = app
        .send_as(Method::POST, path, &session.access, &body)
        .await;
    assert!(
        (200..300).contains(&reply.status),
        "{path}: {} {}",
        reply.status,
        reply.body
    );
    reply.body
}

/// Registers `url` for `events`; returns (endpoint id, secret).
async fn endpoint(
    app: &TestApp,
    session: &Session,
    url: &str,
    events: &[&str],
) -> (String, String) {
    let created = post(
        app,
        session,
        "/api/v1/webhooks",
        json!({ "url": url, "events": events }),
    )
    .await;
    (
        created["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

/// Pays `amount` USD from `from`'s wallet to wallet number `to`.
async fn transfer(app: &TestApp, from: &Session, from_wallet: &Value, to: &Value, amount: &str) {
    post(
        app,
        from,
        &format!(
            "/api/v1/wallets/{}/transfer",
            from_wallet["id"].as_str().unwrap()
        ),
        json!({ "to_wallet_number": to["wallet_number"], "amount": amount }),
    )
    .await;
}

async fn usd_user(app: &TestApp, name: &str, amount: &str) -> (Session, Value) {
    let (session, wallets) = app.user_with_wallets(name, &["USD"]).await;
    post(
        app,
        &session,
        &format!(
            "/api/v1/wallets/{}/deposit",
            wallets[0]["id"].as_str().unwrap()
        ),
        json!({ "amount": amount }),
    )
    .await;
    (session, wallets[0].clone())
}

/// Checks `received` the way README tells receivers to: the signature
/// over "t.body" with the endpoint's secret, and the event id header
/// against the body's.
fn assert_signed(received: &Received, secret: &str) {
    let now = Utc::now().timestamp();
    assert!(
        shared::webhooks::signature::verify(secret, &received.signature, &received.body, now, 300),
        "bad signature {:?} on {}",
        received.signature,
        String::from_utf8_lossy(&received.body)
    );
    let body = received.json();
    assert_eq!(body["id"].as_str(), Some(received.event_id.as_str()));
    assert!(
        body["created_at"].is_string() && body["data"].is_object(),
        "{body}"
    );
}

async fn deliveries(app: &TestApp, session: &Session, endpoint: &str) -> Vec<Value> {
    let page = app
        .get_as(
            &format!("/api/v1/webhooks/{endpoint}/deliveries"),
            &session.access,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.body["items"].as_array().unwrap().clone()
}

async fn resend(app: &TestApp, session: &Session, hook: &str, delivery: &str) -> Reply {
    app.send_as(
        Method::POST,
        &format!("/api/v1/webhooks/{hook}/deliveries/{delivery}/resend"),
        &session.access,
        &json!({}),
    )
    .await
}

fn of_type<'a>(received: &'a [Received], kind: &str) -> Vec<&'a Received> {
    received
        .iter()
        .filter(|r| r.json()["type"] == kind)
        .collect()
}

async fn ledger_ok(app: &TestApp) {
    let mut conn = app.conn().await;
    let report = shared::ledger::check(&mut conn).await.unwrap();
    assert!(report.ok, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_type_arrives_signed_and_verifiable() {
    let app = builder()
        .env("CLEARING_THRESHOLD_USD", "0.01")
        .start()
        .await;
    app.set_prices(&[
        ("BTC", "100"),
        ("USD", "1"),
        ("EUR", "1.08"),
        ("KZT", "0.0021"),
    ])
    .await;
    let receiver = WebhookReceiver::start(Answer::Ok { fail_first: 0 }).await;
    let (bob, bob_usd) = usd_user(&app, "bob", "1000").await;
    let all = [
        "alert.triggered",
        "bet.settled",
        "order.cleared",
        "wallet.blocked",
        "transfer.received",
    ];
    let (hook, secret) = endpoint(&app, &bob, &receiver.url, &all).await;
    // Someone else's endpoint, subscribed to everything too, hears nothing
    // of Bob's events.
    let other = WebhookReceiver::start(Answer::Ok { fail_first: 0 }).await;
    let (cyd, _) = usd_user(&app, "cyd", "10").await;
    endpoint(&app, &cyd, &other.url, &all).await;

    // transfer.received: Ada pays Bob.
    let (ada, ada_usd) = usd_user(&app, "ada", "100").await;
    transfer(&app, &ada, &ada_usd, &bob_usd, "5.25").await;
    // bet.settled, at its end (10 s) and by liquidation (leverage 10 up,
    // closed by a price 10% down), and alert.triggered by that price.
    let settling = post(&app, &bob, "/api/v1/bets", json!({ "symbol": "BTC", "direction": "down", "stake": "10", "leverage": 1, "duration_seconds": 10 })).await;
    let liquidated = post(&app, &bob, "/api/v1/bets", json!({ "symbol": "BTC", "direction": "up", "stake": "10", "leverage": 10, "duration_seconds": 600 })).await;
    let alert = post(
        &app,
        &bob,
        "/api/v1/alerts",
        json!({ "symbol": "BTC", "target_price": "95", "direction": "below" }),
    )
    .await;
    app.observe(&[("BTC", "90")], true).await;
    // order.cleared: a buy over the clearing threshold.
    let order = post(
        &app,
        &bob,
        "/api/v1/orders/buy",
        json!({ "currency": "BTC", "amount": "0.01" }),
    )
    .await;
    // wallet.blocked: an empty EUR wallet whose monthly fee falls due.
    let eur = post(&app, &bob, "/api/v1/wallets", json!({ "currency": "EUR" })).await;
    {
        let mut conn = app.conn().await;
        diesel::sql_query(
            "UPDATE wallet_fee_schedule SET next_fee_at = clock_timestamp() - interval '1 second'
             WHERE wallet_id = $1::uuid",
        )
        .bind::<sql_types::Text, _>(eur["id"].as_str().unwrap())
        .execute(&mut conn)
        .await
        .unwrap();
        let run =
            shared::fees::charge_due(&mut conn, &app.config.fees, &app.config.rates, Utc::now())
                .await
                .unwrap();
        assert_eq!(run.blocked, 1, "{run:?}");
    }

    let received = eventually("the six events", WAIT, || async {
        let received = receiver.received();
        (received.len() >= 6).then_some(received)
    })
    .await;
    for r in &received {
        assert_signed(r, &secret);
    }
    let one = |kind: &str| {
        let found = of_type(&received, kind);
        assert_eq!(found.len(), 1, "{kind}: {received:?}");
        found[0].json()
    };
    let data = one("transfer.received")["data"].clone();
    assert_eq!(data["wallet_id"], bob_usd["id"]);
    assert_eq!(data["amount"], "5.25");
    assert_eq!(data["currency"], "USD");
    assert_eq!(data["from_wallet_number"], ada_usd["wallet_number"]);
    let data = one("alert.triggered")["data"].clone();
    assert_eq!(data["alert_id"], alert["id"]);
    assert_eq!(data["triggered_price"], "90");
    let data = one("order.cleared")["data"].clone();
    assert_eq!(data["order_id"], order["id"]);
    assert_eq!(data["currency"], "BTC");
    let data = one("wallet.blocked")["data"].clone();
    assert_eq!(data["wallet_id"], eur["id"]);
    let bets = of_type(&received, "bet.settled");
    assert_eq!(bets.len(), 2, "{received:?}");
    let bet = |id: &Value| {
        bets.iter()
            .map(|r| r.json()["data"].clone())
            .find(|d| d["bet_id"] == *id)
            .unwrap_or_else(|| panic!("no bet.settled for {id}"))
    };
    let closed = bet(&liquidated["id"]);
    assert_eq!(
        (closed["status"].as_str(), closed["payout"].as_str()),
        (Some("liquidated"), Some("0.00"))
    );
    let ended = bet(&settling["id"]);
    assert_eq!(
        (ended["status"].as_str(), ended["result"].as_str()),
        (Some("settled"), Some("W"))
    );
    // Each event once, with its own id.
    let mut ids: Vec<&str> = received.iter().map(|r| r.event_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), received.len());
    assert!(other.received().is_empty(), "{:?}", other.received());

    // The deliveries list shows each, delivered at its first attempt.
    let listed = eventually("six deliveries recorded", WAIT, || async {
        let listed = deliveries(&app, &bob, &hook).await;
        (listed.len() == 6 && listed.iter().all(|d| d["status"] == "delivered")).then_some(listed)
    })
    .await;
    for d in &listed {
        let attempts = d["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{d}");
        assert_eq!(attempts[0]["status_code"], 200, "{d}");
        assert_eq!(attempts[0]["error"], Value::Null, "{d}");
        assert!(attempts[0]["duration_ms"].as_i64().unwrap() >= 0);
    }
    // Someone else's endpoint is not found.
    let theirs = app
        .get_as(&format!("/api/v1/webhooks/{hook}/deliveries"), &cyd.access)
        .await;
    assert_eq!(theirs.status, 404, "{}", theirs.body);
    ledger_ok(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_500_then_200_gets_the_event_again_with_the_same_id() {
    let app = builder().env("WEBHOOK_RETRY_BASE_SECS", "1").start().await;
    let receiver = WebhookReceiver::start(Answer::Ok { fail_first: 1 }).await;
    let (bob, bob_usd) = usd_user(&app, "bob", "1").await;
    let (hook, secret) = endpoint(&app, &bob, &receiver.url, &["transfer.received"]).await;
    let (ada, ada_usd) = usd_user(&app, "ada", "100").await;
    transfer(&app, &ada, &ada_usd, &bob_usd, "7").await;

    let listed = eventually(
        "the delivery to succeed at its second attempt",
        WAIT,
        || async {
            let listed = deliveries(&app, &bob, &hook).await;
            (listed.len() == 1 && listed[0]["status"] == "delivered").then_some(listed)
        },
    )
    .await;
    let received = receiver.received();
    assert_eq!(received.len(), 2, "{received:?}");
    for r in &received {
        assert_signed(r, &secret);
    }
    assert_eq!(received[0].event_id, received[1].event_id);
    assert_eq!(
        received[0].body, received[1].body,
        "the same event, byte for byte"
    );
    let attempts = listed[0]["attempts"].as_array().unwrap();
    let codes: Vec<&Value> = attempts.iter().map(|a| &a["status_code"]).collect();
    assert_eq!(codes, [&json!(500), &json!(200)], "{}", listed[0]);
    assert_eq!(attempts[0]["error"], "the endpoint answered 500");
    assert_eq!(
        listed[0]["event_id"].as_str(),
        Some(received[0].event_id.as_str())
    );

    // A resend delivers the same event once more.
    let delivery = listed[0]["id"].as_str().unwrap();
    let resent = resend(&app, &bob, &hook, delivery).await;
    assert_eq!(resent.status, 202, "{}", resent.body);
    assert_eq!(resent.body["status"], "pending");
    let again = eventually("the resent event", WAIT, || async {
        let received = receiver.received();
        (received.len() == 3).then_some(received)
    })
    .await;
    assert_eq!(again[2].event_id, received[0].event_id);
    assert_signed(&again[2], &secret);
    // Unknown deliveries and other users' endpoints are not found.
    let missing = resend(&app, &bob, &hook, &uuid::Uuid::now_v7().to_string()).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(missing.body["code"], "not_found");
    let not_theirs = resend(&app, &ada, &hook, delivery).await;
    assert_eq!(not_theirs.status, 404, "{}", not_theirs.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_holds_up_no_other_endpoint() {
    let app = builder().env("WEBHOOK_TIMEOUT_SECS", "2").start().await;
    let hanging = WebhookReceiver::start(Answer::Hang).await;
    let healthy = WebhookReceiver::start(Answer::Ok { fail_first: 0 }).await;
    let (bob, bob_usd) = usd_user(&app, "bob", "1").await;
    let (cyd, cyd_usd) = usd_user(&app, "cyd", "1").await;
    let (stuck, _) = endpoint(&app, &bob, &hanging.url, &["transfer.received"]).await;
    endpoint(&app, &cyd, &healthy.url, &["transfer.received"]).await;
    let (ada, ada_usd) = usd_user(&app, "ada", "100").await;
    for cents in 1..=5 {
        let amount = format!("0.0{cents}");
        transfer(&app, &ada, &ada_usd, &bob_usd, &amount).await;
        transfer(&app, &ada, &ada_usd, &cyd_usd, &amount).await;
    }
    // All five reach the healthy endpoint while the other holds its
    // requests open, in the order they happened.
    let arrived = eventually("five events at the healthy endpoint", WAIT, || async {
        let received = healthy.received();
        (received.len() == 5).then_some(received)
    })
    .await;
    let amounts: Vec<Value> = arrived
        .iter()
        .map(|r| r.json()["data"]["amount"].clone())
        .collect();
    assert_eq!(
        amounts,
        ["0.01", "0.02", "0.03", "0.04", "0.05"],
        "in order"
    );
    // The hanging one's attempts time out and are recorded as such; it is
    // only ever sent one request at a time.
    let listed = eventually("two timed-out attempts recorded", WAIT, || async {
        let listed = deliveries(&app, &bob, &stuck).await;
        let timed_out = listed
            .iter()
            .flat_map(|d| d["attempts"].as_array().cloned().unwrap_or_default())
            .filter(|a| a["status_code"].is_null())
            .count();
        (timed_out >= 2).then_some(listed)
    })
    .await;
    let attempt = listed
        .iter()
        .flat_map(|d| d["attempts"].as_array().unwrap())
        .find(|a| a["status_code"].is_null())
        .unwrap();
    assert_eq!(
        attempt["error"], "no answer within the timeout",
        "{attempt}"
    );
    assert!(
        listed.iter().all(|d| d["status"] == "pending"),
        "{listed:?}"
    );
    assert!(!hanging.received().is_empty());
    // One request at a time to an endpoint: no two recorded attempts at
    // the hanging one overlap (each spans its time and duration).
    let mut spans: Vec<(i64, i64)> = listed
        .iter()
        .flat_map(|d| d["attempts"].as_array().unwrap())
        .map(|a| {
            let at: chrono::DateTime<Utc> = a["attempted_at"].as_str().unwrap().parse().unwrap();
            let start = at.timestamp_micros();
            (start, start + a["duration_ms"].as_i64().unwrap() * 1000)
        })
        .collect();
    spans.sort_unstable();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "overlapping attempts: {spans:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_too_long_is_disabled_and_its_owner_emailed() {
    let app = builder()
        .env("WEBHOOK_RETRY_BASE_SECS", "1")
        .env("WEBHOOK_DISABLE_AFTER_SECS", "3")
        .start()
        .await;
    let failing = WebhookReceiver::start(Answer::Fail).await;
    let (bob, bob_usd) = usd_user(&app, "bob", "1").await;
    let (hook, _) = endpoint(&app, &bob, &failing.url, &["transfer.received"]).await;
    let (ada, ada_usd) = usd_user(&app, "ada", "100").await;
    transfer(&app, &ada, &ada_usd, &bob_usd, "1").await;

    let endpoint = eventually("the endpoint disabled", WAIT, || async {
        let listed = app.get_as("/api/v1/webhooks", &bob.access).await;
        listed.body["items"]
            .as_array()
            .and_then(|items| <[Value]>::first(items).cloned())
            .filter(|e| e["enabled"] == false)
    })
    .await;
    let reason = endpoint["disabled_reason"].as_str().unwrap();
    assert!(reason.contains("the endpoint answered 500"), "{reason}");
    let mail = eventually("the owner's email", WAIT, || async {
        app.smtp
            .mails_to("bob@example.com")
            .into_iter()
            .find(|m| m.subject().contains("webhook endpoint was disabled"))
    })
    .await;
    assert!(mail.decoded().contains(&failing.url), "{}", mail.decoded());
    let listed = deliveries(&app, &bob, &hook).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "failed");
    assert!(
        listed[0]["attempts"].as_array().unwrap().len() >= 2,
        "{}",
        listed[0]
    );
    // A resend to a disabled endpoint is refused; nothing more arrives.
    let delivery = listed[0]["id"].as_str().unwrap();
    let resent = resend(&app, &bob, &hook, delivery).await;
    assert_eq!(resent.status, 409, "{}", resent.body);
    assert_eq!(resent.body["code"], "conflict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_address_is_refused_again_at_delivery_time_after_dns() {
    // The workers keep the default rules (public addresses only); an
    // endpoint registered where private ones were admitted — or a name
    // that resolved elsewhere then (DNS rebinding) — gets nothing.
    let mut app = TestAppBuilder::new().start().await;
    let lenient = app
        .spawn_api_with(&[("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", "true")])
        .await;
    let receiver = WebhookReceiver::start(Answer::Ok { fail_first: 0 }).await;
    let (bob, bob_usd) = usd_user(&app, "bob", "1").await;
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    let mut hooks = Vec::new();
    for url in [receiver.url.clone(), by_name] {
        let created = app
            .send(
                app.client
                    .post(format!("{lenient}/api/v1/webhooks"))
                    .bearer_auth(&bob.access)
                    .json(&json!({ "url": url, "events": ["transfer.received"] })),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
        hooks.push(created.body["id"].as_str().unwrap().to_owned());
    }
    let (ada, ada_usd) = usd_user(&app, "ada", "100").await;
    transfer(&app, &ada, &ada_usd, &bob_usd, "1").await;

    for hook in &hooks {
        let listed = eventually("the refused attempt recorded", WAIT, || async {
            let listed = deliveries(&app, &bob, hook).await;
            <[Value]>::first(&listed)
                .filter(|d| d["attempts"].as_array().is_some_and(|a| !a.is_empty()))
                .cloned()
        })
        .await;
        let attempt = &listed["attempts"][0];
        assert_eq!(attempt["status_code"], Value::Null, "{listed}");
        let error = attempt["error"].as_str().unwrap();
        assert!(error.contains("is not a public address"), "{error}");
        assert_eq!(listed["status"], "pending", "retried later: {listed}");
    }
    assert!(receiver.received().is_empty(), "{:?}", receiver.received());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_not_followed_and_counts_as_a_failed_attempt() {
    let app = builder().start().await;
    let redirecting = WebhookReceiver::start(Answer::Redirect).await;
    let elsewhere = WebhookReceiver::start(Answer::Ok { fail_first: 0 }).await;
    redirecting.redirect_to(&elsewhere.url);
    let (bob, bob_usd) = usd_user(&app, "bob", "1").await;
    let (hook, _) = endpoint(&app, &bob, &redirecting.url, &["transfer.received"]).await;
    let (ada, ada_usd) = usd_user(&app, "ada", "100").await;
    transfer(&app, &ada, &ada_usd, &bob_usd, "1").await;

    let listed = eventually("the redirected attempt recorded", WAIT, || async {
        let listed = deliveries(&app, &bob, &hook).await;
        <[Value]>::first(&listed)
            .filter(|d| d["attempts"].as_array().is_some_and(|a| !a.is_empty()))
            .cloned()
    })
    .await;
    assert_eq!(listed["attempts"][0]["status_code"], 307, "{listed}");
    assert_eq!(listed["attempts"][0]["error"], "the endpoint answered 307");
    assert_eq!(listed["status"], "pending", "retried later: {listed}");
    assert_eq!(redirecting.received().len(), 1);
    assert!(elsewhere.received().is_empty(), "the redirect was followed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_to_all_endpoints_share_one_cluster_wide_rate_limit() {
    const RATE: u64 = 10;
    const PER_ENDPOINT: usize = 15;
    let app = builder()
        .env("WEBHOOK_MAX_PER_SEC", RATE)
        .env("WEBHOOK_BURST", 1)
        .start()
        .await;
    let mut receivers = Vec::new();
    let mut users = Vec::new();
    for name in ["bob", "cyd", "dee"] {
        let receiver = WebhookReceiver::start(Answer::Ok { fail_first: 0 }).await;
        let (session, _) = usd_user(&app, name, "1").await;
        endpoint(&app, &session, &receiver.url, &["transfer.received"]).await;
        let me = app.get_as("/api/v1/me", &session.access).await;
        users.push(
            me.body["id"]
                .as_str()
                .unwrap()
                .parse::<uuid::Uuid>()
                .unwrap(),
        );
        receivers.push(receiver);
    }
    // The events of one busy moment, emitted as a change would.
    let events: Vec<_> = (0..PER_ENDPOINT * users.len())
        .map(|i| {
            let event = shared::webhooks::payloads::TransferReceived {
                wallet_id: uuid::Uuid::nil(),
                transaction_id: uuid::Uuid::now_v7(),
                amount: format!("{i}.00"),
                currency: "USD".into(),
                from_wallet_number: "4000000000000".into(),
            };
            (users[i % users.len()], event)
        })
        .collect();
    {
        use diesel_async::AsyncConnection as _;
        let mut conn = app.conn().await;
        let queued = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                shared::webhooks::events::emit(
                    conn,
                    shared::webhooks::EventType::TransferReceived,
                    &events,
                )
                .await
            })
            .await
            .unwrap();
        assert_eq!(queued, events.len());
    }
    let arrivals = eventually("every event delivered", WAIT, || async {
        let all: Vec<Received> = receivers.iter().flat_map(|r| r.received()).collect();
        (all.len() >= events.len()).then_some(all)
    })
    .await;
    assert_eq!(arrivals.len(), events.len(), "each once");
    // No more than the rate in any second, over at least as long as the
    // rate allows (without the limit they arrive within a second).
    let spread = harness::poll::spread(&arrivals.iter().map(|r| r.at).collect::<Vec<_>>());
    assert!(spread.busiest_second <= RATE + 1, "{spread:?}");
    let least = (events.len() as f64 - 1.0) / RATE as f64;
    assert!(spread.span_secs >= least * 0.95, "{spread:?}");
}
