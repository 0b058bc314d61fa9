//! Breaking things on purpose while money moves (PRODUCT.md §10, §14):
//! workers killed with SIGKILL again and again, Redis restarted with its
//! data lost, PostgreSQL unreachable, the mail server refusing, the price
//! provider stalled. Each test ends with the ledger check green and every
//! expected effect (bet payouts, alert triggers, emails) present exactly
//! once.
//!
//! The PostgreSQL and Redis on this machine serve the other tests in
//! parallel, so they are never stopped: Redis is restarted as a private
//! `redis-server` of the test's own, and PostgreSQL is made unreachable
//! through a TCP proxy that drops every connection and refuses new ones
//! (what the API and workers see when the server stops).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::State, routing::get};
use diesel::{prelude::*, sql_types};
use diesel_async::RunQueryDsl;
use harness::{
    TestApp, TestAppBuilder, app::Reply, eventually, process::WorkerProcess, session::Session,
};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use shared::jobs::Queue;

const WAIT: Duration = Duration::from_secs(90);

/// No price refresh during the test (its prices stand), retries enough to
/// outlast each outage, and both reconcilers every second.
fn builder() -> TestAppBuilder {
    TestAppBuilder::new()
        .env("RATE_REFRESH_CRON", "0 0 0 1 1 *")
        .env("RATE_MAX_AGE_SECS", "600")
        .env("JOB_MAX_ATTEMPTS", "30")
        .env("OUTBOX_CLAIM_TIMEOUT_SECS", "3")
        .env("BET_RECONCILE_CRON", "* * * * * *")
        .env("BET_RECONCILE_AFTER_SECS", "3")
        .env("EMAIL_RECONCILE_CRON", "* * * * * *")
        .env("EMAIL_RECONCILE_AFTER_SECS", "3")
}

/// A user with 1000 USD, one bet and one alert.
struct Member {
    session: Session,
    email: String,
    bet: String,
}

/// Verified users with a funded USD wallet (their verification emails are
/// sent by whatever workers run now).
async fn members(app: &TestApp, tag: &str, n: usize) -> Vec<(Session, String)> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("{tag}{i}");
        let session = app.user_with_usd(&name, "1000.00").await;
        out.push((session, format!("{name}@example.com")));
    }
    out
}

/// Each user bets 10 USD on BTC going up over 10 s and sets an alert for
/// BTC at or above 105 (the price is 100).
async fn bet_and_alert(app: &TestApp, users: Vec<(Session, String)>) -> Vec<Member> {
    let mut out = Vec::with_capacity(users.len());
    for (session, email) in users {
        let bet = app
            .send_as(
                Method::POST,
                "/api/v1/bets",
                &session.access,
                &json!({ "symbol": "BTC", "direction": "up", "stake": "10", "leverage": 1, "duration_seconds": 10 }),
            )
            .await;
        assert_eq!(bet.status, 201, "{}", bet.body);
        let alert = app
            .send_as(
                Method::POST,
                "/api/v1/alerts",
                &session.access,
                &json!({ "symbol": "BTC", "target_price": "105", "direction": "above" }),
            )
            .await;
        assert_eq!(alert.status, 201, "{}", alert.body);
        out.push(Member {
            session,
            email,
            bet: bet.body["id"].as_str().unwrap().to_owned(),
        });
    }
    out
}

/// Mails to `email` whose subject contains `about`.
fn mails(app: &TestApp, email: &str, about: &str) -> usize {
    app.smtp
        .mails_to(email)
        .iter()
        .filter(|m| m.subject().contains(about))
        .count()
}

const BET_MAIL: &str = "bet";
const ALERT_MAIL: &str = "at or above";

/// True once every bet is settled, every alert triggered and every member
/// has their bet and alert emails.
async fn all_effects_present(app: &TestApp, members: &[Member]) -> bool {
    app.count("SELECT count(*) AS n FROM bets WHERE status = 'open'")
        .await
        == 0
        && app
            .count("SELECT count(*) AS n FROM alerts WHERE status <> 'triggered'")
            .await
            == 0
        && members
            .iter()
            .all(|m| mails(app, &m.email, BET_MAIL) >= 1 && mails(app, &m.email, ALERT_MAIL) >= 1)
}

