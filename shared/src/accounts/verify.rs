use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::{AccountError, codes, find_by_email, model::User};
use crate::{
    config::AuthConfig,
    schema::{email_verification_codes as vcodes, users},
};

/// Why a verification attempt failed. All of them look the same to the
/// client ("invalid or expired code"); the distinction is for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRejection {
    /// Unknown email, or no live code for it.
    NoLiveCode,
    Expired,
    /// Wrong code; `remaining` tries before the code is burned.
    Wrong {
        remaining: i32,
    },
}

enum Outcome {
    Verified(User),
    Rejected(CodeRejection),
}

/// Confirms `email` with `code`.
///
/// The code row is locked while checked, so concurrent guesses are counted
/// one by one; the `verification_max_attempts`-th wrong guess burns the code.
/// A wrong guess is committed (it must count) and then reported as
/// [`AccountError::InvalidCode`]. Verifying an already verified address
/// succeeds again.
pub async fn verify_email(
    conn: &mut AsyncPgConnection,
    config: &AuthConfig,
    email: &str,
    code: &str,
) -> Result<User, AccountError> {
    let max_attempts = config.verification_max_attempts;
    let outcome = conn
        .transaction::<Outcome, diesel::result::Error, _>(async |conn| {
            let Some(user) = find_by_email(conn, email).await? else {
                return Ok(Outcome::Rejected(CodeRejection::NoLiveCode));
            };
            if user.is_email_verified() {
                return Ok(Outcome::Verified(user));
            }
            let live = vcodes::table
                .filter(vcodes::user_id.eq(user.id))
                .filter(vcodes::consumed_at.is_null())
                .filter(vcodes::email.eq(&user.email))
                .order(vcodes::created_at.desc())
                .select((
                    vcodes::id,
                    vcodes::code_hash,
                    vcodes::attempts,
                    vcodes::expires_at,
                ))
                .for_update()
                .first::<(uuid::Uuid, String, i32, chrono::DateTime<Utc>)>(conn)
                .await
                .optional()?;
            let Some((code_id, code_hash, attempts, expires_at)) = live else {
                return Ok(Outcome::Rejected(CodeRejection::NoLiveCode));
            };
            let now = Utc::now();
            if expires_at <= now {
                return Ok(Outcome::Rejected(CodeRejection::Expired));
            }
            if !codes::hashes_equal(&codes::hash(user.id, code.trim()), &code_hash) {
                let attempts = attempts + 1;
                let burned = attempts >= max_attempts;
                diesel::update(vcodes::table.find(code_id))
                    .set((
                        vcodes::attempts.eq(attempts),
                        vcodes::consumed_at.eq(burned.then_some(now)),
                    ))
                    .execute(conn)
                    .await?;
                return Ok(Outcome::Rejected(CodeRejection::Wrong {
                    remaining: (max_attempts - attempts).max(0),
                }));
            }
            diesel::update(vcodes::table.find(code_id))
                .set(vcodes::consumed_at.eq(now))
                .execute(conn)
                .await?;
            let user = diesel::update(users::table.find(user.id))
                .set(users::email_verified_at.eq(now))
                .returning(User::as_returning())
                .get_result(conn)
                .await?;
            Ok(Outcome::Verified(user))
        })
        .await?;
    match outcome {
        Outcome::Verified(user) => Ok(user),
        Outcome::Rejected(why) => Err(AccountError::InvalidCode(why)),
    }
}

/// What a resend request did; the API answers 202 in every case so callers
/// cannot learn which addresses have accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    Sent,
    /// No account with that address, or it is already verified.
    Nothing,
    /// A code went out less than the cool-down ago; no new email.
    TooSoon,
}

/// Minimum time between two codes for one account, so the resend endpoint
/// cannot be used to flood an inbox.
pub const RESEND_COOLDOWN: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// Issues a new code (spending the old ones) and queues its email, in one
/// transaction.
pub async fn resend_verification(
    conn: &mut AsyncPgConnection,
    config: &AuthConfig,
    email: &str,
) -> Result<Resend, AccountError> {
    let outcome = conn
        .transaction::<Resend, diesel::result::Error, _>(async |conn| {
            let Some(user) = find_by_email(conn, email).await? else {
                return Ok(Resend::Nothing);
            };
            // Lock the user row: two concurrent resends queue one email.
            let user: User = users::table
                .find(user.id)
                .select(User::as_select())
                .for_update()
                .first(conn)
                .await?;
            if user.is_email_verified() {
                return Ok(Resend::Nothing);
            }
            let latest: Option<chrono::DateTime<Utc>> = vcodes::table
                .filter(vcodes::user_id.eq(user.id))
                .select(diesel::dsl::max(vcodes::created_at))
                .first(conn)
                .await?;
            if latest.is_some_and(|at| Utc::now() - at < RESEND_COOLDOWN) {
                return Ok(Resend::TooSoon);
            }
            codes::issue(conn, config, &user).await?;
            Ok(Resend::Sent)
        })
        .await?;
    Ok(outcome)
}
