//! Whether Redis answers: at start (waiting with backoff) and on every
//! `/readyz` of the API and the workers.

use std::time::Duration;

use secrecy::ExposeSecret as _;
use shared::config::{RedisConfig, RedisTopology};

use crate::Conn;
use shared::startup::{NotReachable, redact, wait_for};

/// `PING` on `conn`, giving up after `timeout`. The error is for the log,
/// not for whoever asked `/readyz`.
pub async fn ping(conn: &Conn, timeout: Duration) -> Result<(), String> {
    let mut conn = conn.clone();
    let ping = redis::cmd("PING");
    match tokio::time::timeout(timeout, ping.query_async::<String>(&mut conn)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("timed out".to_owned()),
    }
}

/// Waits for Redis to answer `PING` on `conn` (see
/// `shared::startup::wait_for`); the configured address is named in the
/// log without its credentials.
pub async fn wait_until_reachable(
    conn: &Conn,
    config: &RedisConfig,
    limit: Option<Duration>,
) -> Result<(), NotReachable> {
    wait_for("Redis", &describe(config), limit, || {
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

/// Where Redis is, for logs: the server, the cluster's nodes or the
/// sentinels, without credentials.
pub fn describe(config: &RedisConfig) -> String {
    let list = |nodes: &[secrecy::SecretString]| {
        nodes
            .iter()
            .map(|node| redact(node.expose_secret()))
            .collect::<Vec<_>>()
            .join(",")
    };
    match &config.topology {
        RedisTopology::Single => redact(config.url.expose_secret()),
        RedisTopology::Cluster { nodes } => format!("cluster {}", list(nodes)),
        RedisTopology::Sentinel { nodes, master } => {
            format!("primary {master:?} of sentinels {}", list(nodes))
        }
    }
}
