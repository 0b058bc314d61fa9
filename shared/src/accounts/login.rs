use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use tokio::sync::Mutex;

use super::{AccountError, lower, model::User};
use crate::{config::AuthConfig, db::DbPool, password, schema::users};

/// A bcrypt hash to check passwords of unknown accounts against, so a
/// login for an account that does not exist costs the same time as a wrong
/// password. One per cost, made on first use.
static DUMMY_HASH: Mutex<Option<(u32, String)>> = Mutex::const_new(None);

async fn dummy_hash(cost: u32) -> Result<String, AccountError> {
    let mut slot = DUMMY_HASH.lock().await;
    if let Some((made_with, hash)) = slot.as_ref()
        && *made_with == cost
    {
        return Ok(hash.clone());
    }
    let hash = password::hash("not a real password, never matches".into(), cost).await?;
    *slot = Some((cost, hash.clone()));
    Ok(hash)
}

/// Finds the account by username or email (ignoring case) and checks the
/// password. Unknown account and wrong password both answer
/// [`AccountError::BadCredentials`] after the same bcrypt work.
///
/// The connection goes back to the pool before bcrypt runs: a burst of
/// password guesses queues for the hashing slots, never for the database
/// connections every other request needs.
pub async fn authenticate(
    pool: &DbPool,
    config: &AuthConfig,
    login: &str,
    password_attempt: &str,
) -> Result<User, AccountError> {
    let login = login.trim().to_lowercase();
    let user: Option<User> = {
        let mut conn = pool.get().await?;
        users::table
            .filter(
                lower(users::username)
                    .eq(&login)
                    .or(lower(users::email).eq(&login)),
            )
            .select(User::as_select())
            .first(&mut conn)
            .await
            .optional()?
    };
    let (hash, user) = match user {
        Some(user) => (user.password_hash.clone(), Some(user)),
        None => (dummy_hash(config.bcrypt_cost).await?, None),
    };
    let matches = password::verify(password_attempt.to_owned(), hash).await?;
    match user {
        Some(user) if matches => Ok(user),
        _ => Err(AccountError::BadCredentials),
    }
}

/// Checks `attempt` against the current password of `user_id`, holding no
/// database connection while bcrypt runs. [`AccountError::NotFound`] when
/// the account is gone.
pub async fn check_password(
    pool: &DbPool,
    user_id: uuid::Uuid,
    attempt: &str,
) -> Result<User, AccountError> {
    let user: User = {
        let mut conn = pool.get().await?;
        users::table
            .find(user_id)
            .select(User::as_select())
            .first(&mut conn)
            .await
            .optional()?
            .ok_or(AccountError::NotFound)?
    };
    if password::verify(attempt.to_owned(), user.password_hash.clone()).await? {
        Ok(user)
    } else {
        Err(AccountError::WrongPassword)
    }
}
