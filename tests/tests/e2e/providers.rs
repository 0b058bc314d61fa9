//! The real price providers against local fake servers that answer in each
//! provider's documented format — and with errors, 429s, timeouts, partial
//! answers and garbage.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::Utc;
use shared::{
    config::{Config, RatesConfig},
    rates::providers::{
        Binance, CoinGecko, CoinMarketCap, ExchangeRate, HttpFetcher, PriceProvider, PriceRequest,
        ProviderError, Quote,
    },
};

/// What the fake answers, in order; the last one repeats.
#[derive(Clone)]
enum Answer {
    Json(&'static str),
    Status(u16, &'static str),
    TooMany(&'static str),
    Slow(Duration),
}

struct Fake {
    url: String,
    calls: Arc<AtomicUsize>,
    seen: Arc<std::sync::Mutex<Vec<(String, HeaderMap)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn fake(answers: Vec<Answer>) -> Fake {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (counter, log) = (calls.clone(), seen.clone());
    let app = Router::new().fallback(get(move |uri: Uri, headers: HeaderMap| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        log.lock().unwrap().push((uri.to_string(), headers));
        let answer = answers.get(n).or(answers.last()).cloned().unwrap();
        async move {
            match answer {
                Answer::Json(body) => {
                    ([("content-type", "application/json")], body).into_response()
                }
                Answer::Status(code, body) => {
                    (StatusCode::from_u16(code).unwrap(), body).into_response()
                }
                Answer::TooMany(retry_after) => (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", retry_after)],
                    "slow down",
                )
                    .into_response(),
                Answer::Slow(delay) => {
                    tokio::time::sleep(delay).await;
                    Response::new("{}".into())
                }
            }
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Fake {
        url,
        calls,
        seen,
        task,
    }
}

fn config() -> RatesConfig {
    let mut settings = HashMap::new();
    settings.insert("RATE_HTTP_TIMEOUT_MS".to_owned(), "300".to_owned());
    settings.insert("RATE_HTTP_RETRIES".to_owned(), "2".to_owned());
    Config::from_map(settings).unwrap().rates
}

fn symbols(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

async fn ask(provider: &dyn PriceProvider, wanted: &[&str]) -> Result<Vec<Quote>, ProviderError> {
    let symbols = symbols(wanted);
    let previous = HashMap::new();
    provider
        .fetch(PriceRequest {
            symbols: &symbols,
            at: Utc::now(),
            previous: &previous,
        })
        .await
}

fn price(quotes: &[Quote], symbol: &str) -> String {
    quotes
        .iter()
        .find(|q| q.symbol == symbol)
        .unwrap()
        .price_usd
        .to_string()
}

fn binance(url: &str) -> Binance {
    Binance::new(url, HttpFetcher::new("binance", &config()).unwrap())
}

const BINANCE_OK: &str = r#"[{"symbol":"BTCUSDT","price":"95123.45000000"},{"symbol":"ETHUSDT","price":"3456.78000000"},{"symbol":"SOLUSDT","price":"181.22000000"}]"#;

#[tokio::test]
async fn binance_reads_ticker_prices() {
    let server = fake(vec![Answer::Json(BINANCE_OK)]).await;
    let quotes = ask(&binance(&server.url), &["BTC", "ETH", "SOL"])
        .await
        .unwrap();
    assert_eq!(price(&quotes, "BTC"), "95123.45");
    assert_eq!(price(&quotes, "SOL"), "181.22");
    let (uri, _) = server.seen.lock().unwrap()[0].clone();
    assert!(
        uri.starts_with("/api/v3/ticker/price?symbols=%5B%22BTCUSDT%22%2C%22ETHUSDT%22"),
        "{uri}"
    );
}

#[tokio::test]
async fn server_errors_and_timeouts_are_retried_then_given_up() {
    let server = fake(vec![
        Answer::Status(502, "bad gateway"),
        Answer::Slow(Duration::from_secs(2)),
        Answer::Json(BINANCE_OK),
    ])
    .await;
    let quotes = ask(&binance(&server.url), &["BTC"]).await.unwrap();
    assert_eq!(price(&quotes, "BTC"), "95123.45");
    assert_eq!(
        server.calls.load(Ordering::SeqCst),
        3,
        "502, timeout, then success"
    );

    let down = fake(vec![Answer::Status(503, "down")]).await;
    let error = ask(&binance(&down.url), &["BTC"]).await.unwrap_err();
    assert!(
        matches!(error, ProviderError::Unavailable { .. }),
        "{error}"
    );
    assert_eq!(
        down.calls.load(Ordering::SeqCst),
        3,
        "one call and two retries"
    );

    let slow = fake(vec![Answer::Slow(Duration::from_secs(2))]).await;
    let error = ask(&binance(&slow.url), &["BTC"]).await.unwrap_err();
    assert!(error.to_string().contains("timed out"), "{error}");
}

#[tokio::test]
async fn a_429_is_respected_until_retry_after_passes() {
    let server = fake(vec![Answer::TooMany("1"), Answer::Json(BINANCE_OK)]).await;
    let provider = binance(&server.url);
    let error = ask(&provider, &["BTC"]).await.unwrap_err();
    assert_eq!(
        error,
        ProviderError::RateLimited {
            provider: "binance",
            retry_after_secs: 1
        }
    );
    // Inside the cool-down no call is made at all.
    let error = ask(&provider, &["BTC"]).await.unwrap_err();
    assert!(
        matches!(error, ProviderError::CoolingDown { .. }),
        "{error}"
    );
    assert_eq!(server.calls.load(Ordering::SeqCst), 1);
    harness::eventually("the cool-down to end", Duration::from_secs(5), || async {
        ask(&provider, &["BTC"]).await.ok()
    })
    .await;
    assert_eq!(server.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn garbage_partial_and_impossible_answers_are_rejected_whole() {
    let cases = [
        ("not json", Answer::Json("<html>oops</html>")),
        (
            "wrong shape",
            Answer::Json(r#"{"code":-1121,"msg":"Invalid symbol."}"#),
        ),
        (
            "partial",
            Answer::Json(r#"[{"symbol":"BTCUSDT","price":"95000"}]"#),
        ),
        (
            "zero price",
            Answer::Json(r#"[{"symbol":"BTCUSDT","price":"0"},{"symbol":"ETHUSDT","price":"1"}]"#),
        ),
        (
            "not a number",
            Answer::Json(
                r#"[{"symbol":"BTCUSDT","price":"lots"},{"symbol":"ETHUSDT","price":"1"}]"#,
            ),
        ),
        (
            "client error",
            Answer::Status(400, r#"{"code":-1100,"msg":"Illegal characters"}"#),
        ),
    ];
    for (what, answer) in cases {
        let server = fake(vec![answer]).await;
        let error = ask(&binance(&server.url), &["BTC", "ETH"])
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                ProviderError::Malformed { .. } | ProviderError::Unavailable { .. }
            ),
            "{what}: {error}"
        );
        assert_eq!(
            server.calls.load(Ordering::SeqCst),
            1,
            "{what}: not retried"
        );
    }
}

#[tokio::test]
async fn coingecko_reads_simple_prices_and_sends_the_key() {
    let server = fake(vec![Answer::Json(
        r#"{"bitcoin":{"usd":95001.5},"ethereum":{"usd":3456.7},"solana":{"usd":2.1e2}}"#,
    )])
    .await;
    let provider = CoinGecko::new(
        &server.url,
        Some("demo-key".into()),
        HttpFetcher::new("coingecko", &config()).unwrap(),
    );
    let quotes = ask(&provider, &["BTC", "ETH", "SOL"]).await.unwrap();
    assert_eq!(price(&quotes, "BTC"), "95001.5");
    assert_eq!(price(&quotes, "SOL"), "210");
    let (uri, headers) = server.seen.lock().unwrap()[0].clone();
    assert_eq!(
        uri,
        "/api/v3/simple/price?ids=bitcoin,ethereum,solana&vs_currencies=usd"
    );
    assert_eq!(headers["x-cg-demo-api-key"], "demo-key");

    let partial = fake(vec![Answer::Json(r#"{"bitcoin":{"usd":95001.5}}"#)]).await;
    let provider = CoinGecko::new(
        &partial.url,
        None,
        HttpFetcher::new("coingecko", &config()).unwrap(),
    );
    assert!(matches!(
        ask(&provider, &["BTC", "ETH"]).await,
        Err(ProviderError::Malformed { .. })
    ));
}

#[tokio::test]
async fn coinmarketcap_reads_quotes_with_the_api_key() {
    let v2 = r#"{"status":{"error_code":0,"error_message":null},"data":{"BTC":[{"symbol":"BTC","quote":{"USD":{"price":95002.123456}}}],"ETH":[{"symbol":"ETH","quote":{"USD":{"price":3457.1}}}]}}"#;
    let server = fake(vec![Answer::Json(v2)]).await;
    let provider = CoinMarketCap::new(
        &server.url,
        "cmc-key".into(),
        HttpFetcher::new("coinmarketcap", &config()).unwrap(),
    );
    let quotes = ask(&provider, &["BTC", "ETH"]).await.unwrap();
    assert_eq!(price(&quotes, "BTC"), "95002.123456");
    let (uri, headers) = server.seen.lock().unwrap()[0].clone();
    assert_eq!(
        uri,
        "/v2/cryptocurrency/quotes/latest?symbol=BTC,ETH&convert=USD"
    );
    assert_eq!(headers["x-cmc_pro_api_key"], "cmc-key");

    let refused = fake(vec![Answer::Json(
        r#"{"status":{"error_code":1002,"error_message":"API key missing."}}"#,
    )])
    .await;
    let provider = CoinMarketCap::new(
        &refused.url,
        "bad".into(),
        HttpFetcher::new("coinmarketcap", &config()).unwrap(),
    );
    let error = ask(&provider, &["BTC"]).await.unwrap_err();
    assert!(error.to_string().contains("1002"), "{error}");
}

#[tokio::test]
async fn exchangerate_inverts_units_per_dollar() {
    let server = fake(vec![Answer::Json(
        r#"{"result":"success","base_code":"USD","conversion_rates":{"USD":1,"EUR":0.8,"KZT":500.0}}"#,
    )])
    .await;
    let provider = ExchangeRate::new(
        &server.url,
        Some("k".into()),
        HttpFetcher::new("exchangerate", &config()).unwrap(),
    );
    let quotes = ask(&provider, &["EUR", "KZT"]).await.unwrap();
    assert_eq!(price(&quotes, "EUR"), "1.25");
    assert_eq!(price(&quotes, "KZT"), "0.002");
    assert_eq!(server.seen.lock().unwrap()[0].0, "/v6/k/latest/USD");
    let failed = fake(vec![Answer::Json(
        r#"{"result":"error","error-type":"invalid-key"}"#,
    )])
    .await;
    let provider = ExchangeRate::new(
        &failed.url,
        Some("k".into()),
        HttpFetcher::new("exchangerate", &config()).unwrap(),
    );
    assert!(matches!(
        ask(&provider, &["EUR"]).await,
        Err(ProviderError::Malformed { .. })
    ));
}
