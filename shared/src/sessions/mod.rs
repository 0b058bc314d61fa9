//! Sessions: a login starts a refresh-token family; each refresh rotates
//! the token within it and returns a new short-lived access token.
//!
//! Refresh tokens are 256-bit random values kept only as SHA-256 hashes. A
//! rotated token presented again means someone kept a copy: the whole
//! family is revoked, logging out both the thief and the victim, who logs
//! in again.

pub mod tokens;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{config::AuthConfig, schema::refresh_tokens as rt};

/// What a login or refresh hands to the client.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Access token lifetime in seconds.
    pub expires_in: u64,
    pub session_id: Uuid,
    pub user_id: Uuid,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Unknown, revoked or expired refresh token.
    #[error("invalid or expired refresh token")]
    Invalid,
    /// A rotated token came back: its family is now revoked.
    #[error("refresh token reused; the session was revoked")]
    Reused,
    #[error("cannot sign the access token: {0}")]
    Signing(#[from] tokens::TokenError),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
}

fn hash(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

fn new_raw_token() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}

#[derive(Insertable)]
#[diesel(table_name = rt)]
struct NewRefreshToken {
    id: Uuid,
    user_id: Uuid,
    family_id: Uuid,
    token_hash: String,
    expires_at: DateTime<Utc>,
}

async fn insert_token(
    conn: &mut AsyncPgConnection,
    config: &AuthConfig,
    user_id: Uuid,
    family_id: Uuid,
) -> Result<Tokens, SessionError> {
    let raw = new_raw_token();
    diesel::insert_into(rt::table)
        .values(NewRefreshToken {
            id: Uuid::new_v4(),
            user_id,
            family_id,
            token_hash: hash(&raw),
            expires_at: Utc::now()
                + chrono::Duration::from_std(config.refresh_token_ttl).unwrap_or_default(),
        })
        .execute(conn)
        .await?;
    let (access_token, expires_in) = tokens::issue_access(config, user_id, family_id)?;
    Ok(Tokens {
        access_token,
        refresh_token: raw,
        expires_in,
        session_id: family_id,
        user_id,
    })
}

/// Starts a session (a new refresh-token family) for `user_id`.
pub async fn start(
    conn: &mut AsyncPgConnection,
    config: &AuthConfig,
    user_id: Uuid,
) -> Result<Tokens, SessionError> {
    insert_token(conn, config, user_id, Uuid::new_v4()).await
}

