//! One-time email verification codes: six random digits, stored only as a
//! hash, spent by success, by too many wrong tries, by expiry or by a newer
//! code.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{config::AuthConfig, email, schema::email_verification_codes as codes};

use super::model::User;

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
    email: &'a str,
    code_hash: String,
    expires_at: DateTime<Utc>,
}

/// Spends every live code of the user, issues a new one and queues the email
/// that carries it. Runs inside the caller's transaction.
pub(super) async fn issue(
    conn: &mut AsyncPgConnection,
    config: &AuthConfig,
    user: &User,
) -> QueryResult<()> {
    let now = Utc::now();
    diesel::update(codes::table)
        .filter(codes::user_id.eq(user.id))
        .filter(codes::consumed_at.is_null())
        .set(codes::consumed_at.eq(now))
        .execute(conn)
        .await?;
    let code = generate();
    let ttl = chrono::Duration::from_std(config.verification_code_ttl).unwrap_or_default();
    diesel::insert_into(codes::table)
        .values(NewCode {
            id: Uuid::new_v4(),
            user_id: user.id,
            email: &user.email,
            code_hash: hash(user.id, &code),
            expires_at: now + ttl,
        })
        .execute(conn)
        .await?;
    email::enqueue(
        conn,
        Some(user.id),
        &user.email,
        &email::VerifyEmail {
            username: user.username.clone(),
            email: user.email.clone(),
            code,
            expires_minutes: config.verification_code_ttl.as_secs().div_ceil(60),
        },
    )
    .await?;
    Ok(())
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