/// Every effect exactly once: one payout per bet (and the bet won at the
/// observed 110), one trigger per alert, one email per event, every email
/// row sent, and the ledger check green.
async fn assert_exactly_once(app: &TestApp, members: &[Member]) {
    for member in members {
        assert_eq!(mails(app, &member.email, BET_MAIL), 1, "{}", member.email);
        assert_eq!(mails(app, &member.email, ALERT_MAIL), 1, "{}", member.email);
        assert_eq!(
            mails(app, &member.email, "verification code"),
            1,
            "{}",
            member.email
        );
        let bet = app
            .get_as(
                &format!("/api/v1/bets/{}", member.bet),
                &member.session.access,
            )
            .await;
        assert_eq!(bet.body["status"], "settled", "{}", bet.body);
        assert_eq!(bet.body["result"], "W", "{}", bet.body);
        assert_eq!(bet.body["payout"], "11.00", "{}", bet.body);
    }
    let payouts = app
        .count("SELECT count(*) AS n FROM ledger_transactions WHERE kind = 'bet_payout'")
        .await;
    assert_eq!(payouts, members.len() as i64, "one payout per bet");
    let triggered = app
        .count("SELECT count(*) AS n FROM alerts WHERE status = 'triggered'")
        .await;
    assert_eq!(triggered, members.len() as i64);
    assert_eq!(
        app.count("SELECT count(*) AS n FROM emails WHERE status <> 'sent'")
            .await,
        0,
        "every email sent"
    );
    let mut conn = app.conn().await;
    let report = shared::ledger::check(&mut conn).await.unwrap();
    assert!(report.ok, "{report:?}");
}

async fn healthy(url: &str) -> bool {
    match reqwest::get(url).await {
        Ok(response) => response.status().is_success(),
        Err(_) => false,
    }
}

async fn wait_healthy(worker: &WorkerProcess) {
    eventually(&format!("{} healthy", worker.name), WAIT, || async {
        healthy(&worker.health_url).await.then_some(())
    })
    .await;
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = sql_types::BigInt)]
    n: i64,
}

/// Emails `worker` is sending right now (claimed, SMTP under way).
async fn sending_by(app: &TestApp, worker: &str) -> i64 {
    let mut conn = app.conn().await;
    diesel::sql_query(
        "SELECT count(*) AS n FROM emails WHERE status = 'sending' AND claimed_by = $1",
    )
    .bind::<sql_types::Text, _>(worker)
    .get_result::<Count>(&mut conn)
    .await
    .unwrap()
    .n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_again_and_again_lose_and_duplicate_nothing() {
    kill_workers_again_and_again(builder()).await;
}

/// The same on a three-master Redis Cluster (`REDIS_CLUSTER_NODES`): the
/// killed workers' in-flight jobs come back through orphan recovery on the
/// masters that hold their queues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_again_and_again_on_a_redis_cluster_lose_and_duplicate_nothing() {
    kill_workers_again_and_again(builder().redis_cluster()).await;
}

/// The same with every process behind PgBouncer in transaction mode
/// (`pgbouncer.rs`), without a direct URL: the relays' claims and the
/// settlements hold across its pooling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_again_and_again_through_pgbouncer_lose_and_duplicate_nothing() {
    kill_workers_again_and_again(builder().through_pgbouncer(harness::app::Direct::No)).await;
}