#[derive(Queryable)]
struct StoredToken {
    id: Uuid,
    user_id: Uuid,
    family_id: Uuid,
    expires_at: DateTime<Utc>,
    rotated_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

enum Refreshed {
    Tokens(Tokens),
    Invalid,
    Reused,
}

/// Exchanges a refresh token for a new pair. The row is locked while
/// checked, so two refreshes with one token cannot both succeed: the second
/// sees it rotated and revokes the family. The revocation is committed.
pub async fn refresh(
    conn: &mut AsyncPgConnection,
    config: &AuthConfig,
    raw: &str,
) -> Result<Tokens, SessionError> {
    let token_hash = hash(raw.trim());
    let outcome = conn
        .transaction::<Refreshed, SessionError, _>(async |conn| {
            let stored: Option<StoredToken> = rt::table
                .filter(rt::token_hash.eq(&token_hash))
                .select((
                    rt::id,
                    rt::user_id,
                    rt::family_id,
                    rt::expires_at,
                    rt::rotated_at,
                    rt::revoked_at,
                ))
                .for_update()
                .first(conn)
                .await
                .optional()?;
            let Some(stored) = stored else {
                return Ok(Refreshed::Invalid);
            };
            let now = Utc::now();
            if stored.revoked_at.is_some() || stored.expires_at <= now {
                return Ok(Refreshed::Invalid);
            }
            if stored.rotated_at.is_some() {
                revoke_family(conn, stored.family_id).await?;
                return Ok(Refreshed::Reused);
            }
            diesel::update(rt::table.find(stored.id))
                .set(rt::rotated_at.eq(now))
                .execute(conn)
                .await?;
            let tokens = insert_token(conn, config, stored.user_id, stored.family_id).await?;
            Ok(Refreshed::Tokens(tokens))
        })
        .await?;
    match outcome {
        Refreshed::Tokens(tokens) => Ok(tokens),
        Refreshed::Invalid => Err(SessionError::Invalid),
        Refreshed::Reused => {
            tracing::warn!("a rotated refresh token was presented again; its session was revoked");
            Err(SessionError::Reused)
        }
    }
}

/// The database's clock, for `revoked_at`: API processes find revocations
/// by comparing it with the database's clock too, whatever their own say.
fn db_now()
-> diesel::expression::SqlLiteral<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>> {
    diesel::dsl::sql("now()")
}

async fn revoke_family(conn: &mut AsyncPgConnection, family_id: Uuid) -> QueryResult<usize> {
    diesel::update(
        rt::table
            .filter(rt::family_id.eq(family_id))
            .filter(rt::revoked_at.is_null()),
    )
    .set(rt::revoked_at.eq(db_now()))
    .execute(conn)
    .await
}

/// Logs out: revokes the session the refresh token belongs to and answers
/// its id. Unknown tokens are ignored (logging out twice is harmless).
pub async fn logout(conn: &mut AsyncPgConnection, raw: &str) -> QueryResult<Option<Uuid>> {
    let family: Option<Uuid> = rt::table
        .filter(rt::token_hash.eq(hash(raw.trim())))
        .select(rt::family_id)
        .first(conn)
        .await
        .optional()?;
    match family {
        Some(family) => revoke_family(conn, family).await.map(|_| Some(family)),
        None => Ok(None),
    }
}

/// Revokes a session by id (logout with only an access token).
pub async fn end_session(conn: &mut AsyncPgConnection, session_id: Uuid) -> QueryResult<bool> {
    revoke_family(conn, session_id).await.map(|n| n > 0)
}

/// Revokes every session of `user_id` except `keep`.
pub async fn revoke_all(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
) -> QueryResult<usize> {
    let mut query = diesel::update(rt::table)
        .filter(rt::user_id.eq(user_id))
        .filter(rt::revoked_at.is_null())
        .into_boxed();
    if let Some(keep) = keep {
        query = query.filter(rt::family_id.ne(keep));
    }
    query.set(rt::revoked_at.eq(db_now())).execute(conn).await
}

/// Sessions revoked after `since` (by the database's clock), with when,
/// and the database's clock now: what API processes poll to refuse the
/// access tokens of revoked sessions (see `api::revocations`).
pub async fn revoked_since(
    conn: &mut AsyncPgConnection,
    since: DateTime<Utc>,
) -> QueryResult<(Vec<(Uuid, DateTime<Utc>)>, DateTime<Utc>)> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        family_id: Uuid,
        #[diesel(sql_type = diesel::sql_types::Timestamptz)]
        revoked_at: DateTime<Utc>,
    }
    #[derive(QueryableByName)]
    struct Now {
        #[diesel(sql_type = diesel::sql_types::Timestamptz)]
        now: DateTime<Utc>,
    }
    let now: Now = diesel::sql_query("SELECT now() AS now")
        .get_result(conn)
        .await?;
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT family_id, max(revoked_at) AS revoked_at FROM refresh_tokens
         WHERE revoked_at > $1 GROUP BY family_id",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(since)
    .load(conn)
    .await?;
    Ok((
        rows.into_iter()
            .map(|r| (r.family_id, r.revoked_at))
            .collect(),
        now.now,
    ))
}

/// Live (neither rotated nor revoked, not expired) refresh tokens of a user.
pub async fn live_sessions(conn: &mut AsyncPgConnection, user_id: Uuid) -> QueryResult<i64> {
    rt::table
        .filter(rt::user_id.eq(user_id))
        .filter(rt::revoked_at.is_null())
        .filter(rt::rotated_at.is_null())
        .filter(rt::expires_at.gt(Utc::now()))
        .count()
        .get_result(conn)
        .await
}
