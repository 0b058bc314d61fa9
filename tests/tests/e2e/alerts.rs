//! Price alerts through the API and real workers: validation and the
//! default direction, crossing exactly at the target, exactly-once
//! triggers under racing evaluations, deleted alerts, the email, the Redis
//! cache (fresh after every change, PostgreSQL when Redis is down),
//! pagination, filters and user isolation.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::RunQueryDsl;
use harness::{TestApp, TestAppBuilder, app::Reply, eventually, session::Session};
use reqwest::Method;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// Price refreshes run once a year here so they never replace the test's
/// prices; these tests create hundreds of alerts in a second, past the
/// per-account creation limit (tested in security.rs).
fn builder() -> TestAppBuilder {
    TestAppBuilder::new()
        .env("RATE_REFRESH_CRON", "0 0 0 1 1 *")
        .env("RATE_LIMIT_ALERT_CREATE_PER_ACCOUNT", "100000/60")
}

async fn create(app: &TestApp, session: &Session, body: Value) -> Reply {
    app.send_as(Method::POST, "/api/v1/alerts", &session.access, &body)
        .await
}

async fn created(app: &TestApp, session: &Session, body: Value) -> Value {
    let reply = create(app, session, body).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["status"], "created");
    reply.body
}

async fn delete(app: &TestApp, session: &Session, id: &str) -> Reply {
    app.send_as(
        Method::DELETE,
        &format!("/api/v1/alerts/{id}"),
        &session.access,
        &json!({}),
    )
    .await
}

