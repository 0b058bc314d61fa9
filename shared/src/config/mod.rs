//! Configuration for every Bourse process, read from environment variables
//! (and an optional `.env` file). Every setting has a local default except
//! production secrets; `.env.example` documents each variable.

mod env;

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, time::Duration};

pub use env::{ConfigErrors, ConfigProblem, EnvReader, Source};
use secrecy::{ExposeSecret as _, SecretString};

use crate::jobs::Queue;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailTransportKind {
    /// `.eml` files in a folder: the local default, no mail server needed.
    File,
    Smtp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text; only for a local catcher.
    None,
    /// Plain connection upgraded with STARTTLS (required, not opportunistic).
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: SecretString,
    pub pool_size: usize,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
    /// PEM certificates that sign the server's certificate, for
    /// `sslmode=require`/`verify-full` with a private CA (else the
    /// webpki roots).
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// The one server of `Single` mode (`REDIS_URL`); unused otherwise.
    pub url: SecretString,
    /// One server, a Redis Cluster, or a primary found through Sentinel.
    pub topology: RedisTopology,
    /// Every key and channel we create starts with `{prefix}:`; tests give
    /// each test its own prefix, operators can share one Redis between
    /// deployments.
    pub prefix: String,
    /// Connect and response timeout of every Redis call.
    pub timeout: Duration,
    /// PEM certificates that sign a `rediss://` server's certificate (a
    /// private CA); else the system's roots.
    pub ca_file: Option<PathBuf>,
}

/// How the processes find Redis.
#[derive(Debug, Clone)]
pub enum RedisTopology {
    /// `REDIS_URL`.
    Single,
    /// `REDIS_CLUSTER_NODES`: some of the cluster's nodes (any will do;
    /// the client learns the rest from them).
    Cluster { nodes: Vec<SecretString> },
    /// `REDIS_SENTINEL_NODES` and `REDIS_SENTINEL_MASTER`: the sentinels
    /// and the name they know the primary by. `REDIS_URL`'s credentials,
    /// database and TLS apply to the primary.
    Sentinel {
        nodes: Vec<SecretString>,
        master: String,
    },
}

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

/// At most `max` events per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

impl std::str::FromStr for Limit {
    type Err = ();
    /// `count/seconds`, e.g. `10/900`.
    fn from_str(raw: &str) -> Result<Self, ()> {
        let (max, secs) = raw.split_once('/').ok_or(())?;
        let max: u32 = max.trim().parse().map_err(|_| ())?;
        let secs: u64 = secs.trim().parse().map_err(|_| ())?;
        if max == 0 || secs == 0 || secs > 86_400 * 7 {
            return Err(());
        }
        Ok(Self {
            max,
            window: Duration::from_secs(secs),
        })
    }
}

