//! The API's HTTP server. Reads `HTTP_ADDR`, `PUBLIC_URL`,
//! `MAX_BODY_BYTES`, `REQUEST_TIMEOUT_SECS`, `HTTP_HEADER_READ_TIMEOUT_SECS`,
//! `HTTP_IDLE_TIMEOUT_SECS`, `RATES_STREAM_MAX_PER_IP`,
//! `RATES_STREAM_MAX_TOTAL`.

use std::{net::SocketAddr, time::Duration};

use super::env::{EnvReader, secs};

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub addr: SocketAddr,
    pub public_url: String,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// A client must send a request's whole head within this long (also
    /// between keep-alive requests), so a slowloris client cannot hold a
    /// connection by trickling bytes.
    pub header_read_timeout: Duration,
    /// A connection that moves no bytes either way for this long while no
    /// request is being handled is closed (a client that stopped reading
    /// its answer or its event stream).
    pub idle_timeout: Duration,
    /// Open `/rates/stream` connections per client IP (more: 429).
    pub stream_max_per_ip: usize,
    /// Open `/rates/stream` connections per API process (more: 503).
    pub stream_max_total: usize,
}

impl HttpConfig {
    pub(super) fn read(env: &mut EnvReader) -> Self {
        let addr: SocketAddr = env.parse_or(
            "HTTP_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            "a socket address such as 0.0.0.0:8080",
        );
        Self {
            addr,
            public_url: env
                .string_or("PUBLIC_URL", &format!("http://{addr}"))
                .trim_end_matches('/')
                .to_owned(),
            max_body_bytes: env.range_or("MAX_BODY_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024),
            request_timeout: secs(env.range_or("REQUEST_TIMEOUT_SECS", 30, 1, 3600)),
            header_read_timeout: secs(env.range_or("HTTP_HEADER_READ_TIMEOUT_SECS", 10, 1, 3600)),
            idle_timeout: secs(env.range_or("HTTP_IDLE_TIMEOUT_SECS", 60, 1, 86_400)),
            stream_max_per_ip: env.range_or("RATES_STREAM_MAX_PER_IP", 10, 1, 100_000),
            stream_max_total: env.range_or("RATES_STREAM_MAX_TOTAL", 1000, 1, 1_000_000),
        }
    }
}