fn cache(reply: &Reply) -> String {
    reply
        .headers
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn alert(app: &TestApp, session: &Session, id: &str) -> Value {
    let reply = app
        .get_as(&format!("/api/v1/alerts/{id}"), &session.access)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

async fn price_alert_emails(app: &TestApp) -> i64 {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.conn().await;
    let count: Count =
        diesel::sql_query("SELECT count(*) AS n FROM emails WHERE template = 'price_alert'")
            .get_result(&mut conn)
            .await
            .unwrap();
    count.n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_validated_defaulted_paginated_capped_and_private() {
    let mut app = builder().env("ALERT_MAX_ACTIVE", 4).start().await;
    let (ada, _) = app.user_with_wallets("ada", &[]).await;
    let (bob, _) = app.user_with_wallets("bob", &[]).await;
    app.stop_workers().await;

    // No fresh price and no direction: the direction cannot be chosen.
    let reply = create(&app, &ada, json!({ "target_price": "50000" })).await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_eq!(reply.body["code"], "rate_unavailable");

    app.set_prices(&[("BTC", "50000"), ("ETH", "2000")]).await;
    // The default symbol is BTC; the direction follows the current price.
    let above = created(&app, &ada, json!({ "target_price": "50000.01" })).await;
    assert_eq!(above["symbol"], "BTC");
    assert_eq!(above["direction"], "above");
    assert_eq!(above["target_price"], "50000.01");
    let at = created(&app, &ada, json!({ "target_price": 50000 })).await;
    assert_eq!(at["direction"], "below", "a target equal to the price");
    let eth = created(
        &app,
        &ada,
        json!({ "symbol": " eth ", "target_price": "1000", "direction": "above" }),
    )
    .await;
    assert_eq!(eth["symbol"], "ETH");
    assert_eq!(eth["direction"], "above", "an explicit direction is kept");

    // Bad inputs.
    for (body, field) in [
        (json!({ "target_price": "0" }), "target_price"),
        (json!({ "target_price": "-5" }), "target_price"),
        (json!({ "target_price": "abc" }), "target_price"),
        (json!({ "target_price": true }), "target_price"),
        (json!({}), "target_price"),
        (json!({ "symbol": "XYZ", "target_price": "1" }), "symbol"),
        (json!({ "symbol": "USD", "target_price": "1" }), "symbol"),
        (
            json!({ "target_price": "1", "direction": "sideways" }),
            "direction",
        ),
    ] {
        let reply = create(&app, &ada, body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert_eq!(reply.body["code"], "validation_failed");
        assert!(
            reply.body["errors"][field].is_string(),
            "{body}: {}",
            reply.body
        );
    }
    let reply = create(&app, &ada, json!({ "target_price": "1", "colour": "red" })).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    for query in ["status=open", "limit=0", "limit=101", "cursor=garbage!"] {
        let reply = app
            .get_as(&format!("/api/v1/alerts?{query}"), &ada.access)
            .await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert_eq!(reply.body["code"], "validation_failed");
    }

    // The cap counts active alerts: the fourth is allowed, the fifth not.
    created(&app, &ada, json!({ "target_price": "60000" })).await;
    let reply = create(&app, &ada, json!({ "target_price": "70000" })).await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_eq!(reply.body["code"], "limit_exceeded");

    // Pagination, newest first, and the status filter.
    let first = app.get_as("/api/v1/alerts?limit=3", &ada.access).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(ids(&first.body).len(), 3);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = app
        .get_as(
            &format!("/api/v1/alerts?limit=3&cursor={cursor}"),
            &ada.access,
        )
        .await;
    assert_eq!(ids(&second.body), vec![above["id"].as_str().unwrap()]);
    assert!(second.body["next_cursor"].is_null());

    // Deleting frees a place under the cap; deleting twice is harmless.
    let id = at["id"].as_str().unwrap();
    let reply = delete(&app, &ada, id).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["status"], "deleted");
    assert!(reply.body["deleted_at"].is_string());
    let again = delete(&app, &ada, id).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["deleted_at"], reply.body["deleted_at"]);
    created(&app, &ada, json!({ "target_price": "70000" })).await;
    let deleted = app
        .get_as("/api/v1/alerts?status=deleted", &ada.access)
        .await;
    assert_eq!(ids(&deleted.body), vec![id]);
    let active = app
        .get_as("/api/v1/alerts?status=created&limit=100", &ada.access)
        .await;
    assert_eq!(ids(&active.body).len(), 4);
    assert!(!ids(&active.body).contains(&id.to_owned()));

    // Someone else's alert does not exist, on every route.
    let eth_id = eth["id"].as_str().unwrap();
    let reply = app
        .get_as(&format!("/api/v1/alerts/{eth_id}"), &bob.access)
        .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(reply.body["code"], "not_found");
    assert_eq!(delete(&app, &bob, eth_id).await.status, 404);
    assert_eq!(alert(&app, &ada, eth_id).await["status"], "created");
    let bobs = app.get_as("/api/v1/alerts", &bob.access).await;
    assert_eq!(bobs.status, 200);
    assert!(ids(&bobs.body).is_empty());
    for path in [
        "/api/v1/alerts/not-a-uuid",
        "/api/v1/alerts/00000000-0000-0000-0000-000000000000",
    ] {
        assert_eq!(app.get_as(path, &ada.access).await.status, 404, "{path}");
    }
    let anonymous = app.get("/api/v1/alerts").await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossings_trigger_once_with_one_email_each() {
    let app = builder().start().await;
    let (ada, _) = app.user_with_wallets("ada", &[]).await;
    app.set_prices(&[("BTC", "50000"), ("ETH", "2000")]).await;
    let mk = |target: &str, direction: &str| json!({ "symbol": "BTC", "target_price": target, "direction": direction });
    let at_above = created(&app, &ada, mk("52000", "above")).await;
    let under_above = created(&app, &ada, mk("51000", "above")).await;
    let past_above = created(&app, &ada, mk("52000.01", "above")).await;
    let deleted = created(&app, &ada, mk("50500", "above")).await;
    let below = created(&app, &ada, mk("49000", "below")).await;
    let eth = created(
        &app,
        &ada,
        json!({ "symbol": "ETH", "target_price": "1000", "direction": "above" }),
    )
    .await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    assert_eq!(delete(&app, &ada, &id(&deleted)).await.status, 200);

    // BTC rises exactly to 52000: `above` alerts at or under it trigger,
    // the one a cent higher and the deleted one do not, `below` does not;
    // ETH was not in this observation.
    let stamp = app.observe(&[("BTC", "52000")], true).await;
    for crossed in [&at_above, &under_above] {
        let got = eventually("the alert to trigger", WAIT, || async {
            let a = alert(&app, &ada, &id(crossed)).await;
            (a["status"] == "triggered").then_some(a)
        })
        .await;
        assert_eq!(got["triggered_price"], "52000");
        assert_eq!(
            got["observed_at"]
                .as_str()
                .unwrap()
                .parse::<DateTime<Utc>>()
                .unwrap(),
            stamp
        );
        assert!(got["triggered_at"].is_string());
    }
    let mail = eventually("two alert emails", WAIT, || async {
        let mails: Vec<_> = app
            .smtp
            .mails_to("ada@example.com")
            .into_iter()
            .filter(|m| m.subject().contains("at or above"))
            .collect();
        (mails.len() == 2).then_some(mails)
    })
    .await;
    let subjects: Vec<String> = mail.iter().map(|m| m.subject()).collect();
    assert!(subjects.contains(&"BTC is at or above 52000 USD: now 52000 USD".to_owned()));
    assert!(subjects.contains(&"BTC is at or above 51000 USD: now 52000 USD".to_owned()));

    // BTC falls exactly to 49000: the `below` alert triggers; the already
    // triggered alerts do not trigger again.
    app.observe(&[("BTC", "49000"), ("ETH", "999")], true).await;
    let got = eventually("the below alert to trigger", WAIT, || async {
        let a = alert(&app, &ada, &id(&below)).await;
        (a["status"] == "triggered").then_some(a)
    })
    .await;
    assert_eq!(got["triggered_price"], "49000");
    eventually("the below email", WAIT, || async {
        app.smtp
            .mails_to("ada@example.com")
            .into_iter()
            .find(|m| m.subject() == "BTC is at or below 49000 USD: now 49000 USD")
    })
    .await;
    // ETH at 999 is below its `above 1000` alert: untouched.
    assert_eq!(alert(&app, &ada, &id(&eth)).await["status"], "created");
    assert_eq!(
        alert(&app, &ada, &id(&past_above)).await["status"],
        "created"
    );
    assert_eq!(alert(&app, &ada, &id(&deleted)).await["status"], "deleted");
    assert_eq!(price_alert_emails(&app).await, 3);

    // Evaluating the first observation again (a duplicate job) changes
    // nothing.
    let mut conn = app.conn().await;
    let again = shared::alerts::evaluate(&mut conn, stamp, &["BTC".to_owned()], 1000)
        .await
        .unwrap();
    assert!(again.triggered.is_empty(), "{again:?}");
    assert!(!again.maybe_more);
    assert_eq!(price_alert_emails(&app).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_evaluations_trigger_each_alert_once() {
    let mut app = builder().start().await;
    let (ada, _) = app.user_with_wallets("ada", &[]).await;
    app.stop_workers().await;
    app.set_prices(&[("BTC", "50000")]).await;
    let mut expected = Vec::new();
    for i in 0..200 {
        let target = format!("{}", 40_000 + i * 50);
        let reply = created(
            &app,
            &ada,
            json!({ "target_price": target, "direction": "below" }),
        )
        .await;
        if 40_000 + i * 50 >= 45_000 {
            expected.push(reply["id"].as_str().unwrap().to_owned());
        }
    }
    // An observation stamped before these alerts existed triggers none.
    #[derive(QueryableByName)]
    struct Created {
        #[diesel(sql_type = sql_types::Timestamptz)]
        at: DateTime<Utc>,
    }
    let mut conn = app.conn().await;
    let first: Created = diesel::sql_query("SELECT min(created_at) AS at FROM alerts")
        .get_result(&mut conn)
        .await
        .unwrap();
    let before = first.at - chrono::Duration::milliseconds(1);
    diesel::sql_query(
        "INSERT INTO price_history (symbol, price_usd, source, observed_at)
         VALUES ('BTC', 1, 'test', $1)",
    )
    .bind::<sql_types::Timestamptz, _>(before)
    .execute(&mut conn)
    .await
    .unwrap();
    let none = shared::alerts::evaluate(&mut conn, before, &["BTC".to_owned()], 1000)
        .await
        .unwrap()
        .triggered;
    assert!(
        none.is_empty(),
        "an older observation triggered {}",
        none.len()
    );

    // Four evaluations of one observation race, each in batches of at most
    // 7 (as the job runs them, ALERT_BATCH_SIZE): together they trigger
    // every crossed alert exactly once.
    let stamp = app.observe(&[("BTC", "45000")], false).await;
    let runs = (0..4).map(|_| {
        let app = &app;
        async move {
            let mut conn = app.conn().await;
            let mut mine = Vec::new();
            loop {
                let batch = shared::alerts::evaluate(&mut conn, stamp, &["BTC".to_owned()], 7)
                    .await
                    .unwrap();
                assert!(batch.triggered.len() <= 7, "{}", batch.triggered.len());
                mine.extend(batch.triggered);
                if !batch.maybe_more {
                    return mine;
                }
            }
        }
    });
    let results = futures::future::join_all(runs).await;
    let mut triggered: Vec<String> = results.iter().flatten().map(|t| t.id.to_string()).collect();
    let total = triggered.len();
    triggered.sort();
    triggered.dedup();
    assert_eq!(total, triggered.len(), "an alert triggered twice");
    expected.sort();
    assert_eq!(triggered, expected);
    assert_eq!(price_alert_emails(&app).await, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_answers_are_fresh_after_every_change_and_survive_a_redis_outage() {
    let mut app = builder().start().await;
    let (ada, _) = app.user_with_wallets("ada", &[]).await;
    app.set_prices(&[("BTC", "50000")]).await;

    let list = app.get_as("/api/v1/alerts", &ada.access).await;
    assert_eq!(list.status, 200);
    assert_eq!(cache(&list), "miss");
    let list = app.get_as("/api/v1/alerts", &ada.access).await;
    assert_eq!(cache(&list), "hit");
    assert!(ids(&list.body).is_empty());

    // Create: the next answer is recomputed and has it.
    let a = created(&app, &ada, json!({ "target_price": "51000" })).await;
    let a_id = a["id"].as_str().unwrap().to_owned();
    let list = app.get_as("/api/v1/alerts", &ada.access).await;
    assert_eq!(cache(&list), "miss");
    assert_eq!(ids(&list.body), vec![a_id.clone()]);
    let one = app
        .get_as(&format!("/api/v1/alerts/{a_id}"), &ada.access)
        .await;
    assert_eq!(cache(&one), "miss");
    let one = app
        .get_as(&format!("/api/v1/alerts/{a_id}"), &ada.access)
        .await;
    assert_eq!(cache(&one), "hit");
    assert_eq!(one.body["status"], "created");
    assert_eq!(
        cache(&app.get_as("/api/v1/alerts", &ada.access).await),
        "hit"
    );

    // Trigger (by the worker): cached answers show it at once.
    app.observe(&[("BTC", "51000")], true).await;
    eventually("the cached alert to show the trigger", WAIT, || async {
        let one = app
            .get_as(&format!("/api/v1/alerts/{a_id}"), &ada.access)
            .await;
        (one.body["status"] == "triggered").then_some(())
    })
    .await;
    let list = app
        .get_as("/api/v1/alerts?status=triggered", &ada.access)
        .await;
    assert_eq!(ids(&list.body), vec![a_id.clone()]);
    assert_eq!(
        app.get_as("/api/v1/alerts", &ada.access).await.body["items"][0]["status"],
        "triggered"
    );

    // Delete: the same.
    assert_eq!(delete(&app, &ada, &a_id).await.status, 200);
    let one = app
        .get_as(&format!("/api/v1/alerts/{a_id}"), &ada.access)
        .await;
    assert_eq!(cache(&one), "miss");
    assert_eq!(one.body["status"], "deleted");
    let list = app
        .get_as("/api/v1/alerts?status=triggered", &ada.access)
        .await;
    assert!(ids(&list.body).is_empty());

    // An API whose Redis is down answers from PostgreSQL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let redis_url = format!("redis://127.0.0.1:{port}/0");
    let other = app.spawn_api_with(&[("REDIS_URL", &redis_url)]).await;
    let get = |path: String| {
        let app = &app;
        let other = other.clone();
        let access = ada.access.clone();
        async move {
            app.send(app.client.get(format!("{other}{path}")).bearer_auth(access))
                .await
        }
    };
    let list = get("/api/v1/alerts?status=deleted".into()).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(cache(&list), "miss");
    assert_eq!(ids(&list.body), vec![a_id.clone()]);
    let reply = app
        .send(
            app.client
                .post(format!("{other}/api/v1/alerts"))
                .bearer_auth(&ada.access)
                .json(&json!({ "target_price": "1", "direction": "below" })),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let list = get("/api/v1/alerts?status=created".into()).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
}

/// An observation crossing more alerts than one batch (`ALERT_BATCH_SIZE`)
/// triggers them batch after batch, each its own transaction, and an
/// attempt past half its time limit hands the rest to a copy of its job:
/// every alert triggers exactly once, with one email each. (The bench runs
/// the same with a million alerts: `bourse-bench alerts --crossed`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crossing_larger_than_a_batch_triggers_every_alert_once() {
    let app = builder()
        .env("ALERT_BATCH_SIZE", 40)
        .env("JOB_TIMEOUT_SECS", 1)
        .start()
        .await;
    let (_ada, _) = app.user_with_wallets("ada", &[]).await;
    app.set_prices(&[("BTC", "50000")]).await;
    // 1,500 alerts below 45,000 .. 45,499 and 500 above 60,000, written
    // directly (the API's per-user cap is a thousand).
    let mut conn = app.conn().await;
    diesel::sql_query(
        "INSERT INTO alerts (id, user_id, symbol, target_price, direction, created_at)
         SELECT gen_random_uuid(), u.id, 'BTC', 45000 + (g % 500), 'below', now() - interval '1 minute'
         FROM users u, generate_series(1, 1500) g WHERE u.username = 'ada'
         UNION ALL
         SELECT gen_random_uuid(), u.id, 'BTC', 60000 + g, 'above', now() - interval '1 minute'
         FROM users u, generate_series(1, 500) g WHERE u.username = 'ada'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    // A crash to 44,000: every `below` alert crosses, no `above` one.
    app.observe(&[("BTC", "44000")], true).await;
    eventually("every crossed alert triggered", WAIT, || async {
        (app.count("SELECT count(*) AS n FROM alerts WHERE status = 'triggered'")
            .await
            == 1500)
            .then_some(())
    })
    .await;
    eventually("one email per alert queued", WAIT, || async {
        (price_alert_emails(&app).await == 1500).then_some(())
    })
    .await;
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM alerts WHERE status = 'created' AND direction = 'above'"
        )
        .await,
        500
    );
    // Nothing is left to do and nothing ran twice: no job died, and every
    // evaluation's transaction triggered at most a batch per direction.
    let queues = app.queues();
    eventually("the alert jobs done", WAIT, || async {
        let counts = queues.counts(shared::jobs::Queue::PriceAlert).await.ok()?;
        (counts.pending + counts.running == 0 && counts.dead == 0).then_some(())
    })
    .await;
    let largest = app
        .count(
            "SELECT coalesce(max(n), 0) AS n FROM (
                 SELECT count(*) AS n FROM alerts WHERE status = 'triggered'
                 GROUP BY xmin::text::bigint) t",
        )
        .await;
    assert!(largest <= 40, "one transaction triggered {largest}");
    assert_eq!(price_alert_emails(&app).await, 1500);
}
