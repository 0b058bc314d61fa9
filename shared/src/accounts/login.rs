use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use tokio::sync::Mutex;

use super::{AccountError, lower, model::User};
use crate::{config::AuthConfig, password, schema::users};

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
pub async fn authenticate(
    conn: &mut AsyncPgConnection,
    config: &AuthConfig,
    login: &str,
    password_attempt: &str,
) -> Result<User, AccountError> {
    let login = login.trim().to_lowercase();
    let user: Option<User> = users::table
        .filter(
            lower(users::username)
                .eq(&login)
                .or(lower(users::email).eq(&login)),
        )
        .select(User::as_select())
        .first(conn)
        .await
        .optional()?;
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
