//! Scenario `rates`: `GET /api/v1/rates` under load.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::bail;
use chrono::Utc;
use shared::config::Config;

use crate::http::request_once;
use crate::support::{cleanup, free_port, load, peak_rss_kb, spawn_api, stop};

/// Starts `bourse-api` on a free port with a private Redis prefix holding
/// six cached prices, loads `GET /api/v1/rates` from this process and
/// prints throughput, latency and the API's peak RSS.
pub async fn run(config: &Config, connections: usize, seconds: u64) -> anyhow::Result<()> {
    let prefix = format!("bench-{:08x}", rand::random::<u32>());
    let (_, conn) =
        queue::connect(&config.redis, crate::support::REDIS_RETRIES).map_err(anyhow::Error::msg)?;
    let mut prices = Vec::new();
    for (symbol, price) in [
        ("USD", "1"),
        ("EUR", "1.08"),
        ("KZT", "0.0021"),
        ("BTC", "95000.5"),
        ("ETH", "3500.25"),
        ("SOL", "180.75"),
    ] {
        prices.push(shared::rates::Price {
            symbol: symbol.to_owned(),
            price_usd: price.parse()?,
            source: "bench".to_owned(),
            observed_at: Utc::now(),
        });
    }
    queue::rates::store(&conn, &prefix, &prices).await?;
    let port = free_port()?;
    let mut child = spawn_api(port, &[("REDIS_PREFIX", prefix.clone())])?;
    let pid = child.id().unwrap_or_default();
    let request =
        format!("GET /api/v1/rates HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").into_bytes();

    // Ready when the mirror lists all six prices.
    let once = format!(
        "GET /api/v1/rates HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = request_once(port, once.as_bytes())
            .await
            .map(|(_, b)| b)
            .unwrap_or_default();
        if body.matches("\"symbol\"").count() == 6 {
            break;
        }
        if Instant::now() > deadline {
            bail!("the API did not serve the cached rates: {body}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let result = load(
        port,
        connections,
        seconds,
        200,
        Arc::new(move || request.clone()),
    )
    .await?;
    let rss_kb = peak_rss_kb(pid).unwrap_or(0);
    stop(&mut child).await;
    cleanup(&conn, &prefix).await?;
    println!(
        "scenario=rates connections={connections} seconds={seconds} requests={} failures={} rate={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} api_rss_peak_mb={:.1}",
        result.latencies_us.len(),
        result.failures,
        result.latencies_us.len() as f64 / seconds as f64,
        result.ms(50.0),
        result.ms(99.0),
        result.max_ms(),
        rss_kb as f64 / 1024.0,
    );
    Ok(())
}