/// Per-IP and per-account limits on the endpoints attackers hammer. They
/// stop guessing at scale but leave room for a human who mistypes.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    pub login_per_ip: Limit,
    /// Failed logins per account.
    pub login_per_account: Limit,
    pub register_per_ip: Limit,
    pub resend_per_ip: Limit,
    pub resend_per_account: Limit,
    pub reset_per_ip: Limit,
    pub reset_per_account: Limit,
    /// Email-verification attempts per IP and per address.
    pub verify_per_ip: Limit,
    pub verify_per_account: Limit,
    /// Current-password checks per account (`/me/password`, an email
    /// change), counted before bcrypt runs so a concurrent burst is cut
    /// off too; a right password clears the count.
    pub current_password_per_account: Limit,
    /// Alert creations per account.
    pub alert_create_per_account: Limit,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub bcrypt_cost: u32,
    pub verification_code_ttl: Duration,
    pub verification_max_attempts: i32,
    pub password_reset_code_ttl: Duration,
    /// HS256 key of access tokens. Required in production; a local process
    /// without one makes a random key (tokens then die with the process).
    pub jwt_secret: SecretString,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// Mark auth cookies `Secure` (browsers still accept them on
    /// http://localhost).
    pub cookie_secure: bool,
    /// How many reverse proxies in front of the API append to
    /// `X-Forwarded-For`; 0 means use the connection's address.
    pub trusted_proxy_hops: usize,
    pub limits: RateLimits,
    /// Least time between two emailed codes (verification or reset) to one
    /// address; a request sooner answers 429 with `Retry-After`.
    pub code_resend_cooldown: Duration,
    /// How often each API process reads the sessions revoked since its
    /// last look (their access tokens then answer 401).
    pub revocation_poll: Duration,
}

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
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub http_addr: SocketAddr,
    pub concurrency: usize,
    pub queues: Vec<Queue>,
    /// Jobs fetched from Redis per round trip.
    pub batch_size: usize,
    pub heartbeat: Duration,
    /// A worker silent for this long is presumed dead and its jobs go back
    /// to the queue for the others.
    pub lease: Duration,
    pub shutdown_timeout: Duration,
    /// Longest an idle worker waits for a wake-up before fetching anyway.
    pub poll_interval: Duration,
    pub name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct JobsConfig {
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub timeout: Duration,
    /// Dead jobs kept per queue; past it the oldest are dropped (and
    /// counted), so an outage that kills every email cannot fill Redis.
    pub dead_max_per_queue: usize,
    /// Dead jobs older than this are dropped.
    pub dead_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct OutboxConfig {
    pub poll_interval: Duration,
    pub batch_size: i64,
    /// How long a relay may hold claimed rows before another relay may take
    /// them over.
    pub claim_timeout: Duration,
    pub retention: Duration,
    /// Delayed jobs go to Redis this long before they are due; the worker
    /// holds each until its due time, so the relay's and the queue's own
    /// latency do not make it late.
    pub lookahead: Duration,
}

#[derive(Debug, Clone)]
pub struct MailConfig {
    pub transport: MailTransportKind,
    pub outbox_dir: PathBuf,
    pub from: String,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_tls: SmtpTls,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<SecretString>,
    pub smtp_timeout: Duration,
    /// Cluster-wide schedule of the email reconciler (six fields, UTC).
    pub reconcile_cron: String,
    /// An email still unsent this long after it was queued (or last
    /// requeued) gets a new job: its job was lost, say with Redis's data.
    pub reconcile_after: Duration,
}

/// Where the house hedges its trades.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    /// Fills every order at once in-process: the local default.
    Simulated,
    /// A JSON exchange API at `EXCHANGE_URL` (see `shared::trading::exchange`).
    Http,
}

#[derive(Debug, Clone)]
pub struct TradingConfig {
    /// Orders worth at least this many USD are cleared alone; smaller ones
    /// wait until their sum per currency and side reaches it.
    pub clearing_threshold_usd: rust_decimal::Decimal,
    pub exchange: ExchangeKind,
    pub exchange_url: String,
    pub exchange_api_key: Option<SecretString>,
    pub exchange_timeout: Duration,
    /// Extra tries of one exchange call on a timeout, a connection failure
    /// or a 5xx, before the clearing job itself backs off and retries.
    pub exchange_retries: u32,
    /// A batch still pending this long after its last exchange call is
    /// submitted again (its job may have gone to the dead set).
    pub resubmit_after: Duration,
}

#[derive(Debug, Clone)]
pub struct BetsConfig {
    /// Stake limits in USD (inclusive).
    pub min_stake: rust_decimal::Decimal,
    pub max_stake: rust_decimal::Decimal,
    /// Cluster-wide schedule of the reconciler (six fields, UTC).
    pub reconcile_cron: String,
    /// An open bet this long past its `settles_at` gets a new settlement
    /// job from the reconciler (its job was lost, say with Redis's data).
    pub reconcile_after: Duration,
    /// Settlement transactions in flight per worker process; jobs arriving
    /// meanwhile wait and go together in the next one.
    pub settle_in_flight: usize,
}

