//! Hardening: prices nobody can compute ahead, bounded resources (history
//! ranges, event streams, slow and idle connections, metric labels), no
//! internals in readiness answers, and a docs page that cannot be framed.
//! Behaviour that lives in the server loop is tested on the real
//! `bourse-api` binary.

use std::{collections::HashMap, time::Duration};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use harness::{TestApp, TestAppBuilder, eventually, process::ApiProcess};
use rust_decimal::Decimal;
use serde_json::json;
use shared::{rates::providers::Simulated, schema::price_history};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

const WAIT: Duration = Duration::from_secs(30);

// --- Predictable prices ------------------------------------------------------

/// Simulated BTC observations, oldest first: (price, tick in seconds).
async fn simulated_btc(app: &TestApp) -> Vec<(Decimal, i64)> {
    let mut conn = app.conn().await;
    let rows: Vec<(Decimal, Option<DateTime<Utc>>)> = price_history::table
        .filter(price_history::symbol.eq("BTC"))
        .filter(price_history::source.eq("simulated"))
        .order((price_history::observed_at, price_history::id))
        .select((price_history::price_usd, price_history::tick))
        .load(&mut conn)
        .await
        .unwrap();
    rows.into_iter()
        .map(|(price, tick)| (price, tick.expect("a refresh stamps its tick").timestamp()))
        .collect()
}

/// Waits for at least `n` simulated BTC observations.
async fn walk_of(app: &TestApp, n: usize) -> Vec<(Decimal, i64)> {
    eventually(
        &format!("{n} simulated BTC observations"),
        Duration::from_secs(60),
        || async {
            let walk = simulated_btc(app).await;
            (walk.len() >= n).then_some(walk)
        },
    )
    .await
}

