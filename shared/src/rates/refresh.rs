//! One scheduled refresh: ask the providers, store what they said, and
//! queue whatever reacts to new prices. Idempotent per tick.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use rust_decimal::Decimal;
use secrecy::ExposeSecret as _;

use super::{
    providers::{
        Binance, CoinGecko, CoinMarketCap, ExchangeRate, HttpFetcher, PriceProvider, PriceRequest,
        ProviderError, Quote, Simulated,
    },
    store::{Price, latest},
};
use crate::{
    config::{ProviderKind, RatesConfig},
    currencies::{self, Kind},
    db::DbPool,
    jobs::PricesObserved,
    outbox,
    schema::{price_history, rate_refreshes},
};

/// The configured providers: one for crypto, one for fiat.
pub struct Providers {
    pub crypto: Box<dyn PriceProvider>,
    pub fiat: Box<dyn PriceProvider>,
}

fn build(
    kind: ProviderKind,
    config: &RatesConfig,
) -> Result<Box<dyn PriceProvider>, ProviderError> {
    let secret =
        |s: &Option<secrecy::SecretString>| s.as_ref().map(|k| k.expose_secret().to_owned());
    Ok(match kind {
        ProviderKind::Simulated => Box::new(Simulated::new(config.simulated_seed)),
        ProviderKind::Binance => Box::new(Binance::new(
            &config.binance_url,
            HttpFetcher::new("binance", config)?,
        )),
        ProviderKind::CoinGecko => Box::new(CoinGecko::new(
            &config.coingecko_url,
            secret(&config.coingecko_api_key),
            HttpFetcher::new("coingecko", config)?,
        )),
        ProviderKind::CoinMarketCap => Box::new(CoinMarketCap::new(
            &config.coinmarketcap_url,
            secret(&config.coinmarketcap_api_key).unwrap_or_default(),
            HttpFetcher::new("coinmarketcap", config)?,
        )),
        ProviderKind::ExchangeRate => Box::new(ExchangeRate::new(
            &config.exchangerate_url,
            secret(&config.exchangerate_api_key),
            HttpFetcher::new("exchangerate", config)?,
        )),
    })
}

impl Providers {
    pub fn from_config(config: &RatesConfig) -> Result<Self, ProviderError> {
        Ok(Self {
            crypto: build(config.crypto_provider, config)?,
            fiat: build(config.fiat_provider, config)?,
        })
    }
}

/// What a refresh did.
#[derive(Debug, Clone, Default)]
pub struct RefreshOutcome {
    /// The observations stored (empty when every provider failed).
    pub stored: Vec<Price>,
    /// Provider failures; their symbols were not updated and go stale.
    pub errors: Vec<String>,
    /// Another delivery of this tick's job already did it.
    pub already_done: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("database unavailable: {0}")]
    Pool(String),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
}

