//! The web page (PRODUCT.md §12) in a real browser: Debian's Chromium,
//! headless, driven by playwright-core (`tests/browser/flow.mjs`) against a
//! whole Bourse (API, worker, SMTP receiver, live simulated prices). The
//! flow registers, verifies with the code from the email, logs in, opens a
//! USD wallet, deposits, buys BTC, transfers to another user's EUR wallet
//! after a quote, places a 10 s bet and sees it settle, creates and deletes
//! an alert, and logs in as an administrator to see the jobs page and retry
//! and discard dead jobs. Screenshots of every page land in
//! `target/browser-artifacts/` (or `$BROWSER_ARTIFACTS_DIR`).
//!
//! Chromium, Node.js and playwright-core are installed by
//! `tests/browser/setup.sh` (run by `scripts/test` and again here); when
//! they cannot be, this test fails: it never skips.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::Arc,
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use harness::{
    TestApp, TestAppBuilder, eventually,
    webhook_receiver::{Answer, WebhookReceiver},
};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::{jobs::Probe, outbox};

const WAIT: Duration = Duration::from_secs(30);
const CHROMIUM: &str = "/usr/bin/chromium";
const ADMIN: (&str, &str) = ("root", "correct horse staple");

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds tests/")
        .to_path_buf()
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

fn artifacts_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BROWSER_ARTIFACTS_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace().join("target"), PathBuf::from);
    target.join("browser-artifacts")
}

/// Installs Chromium and the npm packages when missing; panics (with the
/// installer's output) when that fails.
async fn browser_tools() {
    let output = tokio::process::Command::new("bash")
        .arg(browser_dir().join("setup.sh"))
        .output()
        .await
        .expect("bash runs tests/browser/setup.sh");
    assert!(
        output.status.success(),
        "the browser tests' tools are missing and could not be installed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing after tests/browser/setup.sh"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "playwright-core is missing after tests/browser/setup.sh"
    );
}

#[derive(Deserialize)]
struct MailQuery {
    to: String,
}