/// For each observation after the first: is it seed 42's next step from
/// an earlier one? (Each refresh walks from the latest stored price; two
/// overlapping refreshes may both start from the same one.)
fn steps_of_seed_42(walk: &[(Decimal, i64)]) -> Vec<bool> {
    let public = Simulated::new(42);
    (1..walk.len())
        .map(|i| {
            let (price, tick) = walk[i];
            walk[..i]
                .iter()
                .any(|(previous, _)| public.step("BTC", *previous, tick) == price)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_walk_is_secret_unless_a_seed_is_set() {
    let (unseeded, seeded) = tokio::join!(
        TestAppBuilder::new().start(),
        TestAppBuilder::new().env("SIMULATED_SEED", 42).start(),
    );
    let (secret, reproducible) = tokio::join!(walk_of(&unseeded, 6), walk_of(&seeded, 6));
    let steps = steps_of_seed_42(&secret);
    assert!(
        !steps.iter().all(|follows| *follows),
        "without SIMULATED_SEED every step followed seed 42, so anyone could compute \
         the next price: {secret:?}"
    );
    let steps = steps_of_seed_42(&reproducible);
    assert!(
        steps.iter().all(|follows| *follows),
        "with SIMULATED_SEED=42 a step left seed 42's walk: {steps:?} {reproducible:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_the_simulated_feed_unless_allowed() {
    for binary in ["bourse-api", "bourse-worker"] {
        let run = tokio::process::Command::new(harness::process::binary(binary))
            .env_clear()
            .env("APP_ENV", "production")
            .env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/nothing")
            .env("REDIS_URL", "redis://127.0.0.1:6379/0")
            .env("JWT_SECRET", "0123456789abcdef0123456789abcdef")
            .current_dir(std::env::temp_dir())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(WAIT, run)
            .await
            .unwrap_or_else(|_| panic!("{binary} started on simulated prices in production"))
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{binary}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{binary}: {stderr}");
        assert!(
            lines[0].starts_with("configuration error: RATE_CRYPTO_PROVIDER: ")
                && lines[0].contains("SIMULATED_PRICES_IN_PRODUCTION=true"),
            "{binary}: {stderr}"
        );
    }

    // Allowed explicitly (a demo on play money), it starts.
    let app = TestAppBuilder::new().without_worker().start().await;
    let mut settings = app.settings.clone();
    settings.insert("APP_ENV".into(), "production".into());
    settings.insert("SIMULATED_PRICES_IN_PRODUCTION".into(), "true".into());
    let mut api = ApiProcess::spawn(&settings);
    started(&api).await;
    assert!(api.exit_status().is_none());
}

// --- Unbounded resources -------------------------------------------------------

/// Waits until `api` answers `/healthz`.
async fn started(api: &ApiProcess) {
    eventually("the API to answer /healthz", WAIT, || async {
        let response = reqwest::get(format!("{}/healthz", api.base_url))
            .await
            .ok()?;
        response.status().is_success().then_some(())
    })
    .await;
}

/// An API process with `overrides` on top of `app`'s settings, answering.
async fn api_with(app: &TestApp, overrides: &[(&str, &str)]) -> ApiProcess {
    let mut settings: HashMap<String, String> = app.settings.clone();
    for (name, value) in overrides {
        settings.insert((*name).to_owned(), (*value).to_owned());
    }
    let api = ApiProcess::spawn(&settings);
    started(&api).await;
    api
}

fn cursor_for(at: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_history_cursor_outside_the_range_is_refused() {
    let app = TestAppBuilder::new().without_worker().start().await;
    let range = "from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&interval=60";
    // A year before `from`: down-sampled pages would start there.
    for forged in ["2025-01-01T00:00:00.000000Z", "2026-01-02T00:00:00.000000Z"] {
        let reply = app
            .get(&format!(
                "/api/v1/rates/BTC/history?{range}&cursor={}",
                cursor_for(forged)
            ))
            .await;
        assert_eq!(reply.status, 400, "{forged}: {}", reply.body);
        assert_eq!(reply.body["code"], "validation_failed");
        assert!(reply.body["errors"]["cursor"].is_string(), "{}", reply.body);
    }
    // A cursor inside the range is still fine.
    let reply = app
        .get(&format!(
            "/api/v1/rates/BTC/history?{range}&cursor={}",
            cursor_for("2026-01-01T12:00:00.000000Z")
        ))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

async fn open_stream(client: &reqwest::Client, api: &ApiProcess) -> reqwest::Response {
    client
        .get(format!("{}/api/v1/rates/stream", api.base_url))
        .send()
        .await
        .unwrap()
}

/// A stream that answered 200 and sent its first event.
async fn streaming(client: &reqwest::Client, api: &ApiProcess) -> reqwest::Response {
    let mut response = open_stream(client, api).await;
    assert_eq!(response.status(), 200);
    let first = tokio::time::timeout(WAIT, response.chunk())
        .await
        .expect("the first event in time")
        .unwrap();
    assert!(first.is_some(), "the stream sends the current prices first");
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rates_streams_are_capped_per_client_and_a_closed_one_frees_its_place() {
    let app = TestAppBuilder::new().without_worker().start().await;
    let api = api_with(&app, &[("RATES_STREAM_MAX_PER_IP", "2")]).await;
    let client = reqwest::Client::new();
    let mut open = vec![
        streaming(&client, &api).await,
        streaming(&client, &api).await,
    ];

    let refused = open_stream(&client, &api).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");

    // The client closes one: its place frees once the server sees it gone.
    drop(open.pop());
    let reopened = eventually("a place for a new stream", WAIT, || async {
        let response = open_stream(&client, &api).await;
        (response.status() == 200).then_some(response)
    })
    .await;
    open.push(reopened);
    assert_eq!(open_stream(&client, &api).await.status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_total_stream_cap_the_api_answers_503() {
    let app = TestAppBuilder::new().without_worker().start().await;
    let api = api_with(
        &app,
        &[
            ("RATES_STREAM_MAX_PER_IP", "5"),
            ("RATES_STREAM_MAX_TOTAL", "1"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let _open = streaming(&client, &api).await;
    let refused = open_stream(&client, &api).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_open_streams_and_the_api_exits_zero() {
    stop_with_open_streams(false).await;
}

/// Ctrl-C in the terminal running `bourse-api` does not hang on open
/// streams either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_ends_open_streams_and_the_api_exits_zero() {
    stop_with_open_streams(true).await;
}

/// Stops an API holding two open rate streams, with SIGINT or SIGTERM.
async fn stop_with_open_streams(interrupt: bool) {
    let app = TestAppBuilder::new().without_worker().start().await;
    let mut api = api_with(&app, &[]).await;
    let client = reqwest::Client::new();
    let mut streams = vec![
        streaming(&client, &api).await,
        streaming(&client, &api).await,
    ];
    if interrupt {
        api.interrupt().await;
    } else {
        api.terminate().await;
    }
    let status = api.wait(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "clean exit");
    // The streams ended rather than being cut mid-way.
    for stream in &mut streams {
        while tokio::time::timeout(WAIT, stream.chunk())
            .await
            .expect("the stream ends")
            .expect("the stream ends cleanly")
            .is_some()
        {}
    }
}

/// `api`'s `host:port`.
fn address(api: &ApiProcess) -> String {
    api.base_url.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (end of stream or reset);
/// false if it is still open after `limit`.
async fn closed_by_server(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_request_head_is_disconnected() {
    let app = TestAppBuilder::new().without_worker().start().await;
    let api = api_with(&app, &[("HTTP_HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let mut slow = TcpStream::connect(address(&api)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    assert!(
        closed_by_server(&mut slow, Duration::from_secs(10)).await,
        "a connection whose request head never ends stays open"
    );
    // Whole requests are served as before.
    assert_eq!(
        reqwest::get(format!("{}/healthz", api.base_url))
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let app = TestAppBuilder::new().without_worker().start().await;
    let api = api_with(
        &app,
        &[
            ("HTTP_HEADER_READ_TIMEOUT_SECS", "60"),
            ("HTTP_IDLE_TIMEOUT_SECS", "1"),
        ],
    )
    .await;
    let mut idle = TcpStream::connect(address(&api)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: bourse\r\n\r\n")
        .await
        .unwrap();
    // The whole answer, then nothing more from either side.
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("uptime_secs") {
        let n = tokio::time::timeout(WAIT, idle.read(&mut buffer))
            .await
            .expect("the answer in time")
            .unwrap();
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&buffer[..n]);
    }
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    assert!(
        closed_by_server(&mut idle, Duration::from_secs(10)).await,
        "an idle keep-alive connection stays open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_are_counted_as_other() {
    let app = TestAppBuilder::new().without_worker().start().await;
    assert_eq!(app.get("/healthz").await.status, 200);
    for (method, path) in [("FOOBAR1", "/healthz"), ("FOOBAR2", "/api/v1/rates")] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let reply = app.send(app.client.request(method, app.url(path))).await;
        assert_eq!(reply.status, 405);
    }
    let metrics = app.get_text("/metrics").await;
    assert!(metrics.contains(r#"method="other""#), "{metrics}");
    assert!(!metrics.contains("FOOBAR"), "{metrics}");
    assert!(metrics.contains(r#"method="GET""#), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_failing_checks_without_their_errors() {
    let mut app = TestAppBuilder::new().without_worker().start().await;
    let base = app
        .spawn_api_with(&[("REDIS_URL", "redis://127.0.0.1:1/0")])
        .await;
    let response = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(response.status(), 503);
    let text = response.text().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(
        body["checks"],
        json!({ "postgres": "ok", "redis": "failing" }),
        "{text}"
    );
    for internal in ["refused", "os error", "127.0.0.1:1", "timed out"] {
        assert!(!text.contains(internal), "{internal} in {text}");
    }
    assert_eq!(app.get("/readyz").await.status, 200);
}

// --- Hygiene -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_cannot_be_framed_and_runs_no_inline_script() {
    let app = TestAppBuilder::new().without_worker().start().await;
    let page = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(!policy.contains("unsafe-eval"), "{policy}");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    let scripts: Vec<&str> = html.split("<script").skip(1).collect();
    assert!(!scripts.is_empty());
    for script in scripts {
        assert!(
            script.starts_with(" src=\"/docs/"),
            "an inline or foreign script: <script{script}"
        );
    }
    assert!(html.contains("/docs/init.js"));

    let init = app
        .client
        .get(app.url("/docs/init.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), 200);
    assert_eq!(
        init.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(init.text().await.unwrap().contains("SwaggerUIBundle("));
}
