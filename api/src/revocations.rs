//! Sessions end at once: the access tokens of a revoked session (logout, a
//! password change or reset, a reused refresh token) answer 401 on every
//! API process within a poll interval, not when the token expires.
//!
//! PostgreSQL is the deny-list: a revocation sets `revoked_at` on the
//! session's refresh tokens in the transaction that ends it, so it cannot
//! be lost between two stores. Each API process reads the sessions revoked
//! since its last look every `SESSION_REVOCATION_POLL_MS` (one indexed
//! range query) and keeps them in memory until every access token they
//! could have issued has expired. Checking a token costs a hash lookup, no
//! round trip. A process that revokes a session also adds it at once.

use std::{
    collections::HashMap,
    sync::RwLock,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::state::AppState;

/// How far back each poll looks again: a revocation is stamped with its
/// transaction's start and may commit later, so polls overlap by more than
/// any transaction lasts.
const OVERLAP: Duration = Duration::from_secs(60);

/// The sessions revoked lately, each with when it may be forgotten.
#[derive(Default)]
pub struct RevokedSessions {
    sessions: RwLock<HashMap<Uuid, Instant>>,
}

impl RevokedSessions {
    pub fn is_revoked(&self, session: &Uuid) -> bool {
        self.sessions
            .read()
            .is_ok_and(|sessions| sessions.contains_key(session))
    }

    /// Remembers `sessions` for `keep` (the access-token lifetime).
    pub fn add(&self, sessions: impl IntoIterator<Item = Uuid>, keep: Duration) {
        let until = Instant::now() + keep + OVERLAP;
        if let Ok(mut known) = self.sessions.write() {
            for session in sessions {
                known.insert(session, until);
            }
        }
    }

    fn forget_expired(&self) {
        let now = Instant::now();
        if let Ok(mut known) = self.sessions.write() {
            known.retain(|_, until| *until > now);
        }
    }
}

/// Keeps `state.revoked` current until the process ends.
pub async fn follow(state: AppState) {
    let keep = state.config.auth.access_token_ttl;
    let overlap = chrono::Duration::from_std(OVERLAP).unwrap_or_default();
    // First look: everything revoked while a token could still be alive
    // (by this host's clock, with the overlap as margin for skew).
    let mut since: DateTime<Utc> =
        Utc::now() - chrono::Duration::from_std(keep).unwrap_or_default() - overlap;
    let mut failing = false;
    let mut ticker = tokio::time::interval(state.config.auth.revocation_poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match poll(&state, since).await {
            Ok((revoked, db_now)) => {
                state.revoked.add(revoked, keep);
                since = db_now - overlap;
                if failing {
                    tracing::info!("reading revoked sessions again");
                    failing = false;
                }
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "cannot read revoked sessions; will retry");
                    failing = true;
                }
            }
        }
        state.revoked.forget_expired();
    }
}

async fn poll(
    state: &AppState,
    since: DateTime<Utc>,
) -> Result<(Vec<Uuid>, DateTime<Utc>), String> {
    let mut conn = state.db.get().await.map_err(|e| e.to_string())?;
    let (rows, now) = shared::sessions::revoked_since(&mut conn, since)
        .await
        .map_err(|e| e.to_string())?;
    Ok((rows.into_iter().map(|(session, _)| session).collect(), now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_remembered_then_forgotten() {
        let revoked = RevokedSessions::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        revoked.add([a], Duration::from_secs(60));
        assert!(revoked.is_revoked(&a));
        assert!(!revoked.is_revoked(&b));
        revoked.forget_expired();
        assert!(revoked.is_revoked(&a), "kept while a token may live");
    }
}
