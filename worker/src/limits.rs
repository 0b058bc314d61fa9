//! The cluster-wide limits on calls to outside services (PRODUCT.md §10),
//! built from configuration: SMTP sends (`SMTP_MAX_PER_SEC`), exchange
//! orders (`EXCHANGE_MAX_PER_SEC`), webhook deliveries
//! (`WEBHOOK_MAX_PER_SEC`) and price-provider calls
//! (`RATE_CRYPTO_MAX_PER_MIN`, `RATE_FIAT_MAX_PER_MIN`). Each is one GCRA in
//! Redis ([`queue::limit`]) that every worker process shares.
//!
//! Jobs take their turn before the call ([`crate::jobs::turn`]): over the
//! limit they wait, or run later as a copy, without failing. A price
//! refresh is not a queued job but a schedule tick that is useless late, so
//! a provider over its limit is skipped for that tick instead
//! ([`LimitedProvider`]); the next tick asks again.

use std::time::Duration;

use futures::future::BoxFuture;
use queue::limit::RateLimit;
use shared::{
    config::Config,
    rates::{
        Providers,
        providers::{PriceProvider, PriceRequest, ProviderError, Quote},
    },
};

/// How long a refresh waits for a provider's turn before skipping it:
/// short next to the one-second refresh, so a skipped tick ends on time.
const PROVIDER_TURN_WAIT: Duration = Duration::from_millis(250);

/// The limits jobs take turns under; `None` where none is configured.
#[derive(Clone, Default)]
pub struct Limits {
    pub smtp: Option<RateLimit>,
    pub exchange: Option<RateLimit>,
    /// Webhook deliveries (`WEBHOOK_MAX_PER_SEC`), all endpoints together.
    pub webhook: Option<RateLimit>,
}

impl Limits {
    pub fn from_config(conn: &queue::Conn, config: &Config) -> Self {
        let per_second = |name: &str, per_sec: u32, burst: u32| {
            (per_sec > 0)
                .then(|| RateLimit::new(conn.clone(), &config.redis.prefix, name, per_sec, burst))
        };
        Self {
            smtp: per_second("smtp", config.mail.smtp_max_per_sec, config.mail.smtp_burst),
            exchange: per_second(
                "exchange",
                config.trading.exchange_max_per_sec,
                config.trading.exchange_burst,
            ),
            webhook: per_second(
                "webhook",
                config.webhooks.max_per_sec,
                config.webhooks.burst,
            ),
        }
    }
}

/// `providers`, each behind its configured limit, if any. The limit is
/// named for the provider (`limit:provider:coingecko`): a provider's
/// published limit is per key or address, whichever role asks.
pub fn limit_providers(providers: Providers, conn: &queue::Conn, config: &Config) -> Providers {
    let rates = &config.rates;
    let wrap = |inner: Box<dyn PriceProvider>, per_minute: u32| -> Box<dyn PriceProvider> {
        if per_minute == 0 {
            return inner;
        }
        let name = format!("provider:{}", inner.name());
        Box::new(LimitedProvider {
            limit: RateLimit::per_minute(conn.clone(), &config.redis.prefix, &name, per_minute, 1),
            inner,
        })
    };
    Providers {
        crypto: wrap(providers.crypto, rates.crypto_max_per_min),
        fiat: wrap(providers.fiat, rates.fiat_max_per_min),
    }
}

/// A provider called only in its turn under a cluster-wide limit.
pub struct LimitedProvider {
    inner: Box<dyn PriceProvider>,
    limit: RateLimit,
}

impl PriceProvider for LimitedProvider {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn fetch<'a>(
        &'a self,
        request: PriceRequest<'a>,
    ) -> BoxFuture<'a, Result<Vec<Quote>, ProviderError>> {
        Box::pin(async move {
            // Bounded even when Redis hangs: prices matter more than the
            // courtesy, and with Redis unreachable the refresh must still
            // run (see `refresh_rates`), so the call then goes ahead.
            let turn = tokio::time::timeout(
                PROVIDER_TURN_WAIT * 2,
                self.limit.take_within(PROVIDER_TURN_WAIT),
            )
            .await;
            match turn {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    return Err(ProviderError::OverLimit {
                        provider: self.inner.name(),
                    });
                }
                Ok(Err(error)) => {
                    tracing::debug!(%error, "cannot reach the provider's rate limit in Redis; calling anyway");
                }
                Err(_) => {
                    tracing::debug!(
                        "the provider's rate limit in Redis did not answer; calling anyway"
                    );
                }
            }
            self.inner.fetch(request).await
        })
    }
}
