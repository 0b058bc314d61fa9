//! Configuration for every Bourse process, read from environment variables
//! (and an optional `.env` file). Every setting has a local default except
//! production secrets; `.env.example` documents each variable and README's
//! configuration table explains it (both are checked against
//! [`Config::variables`]).
//!
//! One module per concern, each reading its own variables (listed in its
//! doc) through the [`EnvReader`], which collects every problem at once.
//! This module reads `APP_ENV`, `LOG_FORMAT` and `STARTUP_WAIT_SECS`.

mod alerts;
mod auth;
mod bets;
mod database;
mod env;
mod fees;
mod http;
mod jobs;
mod mail;
mod rates;
mod redis;
mod telemetry;
mod trading;
mod webhooks;
mod worker;

use std::{collections::HashMap, time::Duration};

pub use alerts::AlertsConfig;
pub use auth::{AuthConfig, Limit, RateLimits};
pub use bets::BetsConfig;
pub use database::{DatabaseConfig, Pooler};
use env::secs;
pub use env::{ConfigErrors, ConfigProblem, EnvReader, Source};
pub use fees::FeesConfig;
pub use http::HttpConfig;
pub use jobs::{JobsConfig, OutboxConfig};
pub use mail::{MailConfig, MailTransportKind, SmtpTls};
pub use rates::{ProviderKind, RatesConfig};
pub use redis::{RedisConfig, RedisTopology};
pub use telemetry::TelemetryConfig;
pub use trading::{ExchangeKind, TradingConfig};
pub use webhooks::WebhooksConfig;
pub use worker::WorkerConfig;

/// Local development versus production: production refuses well-known
/// default secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Local,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub env: AppEnv,
    pub log_format: LogFormat,
    pub telemetry: TelemetryConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub http: HttpConfig,
    pub auth: AuthConfig,
    pub worker: WorkerConfig,
    pub jobs: JobsConfig,
    pub outbox: OutboxConfig,
    pub mail: MailConfig,
    pub rates: RatesConfig,
    pub trading: TradingConfig,
    pub bets: BetsConfig,
    pub alerts: AlertsConfig,
    pub fees: FeesConfig,
    pub webhooks: WebhooksConfig,
    /// How long a process waits at start for PostgreSQL and Redis (and the
    /// worker for the migrations) before giving up; `None` waits forever.
    pub startup_wait: Option<Duration>,
}

impl Config {
    /// Reads the process environment after loading `.env` if present.
    pub fn from_env() -> Result<Self, ConfigErrors> {
        // A missing .env is normal; a malformed one is reported like any
        // other bad setting.
        if let Err(error) = dotenvy::dotenv()
            && !error.not_found()
        {
            return Err(ConfigErrors(vec![ConfigProblem {
                variable: ".env",
                message: error.to_string(),
            }]));
        }
        let mut env = EnvReader::new(Source::Process);
        let config = Self::read(&mut env);
        env.finish().map(|()| config)
    }

    /// Builds a configuration from explicit values only (tests).
    pub fn from_map(values: HashMap<String, String>) -> Result<Self, ConfigErrors> {
        let mut env = EnvReader::new(Source::Map(values));
        let config = Self::read(&mut env);
        env.finish().map(|()| config)
    }