#[derive(Debug, Clone)]
pub struct FeesConfig {
    /// The monthly fee of a fiat wallet, in `currency` (converted to each
    /// wallet's currency at the fresh rate).
    pub amount: rust_decimal::Decimal,
    pub currency: String,
    /// Cluster-wide schedule of the fee run (six fields, UTC).
    pub cron: String,
    /// Wallets charged per transaction.
    pub batch_size: i64,
    /// Fee jobs a run splits into, so several workers charge batches at
    /// once.
    pub parallelism: u32,
    /// Cluster-wide schedule of the housekeeping purge (expired idempotency
    /// keys, spent and expired codes, expired refresh tokens), six fields,
    /// UTC. It rides the `monthly_fee` queue.
    pub purge_cron: String,
}

#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// Most active (`created`) alerts one user may hold.
    pub max_active_per_user: i64,
    /// How long a cached alerts answer may live in Redis. Changes
    /// invalidate it at once; this only bounds staleness should an
    /// invalidation be lost (Redis unreachable just then).
    pub cache_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub env: AppEnv,
    pub log_format: LogFormat,
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
    /// How long a process waits at start for PostgreSQL and Redis (and the
    /// worker for the migrations) before giving up; `None` waits forever.
    pub startup_wait: Option<Duration>,
}

const LOCAL_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/bourse";
const LOCAL_REDIS_URL: &str = "redis://127.0.0.1:6379/0";

/// `REDIS_CLUSTER_NODES` or `REDIS_SENTINEL_NODES` + `REDIS_SENTINEL_MASTER`
/// (comma-separated `redis://` or `rediss://` addresses); neither means one
/// server at `REDIS_URL`.
fn read_redis_topology(env: &mut env::EnvReader) -> RedisTopology {
    fn nodes(raw: Option<SecretString>) -> Option<Vec<SecretString>> {
        use secrecy::ExposeSecret as _;
        let raw = raw?;
        Some(
            raw.expose_secret()
                .split(',')
                .map(str::trim)
                .filter(|node| !node.is_empty())
                .map(|node| SecretString::from(node.to_owned()))
                .collect(),
        )
    }
    let cluster = nodes(env.optional_secret("REDIS_CLUSTER_NODES"));
    let sentinel = nodes(env.optional_secret("REDIS_SENTINEL_NODES"));
    let master = env.optional("REDIS_SENTINEL_MASTER");
    match (cluster, sentinel, master) {
        (None, None, None) => RedisTopology::Single,
        (Some(_), Some(_), _) | (Some(_), None, Some(_)) => {
            env.problem(
                "REDIS_CLUSTER_NODES",
                "set either REDIS_CLUSTER_NODES or REDIS_SENTINEL_NODES, not both",
            );
            RedisTopology::Single
        }
        (Some(nodes), None, None) if nodes.is_empty() => {
            env.problem("REDIS_CLUSTER_NODES", "lists no address");
            RedisTopology::Single
        }
        (Some(nodes), None, None) => RedisTopology::Cluster { nodes },
        (None, Some(nodes), Some(master)) if !nodes.is_empty() && !master.is_empty() => {
            RedisTopology::Sentinel { nodes, master }
        }
        (None, Some(_), Some(_)) => {
            env.problem(
                "REDIS_SENTINEL_NODES",
                "needs at least one address and a REDIS_SENTINEL_MASTER name",
            );
            RedisTopology::Single
        }
        (None, Some(_), None) => {
            env.problem(
                "REDIS_SENTINEL_MASTER",
                "not set (REDIS_SENTINEL_NODES needs it)",
            );
            RedisTopology::Single
        }
        (None, None, Some(_)) => {
            env.problem(
                "REDIS_SENTINEL_NODES",
                "not set (REDIS_SENTINEL_MASTER needs it)",
            );
            RedisTopology::Single
        }
    }
}

/// A cron expression with seconds (six fields, UTC), checked for shape
/// here and parsed by the worker.
fn six_field_cron(env: &mut env::EnvReader, name: &'static str, default: &str) -> String {
    let cron = env.string_or(name, default);
    if cron.split_whitespace().count() != 6 {
        env.problem(
            name,
            format!("invalid value {cron:?} (expected six fields with seconds)"),
        );
    }
    cron
}

