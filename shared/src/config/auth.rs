//! Passwords, codes, tokens, cookies and the per-IP and per-account rate
//! limits. Reads `BCRYPT_COST`, `VERIFICATION_CODE_TTL_SECS`,
//! `VERIFICATION_MAX_ATTEMPTS`, `PASSWORD_RESET_CODE_TTL_SECS`,
//! `JWT_SECRET`, `JWT_ISSUER`, `JWT_AUDIENCE`, `ACCESS_TOKEN_TTL_SECS`,
//! `REFRESH_TOKEN_TTL_SECS`, `COOKIE_SECURE`, `TRUSTED_PROXY_HOPS`,
//! `CODE_RESEND_COOLDOWN_SECS`, `SESSION_REVOCATION_POLL_MS` and the
//! `RATE_LIMIT_*` variables of [`RateLimits`].

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use super::{
    AppEnv,
    env::{EnvReader, millis, secs},
};

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

impl AuthConfig {
    pub(super) fn read(env: &mut EnvReader, app_env: AppEnv) -> Self {
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
        let limits = RateLimits::read(env);
        Self {
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
        }
    }
}

impl RateLimits {
    fn read(env: &mut EnvReader) -> Self {
        let mut limit = |name: &'static str, default: &str| -> Limit {
            let fallback = default.parse().unwrap_or(Limit {
                max: 10,
                window: Duration::from_secs(60),
            });
            env.parse_or(name, fallback, "count/seconds, e.g. 10/900")
        };
        Self {
            login_per_ip: limit("RATE_LIMIT_LOGIN_PER_IP", "30/60"),
            login_per_account: limit("RATE_LIMIT_LOGIN_PER_ACCOUNT", "10/900"),
            register_per_ip: limit("RATE_LIMIT_REGISTER_PER_IP", "20/3600"),
            resend_per_ip: limit("RATE_LIMIT_RESEND_PER_IP", "20/3600"),
            resend_per_account: limit("RATE_LIMIT_RESEND_PER_ACCOUNT", "5/3600"),
            reset_per_ip: limit("RATE_LIMIT_RESET_PER_IP", "20/3600"),
            reset_per_account: limit("RATE_LIMIT_RESET_PER_ACCOUNT", "5/3600"),
            verify_per_ip: limit("RATE_LIMIT_VERIFY_PER_IP", "30/3600"),
            verify_per_account: limit("RATE_LIMIT_VERIFY_PER_ACCOUNT", "10/900"),
            current_password_per_account: limit("RATE_LIMIT_CURRENT_PASSWORD_PER_ACCOUNT", "5/900"),
            alert_create_per_account: limit("RATE_LIMIT_ALERT_CREATE_PER_ACCOUNT", "30/60"),
        }
    }
}

/// `bytes` random bytes as hex, from the thread-local CSPRNG.
fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::fill(&mut buffer[..]);
    hex::encode(buffer)
}
