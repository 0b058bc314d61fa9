use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::{
    AccountError,
    codes::{self, CodeRejection, Purpose},
    cooldown, find_by_email,
    model::User,
};
use crate::{config::AuthConfig, schema::users};

enum Outcome {
    Verified(User),
    Rejected(CodeRejection),
}

/// Confirms `email` with `code`. A wrong guess is committed (it must count)
/// and then reported as [`AccountError::InvalidCode`].
///
/// An already verified address is refused exactly like a wrong code: the
/// answer to an unauthenticated caller never carries an account's data
/// unless the caller proved the code.
pub async fn verify_email(
    conn: &mut AsyncPgConnection,
    config: &AuthConfig,
    email: &str,
    code: &str,
) -> Result<User, AccountError> {
    let outcome = conn
        .transaction::<Outcome, diesel::result::Error, _>(async |conn| {
            let Some(user) = find_by_email(conn, email).await? else {
                return Ok(Outcome::Rejected(CodeRejection::NoLiveCode));
            };
            if user.is_email_verified() {
                return Ok(Outcome::Rejected(CodeRejection::NoLiveCode));
            }
            if let Err(why) = codes::check(conn, config, &user, Purpose::VerifyEmail, code).await? {
                return Ok(Outcome::Rejected(why));
            }
            let user = diesel::update(users::table.find(user.id))
                .set(users::email_verified_at.eq(Utc::now()))
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

/// What a resend (or reset) request did. `Sent` and `Nothing` answer the
/// same to clients (202), so they cannot learn which addresses have
/// accounts; `TooSoon` is answered 429 for every address alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    Sent,
    /// No account with that address, or nothing to send (already verified;
    /// an unverified address asking for a reset).
    Nothing,
    /// A code was asked for this address less than the cool-down ago; it
    /// ends after this long.
    TooSoon(Duration),
}

/// Issues a code of `purpose` to the account with `email` (locking the user
/// row so concurrent requests queue one email), unless a request for this
/// address came within the cool-down (`CODE_RESEND_COOLDOWN_SECS`), or
/// `wanted` says the account needs none.
pub(super) async fn send_code(
    conn: &mut AsyncPgConnection,
    config: &AuthConfig,
    email: &str,
    purpose: Purpose,
    wanted: fn(&User) -> bool,
) -> Result<Resend, AccountError> {
    let cooldown_time = config.code_resend_cooldown;
    let outcome = conn
        .transaction::<Resend, diesel::result::Error, _>(async |conn| {
            if let Some(wait) = cooldown::claim(conn, email, purpose, cooldown_time).await? {
                return Ok(Resend::TooSoon(wait));
            }
            let Some(user) = find_by_email(conn, email).await? else {
                return Ok(Resend::Nothing);
            };
            let user: User = users::table
                .find(user.id)
                .select(User::as_select())
                .for_update()
                .first(conn)
                .await?;
            if !wanted(&user) {
                return Ok(Resend::Nothing);
            }
            codes::issue(conn, config, &user, purpose).await?;
            Ok(Resend::Sent)
        })
        .await?;
    Ok(outcome)
}

/// Issues a new verification code (spending the old ones) and queues its
/// email, in one transaction.
pub async fn resend_verification(
    conn: &mut AsyncPgConnection,
    config: &AuthConfig,
    email: &str,
) -> Result<Resend, AccountError> {
    send_code(conn, config, email, Purpose::VerifyEmail, |user| {
        !user.is_email_verified()
    })
    .await
}
