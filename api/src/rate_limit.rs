//! Rate limits in Redis, shared by every API process: a counter per
//! (action, IP or account) that starts a window on its first hit.
//!
//! If Redis cannot be reached the limiter lets requests through and logs
//! it: an outage of the limiter must not lock every user out. Account keys
//! are hashed, so no address sits in Redis in clear.

use std::{net::SocketAddr, sync::LazyLock};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::request::Parts,
};
use redis::Script;
use sha2::{Digest, Sha256};
use shared::config::Limit;

use crate::{error::ApiError, state::AppState};

static HIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local n = redis.call('INCR', KEYS[1])
        if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
        local ttl = redis.call('PTTL', KEYS[1])
        if ttl < 0 then
            redis.call('PEXPIRE', KEYS[1], ARGV[1])
            ttl = tonumber(ARGV[1])
        end
        return {n, ttl}
        ",
    )
});

fn key(state: &AppState, action: &str, who: &str) -> String {
    let digest = hex::encode(&Sha256::digest(who.as_bytes())[..12]);
    format!("{}:rl:{action}:{digest}", state.config.redis.prefix)
}

fn refused(ttl_ms: i64) -> ApiError {
    let secs = u64::try_from(ttl_ms).unwrap_or(0).div_ceil(1000).max(1);
    ApiError::RateLimited {
        retry_after_secs: secs,
    }
}

/// Counts one event of `action` by `who` and refuses it (429 with
/// `Retry-After`) when over `limit`.
pub async fn hit(state: &AppState, action: &str, who: &str, limit: Limit) -> Result<(), ApiError> {
    let window_ms = u64::try_from(limit.window.as_millis()).unwrap_or(u64::MAX);
    let mut conn = state.redis.clone();
    let result: Result<(i64, i64), _> = HIT
        .key(key(state, action, who))
        .arg(window_ms)
        .invoke_async(&mut conn)
        .await;
    match result {
        Ok((count, _)) if count <= i64::from(limit.max) => Ok(()),
        Ok((_, ttl_ms)) => {
            tracing::info!(action, "rate limit reached");
            Err(refused(ttl_ms))
        }
        Err(error) => {
            tracing::warn!(%error, action, "rate limiter unavailable; request allowed");
            Ok(())
        }
    }
}

/// Refuses when `who` is already over `limit` for `action`, without
/// counting this request (checked before work whose failures are what is
/// counted, like logins).
pub async fn check(
    state: &AppState,
    action: &str,
    who: &str,
    limit: Limit,
) -> Result<(), ApiError> {
    let mut conn = state.redis.clone();
    let key = key(state, action, who);
    let result: Result<(Option<i64>, i64), _> = redis::pipe()
        .get(&key)
        .pttl(&key)
        .query_async(&mut conn)
        .await;
    match result {
        Ok((Some(count), ttl_ms)) if count >= i64::from(limit.max) => Err(refused(ttl_ms)),
        Ok(_) => Ok(()),
        Err(error) => {
            tracing::warn!(%error, action, "rate limiter unavailable; request allowed");
            Ok(())
        }
    }
}

/// Forgets `who`'s count for `action` (a successful login clears the
/// failures before it).
pub async fn clear(state: &AppState, action: &str, who: &str) {
    let mut conn = state.redis.clone();
    let deleted: Result<i64, _> = redis::cmd("DEL")
        .arg(key(state, action, who))
        .query_async(&mut conn)
        .await;
    if let Err(error) = deleted {
        tracing::warn!(%error, action, "cannot clear rate limit counter");
    }
}

/// The caller's IP address: the connection's peer, or with
/// `TRUSTED_PROXY_HOPS=n` the address the n-th proxy from us saw (the n-th
/// entry from the right of `X-Forwarded-For`); entries further left are
/// written by the client and not trusted.
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string())
            .unwrap_or_else(|| "unknown".to_owned());
        let hops = state.config.auth.trusted_proxy_hops;
        if hops == 0 {
            return Ok(ClientIp(peer));
        }
        let forwarded: Vec<String> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect();
        let ip = forwarded
            .len()
            .checked_sub(hops)
            .and_then(|i| forwarded.get(i))
            .cloned()
            .unwrap_or(peer);
        Ok(ClientIp(ip))
    }
}
