//! Whether Redis answers: at start (waiting with backoff) and on every
//! `/readyz` of the API and the workers.

use std::time::Duration;

use redis::aio::ConnectionManager;
use shared::startup::{NotReachable, redact, wait_for};

/// `PING` on `conn`, giving up after `timeout`. The error is for the log,
/// not for whoever asked `/readyz`.
pub async fn ping(conn: &ConnectionManager, timeout: Duration) -> Result<(), String> {
    let mut conn = conn.clone();
    let ping = redis::cmd("PING");
    match tokio::time::timeout(timeout, ping.query_async::<String>(&mut conn)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("timed out".to_owned()),
    }
}

/// Waits for Redis to answer `PING` on `conn` (see
/// `shared::startup::wait_for`); `url` is named in the log without its
/// credentials.
pub async fn wait_until_reachable(
    conn: &ConnectionManager,
    url: &str,
    limit: Option<Duration>,
) -> Result<(), NotReachable> {
    wait_for("Redis", &redact(url), limit, || {
        let mut conn = conn.clone();
        async move {
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    })
    .await
}