async fn kill_workers_again_and_again(builder: TestAppBuilder) {
    let mut app = builder.start().await;
    app.set_prices(&[("BTC", "100")]).await;
    let users = members(&app, "kill", 8).await;
    // From here on two real worker processes do all the work.
    app.stop_workers().await;
    let mut workers = vec![
        WorkerProcess::spawn(&app.settings, "chaos-a-0", &[]),
        WorkerProcess::spawn(&app.settings, "chaos-b-0", &[]),
    ];
    for worker in &workers {
        wait_healthy(worker).await;
    }
    let members = bet_and_alert(&app, users).await;

    // Every 1.5 s one of the two is killed and replaced, while the alerts
    // are evaluated, the bets fall due and the emails go out. An email is
    // sent at most once: a process killed in the middle of an SMTP
    // conversation leaves its email marked failed rather than risk a
    // second copy. So the victim is frozen first (SIGSTOP) and killed only
    // if it holds no email mid-send; otherwise it resumes and the next
    // round tries again.
    let mut kills = 0;
    let mut observed = false;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut round = 0usize;
    while !(kills >= 4 && all_effects_present(&app, &members).await) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "effects still missing after {kills} kills"
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        if kills == 1 && !observed {
            app.observe(&[("BTC", "110")], true).await;
            observed = true;
        }
        round += 1;
        let slot = round % 2;
        let victim = &mut workers[slot];
        victim.pause().await;
        // A claim already on its way to PostgreSQL lands within moments.
        let mut busy = false;
        for _ in 0..4 {
            if sending_by(&app, &victim.name).await > 0 {
                busy = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(75)).await;
        }
        if busy {
            victim.resume().await;
            continue;
        }
        victim.kill().await;
        kills += 1;
        let name = format!("chaos-{}-{round}", if slot == 0 { "a" } else { "b" });
        workers[slot] = WorkerProcess::spawn(&app.settings, &name, &[]);
    }
    assert!(observed);
    // Stop everything; nothing can be added afterwards.
    for worker in &mut workers {
        worker.terminate().await;
        worker.wait(Duration::from_secs(30)).await;
    }
    assert_exactly_once(&app, &members).await;
    assert_eq!(
        app.count("SELECT count(*) AS n FROM emails WHERE last_error LIKE 'interrupted%'")
            .await,
        0
    );
}

