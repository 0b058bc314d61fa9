//! The one way the API and the workers reach Redis.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret as _;
use shared::config::RedisConfig;

/// The Redis client for `REDIS_URL`: `rediss://` speaks TLS (rustls),
/// verifying the server against `REDIS_CA_FILE` when given, else the
/// system's roots.
pub fn client(config: &RedisConfig) -> Result<redis::Client, String> {
    let url = config.url.expose_secret();
    shared::tls::install_crypto_provider();
    let built = match &config.ca_file {
        Some(path) => {
            let (pem, _) =
                shared::tls::read_ca_file(path).map_err(|e| format!("REDIS_CA_FILE: {e}"))?;
            redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
        }
        None => redis::Client::open(url),
    };
    built.map_err(|e| format!("REDIS_URL: {e}"))
}

/// A client (for subscriptions, which need a connection of their own) and
/// a lazily connecting, auto-reconnecting connection for everything else:
/// a process starts even while Redis is down. Every call times out after
/// `REDIS_TIMEOUT_MS`; a failed call is retried `retries` times on a fresh
/// connection (the API retries less than the workers, so a request waits
/// less while Redis is away).
pub fn connect(
    config: &RedisConfig,
    retries: usize,
) -> Result<(redis::Client, ConnectionManager), String> {
    let client = client(config)?;
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.timeout))
        .set_response_timeout(Some(config.timeout))
        .set_number_of_retries(retries);
    let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
        .map_err(|e| format!("cannot set up the Redis connection: {e}"))?;
    Ok((client, manager))
}