    /// The name of every variable the configuration reads (the binaries'
    /// own few, such as `bourse-api seed`'s passwords, are listed by
    /// their command lines).
    pub fn variables() -> Vec<&'static str> {
        let mut env = EnvReader::new(Source::Map(HashMap::new()));
        Self::read(&mut env);
        env.names().collect()
    }

    /// Each section in turn, in this order so that problems are listed in
    /// the order of README's table.
    fn read(env: &mut EnvReader) -> Self {
        let app_env = env.choice_or(
            "APP_ENV",
            AppEnv::Local,
            &[
                ("local", AppEnv::Local),
                ("development", AppEnv::Local),
                ("production", AppEnv::Production),
            ],
        );
        env.set_production(app_env == AppEnv::Production);
        let log_format = env.choice_or(
            "LOG_FORMAT",
            LogFormat::Pretty,
            &[("pretty", LogFormat::Pretty), ("json", LogFormat::Json)],
        );
        // 0 means forever (an orchestrator that starts everything at once).
        let startup_wait = match env.range_or("STARTUP_WAIT_SECS", 300u64, 0, 86_400) {
            0 => None,
            n => Some(secs(n)),
        };
        Self {
            env: app_env,
            log_format,
            telemetry: TelemetryConfig::read(env),
            database: DatabaseConfig::read(env),
            redis: RedisConfig::read(env),
            http: HttpConfig::read(env),
            auth: AuthConfig::read(env, app_env),
            worker: WorkerConfig::read(env),
            jobs: JobsConfig::read(env),
            outbox: OutboxConfig::read(env),
            mail: MailConfig::read(env),
            rates: RatesConfig::read(env, app_env),
            trading: TradingConfig::read(env),
            bets: BetsConfig::read(env),
            alerts: AlertsConfig::read(env),
            fees: FeesConfig::read(env),
            webhooks: WebhooksConfig::read(env),
            startup_wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;
    use crate::jobs::Queue;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_need_no_variables() {
        let config = Config::from_map(HashMap::new()).unwrap();
        assert_eq!(config.env, AppEnv::Local);
        assert_eq!(config.http.max_body_bytes, 65536);
        assert_eq!(config.worker.queues.len(), Queue::ALL.len());
        assert_eq!(config.mail.transport, MailTransportKind::File);
    }

    #[test]
    fn the_http_exchange_needs_its_url_and_thresholds_are_decimals() {
        let errors = Config::from_map(map(&[("EXCHANGE", "http")])).unwrap_err();
        assert!(errors.to_string().contains("EXCHANGE_URL"), "{errors}");
        let errors = Config::from_map(map(&[("CLEARING_THRESHOLD_USD", "0.001")])).unwrap_err();
        assert!(errors.to_string().contains("CLEARING_THRESHOLD_USD"));
        let config = Config::from_map(map(&[
            ("EXCHANGE", "http"),
            ("EXCHANGE_URL", "https://exchange.example/"),
            ("CLEARING_THRESHOLD_USD", "25.5"),
        ]))
        .unwrap();
        assert_eq!(config.trading.exchange, ExchangeKind::Http);
        assert_eq!(config.trading.exchange_url, "https://exchange.example");
        assert_eq!(config.trading.clearing_threshold_usd.to_string(), "25.5");
    }

    #[test]
    fn every_bad_variable_is_named_on_its_own_line() {
        let errors = Config::from_map(map(&[
            ("HTTP_ADDR", "abc"),
            ("BCRYPT_COST", "99"),
            ("WORKER_QUEUES", "email,nope"),
        ]))
        .unwrap_err();
        let text = errors.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("HTTP_ADDR: invalid value \"abc\""));
        assert!(lines[1].starts_with("BCRYPT_COST: 99 is out of range"));
        assert!(lines[2].starts_with("WORKER_QUEUES:"));
    }

    #[test]
    fn production_requires_secrets() {
        let errors = Config::from_map(map(&[("APP_ENV", "production")])).unwrap_err();
        let vars: Vec<&str> = errors.0.iter().map(|p| p.variable).collect();
        assert_eq!(
            vars,
            [
                "DATABASE_URL",
                "REDIS_URL",
                "JWT_SECRET",
                "RATE_CRYPTO_PROVIDER"
            ]
        );
    }

    #[test]
    fn redis_is_one_server_a_cluster_or_a_sentinel_group() {
        use secrecy::ExposeSecret as _;
        let config = Config::from_map(HashMap::new()).unwrap();
        assert!(matches!(config.redis.topology, RedisTopology::Single));

        let config = Config::from_map(map(&[(
            "REDIS_CLUSTER_NODES",
            "redis://10.0.0.1:6379, redis://10.0.0.2:6379,",
        )]))
        .unwrap();
        let RedisTopology::Cluster { nodes } = &config.redis.topology else {
            panic!("{:?}", config.redis.topology);
        };
        let nodes: Vec<&str> = nodes.iter().map(|n| n.expose_secret()).collect();
        assert_eq!(nodes, ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"]);

        let config = Config::from_map(map(&[
            ("REDIS_SENTINEL_NODES", "redis://s1:26379,redis://s2:26379"),
            ("REDIS_SENTINEL_MASTER", "bourse"),
        ]))
        .unwrap();
        let RedisTopology::Sentinel { nodes, master } = &config.redis.topology else {
            panic!("{:?}", config.redis.topology);
        };
        assert_eq!((nodes.len(), master.as_str()), (2, "bourse"));

        // Production needs no REDIS_URL when the cluster is named.
        let errors = Config::from_map(map(&[
            ("APP_ENV", "production"),
            ("REDIS_CLUSTER_NODES", "rediss://10.0.0.1:6379"),
        ]))
        .unwrap_err();
        let vars: Vec<&str> = errors.0.iter().map(|p| p.variable).collect();
        assert_eq!(vars, ["DATABASE_URL", "JWT_SECRET", "RATE_CRYPTO_PROVIDER"]);
    }

    #[test]
    fn a_half_or_doubly_named_redis_is_refused() {
        for (pairs, variable) in [
            (
                &[
                    ("REDIS_CLUSTER_NODES", "redis://a:1"),
                    ("REDIS_SENTINEL_NODES", "redis://b:2"),
                ][..],
                "REDIS_CLUSTER_NODES",
            ),
            (&[("REDIS_CLUSTER_NODES", " , ")][..], "REDIS_CLUSTER_NODES"),
            (
                &[("REDIS_SENTINEL_NODES", "redis://b:2")][..],
                "REDIS_SENTINEL_MASTER",
            ),
            (
                &[("REDIS_SENTINEL_MASTER", "bourse")][..],
                "REDIS_SENTINEL_NODES",
            ),
        ] {
            let errors = Config::from_map(map(pairs)).unwrap_err();
            let vars: Vec<&str> = errors.0.iter().map(|p| p.variable).collect();
            assert_eq!(vars, [variable], "{pairs:?}: {errors}");
        }
    }

    #[test]
    fn production_refuses_simulated_prices_unless_allowed() {
        let production = [
            ("APP_ENV", "production"),
            ("DATABASE_URL", "postgres://db/bourse"),
            ("REDIS_URL", "redis://redis/0"),
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ];
        let errors = Config::from_map(map(&production)).unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert_eq!(errors.0[0].variable, "RATE_CRYPTO_PROVIDER");
        assert!(
            errors.0[0].message.contains("RATE_FIAT_PROVIDER"),
            "{errors}"
        );
        let fiat_only = [&production[..], &[("RATE_CRYPTO_PROVIDER", "binance")]].concat();
        let errors = Config::from_map(map(&fiat_only)).unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert_eq!(errors.0[0].variable, "RATE_FIAT_PROVIDER");
        let allowed = [
            &production[..],
            &[("SIMULATED_PRICES_IN_PRODUCTION", "true")],
        ]
        .concat();
        Config::from_map(map(&allowed)).unwrap();
    }

    #[test]
    fn the_simulated_seed_is_random_unless_set() {
        let a = Config::from_map(HashMap::new()).unwrap();
        let b = Config::from_map(HashMap::new()).unwrap();
        assert_ne!(a.rates.simulated_seed, b.rates.simulated_seed);
        let set = Config::from_map(map(&[("SIMULATED_SEED", "42")])).unwrap();
        assert_eq!(set.rates.simulated_seed, 42);
        let errors = Config::from_map(map(&[("SIMULATED_SEED", "-1")])).unwrap_err();
        assert_eq!(errors.0[0].variable, "SIMULATED_SEED");
    }

    #[test]
    fn rate_limits_and_secrets_are_checked() {
        let errors = Config::from_map(map(&[
            ("RATE_LIMIT_LOGIN_PER_IP", "ten"),
            ("JWT_SECRET", "short"),
        ]))
        .unwrap_err();
        let vars: Vec<&str> = errors.0.iter().map(|p| p.variable).collect();
        assert_eq!(vars, ["JWT_SECRET", "RATE_LIMIT_LOGIN_PER_IP"]);
        let config = Config::from_map(map(&[("RATE_LIMIT_LOGIN_PER_IP", "3/60")])).unwrap();
        assert_eq!(config.auth.limits.login_per_ip.max, 3);
        // Without a secret, a local process gets a random one.
        let a = Config::from_map(HashMap::new()).unwrap();
        let b = Config::from_map(HashMap::new()).unwrap();
        assert_ne!(
            a.auth.jwt_secret.expose_secret(),
            b.auth.jwt_secret.expose_secret()
        );
    }

    #[test]
    fn the_documented_example_file_is_a_valid_configuration() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../.env.example");
        let values: HashMap<String, String> = dotenvy::from_path_iter(path)
            .unwrap()
            .map(|item| item.unwrap())
            .collect();
        assert!(values.len() > 60, "every setting is documented");
        Config::from_map(values).unwrap();
    }

    #[test]
    fn smtp_credentials_come_in_pairs() {
        let errors = Config::from_map(map(&[("SMTP_USERNAME", "me")])).unwrap_err();
        assert_eq!(errors.0[0].variable, "SMTP_PASSWORD");
    }

    #[test]
    fn every_variable_read_is_listed_once() {
        let names = Config::variables();
        for name in [
            "APP_ENV",
            "DATABASE_URL",
            "REDIS_SENTINEL_MASTER",
            "RATE_LIMIT_ALERT_CREATE_PER_ACCOUNT",
            "SIMULATED_SEED",
            "SIMULATED_PRICES_IN_PRODUCTION",
            "PURGE_CRON",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        let unique: std::collections::BTreeSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len());
        // Every setting `.env.example` documents is one the reader asks for.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../.env.example");
        let example = std::fs::read_to_string(path).unwrap();
        let documented: Vec<&str> = example
            .lines()
            .map(|line| line.trim_start_matches(['#', ' ']))
            .filter_map(|line| line.split_once('=').map(|(name, _)| name))
            .filter(|name| {
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            })
            .collect();
        let unknown: Vec<&&str> = documented
            .iter()
            .filter(|name| !names.contains(*name))
            .collect();
        // The binaries' own (`bourse-api seed`'s passwords) are not config.
        assert!(
            unknown.iter().all(|name| name.starts_with("DEMO_")
                || **name == "ADMIN_PASSWORD"
                || **name == "RUST_LOG"),
            "documented but never read: {unknown:?}"
        );
    }
}
