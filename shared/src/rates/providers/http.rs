//! Outside calls: timeouts, a few retries with backoff for transient
//! failures, and `429 Too Many Requests` honoured (no call before
//! `Retry-After` has passed).

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use reqwest::{StatusCode, header};

use super::ProviderError;
use crate::config::RatesConfig;

/// A reqwest client plus one provider's retry policy and 429 cool-down.
pub struct HttpFetcher {
    provider: &'static str,
    client: reqwest::Client,
    retries: u32,
    backoff: Duration,
    cooldown_until: Mutex<Option<Instant>>,
}

/// The longest `Retry-After` we honour; a larger one is clamped.
const MAX_COOLDOWN: Duration = Duration::from_secs(600);

fn retry_after(headers: &header::HeaderMap) -> Duration {
    let secs = headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.trim().parse::<u64>().ok().or_else(|| {
                chrono::DateTime::parse_from_rfc2822(v.trim())
                    .ok()
                    .map(|at| {
                        u64::try_from((at.to_utc() - chrono::Utc::now()).num_seconds()).unwrap_or(0)
                    })
            })
        })
        .unwrap_or(60);
    Duration::from_secs(secs.max(1)).min(MAX_COOLDOWN)
}

impl HttpFetcher {
    pub fn new(provider: &'static str, config: &RatesConfig) -> Result<Self, ProviderError> {
        crate::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent("bourse/0.1 (+rates)")
            .build()
            .map_err(|e| ProviderError::Config {
                provider,
                reason: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Self {
            provider,
            client,
            retries: config.retries,
            backoff: Duration::from_millis(100),
            cooldown_until: Mutex::new(None),
        })
    }

    fn cooling_down(&self) -> Option<Duration> {
        let guard = self
            .cooldown_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.and_then(|until| until.checked_duration_since(Instant::now()))
    }

    fn cool_down(&self, wait: Duration) {
        let mut guard = self
            .cooldown_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard = Some(Instant::now() + wait);
    }

    /// GETs `url` (with `headers`) and parses JSON, retrying transient
    /// failures. A 4xx other than 429 is not retried.
    pub async fn get_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<serde_json::Value, ProviderError> {
        let provider = self.provider;
        if let Some(remaining) = self.cooling_down() {
            return Err(ProviderError::CoolingDown {
                provider,
                remaining_secs: remaining.as_secs().max(1),
            });
        }
        let mut last_error = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                tokio::time::sleep(self.backoff * 2u32.pow(attempt - 1)).await;
            }
            let mut request = self.client.get(url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(error) => {
                    last_error = if error.is_timeout() {
                        "timed out".to_owned()
                    } else {
                        error.to_string()
                    };
                    continue;
                }
            };
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait = retry_after(response.headers());
                self.cool_down(wait);
                return Err(ProviderError::RateLimited {
                    provider,
                    retry_after_secs: wait.as_secs(),
                });
            }
            if status.is_server_error() {
                last_error = format!("HTTP {status}");
                continue;
            }
            let body = match response.bytes().await {
                Ok(body) => body,
                Err(error) => {
                    last_error = format!("reading the body failed: {error}");
                    continue;
                }
            };
            if !status.is_success() {
                let excerpt: String = String::from_utf8_lossy(&body).chars().take(200).collect();
                return Err(ProviderError::Unavailable {
                    provider,
                    reason: format!("HTTP {status}: {excerpt}"),
                });
            }
            return serde_json::from_slice(&body).map_err(|e| ProviderError::Malformed {
                provider,
                reason: format!("not JSON: {e}"),
            });
        }
        Err(ProviderError::Unavailable {
            provider,
            reason: format!("{last_error} (after {} attempts)", self.retries + 1),
        })
    }
}
