use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{
    AccountError, check_password,
    codes::{self, CodeRejection, Purpose},
    find_by_email,
    model::User,
    verify::{Resend, send_code},
};
use crate::{config::AuthConfig, db::DbPool, email, password, schema::users, sessions};

async fn notify_changed(conn: &mut AsyncPgConnection, user: &User) -> diesel::QueryResult<()> {
    email::enqueue(
        conn,
        Some(user.id),
        &user.email,
        &email::PasswordChanged {
            username: user.username.clone(),
            changed_at: Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        },
    )
    .await
    .map(|_| ())
}

/// Changes the password of `user_id` after checking the current one. In one
/// transaction: the new hash, every other session revoked (the caller's
/// session, `keep_session`, stays), and a notice email queued. No database
/// connection is held while bcrypt runs.
pub async fn change_password(
    pool: &DbPool,
    config: &AuthConfig,
    user_id: Uuid,
    keep_session: Uuid,
    current: &str,
    new: &str,
) -> Result<(), AccountError> {
    let user = check_password(pool, user_id, current).await?;
    let new_hash = password::hash(new.to_owned(), config.bcrypt_cost).await?;
    let mut conn = pool.get().await?;
    conn.transaction::<(), diesel::result::Error, _>(async |conn| {
        diesel::update(users::table.find(user.id))
            .set(users::password_hash.eq(&new_hash))
            .execute(conn)
            .await?;
        sessions::revoke_all(conn, user.id, Some(keep_session)).await?;
        notify_changed(conn, &user).await
    })
    .await?;
    Ok(())
}

/// Emails a password-reset code if the address belongs to an account and
/// is verified (at most one request per address per cool-down). A code
/// never goes to an address nobody proved: whoever changed an account's
/// email with a stolen session cannot reset its password through it.
pub async fn request_password_reset(
    conn: &mut AsyncPgConnection,
    config: &AuthConfig,
    email_address: &str,
) -> Result<Resend, AccountError> {
    send_code(
        conn,
        config,
        email_address,
        Purpose::PasswordReset,
        |user| user.is_email_verified(),
    )
    .await
}

enum ResetOutcome {
    Done,
    Rejected(CodeRejection),
}

/// Sets a new password with a reset code. In one transaction: the code is
/// checked and spent, the password replaced, every session revoked, the
/// address counted as verified (the code proved it) and a notice queued.
/// A wrong code counts towards burning it.
pub async fn confirm_password_reset(
    pool: &DbPool,
    config: &AuthConfig,
    email_address: &str,
    code: &str,
    new: &str,
) -> Result<(), AccountError> {
    // Hashed before a connection is taken: bcrypt never holds one.
    let new_hash = password::hash(new.to_owned(), config.bcrypt_cost).await?;
    let mut conn = pool.get().await?;
    let outcome = conn
        .transaction::<ResetOutcome, diesel::result::Error, _>(async |conn| {
            let Some(user) = find_by_email(conn, email_address).await? else {
                return Ok(ResetOutcome::Rejected(CodeRejection::NoLiveCode));
            };
            if let Err(why) =
                codes::check(conn, config, &user, Purpose::PasswordReset, code).await?
            {
                return Ok(ResetOutcome::Rejected(why));
            }
            let now = Utc::now();
            diesel::update(users::table.find(user.id))
                .set((
                    users::password_hash.eq(&new_hash),
                    users::email_verified_at.eq(user.email_verified_at.unwrap_or(now)),
                ))
                .execute(conn)
                .await?;
            sessions::revoke_all(conn, user.id, None).await?;
            notify_changed(conn, &user).await?;
            Ok(ResetOutcome::Done)
        })
        .await?;
    match outcome {
        ResetOutcome::Done => Ok(()),
        ResetOutcome::Rejected(why) => Err(AccountError::InvalidCode(why)),
    }
}