/// Refreshes prices for schedule tick `tick`: once per tick, whatever the
/// redeliveries (the `rate_refreshes` row is written in the same
/// transaction as the observations). No database connection is held while
/// providers are called. Observations are stamped with the time the
/// answers arrived. A provider failure leaves its symbols untouched (they
/// go stale and stop being used for money); the others are still stored.
pub async fn refresh(
    pool: &DbPool,
    config: &RatesConfig,
    providers: &Providers,
    tick: DateTime<Utc>,
    worker: &str,
) -> Result<RefreshOutcome, RefreshError> {
    let pool_error = |e: crate::db::PoolError| RefreshError::Pool(e.to_string());
    let (all, previous) = {
        let mut conn = pool.get().await.map_err(pool_error)?;
        let done: bool = diesel::select(diesel::dsl::exists(rate_refreshes::table.find(tick)))
            .get_result(&mut conn)
            .await?;
        if done {
            return Ok(RefreshOutcome {
                already_done: true,
                ..RefreshOutcome::default()
            });
        }
        let all = currencies::all(&mut conn).await?;
        let symbols: Vec<String> = all.iter().map(|c| c.code.clone()).collect();
        let previous = latest(&mut conn, &symbols).await?;
        (all, previous)
    };
    let previous_prices: HashMap<String, Decimal> = previous
        .iter()
        .map(|p| (p.symbol.clone(), p.price_usd))
        .collect();

    let crypto: Vec<String> = all
        .iter()
        .filter(|c| c.kind == Kind::Crypto)
        .map(|c| c.code.clone())
        .collect();
    let fiat_due = match previous
        .iter()
        .filter(|p| {
            p.symbol != "USD"
                && all
                    .iter()
                    .any(|c| c.code == p.symbol && c.kind == Kind::Fiat)
        })
        .map(|p| p.observed_at)
        .min()
    {
        Some(oldest) => {
            Utc::now() - oldest
                >= chrono::Duration::from_std(config.fiat_refresh_every).unwrap_or_default()
        }
        None => true,
    };
    let fiat: Vec<String> = if fiat_due {
        all.iter()
            .filter(|c| c.kind == Kind::Fiat && c.code != "USD")
            .map(|c| c.code.clone())
            .collect()
    } else {
        Vec::new()
    };

    let mut errors = Vec::new();
    let mut quotes: Vec<(Quote, &'static str)> = vec![(
        Quote {
            symbol: "USD".to_owned(),
            price_usd: Decimal::ONE,
        },
        "fixed",
    )];
    let (crypto_result, fiat_result) = futures::join!(
        fetch(providers.crypto.as_ref(), &crypto, tick, &previous_prices),
        fetch(providers.fiat.as_ref(), &fiat, tick, &previous_prices),
    );
    for (result, provider) in [
        (crypto_result, providers.crypto.name()),
        (fiat_result, providers.fiat.name()),
    ] {
        match result {
            Ok(found) => quotes.extend(found.into_iter().map(|q| (q, provider))),
            // A limit below the refresh rate skips most refreshes by design:
            // the prices stay as they are and age as usual, quietly.
            Err(error @ ProviderError::OverLimit { .. }) => {
                tracing::debug!(%error, "price provider skipped this refresh");
            }
            Err(error) => {
                tracing::warn!(%error, "price provider failed; its prices will go stale");
                errors.push(error.to_string());
            }
        }
    }
    let received_at = Utc::now();

    let mut conn = pool.get().await.map_err(pool_error)?;
    let mut stored: Vec<Price> = quotes
        .into_iter()
        .map(|(q, source)| Price {
            symbol: q.symbol,
            price_usd: q.price_usd,
            source: source.to_owned(),
            observed_at: received_at,
        })
        .collect();
    let error_text = (!errors.is_empty()).then(|| errors.join("; "));
    let recorded = conn
        .transaction::<Option<DateTime<Utc>>, diesel::result::Error, _>(async |conn| {
            let claimed = diesel::insert_into(rate_refreshes::table)
                .values((
                    rate_refreshes::tick.eq(tick),
                    rate_refreshes::worker.eq(worker),
                    rate_refreshes::observations
                        .eq(i32::try_from(stored.len()).unwrap_or(i32::MAX)),
                    rate_refreshes::errors.eq(&error_text),
                ))
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
            if claimed == 0 {
                return Ok(None);
            }
            // Stamped under the price lock, by the database's clock: once
            // a reader holding the lock in shared mode sees the time past
            // T, no observation stamped at or before T can still appear
            // (see `store::lock_prices`). The stamp is the receipt time
            // plus this insert's own few milliseconds.
            let stamp = super::store::lock_prices_for_writing(conn).await?;
            let rows: Vec<_> = stored
                .iter()
                .map(|p| {
                    (
                        price_history::symbol.eq(&p.symbol),
                        price_history::price_usd.eq(p.price_usd),
                        price_history::source.eq(&p.source),
                        price_history::observed_at.eq(stamp),
                        price_history::tick.eq(Some(tick)),
                    )
                })
                .collect();
            diesel::insert_into(price_history::table)
                .values(rows)
                .execute(conn)
                .await?;
            // Hooks: everything that reacts to a new price (alerts, bets
            // waiting for a price) follows from this job.
            outbox::push(
                conn,
                &PricesObserved {
                    observed_at: stamp,
                    symbols: stored.iter().map(|p| p.symbol.clone()).collect(),
                },
                None,
            )
            .await?;
            Ok(Some(stamp))
        })
        .await?;
    let Some(stamp) = recorded else {
        return Ok(RefreshOutcome {
            already_done: true,
            ..RefreshOutcome::default()
        });
    };
    for price in &mut stored {
        price.observed_at = stamp;
    }
    Ok(RefreshOutcome {
        stored,
        errors,
        already_done: false,
    })
}

async fn fetch(
    provider: &dyn PriceProvider,
    symbols: &[String],
    at: DateTime<Utc>,
    previous: &HashMap<String, Decimal>,
) -> Result<Vec<Quote>, ProviderError> {
    if symbols.is_empty() {
        return Ok(Vec::new());
    }
    provider
        .fetch(PriceRequest {
            symbols,
            at,
            previous,
        })
        .await
}
