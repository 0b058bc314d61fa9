//! Market data through the API: latest prices, conversion quotes, history,
//! the live stream, staleness, and bad input.

use std::{str::FromStr, time::Duration};

use diesel_async::RunQueryDsl;
use futures::StreamExt;
use harness::{TestApp, TestAppBuilder, eventually};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

/// Waits until `/rates` lists every currency, fresh, and returns them.
async fn fresh_rates(app: &TestApp) -> Vec<Value> {
    eventually("fresh prices for every currency", WAIT, || async {
        let reply = app.get("/api/v1/rates").await;
        let items = reply.body["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 6 && items.iter().all(|i| i["fresh"] == true)).then_some(items)
    })
    .await
}

fn price_of(items: &[Value], symbol: &str) -> Decimal {
    let item = items.iter().find(|i| i["symbol"] == symbol).unwrap();
    Decimal::from_str(item["price_usd"].as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_prices_and_quotes_agree_with_each_other() {
    let app = TestAppBuilder::new().start().await;
    let items = fresh_rates(&app).await;
    assert_eq!(price_of(&items, "USD"), Decimal::ONE);
    for item in &items {
        assert!(item["as_of"].is_string() && item["source"].is_string());
    }
    assert_eq!(
        items.iter().find(|i| i["symbol"] == "BTC").unwrap()["source"],
        "simulated"
    );

    // A quote uses the cached prices: compare at a moment both agree on.
    let (quote, items) = eventually("a quote at the cached prices", WAIT, || async {
        let before = app.get("/api/v1/rates").await.body["items"]
            .as_array()
            .cloned()?;
        let quote = app
            .get("/api/v1/rates/convert?from=usd&to=BTC&amount=1234.56")
            .await;
        let after = app.get("/api/v1/rates").await.body["items"]
            .as_array()
            .cloned()?;
        (quote.status == 200 && before == after).then_some((quote.body, after))
    })
    .await;
    let expected = (Decimal::from_str("1234.56").unwrap() * price_of(&items, "USD")
        / price_of(&items, "BTC"))
    .round_dp_with_strategy(8, RoundingStrategy::ToZero);
    assert_eq!(quote["converted"], expected.to_string());
    assert_eq!(
        (quote["from"].clone(), quote["to"].clone()),
        (Value::from("USD"), Value::from("BTC"))
    );
    let btc = items.iter().find(|i| i["symbol"] == "BTC").unwrap();
    assert_eq!(quote["as_of"], btc["as_of"]);
    let rate = Decimal::from_str(quote["rate"].as_str().unwrap()).unwrap();
    assert_eq!(
        rate,
        (Decimal::ONE / price_of(&items, "BTC"))
            .round_dp(18)
            .normalize()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_and_down_samples() {
    let app = TestAppBuilder::new().start().await;
    eventually("five BTC observations", WAIT, || async {
        let reply = app.get("/api/v1/rates/BTC/history?limit=5").await;
        (reply.body["items"].as_array().map_or(0, Vec::len) == 5).then_some(())
    })
    .await;
    let first = app.get("/api/v1/rates/btc/history?limit=2").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["symbol"], "BTC");
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app
        .get(&format!(
            "/api/v1/rates/BTC/history?limit=2&cursor={cursor}"
        ))
        .await;
    let times: Vec<&str> = first.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second.body["items"].as_array().unwrap())
        .map(|p| p["as_of"].as_str().unwrap())
        .collect();
    assert_eq!(times.len(), 4);
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "oldest first, no overlap: {times:?}"
    );

    let sampled = app
        .get("/api/v1/rates/BTC/history?interval=3600&limit=100")
        .await;
    assert_eq!(
        sampled.body["items"].as_array().unwrap().len(),
        1,
        "one point per hour bucket"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rate_requests_are_400_or_404_with_clear_codes() {
    let app = TestAppBuilder::new().without_worker().start().await;
    let cases = [
        ("/api/v1/rates/DOGE/history", 404, "not_found", None),
        (
            "/api/v1/rates/BTC/history?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            400,
            "validation_failed",
            Some("from"),
        ),
        (
            "/api/v1/rates/BTC/history?from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            400,
            "validation_failed",
            Some("to"),
        ),
        (
            "/api/v1/rates/BTC/history?from=yesterday",
            400,
            "validation_failed",
            Some("from"),
        ),
        (
            "/api/v1/rates/BTC/history?limit=0",
            400,
            "validation_failed",
            Some("limit"),
        ),
        (
            "/api/v1/rates/BTC/history?limit=1000",
            400,
            "validation_failed",
            Some("limit"),
        ),
        (
            "/api/v1/rates/BTC/history?interval=0",
            400,
            "validation_failed",
            Some("interval"),
        ),
        (
            "/api/v1/rates/BTC/history?cursor=garbage!",
            400,
            "validation_failed",
            Some("cursor"),
        ),
        (
            "/api/v1/rates/BTC/history?limit=ten",
            400,
            "validation_failed",
            None,
        ),
        (
            "/api/v1/rates/convert?from=USD&to=DOGE&amount=1",
            400,
            "validation_failed",
            Some("to"),
        ),
        (
            "/api/v1/rates/convert?from=USD&to=BTC",
            400,
            "validation_failed",
            Some("amount"),
        ),
        (
            "/api/v1/rates/convert?from=USD&to=BTC&amount=-5",
            400,
            "validation_failed",
            Some("amount"),
        ),
        (
            "/api/v1/rates/convert?from=USD&to=BTC&amount=0",
            400,
            "validation_failed",
            Some("amount"),
        ),
        (
            "/api/v1/rates/convert?from=USD&to=BTC&amount=1.001",
            400,
            "validation_failed",
            Some("amount"),
        ),
        (
            "/api/v1/rates/convert?from=USD&to=BTC&amount=1e9",
            400,
            "validation_failed",
            Some("amount"),
        ),
        (
            "/api/v1/rates/convert?from=USD&to=BTC&amount=99999999999999999999",
            400,
            "validation_failed",
            Some("amount"),
        ),
    ];
    for (path, status, code, field) in cases {
        let reply = app.get(path).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.body);
        assert_eq!(reply.body["code"], code, "{path}");
        if let Some(field) = field {
            assert!(
                reply.body["errors"][field].is_string(),
                "{path}: {}",
                reply.body
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_provider_fails_prices_go_stale_and_money_is_refused() {
    // Crypto comes from a "Binance" that always fails; fiat stays simulated.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let app = TestAppBuilder::new()
        .env("RATE_CRYPTO_PROVIDER", "binance")
        .env("BINANCE_URL", &dead_url)
        .env("RATE_MAX_AGE_SECS", 2)
        .env("RATE_HTTP_RETRIES", 0)
        .start()
        .await;
    // A BTC price from before the outage.
    let mut conn = app.conn().await;
    diesel::sql_query(
        "INSERT INTO price_history (symbol, price_usd, source, observed_at) VALUES ('BTC', 90000, 'binance', now() - interval '5 seconds')",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    // Once USD has its (fixed) price, the quote fails on BTC alone.
    let refused = eventually("the quote to be refused for BTC", WAIT, || async {
        let reply = app
            .get("/api/v1/rates/convert?from=USD&to=BTC&amount=100")
            .await;
        let about_btc = reply.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("for BTC");
        (reply.status == 422 && about_btc).then_some(reply)
    })
    .await;
    assert_eq!(refused.body["code"], "rate_unavailable");
    // Fiat still works: the fiat provider is fine.
    let fiat = eventually("a fiat quote", WAIT, || async {
        let reply = app
            .get("/api/v1/rates/convert?from=USD&to=EUR&amount=100")
            .await;
        (reply.status == 200).then_some(reply)
    })
    .await;
    assert!(fiat.body["converted"].is_string());
    // The list says so too.
    let listed = eventually("BTC listed as stale", WAIT, || async {
        let items = app.get("/api/v1/rates").await.body["items"]
            .as_array()
            .cloned()?;
        let btc = items.into_iter().find(|i| i["symbol"] == "BTC")?;
        (btc["fresh"] == false).then_some(btc)
    })
    .await;
    assert_eq!(listed["price_usd"], "90000");
}

async fn next_event(lines: &mut (impl futures::Stream<Item = String> + Unpin)) -> Value {
    loop {
        let line = tokio::time::timeout(WAIT, lines.next())
            .await
            .expect("an event in time")
            .expect("stream open");
        if let Some(data) = line.strip_prefix("data: ") {
            return serde_json::from_str(data).unwrap();
        }
    }
}

fn sse_lines(response: reqwest::Response) -> impl futures::Stream<Item = String> + Unpin {
    Box::pin(
        response
            .bytes_stream()
            .map(|chunk| String::from_utf8_lossy(&chunk.unwrap()).into_owned())
            .flat_map(|text| {
                futures::stream::iter(text.lines().map(str::to_owned).collect::<Vec<_>>())
            }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_delivers_every_refresh_to_every_client_of_every_api_process() {
    let mut app = TestAppBuilder::new().start().await;
    fresh_rates(&app).await;
    let other_api = app.spawn_api().await;
    let mut clients = Vec::new();
    for base in [app.base_url.clone(), app.base_url.clone(), other_api] {
        let response = app
            .client
            .get(format!("{base}/api/v1/rates/stream"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        clients.push(sse_lines(response));
    }
    let mut seen = Vec::new();
    for lines in &mut clients {
        // The current prices first (the second API may still be loading)...
        let _snapshot = next_event(lines).await;
        // ...then each refresh as it happens.
        let update = next_event(lines).await;
        let update = update.as_array().unwrap().clone();
        assert_eq!(update.len(), 6);
        seen.push(update);
    }
    // Every client saw real, current observations.
    for update in &seen {
        assert!(
            update
                .iter()
                .all(|r| r["price_usd"].is_string() && r["as_of"].is_string())
        );
    }
}

/// `price_history` is partitioned by month: the hourly purge
/// (`PURGE_CRON`, every second here) makes the coming months' partitions
/// and drops the months wholly older than `PRICE_HISTORY_RETENTION_DAYS`,
/// and the price in force at a time is found across partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_months_of_price_history_are_dropped_whole_and_prices_in_force_still_found() {
    let app = TestAppBuilder::new()
        .env("RATE_REFRESH_CRON", "0 0 0 1 1 *")
        .env("PURGE_CRON", "* * * * * *")
        .env("PRICE_HISTORY_RETENTION_DAYS", 400)
        .start()
        .await;
    let mut conn = app.conn().await;
    // A month 500 days back gets a partition of its own (as a database
    // that has run that long has), with an observation in it; another
    // observation is 100 days old, inside the retention.
    for sql in [
        "SELECT price_history_make_partitions(now() - interval '500 days', now() - interval '500 days')",
        "SELECT price_history_make_partitions(now() - interval '100 days', now())",
        "INSERT INTO price_history (symbol, price_usd, source, observed_at)
         VALUES ('BTC', 11, 'test', now() - interval '500 days'),
                ('BTC', 22, 'test', now() - interval '100 days'),
                ('BTC', 33, 'test', now() - interval '1 minute')",
    ] {
        diesel::sql_query(sql).execute(&mut conn).await.unwrap();
    }
    let old_partition = "to_char(now() - interval '500 days', '\"price_history_p\"YYYYMM')";
    let partition_of = |age: &str| {
        format!(
            "SELECT count(*) AS n FROM price_history WHERE price_usd = {age} AND tableoid <> 'price_history_default'::regclass"
        )
    };
    assert_eq!(
        app.count(&partition_of("11")).await,
        1,
        "the old row sits in its month's partition"
    );
    eventually("the old month dropped by the purge", WAIT, || async {
        (app.count(&format!(
            "SELECT count(*) AS n FROM pg_class WHERE relname = {old_partition}"
        ))
        .await
            == 0)
            .then_some(())
    })
    .await;
    assert_eq!(
        app.count("SELECT count(*) AS n FROM price_history WHERE price_usd = 11")
            .await,
        0
    );
    assert_eq!(
        app.count(&partition_of("22")).await,
        1,
        "inside the retention: kept"
    );
    // The next two months exist before any row needs them.
    assert_eq!(
        app.count(
            "SELECT count(*) AS n FROM pg_class WHERE relname IN (
                 to_char(now() + interval '1 month', '\"price_history_p\"YYYYMM'),
                 to_char(now() + interval '2 months', '\"price_history_p\"YYYYMM'))"
        )
        .await,
        2
    );
    // The price in force now, and 50 days ago, across the partitions.
    let now = shared::rates::price_at(&mut conn, "BTC", chrono::Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.price_usd, Decimal::from(33));
    let then = shared::rates::price_at(
        &mut conn,
        "BTC",
        chrono::Utc::now() - chrono::Duration::days(50),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(then.price_usd, Decimal::from(22));
}

/// A stand-in for Binance's ticker that notes when each call arrived.
async fn counting_binance() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<std::time::SystemTime>>>,
) {
    use axum::{Router, routing::get};
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = calls.clone();
    let app = Router::new().route(
        "/api/v3/ticker/price",
        get(move || {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(std::time::SystemTime::now());
                axum::Json(serde_json::json!([
                    { "symbol": "BTCUSDT", "price": "100.00" },
                    { "symbol": "ETHUSDT", "price": "3000.00" },
                    { "symbol": "SOLUSDT", "price": "150.00" },
                ]))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, calls)
}

/// Price-provider calls obey one limit across every worker process
/// (`RATE_CRYPTO_MAX_PER_MIN`, PRODUCT.md §10): Binance's limit is per IP,
/// not per process. Refreshes run every second, on whichever of three
/// processes wins each tick; the provider is called once every 3 s, and the
/// refreshes in between skip it quietly (no error recorded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_share_one_price_provider_rate_limit() {
    const CALLS: usize = 5;
    let (url, calls) = counting_binance().await;
    let app = TestAppBuilder::new()
        .without_worker()
        .env("RATE_CRYPTO_PROVIDER", "binance")
        .env("BINANCE_URL", &url)
        .env("RATE_REFRESH_CRON", "* * * * * *")
        .env("RATE_CRYPTO_MAX_PER_MIN", 20)
        .env("RATE_HTTP_RETRIES", 0)
        .start()
        .await;
    let _workers = harness::process::WorkerProcess::spawn_healthy(
        &app.settings,
        &["prices-a", "prices-b", "prices-c"],
        &["--queues", "rate_refresh"],
    )
    .await;
    let arrivals = eventually(
        "five calls to the provider",
        Duration::from_secs(60),
        || async {
            let arrivals = calls.lock().unwrap().clone();
            (arrivals.len() >= CALLS).then_some(arrivals)
        },
    )
    .await;
    // One call every 3 s, whichever process made it (the limit is judged
    // on the Redis server's clock; a little slack for the network).
    for pair in arrivals.windows(2) {
        let gap = pair[1].duration_since(pair[0]).unwrap_or_default();
        assert!(
            gap >= Duration::from_millis(2700),
            "calls {gap:?} apart: {arrivals:?}"
        );
    }
    // Meanwhile every tick refreshed, and none recorded a failure.
    let ticks = app.count("SELECT count(*) AS n FROM rate_refreshes").await;
    let failed = app
        .count("SELECT count(*) AS n FROM rate_refreshes WHERE errors IS NOT NULL")
        .await;
    assert!(
        ticks as usize >= 2 * CALLS,
        "{ticks} refreshes for {CALLS} calls"
    );
    assert_eq!(failed, 0);
    // Each call's answer was stored once.
    let stored = app
        .count(
            "SELECT count(*) AS n FROM price_history WHERE symbol = 'BTC' AND source = 'binance'",
        )
        .await;
    let made = calls.lock().unwrap().len() as i64;
    assert!(
        stored >= CALLS as i64 && stored <= made,
        "{stored} stored, {made} calls"
    );
    // More than one process made the calls: the limit is shared, not each
    // process's own (which would allow three calls every 3 s).
    let refreshers = app
        .count("SELECT count(DISTINCT worker) AS n FROM rate_refreshes")
        .await;
    assert!(refreshers >= 2, "only {refreshers} process refreshed");
}
