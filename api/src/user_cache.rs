//! Per-user caching of GET answers in Redis, invalidated by generation.
//!
//! Each user has a generation counter (`{prefix}:alerts:gen:{user}`, see
//! `shared::alerts::cache_generation_key`); an answer is cached under a key
//! that includes the generation it was computed in. A change increments
//! the counter after it commits, so every later read misses and recomputes
//! from PostgreSQL. A reader that computed an answer from data older than
//! a change can only store it under the old generation, which nobody reads
//! again: no stale answer survives an invalidation. Answers also expire
//! (the TTL bounds staleness should an invalidation be lost), and any
//! Redis error falls back to PostgreSQL.

use std::{future::Future, time::Duration};

use crate::{error::ApiError, state::AppState};
use redis::AsyncCommands;

/// Whether an answer came from the cache, for the `X-Cache` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Hit,
    Miss,
}

impl Lookup {
    pub const fn header_value(self) -> &'static str {
        match self {
            Lookup::Hit => "hit",
            Lookup::Miss => "miss",
        }
    }
}

/// The JSON text of an answer, from the cache under `generation_key` and
/// `query` (what distinguishes answers: route, filters, cursor), or
/// computed by `compute` and then cached for `ttl`.
pub async fn json<F, Fut>(
    state: &AppState,
    generation_key: &str,
    query: &str,
    ttl: Duration,
    compute: F,
) -> Result<(String, Lookup), ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<String, ApiError>>,
{
    let mut redis = state.redis.clone();
    let generation: Option<i64> = match redis.get::<_, Option<i64>>(generation_key).await {
        Ok(found) => Some(found.unwrap_or(0)),
        Err(error) => {
            tracing::warn!(%error, "answer cache unavailable; reading PostgreSQL");
            None
        }
    };
    let Some(generation) = generation else {
        return Ok((compute().await?, Lookup::Miss));
    };
    let key = format!("{generation_key}:{generation}:{query}");
    match redis.get::<_, Option<String>>(&key).await {
        Ok(Some(cached)) => return Ok((cached, Lookup::Hit)),
        Ok(None) => {}
        Err(error) => {
            tracing::warn!(%error, "answer cache unavailable; reading PostgreSQL");
            return Ok((compute().await?, Lookup::Miss));
        }
    }
    let answer = compute().await?;
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    if let Err(error) = redis.pset_ex::<_, _, ()>(&key, &answer, ttl_ms).await {
        tracing::warn!(%error, "cannot cache an answer");
    }
    Ok((answer, Lookup::Miss))
}

/// Moves the cache behind `generation_key` to a new generation: call after
/// a change commits. A failure is logged; the TTL bounds the staleness.
pub async fn invalidate(state: &AppState, generation_key: &str) {
    let mut redis = state.redis.clone();
    let result: Result<(), _> = redis::pipe()
        .incr(generation_key, 1)
        .ignore()
        .expire(generation_key, shared::alerts::CACHE_GENERATION_TTL_SECS)
        .ignore()
        .query_async(&mut redis)
        .await;
    if let Err(error) = result {
        tracing::warn!(%error, "cannot invalidate cached answers");
    }
}
