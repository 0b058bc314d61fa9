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
