use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::{
    AccountError,
    codes::{self, CodeRejection, Purpose},
    find_by_email,
    model::User,
};
use crate::{config::AuthConfig, schema::users};

enum Outcome {
    Verified(User),
    Rejected(CodeRejection),
}

/// Confirms `email` with `code`. A wrong guess is committed (it must count)
/// and then reported as [`AccountError::InvalidCode`]. Verifying an already
/// verified address succeeds again.
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
                return Ok(Outcome::Verified(user));
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

/// What a resend (or reset) request did; the API answers 202 in every case
/// so callers cannot learn which addresses have accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    Sent,
    /// No account with that address, or nothing to send (already verified).
    Nothing,
    /// A code went out less than the cool-down ago; no new email.
    TooSoon,
}

/// Minimum time between two codes of one purpose for one account, so these
/// endpoints cannot be used to flood an inbox.
pub const RESEND_COOLDOWN: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// Issues a code of `purpose` to the account with `email` (locking the user
/// row so concurrent requests queue one email), unless `wanted` says the
/// account needs none or one went out within [`RESEND_COOLDOWN`].
pub(super) async fn send_code(
    conn: &mut AsyncPgConnection,
    config: &AuthConfig,
    email: &str,
    purpose: Purpose,
    wanted: fn(&User) -> bool,
) -> Result<Resend, AccountError> {
    let outcome = conn
        .transaction::<Resend, diesel::result::Error, _>(async |conn| {
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
            let latest = codes::last_issued(conn, user.id, purpose).await?;
            if latest.is_some_and(|at| Utc::now() - at < RESEND_COOLDOWN) {
                return Ok(Resend::TooSoon);
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