/// The newest mail to `?to=`, as the browser flow reads it (it has no SMTP
/// of its own): `{subject, text}`, or 404 while none has arrived.
async fn newest_mail(State(app): State<Arc<TestApp>>, Query(query): Query<MailQuery>) -> Response {
    match app.smtp.mails_to(&query.to).pop() {
        Some(mail) => {
            Json(json!({ "subject": mail.subject(), "text": mail.decoded() })).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Serves [`newest_mail`] on a random port; returns its URL.
async fn serve_mailbox(app: Arc<TestApp>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the mailbox");
    let url = format!("http://{}/mail", listener.local_addr().expect("addr"));
    let router = Router::new()
        .route("/mail", get(newest_mail))
        .with_state(app);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (url, task)
}

async fn admin_overview(app: &TestApp, access: &str) -> Value {
    let reply = app.get_as("/api/v1/admin/jobs", access).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_page_works_end_to_end_in_headless_chromium() {
    browser_tools().await;
    // The default schedule refreshes the simulated prices every second: the
    // page's chart and stream move, and trades, transfers and bets find
    // fresh prices.
    // The throughput history is sampled every second, so the jobs page's
    // chart has points by the time the flow gets there.
    // The webhook step registers a receiver on this machine (admitted
    // here) and buys BTC, cleared at once, for an order.cleared event.
    let app = TestAppBuilder::new()
        .env("JOBS_HISTORY_SAMPLE_SECS", "1")
        .env("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", "true")
        .env("CLEARING_THRESHOLD_USD", "0.01")
        .start()
        .await;
    let hooks = WebhookReceiver::start(Answer::Ok { fail_first: 0 }).await;
    eventually("fresh BTC and EUR prices", WAIT, || async {
        let rates = app.get("/api/v1/rates").await;
        let fresh = |symbol: &str| {
            rates.body["items"].as_array().is_some_and(|items| {
                items
                    .iter()
                    .any(|r| r["symbol"] == symbol && r["fresh"] == true)
            })
        };
        (fresh("BTC") && fresh("EUR")).then_some(())
    })
    .await;

    // An administrator, and a payee with a EUR wallet for the transfer.
    app.register_verified(ADMIN.0, "root@example.com", ADMIN.1)
        .await;
    shared::accounts::promote(&mut app.conn().await, ADMIN.0)
        .await
        .unwrap();
    let root = app.login(ADMIN.0, ADMIN.1).await;
    let (bob, wallets) = app.user_with_wallets("bob", &["EUR"]).await;
    let payee = wallets[0]["wallet_number"].as_str().unwrap().to_owned();

    // Two jobs that always fail, dead before the browser starts: the admin
    // retries one and discards the other on the jobs page.
    for tag in ["web-dead-1", "web-dead-2"] {
        let doomed = Probe {
            tag: tag.to_owned(),
            fail_attempts: u32::MAX,
            ..Probe::default()
        };
        outbox::push(&mut app.conn().await, &doomed, None)
            .await
            .unwrap();
    }
    // One waiting in the outbox for an hour: the scheduled jobs list.
    outbox::push(
        &mut app.conn().await,
        &Probe {
            tag: "web-later".to_owned(),
            ..Probe::default()
        },
        Some(chrono::Utc::now() + chrono::Duration::hours(1)),
    )
    .await
    .unwrap();
    eventually("two dead probe jobs", WAIT, || async {
        let view = admin_overview(&app, &root.access).await;
        view["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["queue"] == "probe" && q["dead"] == 2)
            .then_some(())
    })
    .await;

    let app = Arc::new(app);
    let (mail_url, mailbox) = serve_mailbox(app.clone()).await;
    let artifacts = artifacts_dir();
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).expect("create the artifacts folder");

    // The market's side of the liquidation step: when the flow's ×100 bet
    // is open, an observation reaches its liquidation price.
    let crash = tokio::spawn(crash_at_the_liquidation_price(app.clone()));

    let flow = tokio::process::Command::new("node")
        .arg(browser_dir().join("flow.mjs"))
        .current_dir(workspace())
        .env("BASE_URL", &app.base_url)
        .env("MAIL_URL", &mail_url)
        .env("ADMIN_LOGIN", ADMIN.0)
        .env("ADMIN_PASSWORD", ADMIN.1)
        .env("PAYEE_WALLET", &payee)
        .env("PAYEE_CURRENCY", "EUR")
        .env("HOOK_URL", &hooks.url)
        .env("DEAD_PROBES", "2")
        .env("ARTIFACTS_DIR", &artifacts)
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), flow)
        .await
        .expect("the browser flow finished within 5 minutes")
        .expect("node runs tests/browser/flow.mjs");
    mailbox.abort();
    crash.abort();
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "the browser flow failed ({}); screenshots in {}",
        output.status,
        artifacts.display()
    );

    // What the page did is what the API holds.
    let bob_wallets = app.get_as("/api/v1/wallets", &bob.access).await;
    let received = &bob_wallets.body["items"][0]["balance"];
    assert_ne!(
        received, "0.00",
        "the transfer reached bob: {}",
        bob_wallets.body
    );
    let ledger = app.get_as("/api/v1/admin/ledger/check", &root.access).await;
    assert_eq!(ledger.body["ok"], true, "{}", ledger.body);
    // The order.cleared event reached the receiver, and the page's resend
    // sent the same event again.
    let sent = eventually("the event and its resend", WAIT, || async {
        let sent = hooks.received();
        (sent.len() >= 2).then_some(sent)
    })
    .await;
    assert!(
        sent.iter()
            .all(|r| r.json()["type"] == "order.cleared" && r.event_id == sent[0].event_id),
        "{sent:?}"
    );
    let shots = std::fs::read_dir(&artifacts)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.path().extension().is_some_and(|e| e == "png"))
        .count();
    assert!(
        shots >= 20,
        "a screenshot of every page: {shots} in {}",
        artifacts.display()
    );
}

/// Waits for an open bet with leverage 100 (only the flow's liquidation
/// step places one), then announces an observation at its liquidation
/// price, as a refresh would.
async fn crash_at_the_liquidation_price(app: Arc<TestApp>) {
    use diesel::{prelude::*, sql_types};
    use diesel_async::RunQueryDsl;
    #[derive(QueryableByName)]
    struct Open {
        #[diesel(sql_type = sql_types::Text)]
        symbol: String,
        #[diesel(sql_type = sql_types::Text)]
        price: String,
    }
    let (symbol, price) = eventually("the flow's ×100 bet", Duration::from_secs(300), || async {
        let mut conn = app.conn().await;
        diesel::sql_query(
            "SELECT symbol, liquidation_price::text AS price FROM bets
             WHERE status = 'open' AND leverage = 100 LIMIT 1",
        )
        .get_result::<Open>(&mut conn)
        .await
        .ok()
        .map(|open| (open.symbol, open.price))
    })
    .await;
    app.observe(&[(&symbol, &price)], true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_files_are_served_from_the_binary_under_a_strict_policy() {
    let app = TestAppBuilder::new().without_worker().start().await;
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let policy = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/web/app.js">"#));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no CDN"
    );

    for (path, content_type) in [
        ("/web/app.js", "text/javascript; charset=utf-8"),
        ("/web/pages/market.js", "text/javascript; charset=utf-8"),
        ("/web/style.css", "text/css; charset=utf-8"),
        ("/web/icon.svg", "image/svg+xml"),
    ] {
        let file = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(file.status(), 200, "{path}");
        assert_eq!(file.headers()["content-type"], content_type, "{path}");
        assert!(file.headers().contains_key("content-security-policy"));
        // Revalidated with the ETag: unchanged files answer 304.
        let etag = file.headers()["etag"].clone();
        let again = app
            .client
            .get(app.url(path))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }
    let missing = app.get("/web/nothing.js").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["code"], "not_found");
    // The API docs stay where they were.
    let docs = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
}
