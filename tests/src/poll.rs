//! Waiting for something to become true, with a deadline: never sleep and
//! hope.

use std::{future::Future, time::Duration};

/// Polls `check` every 25 ms until it returns `Some`, or panics with
/// `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until `health_url` answers 2xx (a worker's `/healthz`).
pub async fn healthy(what: &str, health_url: &str, timeout: Duration) {
    eventually(what, timeout, || async {
        reqwest::get(health_url)
            .await
            .ok()?
            .status()
            .is_success()
            .then_some(())
    })
    .await;
}

/// The value of one Prometheus series (`name{labels}` exactly as exposed)
/// on the `/metrics` next to a worker's `health_url`; `None` while the
/// worker does not answer or does not expose it yet.
pub async fn metric(health_url: &str, series: &str) -> Option<f64> {
    let url = health_url.replace("/healthz", "/metrics");
    let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// How a series of arrivals (emails at a receiver, calls at a fake) was
/// spread in time: what a rate limit must bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    /// The most arrivals in one calendar second.
    pub busiest_second: u64,
    /// From the first arrival to the last, in seconds.
    pub span_secs: f64,
    /// Arrivals per calendar second (for a failure's message).
    pub per_second: std::collections::BTreeMap<u64, u64>,
}

pub fn spread(arrivals: &[std::time::SystemTime]) -> Spread {
    let secs = |t: &std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    };
    let mut per_second = std::collections::BTreeMap::new();
    for arrival in arrivals {
        *per_second.entry(secs(arrival) as u64).or_default() += 1;
    }
    let first = arrivals.iter().map(secs).fold(f64::MAX, f64::min);
    let last = arrivals.iter().map(secs).fold(f64::MIN, f64::max);
    Spread {
        busiest_second: per_second.values().copied().max().unwrap_or(0),
        span_secs: (last - first).max(0.0),
        per_second,
    }
}