/// Jobs waiting in `queue` (a new connection each time: the old one dies
/// with the server).
async fn pending(app: &TestApp, queue: Queue) -> u64 {
    app.queues().counts(queue).await.unwrap().pending
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_losing_every_job_is_recovered_by_the_outbox_and_the_reconcilers() {
    let mut app = builder()
        .private_redis()
        .env("OUTBOX_LOOKAHEAD_MS", "2000")
        .start()
        .await;
    app.set_prices(&[("BTC", "100")]).await;
    let users = members(&app, "redis", 4).await;
    app.stop_workers().await;
    // This process relays the outbox to Redis but serves only the probe
    // queue: every other job waits in Redis for the crash.
    let relay = WorkerProcess::spawn(&app.settings, "relay-only", &["--queues", "probe"]);
    wait_healthy(&relay).await;
    let members = bet_and_alert(&app, users).await;
    app.observe(&[("BTC", "110")], true).await;
    let newcomers = ["late0@example.com", "late1@example.com"];
    for (i, email) in newcomers.iter().enumerate() {
        let reply = app
            .post(
                "/api/v1/auth/register",
                &json!({ "username": format!("late{i}"), "email": email, "password": "correct horse" }),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    // Every job relayed, the settlements too (pushed 2 s early and held).
    eventually("every job in Redis", WAIT, || async {
        (app.count("SELECT count(*) AS n FROM outbox WHERE dispatched_at IS NULL AND job <> 'reconcile_bets' AND job <> 'reconcile_emails'",
        )
        .await
            == 0)
            .then_some(())
    })
    .await;
    // (The reconcilers' ticks wait there too.)
    assert!(pending(&app, Queue::BetSettlement).await >= members.len() as u64);
    assert!(pending(&app, Queue::Email).await >= newcomers.len() as u64);
    assert!(pending(&app, Queue::PriceAlert).await >= 1);

    // Redis dies and comes back empty (no persistence).
    let server = app.redis_server.as_mut().unwrap();
    server.stop().await;
    server.start_again().await;
    assert_eq!(
        pending(&app, Queue::BetSettlement).await,
        0,
        "the jobs are gone"
    );

    let worker = WorkerProcess::spawn(&app.settings, "after-crash", &[]);
    wait_healthy(&worker).await;
    // The lost prices_observed job is not replayed: alerts are levels, and
    // the next observation (the next refresh) evaluates them again.
    app.observe(&[("BTC", "110")], true).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !(all_effects_present(&app, &members).await
        && newcomers
            .iter()
            .all(|e| mails(&app, e, "verification code") == 1))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "effects still missing after the Redis restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut processes = [relay, worker];
    for process in &mut processes {
        process.terminate().await;
        process.wait(Duration::from_secs(30)).await;
    }
    assert_exactly_once(&app, &members).await;
    for email in newcomers {
        assert_eq!(mails(&app, email, "verification code"), 1);
    }
}

/// `/metrics` of an in-process worker.
async fn worker_metrics(app: &TestApp) -> String {
    let url = app.workers[0].health_url.replace("/healthz", "/metrics");
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn transfer(app: &TestApp, from: &Session, wallet: &str, to: &str, key: &str) -> Reply {
    app.send(
        app.client
            .post(app.url(&format!("/api/v1/wallets/{wallet}/transfer")))
            .bearer_auth(&from.access)
            .header("Idempotency-Key", key)
            .json(&json!({ "to_wallet_number": to, "amount": "25.00" })),
    )
    .await
}

async fn usd_wallet(app: &TestApp, session: &Session) -> Value {
    let reply = app.get_as("/api/v1/wallets", &session.access).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["items"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_answers_503_retries_jobs_and_half_applies_nothing() {
    let app = builder()
        .postgres_through_proxy()
        .env("OUTBOX_LOOKAHEAD_MS", "4000")
        .env("DATABASE_CONNECT_TIMEOUT_SECS", "1")
        .start()
        .await;
    app.set_prices(&[("BTC", "100")]).await;
    let users = members(&app, "pg", 4).await;
    let members = bet_and_alert(&app, users).await;
    app.observe(&[("BTC", "110")], true).await;
    let payer = &members[0];
    let payee = usd_wallet(&app, &members[1].session).await;
    let payer_wallet = usd_wallet(&app, &payer.session).await;
    let (payer_id, payee_number) = (
        payer_wallet["id"].as_str().unwrap().to_owned(),
        payee["wallet_number"].as_str().unwrap().to_owned(),
    );

    // Cut PostgreSQL off once the settlements are in Redis (pushed 4 s
    // early): they fall due during the outage.
    eventually("the settlements relayed", WAIT, || async {
        (app.count(
            "SELECT count(*) AS n FROM outbox WHERE job = 'settle_bet' AND dispatched_at IS NULL",
        )
        .await
            == 0)
            .then_some(())
    })
    .await;
    let proxy = app.postgres_proxy.as_ref().unwrap();
    proxy.cut();
    let cut_at = tokio::time::Instant::now();

    let reply = app.get_as("/api/v1/wallets", &payer.session.access).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.content_type(), "application/problem+json");
    assert_eq!(reply.body["code"], "unavailable");
    let refused = transfer(&app, &payer.session, &payer_id, &payee_number, "pay-once").await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.body["code"], "unavailable");
    assert_eq!(app.get("/readyz").await.status, 503);

    // The settlements run, fail and are retried with backoff.
    eventually(
        "settlement attempts to fail and be retried",
        WAIT,
        || async {
            let text = worker_metrics(&app).await;
            (metric(
            &text,
            "bourse_jobs_total{queue=\"bet_settlement\",job=\"settle_bet\",outcome=\"retried\"}",
        ) >= 1.0)
            .then_some(())
        },
    )
    .await;
    assert_eq!(
        app.count("SELECT count(*) AS n FROM bets WHERE status = 'open'")
            .await,
        members.len() as i64,
        "nothing settled while the database was away"
    );
    // A few seconds of outage in all.
    tokio::time::sleep_until(cut_at + Duration::from_secs(3)).await;
    proxy.restore();

    // The client retries with the same key: applied once.
    let paid = eventually("the transfer to go through", WAIT, || async {
        let reply = transfer(&app, &payer.session, &payer_id, &payee_number, "pay-once").await;
        (reply.status == 201).then_some(reply)
    })
    .await;
    let again = transfer(&app, &payer.session, &payer_id, &payee_number, "pay-once").await;
    assert_eq!(again.status, 201);
    assert_eq!(
        again.body["id"], paid.body["id"],
        "the first answer, replayed"
    );

    eventually("every effect", WAIT, || async {
        all_effects_present(&app, &members).await.then_some(())
    })
    .await;
    assert_exactly_once(&app, &members).await;
    let transfers = app
        .count("SELECT count(*) AS n FROM ledger_transactions WHERE kind = 'transfer'")
        .await;
    assert_eq!(transfers, 1, "the refused attempt left nothing behind");
    // 1000 − 10 staked + 11 paid out − 25 sent.
    assert_eq!(usd_wallet(&app, &payer.session).await["balance"], "976.00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_refused_for_a_while_go_out_once_the_server_accepts() {
    let app = builder().start().await;
    app.smtp.refuse(true);
    let addresses: Vec<String> = (0..6).map(|i| format!("wait{i}@example.com")).collect();
    for (i, email) in addresses.iter().enumerate() {
        let reply = app
            .post(
                "/api/v1/auth/register",
                &json!({ "username": format!("wait{i}"), "email": email, "password": "correct horse" }),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    // Every email tried and refused at least twice.
    eventually("the server to refuse every email twice", WAIT, || async {
        (app.smtp.rejected() >= 2 * addresses.len() as u32).then_some(())
    })
    .await;
    assert!(app.smtp.mails().is_empty());
    app.smtp.refuse(false);

    eventually("every email delivered", WAIT, || async {
        (app.count("SELECT count(*) AS n FROM emails WHERE status = 'sent'")
            .await
            == addresses.len() as i64)
            .then_some(())
    })
    .await;
    let mut app = app;
    app.stop_workers().await;
    for email in &addresses {
        assert_eq!(app.smtp.mails_to(email).len(), 1, "{email}");
    }
    assert_eq!(app.smtp.mails().len(), addresses.len());
    let dead = app.queues().counts(Queue::Email).await.unwrap().dead;
    assert_eq!(dead, 0);
}

fn usd(value: &Value) -> Decimal {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_default()
}

/// A Binance stand-in speaking `GET /api/v3/ticker/price?symbols=[...]`
/// that can be told to stall: accept the request and never answer.
#[derive(Clone, Default)]
struct Feed {
    stalled: Arc<AtomicBool>,
    prices: Arc<Mutex<HashMap<String, String>>>,
}

async fn ticker(State(feed): State<Feed>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    if AtomicBool::load(&feed.stalled, Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
    let prices = feed.prices.lock().unwrap().clone();
    let body: Vec<Value> = prices
        .iter()
        .map(|(symbol, price)| json!({ "symbol": format!("{symbol}USDT"), "price": price }))
        .collect();
    axum::Json(body).into_response()
}

impl Feed {
    async fn serve() -> (Self, String) {
        let feed = Self::default();
        feed.set(&[("BTC", "100.00"), ("ETH", "3000.00"), ("SOL", "150.00")]);
        let app = Router::new()
            .route("/api/v3/ticker/price", get(ticker))
            .with_state(feed.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (feed, url)
    }

    fn set(&self, prices: &[(&str, &str)]) {
        let mut map = self.prices.lock().unwrap();
        for (symbol, price) in prices {
            map.insert((*symbol).to_owned(), (*price).to_owned());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_price_provider_never_lets_money_move_at_a_stale_price() {
    let (feed, url) = Feed::serve().await;
    let app = TestAppBuilder::new()
        .env("RATE_CRYPTO_PROVIDER", "binance")
        .env("BINANCE_URL", &url)
        .env("RATE_REFRESH_CRON", "* * * * * *")
        .env("RATE_MAX_AGE_SECS", "3")
        .env("RATE_HTTP_TIMEOUT_MS", "300")
        .env("RATE_HTTP_RETRIES", "0")
        .start()
        .await;
    eventually("a fresh BTC price from the feed", WAIT, || async {
        let rates = app.get("/api/v1/rates").await;
        let fresh = rates.body["items"].as_array()?.iter().any(|r| {
            r["symbol"] == "BTC" && usd(&r["price_usd"]) == Decimal::from(100) && r["fresh"] == true
        });
        fresh.then_some(())
    })
    .await;
    let (session, wallets) = app.user_with_wallets("trader", &["USD", "BTC"]).await;
    let usd_id = wallets[0]["id"].as_str().unwrap().to_owned();
    let deposit = app
        .send_as(
            Method::POST,
            &format!("/api/v1/wallets/{usd_id}/deposit"),
            &session.access,
            &json!({ "amount": "1000.00" }),
        )
        .await;
    assert_eq!(deposit.status, 201, "{}", deposit.body);
    let bet = app
        .send_as(
            Method::POST,
            "/api/v1/bets",
            &session.access,
            &json!({ "symbol": "BTC", "direction": "up", "stake": "10", "leverage": 2, "duration_seconds": 10 }),
        )
        .await;
    assert_eq!(bet.status, 201, "{}", bet.body);
    let bet_id = bet.body["id"].as_str().unwrap().to_owned();
    let alert = app
        .send_as(
            Method::POST,
            "/api/v1/alerts",
            &session.access,
            &json!({ "symbol": "BTC", "target_price": "150", "direction": "above" }),
        )
        .await;
    assert_eq!(alert.status, 201, "{}", alert.body);
    let alert_id = alert.body["id"].as_str().unwrap().to_owned();

    // The provider stalls; the price it would give has doubled.
    feed.stalled.store(true, Ordering::SeqCst);
    feed.set(&[("BTC", "200.00")]);
    let order = json!({ "currency": "BTC", "amount": "0.01" });
    let buy = || app.send_as(Method::POST, "/api/v1/orders/buy", &session.access, &order);
    eventually("the BTC price to go stale", WAIT, || async {
        let rates = app.get("/api/v1/rates").await;
        let stale = rates.body["items"]
            .as_array()?
            .iter()
            .any(|r| r["symbol"] == "BTC" && r["fresh"] == false);
        stale.then_some(())
    })
    .await;
    let refused = buy().await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.body["code"], "rate_unavailable", "{}", refused.body);

    // The bet falls due while the price is stale: void, stake back.
    let settled = eventually("the bet to settle", WAIT, || async {
        let reply = app
            .get_as(&format!("/api/v1/bets/{bet_id}"), &session.access)
            .await;
        (reply.body["status"] != "open").then_some(reply.body)
    })
    .await;
    assert_eq!(settled["status"], "void", "{settled}");
    assert_eq!(settled["payout"], "10.00");
    let alert_now = app
        .get_as(&format!("/api/v1/alerts/{alert_id}"), &session.access)
        .await;
    assert_eq!(
        alert_now.body["status"], "created",
        "no trigger on a price never observed"
    );
    assert_eq!(
        app.count("SELECT count(*) AS n FROM orders").await,
        0,
        "no trade executed"
    );

    // The provider answers again: the new price is observed and used.
    feed.stalled.store(false, Ordering::SeqCst);
    let bought = eventually("trading to resume at the fresh price", WAIT, || async {
        let reply = buy().await;
        (reply.status == 201).then_some(reply)
    })
    .await;
    assert_eq!(
        usd(&bought.body["price_usd"]),
        Decimal::from(200),
        "{}",
        bought.body
    );
    eventually("the alert to trigger at the fresh price", WAIT, || async {
        let reply = app
            .get_as(&format!("/api/v1/alerts/{alert_id}"), &session.access)
            .await;
        (reply.body["status"] == "triggered").then_some(())
    })
    .await;
    let settled_again = app
        .get_as(&format!("/api/v1/bets/{bet_id}"), &session.access)
        .await;
    assert_eq!(settled_again.body["status"], "void", "settled once");
    let mut conn = app.conn().await;
    let report = shared::ledger::check(&mut conn).await.unwrap();
    assert!(report.ok, "{report:?}");
}
