//! Price providers and the refresh schedule. Reads `RATE_CRYPTO_PROVIDER`,
//! `RATE_FIAT_PROVIDER`, `SIMULATED_PRICES_IN_PRODUCTION`, `BINANCE_URL`,
//! `COINGECKO_URL`, `COINGECKO_API_KEY`, `COINMARKETCAP_URL`,
//! `COINMARKETCAP_API_KEY`, `EXCHANGERATE_URL`, `EXCHANGERATE_API_KEY`,
//! `SIMULATED_SEED`, `RATE_REFRESH_CRON`, `RATE_MAX_AGE_SECS`,
//! `FIAT_MAX_AGE_SECS`, `FIAT_REFRESH_SECS`, `RATE_HTTP_TIMEOUT_MS`,
//! `RATE_HTTP_CONNECT_TIMEOUT_MS`, `RATE_HTTP_RETRIES`,
//! `PRICE_HISTORY_RETENTION_DAYS`, `RATE_CRYPTO_MAX_PER_MIN`,
//! `RATE_FIAT_MAX_PER_MIN`.

use std::time::Duration;

use secrecy::SecretString;

use super::{
    AppEnv,
    env::{EnvReader, millis, secs},
};

/// Where prices come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Simulated,
    Binance,
    CoinGecko,
    CoinMarketCap,
    ExchangeRate,
}

#[derive(Debug, Clone)]
pub struct RatesConfig {
    /// Provider of BTC, ETH, SOL.
    pub crypto_provider: ProviderKind,
    /// Provider of EUR, KZT (USD is always 1).
    pub fiat_provider: ProviderKind,
    pub binance_url: String,
    pub coingecko_url: String,
    pub coingecko_api_key: Option<SecretString>,
    pub coinmarketcap_url: String,
    pub coinmarketcap_api_key: Option<SecretString>,
    pub exchangerate_url: String,
    pub exchangerate_api_key: Option<SecretString>,
    /// Seed of the simulated walk: `SIMULATED_SEED`, or drawn at random by
    /// each process, so nobody can compute the next simulated price.
    pub simulated_seed: u64,
    /// Six-field cron expression (with seconds), in UTC.
    pub refresh_cron: String,
    /// A crypto price older than this is not used for money (422
    /// `rate_unavailable`).
    pub max_age: Duration,
    /// The same for fiat prices, whose providers update less often.
    pub fiat_max_age: Duration,
    /// Ask the fiat provider at most this often (0: every refresh).
    pub fiat_refresh_every: Duration,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Retries of a failed provider call within one refresh.
    pub retries: u32,
    /// Observations older than this go, a month's partition at a time,
    /// once the whole month is past it (`shared::rates::partitions`).
    pub history_retention_days: u32,
    /// Calls a minute to the crypto and the fiat provider across every
    /// worker process (0: no limit): the unit providers publish theirs in,
    /// per key or address, not per process.
    pub crypto_max_per_min: u32,
    pub fiat_max_per_min: u32,
}

