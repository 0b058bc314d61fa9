//! One-time codes sent by email: six random digits, stored only as a hash,
//! spent by success, by too many wrong tries, by expiry, or by a newer code
//! of the same purpose.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{cooldown, model::User};
use crate::{config::AuthConfig, email, schema::one_time_codes as codes};

/// What a code proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    PasswordReset,
}

impl Purpose {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::PasswordReset => "password_reset",
        }
    }

    fn ttl(self, config: &AuthConfig) -> std::time::Duration {
        match self {
            Purpose::VerifyEmail => config.verification_code_ttl,
            Purpose::PasswordReset => config.password_reset_code_ttl,
        }
    }
}

/// Why a code was not accepted. Clients see one answer for all of them
/// ("invalid or expired code"); the distinction is for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRejection {
    /// Unknown account, or no live code for it.
    NoLiveCode,
    Expired,
    /// Wrong code; `remaining` tries before it is burned.
    Wrong {
        remaining: i32,
    },
}

/// Six digits from the thread-local CSPRNG, zero-padded.
pub(super) fn generate() -> String {
    format!("{:06}", rand::random_range(0..1_000_000u32))
}

/// The user id salts the hash, so equal codes of two users hash apart.
pub(super) fn hash(user_id: Uuid, code: &str) -> String {
    hex::encode(Sha256::digest(format!("{user_id}:{code}").as_bytes()))
}

/// Compares two hashes in time independent of where they differ.
pub(super) fn hashes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[derive(Insertable)]
#[diesel(table_name = codes)]
struct NewCode<'a> {
    id: Uuid,
    user_id: Uuid,
    purpose: &'static str,
    email: &'a str,
    code_hash: String,
    expires_at: DateTime<Utc>,
}

/// Spends the user's live codes of this purpose, issues a new one to the
/// user's current address and queues the email that carries it. Runs inside
/// the caller's transaction.
pub(super) async fn issue(
    conn: &mut AsyncPgConnection,
    config: &AuthConfig,
    user: &User,
    purpose: Purpose,
) -> QueryResult<()> {
    let now = Utc::now();
    diesel::update(codes::table)
        .filter(codes::user_id.eq(user.id))
        .filter(codes::purpose.eq(purpose.as_str()))
        .filter(codes::consumed_at.is_null())
        .set(codes::consumed_at.eq(now))
        .execute(conn)
        .await?;
    let code = generate();
    let ttl = purpose.ttl(config);
    diesel::insert_into(codes::table)
        .values(NewCode {
            id: Uuid::new_v4(),
            user_id: user.id,
            purpose: purpose.as_str(),
            email: &user.email,
            code_hash: hash(user.id, &code),
            expires_at: now + chrono::Duration::from_std(ttl).unwrap_or_default(),
        })
        .execute(conn)
        .await?;
    cooldown::record(conn, &user.email, purpose).await?;
    let expires_minutes = ttl.as_secs().div_ceil(60);
    match purpose {
        Purpose::VerifyEmail => {
            email::enqueue(
                conn,
                Some(user.id),
                &user.email,
                &email::VerifyEmail {
                    username: user.username.clone(),
                    email: user.email.clone(),
                    code,
                    expires_minutes,
                },
            )
            .await?
        }
        Purpose::PasswordReset => {
            email::enqueue(
                conn,
                Some(user.id),
                &user.email,
                &email::PasswordReset {
                    username: user.username.clone(),
                    code,
                    expires_minutes,
                },
            )
            .await?
        }
    };
    Ok(())
}

/// Checks `code` against the user's live code of this purpose (sent to the
/// user's current address) and spends it on success. The code row is locked
/// while checked, so concurrent guesses count one by one; the
/// `verification_max_attempts`-th wrong guess burns it. Call inside a
/// transaction, and commit on a wrong guess too: the guess must count.
pub(super) async fn check(
    conn: &mut AsyncPgConnection,
    config: &AuthConfig,
    user: &User,
    purpose: Purpose,
    code: &str,
) -> QueryResult<Result<(), CodeRejection>> {
    let live = codes::table
        .filter(codes::user_id.eq(user.id))
        .filter(codes::purpose.eq(purpose.as_str()))
        .filter(codes::consumed_at.is_null())
        .filter(codes::email.eq(&user.email))
        .order(codes::created_at.desc())
        .select((
            codes::id,
            codes::code_hash,
            codes::attempts,
            codes::expires_at,
        ))
        .for_update()
        .first::<(Uuid, String, i32, DateTime<Utc>)>(conn)
        .await
        .optional()?;
    let Some((code_id, code_hash, attempts, expires_at)) = live else {
        return Ok(Err(CodeRejection::NoLiveCode));
    };
    let now = Utc::now();
    if expires_at <= now {
        return Ok(Err(CodeRejection::Expired));
    }
    if !hashes_equal(&hash(user.id, code.trim()), &code_hash) {
        let attempts = attempts + 1;
        let burned = attempts >= config.verification_max_attempts;
        diesel::update(codes::table.find(code_id))
            .set((
                codes::attempts.eq(attempts),
                codes::consumed_at.eq(burned.then_some(now)),
            ))
            .execute(conn)
            .await?;
        return Ok(Err(CodeRejection::Wrong {
            remaining: (config.verification_max_attempts - attempts).max(0),
        }));
    }
    diesel::update(codes::table.find(code_id))
        .set(codes::consumed_at.eq(now))
        .execute(conn)
        .await?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..1000 {
            let code = generate();
            assert_eq!(code.len(), 6);
            assert!(code.chars().all(|c| c.is_ascii_digit()));
        }
    }

    #[test]
    fn hashes_are_salted_by_user_and_compared_exactly() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert_ne!(hash(a, "123456"), hash(b, "123456"));
        assert!(hashes_equal(&hash(a, "123456"), &hash(a, "123456")));
        assert!(!hashes_equal(&hash(a, "123456"), &hash(a, "123457")));
        assert!(!hashes_equal("ab", "abc"));
    }
}