/// Production refuses the simulated price feed unless
/// `SIMULATED_PRICES_IN_PRODUCTION=true` (a demo on play money): its prices
/// are a walk that anyone who guessed the seed could compute ahead, and so
/// win every bet. One line, naming the first variable that chose it.
fn refuse_simulated_prices_in_production(
    env: &mut env::EnvReader,
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

/// `bytes` random bytes as hex, from the thread-local CSPRNG.
fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::fill(&mut buffer[..]);
    hex::encode(buffer)
}

fn secs(value: u64) -> Duration {
    Duration::from_secs(value)
}

fn millis(value: u64) -> Duration {
    Duration::from_millis(value)
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
        Self::read(EnvReader::new(Source::Process))
    }

    /// Builds a configuration from explicit values only (tests).
    pub fn from_map(values: HashMap<String, String>) -> Result<Self, ConfigErrors> {
        Self::read(EnvReader::new(Source::Map(values)))
    }

    fn read(mut env: EnvReader) -> Result<Self, ConfigErrors> {
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

        let database = DatabaseConfig {
            url: env.secret("DATABASE_URL", LOCAL_DATABASE_URL),
            pool_size: env.range_or("DATABASE_POOL_SIZE", 16, 1, 1000),
            connect_timeout: secs(env.range_or("DATABASE_CONNECT_TIMEOUT_SECS", 5, 1, 600)),
            statement_timeout: millis(env.range_or(
                "DATABASE_STATEMENT_TIMEOUT_MS",
                15_000,
                10,
                3_600_000,
            )),
            ca_file: env.optional("DATABASE_CA_FILE").map(PathBuf::from),
        };

        let prefix = env.string_or("REDIS_PREFIX", "bourse");
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        {
            env.problem(
                "REDIS_PREFIX",
                format!("invalid value {prefix:?} (letters, digits, _ - . : only)"),
            );
        }
        let topology = read_redis_topology(&mut env);
        let redis = RedisConfig {
            url: match topology {
                RedisTopology::Single => env.secret("REDIS_URL", LOCAL_REDIS_URL),
                _ => env
                    .optional_secret("REDIS_URL")
                    .unwrap_or_else(|| SecretString::from(LOCAL_REDIS_URL.to_owned())),
            },
            topology,
            prefix,
            timeout: millis(env.range_or("REDIS_TIMEOUT_MS", 5000, 10, 600_000)),
            ca_file: env.optional("REDIS_CA_FILE").map(PathBuf::from),
        };

        let addr: SocketAddr = env.parse_or(
            "HTTP_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            "a socket address such as 0.0.0.0:8080",
        );
        let http = HttpConfig {
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
        };

        let jwt_secret = match env.optional_secret("JWT_SECRET") {
            Some(secret) => {
                if secret.expose_secret().len() < 32 {
                    env.problem("JWT_SECRET", "too short (at least 32 characters)");
                }
                secret
            }
            None if app_env == AppEnv::Production => {
                env.problem("JWT_SECRET", "not set (required when APP_ENV=production)");
                SecretString::from(String::new())
            }
            None => SecretString::from(random_hex(32)),
        };
        let limit = |env: &mut EnvReader, name: &'static str, default: &str| -> Limit {
            let fallback = default.parse().unwrap_or(Limit {
                max: 10,
                window: Duration::from_secs(60),
            });
            env.parse_or(name, fallback, "count/seconds, e.g. 10/900")
        };
        let limits = RateLimits {
            login_per_ip: limit(&mut env, "RATE_LIMIT_LOGIN_PER_IP", "30/60"),
            login_per_account: limit(&mut env, "RATE_LIMIT_LOGIN_PER_ACCOUNT", "10/900"),
            register_per_ip: limit(&mut env, "RATE_LIMIT_REGISTER_PER_IP", "20/3600"),
            resend_per_ip: limit(&mut env, "RATE_LIMIT_RESEND_PER_IP", "20/3600"),
            resend_per_account: limit(&mut env, "RATE_LIMIT_RESEND_PER_ACCOUNT", "5/3600"),
            reset_per_ip: limit(&mut env, "RATE_LIMIT_RESET_PER_IP", "20/3600"),
            reset_per_account: limit(&mut env, "RATE_LIMIT_RESET_PER_ACCOUNT", "5/3600"),
            verify_per_ip: limit(&mut env, "RATE_LIMIT_VERIFY_PER_IP", "30/3600"),
            verify_per_account: limit(&mut env, "RATE_LIMIT_VERIFY_PER_ACCOUNT", "10/900"),
            current_password_per_account: limit(
                &mut env,
                "RATE_LIMIT_CURRENT_PASSWORD_PER_ACCOUNT",
                "5/900",
            ),
            alert_create_per_account: limit(
                &mut env,
                "RATE_LIMIT_ALERT_CREATE_PER_ACCOUNT",
                "30/60",
            ),
        };
        let auth = AuthConfig {
            bcrypt_cost: env.range_or("BCRYPT_COST", 12, 4, 31),
            verification_code_ttl: secs(env.range_or(
                "VERIFICATION_CODE_TTL_SECS",
                15 * 60,
                30,
                7 * 24 * 3600,
            )),
            verification_max_attempts: env.range_or("VERIFICATION_MAX_ATTEMPTS", 5, 1, 100),
            password_reset_code_ttl: secs(env.range_or(
                "PASSWORD_RESET_CODE_TTL_SECS",
                15 * 60,
                30,
                24 * 3600,
            )),
            jwt_secret,
            jwt_issuer: env.string_or("JWT_ISSUER", "bourse"),
            jwt_audience: env.string_or("JWT_AUDIENCE", "bourse-api"),
            access_token_ttl: secs(env.range_or("ACCESS_TOKEN_TTL_SECS", 15 * 60, 10, 24 * 3600)),
            refresh_token_ttl: secs(env.range_or(
                "REFRESH_TOKEN_TTL_SECS",
                30 * 24 * 3600,
                60,
                365 * 24 * 3600,
            )),
            cookie_secure: env.parse_or("COOKIE_SECURE", true, "true or false"),
            trusted_proxy_hops: env.range_or("TRUSTED_PROXY_HOPS", 0, 0, 10),
            limits,
            code_resend_cooldown: secs(env.range_or("CODE_RESEND_COOLDOWN_SECS", 30, 0, 3600)),
            revocation_poll: millis(env.range_or("SESSION_REVOCATION_POLL_MS", 250, 10, 1000)),
        };

        let queues = match env.optional("WORKER_QUEUES") {
            None => Queue::ALL.to_vec(),
            Some(raw) => match Queue::parse_list(&raw) {
                Ok(queues) => queues,
                Err(message) => {
                    env.problem("WORKER_QUEUES", message);
                    Queue::ALL.to_vec()
                }
            },
        };
        // Each heartbeat costs Redis a few commands per queue served (and an
        // idle worker fetches once per heartbeat): 3 s keeps an idle process
        // serving every queue under 50 commands/s (bench `idle`).
        let heartbeat_secs: u64 = env.range_or("WORKER_HEARTBEAT_SECS", 3, 1, 300);
        let lease_secs: u64 = env.range_or("WORKER_LEASE_SECS", 9, 2, 3600);
        if lease_secs < heartbeat_secs * 2 {
            env.problem(
                "WORKER_LEASE_SECS",
                format!(
                    "{lease_secs} must be at least twice WORKER_HEARTBEAT_SECS ({heartbeat_secs})"
                ),
            );
        }
        let worker = WorkerConfig {
            http_addr: env.parse_or(
                "WORKER_HTTP_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 9090)),
                "a socket address such as 0.0.0.0:9090",
            ),
            concurrency: env.range_or("WORKER_CONCURRENCY", 32, 1, 10_000),
            queues,
            batch_size: env.range_or("WORKER_BATCH_SIZE", 64, 1, 1000),
            heartbeat: secs(heartbeat_secs),
            lease: secs(lease_secs),
            shutdown_timeout: secs(env.range_or("WORKER_SHUTDOWN_TIMEOUT_SECS", 30, 1, 3600)),
            poll_interval: millis(env.range_or("WORKER_POLL_MS", 3000, 10, 60_000)),
            name: env.optional("WORKER_NAME"),
        };

        let jobs = JobsConfig {
            max_attempts: env.range_or("JOB_MAX_ATTEMPTS", 8, 1, 100),
            backoff_base: millis(env.range_or("JOB_BACKOFF_BASE_MS", 1000, 1, 3_600_000)),
            backoff_max: millis(env.range_or("JOB_BACKOFF_MAX_MS", 600_000, 1, 86_400_000)),
            timeout: secs(env.range_or("JOB_TIMEOUT_SECS", 60, 1, 86_400)),
            dead_max_per_queue: env.range_or("DEAD_MAX_PER_QUEUE", 10_000, 1, 10_000_000),
            dead_ttl: secs(env.range_or::<u64>("DEAD_TTL_DAYS", 30, 1, 3650) * 86_400),
        };

        let outbox = OutboxConfig {
            poll_interval: millis(env.range_or("OUTBOX_POLL_MS", 250, 10, 60_000)),
            batch_size: env.range_or("OUTBOX_BATCH_SIZE", 500, 1, 10_000),
            claim_timeout: secs(env.range_or("OUTBOX_CLAIM_TIMEOUT_SECS", 30, 1, 3600)),
            retention: Duration::from_secs(
                3600 * env.range_or("OUTBOX_RETENTION_HOURS", 24, 1, 24 * 365),
            ),
            lookahead: millis(env.range_or("OUTBOX_LOOKAHEAD_MS", 100, 0, 10_000)),
        };

        let transport = env.choice_or(
            "MAIL_TRANSPORT",
            MailTransportKind::File,
            &[
                ("file", MailTransportKind::File),
                ("smtp", MailTransportKind::Smtp),
            ],
        );
        let smtp_tls = env.choice_or(
            "SMTP_TLS",
            SmtpTls::StartTls,
            &[
                ("none", SmtpTls::None),
                ("starttls", SmtpTls::StartTls),
                ("tls", SmtpTls::Tls),
            ],
        );
        let default_port = match smtp_tls {
            SmtpTls::None => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
        };
        let smtp_username = env.optional("SMTP_USERNAME");
        let smtp_password = env.optional_secret("SMTP_PASSWORD");
        if smtp_username.is_some() != smtp_password.is_some() {
            env.problem(
                if smtp_username.is_some() {
                    "SMTP_PASSWORD"
                } else {
                    "SMTP_USERNAME"
                },
                "SMTP_USERNAME and SMTP_PASSWORD must be set together",
            );
        }
        let from = env.string_or("MAIL_FROM", "Bourse <no-reply@bourse.local>");
        if from.parse::<lettre::message::Mailbox>().is_err() {
            env.problem(
                "MAIL_FROM",
                format!("invalid value {from:?} (expected a mailbox such as Bourse <no-reply@example.com>)"),
            );
        }
        let mail = MailConfig {
            transport,
            outbox_dir: PathBuf::from(env.string_or("MAIL_OUTBOX_DIR", "var/mail")),
            from,
            smtp_host: env.string_or("SMTP_HOST", "localhost"),
            smtp_port: env.parse_or("SMTP_PORT", default_port, "a TCP port"),
            smtp_tls,
            smtp_username,
            smtp_password,
            smtp_timeout: secs(env.range_or("SMTP_TIMEOUT_SECS", 10, 1, 600)),
            reconcile_cron: six_field_cron(&mut env, "EMAIL_RECONCILE_CRON", "*/30 * * * * *"),
            reconcile_after: secs(env.range_or(
                "EMAIL_RECONCILE_AFTER_SECS",
                300,
                1,
                7 * 24 * 3600,
            )),
        };

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
            &mut env,
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
        let rates = RatesConfig {
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
        };

        let exchange = env.choice_or(
            "EXCHANGE",
            ExchangeKind::Simulated,
            &[
                ("simulated", ExchangeKind::Simulated),
                ("http", ExchangeKind::Http),
            ],
        );
        let exchange_url = env.optional("EXCHANGE_URL");
        if exchange == ExchangeKind::Http && exchange_url.is_none() {
            env.problem("EXCHANGE_URL", "not set (required when EXCHANGE=http)");
        }
        let trading = TradingConfig {
            clearing_threshold_usd: env.range_or(
                "CLEARING_THRESHOLD_USD",
                rust_decimal::Decimal::TEN,
                rust_decimal::Decimal::new(1, 2),
                rust_decimal::Decimal::from(1_000_000_000),
            ),
            exchange,
            exchange_url: exchange_url
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned(),
            exchange_api_key: env.optional_secret("EXCHANGE_API_KEY"),
            exchange_timeout: millis(env.range_or("EXCHANGE_TIMEOUT_MS", 5000, 50, 120_000)),
            exchange_retries: env.range_or("EXCHANGE_RETRIES", 2, 0, 10),
            resubmit_after: secs(env.range_or("CLEARING_RESUBMIT_SECS", 900, 1, 7 * 24 * 3600)),
        };

        let min_stake = env.range_or(
            "BET_MIN_STAKE",
            rust_decimal::Decimal::ONE,
            rust_decimal::Decimal::new(1, 2),
            rust_decimal::Decimal::from(1_000_000_000),
        );
        let max_stake = env.range_or(
            "BET_MAX_STAKE",
            rust_decimal::Decimal::from(10_000),
            rust_decimal::Decimal::new(1, 2),
            rust_decimal::Decimal::from(1_000_000_000),
        );
        if max_stake < min_stake {
            env.problem(
                "BET_MAX_STAKE",
                format!("{max_stake} is below BET_MIN_STAKE ({min_stake})"),
            );
        }
        let reconcile_cron = six_field_cron(&mut env, "BET_RECONCILE_CRON", "*/10 * * * * *");
        let bets = BetsConfig {
            min_stake,
            max_stake,
            reconcile_cron,
            reconcile_after: secs(env.range_or("BET_RECONCILE_AFTER_SECS", 30, 1, 7 * 24 * 3600)),
            settle_in_flight: env.range_or("BET_SETTLE_IN_FLIGHT", 1, 1, 64),
        };
        let alerts = AlertsConfig {
            max_active_per_user: env.range_or("ALERT_MAX_ACTIVE", 1000, 1, 10_000_000),
            cache_ttl: secs(env.range_or("ALERT_CACHE_TTL_SECS", 60, 1, 24 * 3600)),
        };
        let fee_cron = six_field_cron(&mut env, "MONTHLY_FEE_CRON", "0 0 * * * *");
        let fees = FeesConfig {
            amount: env.range_or(
                "MONTHLY_FEE_AMOUNT",
                rust_decimal::Decimal::from(200),
                rust_decimal::Decimal::new(1, 2),
                rust_decimal::Decimal::from(1_000_000_000),
            ),
            currency: env
                .string_or("MONTHLY_FEE_CURRENCY", "KZT")
                .trim()
                .to_ascii_uppercase(),
            cron: fee_cron,
            batch_size: env.range_or("MONTHLY_FEE_BATCH", 5000, 1, 100_000),
            parallelism: env.range_or("MONTHLY_FEE_PARALLELISM", 2, 1, 64),
            purge_cron: six_field_cron(&mut env, "PURGE_CRON", "0 17 * * * *"),
        };

        env.finish()?;
        Ok(Self {
            env: app_env,
            log_format,
            database,
            redis,
            http,
            auth,
            worker,
            jobs,
            outbox,
            mail,
            rates,
            trading,
            bets,
            alerts,
            fees,
            startup_wait,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