impl RatesConfig {
    pub(super) fn read(env: &mut EnvReader, app_env: AppEnv) -> Self {
        let crypto_provider = env.choice_or(
            "RATE_CRYPTO_PROVIDER",
            ProviderKind::Simulated,
            &[
                ("simulated", ProviderKind::Simulated),
                ("binance", ProviderKind::Binance),
                ("coingecko", ProviderKind::CoinGecko),
                ("coinmarketcap", ProviderKind::CoinMarketCap),
            ],
        );
        let fiat_provider = env.choice_or(
            "RATE_FIAT_PROVIDER",
            ProviderKind::Simulated,
            &[
                ("simulated", ProviderKind::Simulated),
                ("exchangerate", ProviderKind::ExchangeRate),
            ],
        );
        refuse_simulated_prices_in_production(
            env,
            app_env,
            &[
                ("RATE_CRYPTO_PROVIDER", crypto_provider),
                ("RATE_FIAT_PROVIDER", fiat_provider),
            ],
        );
        let coinmarketcap_api_key = env.optional_secret("COINMARKETCAP_API_KEY");
        if crypto_provider == ProviderKind::CoinMarketCap && coinmarketcap_api_key.is_none() {
            env.problem(
                "COINMARKETCAP_API_KEY",
                "not set (required when RATE_CRYPTO_PROVIDER=coinmarketcap)",
            );
        }
        let refresh_cron = env.string_or("RATE_REFRESH_CRON", "* * * * * *");
        if refresh_cron.split_whitespace().count() != 6 {
            env.problem(
                "RATE_REFRESH_CRON",
                format!(
                    "invalid value {refresh_cron:?} (expected six fields with seconds, e.g. \"*/5 * * * * *\")"
                ),
            );
        }
        Self {
            crypto_provider,
            fiat_provider,
            binance_url: env.string_or("BINANCE_URL", "https://api.binance.com"),
            coingecko_url: env.string_or("COINGECKO_URL", "https://api.coingecko.com"),
            coingecko_api_key: env.optional_secret("COINGECKO_API_KEY"),
            coinmarketcap_url: env
                .string_or("COINMARKETCAP_URL", "https://pro-api.coinmarketcap.com"),
            coinmarketcap_api_key,
            exchangerate_url: env.string_or("EXCHANGERATE_URL", "https://v6.exchangerate-api.com"),
            exchangerate_api_key: env.optional_secret("EXCHANGERATE_API_KEY"),
            simulated_seed: match env.optional("SIMULATED_SEED") {
                Some(_) => env.parse_or("SIMULATED_SEED", 0, "a whole number"),
                None => rand::random(),
            },
            refresh_cron,
            max_age: secs(env.range_or("RATE_MAX_AGE_SECS", 60, 1, 7 * 24 * 3600)),
            fiat_max_age: secs(env.range_or("FIAT_MAX_AGE_SECS", 60, 1, 7 * 24 * 3600)),
            fiat_refresh_every: secs(env.range_or("FIAT_REFRESH_SECS", 0, 0, 7 * 24 * 3600)),
            request_timeout: millis(env.range_or("RATE_HTTP_TIMEOUT_MS", 2000, 50, 60_000)),
            connect_timeout: millis(env.range_or("RATE_HTTP_CONNECT_TIMEOUT_MS", 1000, 50, 60_000)),
            retries: env.range_or("RATE_HTTP_RETRIES", 2, 0, 10),
            history_retention_days: env.range_or("PRICE_HISTORY_RETENTION_DAYS", 400, 1, 36_500),
            crypto_max_per_min: env.range_or("RATE_CRYPTO_MAX_PER_MIN", 0, 0, 60_000),
            fiat_max_per_min: env.range_or("RATE_FIAT_MAX_PER_MIN", 0, 0, 60_000),
        }
    }
}

/// Production refuses the simulated price feed unless
/// `SIMULATED_PRICES_IN_PRODUCTION=true` (a demo on play money): its prices
/// are a walk that anyone who guessed the seed could compute ahead, and so
/// win every bet. One line, naming the first variable that chose it.
fn refuse_simulated_prices_in_production(
    env: &mut EnvReader,
    app_env: AppEnv,
    providers: &[(&'static str, ProviderKind)],
) {
    let allowed = env.parse_or("SIMULATED_PRICES_IN_PRODUCTION", false, "true or false");
    if app_env != AppEnv::Production || allowed {
        return;
    }
    let simulated: Vec<&'static str> = providers
        .iter()
        .filter(|(_, kind)| *kind == ProviderKind::Simulated)
        .map(|(name, _)| *name)
        .collect();
    let Some((first, others)) = simulated.split_first() else {
        return;
    };
    let also = if others.is_empty() {
        String::new()
    } else {
        format!("; {} is simulated too", others.join(", "))
    };
    env.problem(
        first,
        format!(
            "simulated is refused when APP_ENV=production (predictable prices would let anyone \
             win every bet{also}); choose a real provider, or set \
             SIMULATED_PRICES_IN_PRODUCTION=true for a demo on play money"
        ),
    );
}
