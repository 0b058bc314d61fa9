use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use uuid::Uuid;

use super::{
    AccountError, check_password,
    codes::{self, Purpose},
    model::User,
    validate::{self, FieldErrors},
};
use crate::{config::AuthConfig, db, db::DbPool, email, schema::users};

/// Validated changes to a profile. `None` leaves a field as it is;
/// `Some(None)` clears a name.
#[derive(Debug, Clone, Default)]
pub struct ProfileChanges {
    first_name: Option<Option<String>>,
    last_name: Option<Option<String>>,
    email: Option<String>,
}

fn name(
    field: &str,
    raw: Option<Option<String>>,
    errors: &mut FieldErrors,
) -> Option<Option<String>> {
    match raw {
        None => None,
        Some(None) => Some(None),
        Some(Some(value)) => {
            let value = value.trim().to_owned();
            if value.chars().count() > 100 || value.chars().any(char::is_control) {
                errors.add(
                    field,
                    "must be at most 100 characters, without control characters",
                );
            }
            Some((!value.is_empty()).then_some(value))
        }
    }
}

impl ProfileChanges {
    pub fn parse(
        first_name: Option<Option<String>>,
        last_name: Option<Option<String>>,
        email: Option<String>,
    ) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let first_name = name("first_name", first_name, &mut errors);
        let last_name = name("last_name", last_name, &mut errors);
        let email = match email {
            None => None,
            Some(raw) => match validate::email(&raw) {
                Ok(email) => Some(email),
                Err(message) => {
                    errors.add("email", message);
                    None
                }
            },
        };
        errors.into_result(Self {
            first_name,
            last_name,
            email,
        })
    }
}

/// Applies profile changes in one transaction. A new email address (not
/// just a change of letter case) needs the current password, is unverified
/// until the code sent to it is confirmed (money movements are refused
/// meanwhile), and the old address is told of the change.
///
/// The password is checked with no database connection held.
pub async fn update_profile(
    pool: &DbPool,
    config: &AuthConfig,
    user_id: Uuid,
    changes: ProfileChanges,
    current_password: Option<&str>,
) -> Result<User, AccountError> {
    let mut password_checked = false;
    if let Some(email) = &changes.email {
        let current = {
            let mut conn = pool.get().await?;
            super::find(&mut conn, user_id)
                .await?
                .ok_or(AccountError::NotFound)?
        };
        if !email.eq_ignore_ascii_case(&current.email) {
            let attempt = current_password.ok_or(AccountError::CurrentPasswordRequired)?;
            check_password(pool, user_id, attempt).await?;
            password_checked = true;
        }
    }
    let mut conn = pool.get().await?;
    let result = conn
        .transaction::<Result<User, AccountError>, diesel::result::Error, _>(async |conn| {
            let old: User = users::table
                .find(user_id)
                .select(User::as_select())
                .for_update()
                .first(conn)
                .await?;
            let new_address = changes
                .email
                .as_ref()
                .is_some_and(|email| !email.eq_ignore_ascii_case(&old.email));
            // The address changed since it was read without the lock, and
            // the password was not checked for this change.
            if new_address && !password_checked {
                return Ok(Err(AccountError::CurrentPasswordRequired));
            }
            let user: User = diesel::update(users::table.find(user_id))
                .set((
                    users::first_name
                        .eq(changes.first_name.clone().unwrap_or(old.first_name.clone())),
                    users::last_name.eq(changes.last_name.clone().unwrap_or(old.last_name.clone())),
                    users::email.eq(changes.email.clone().unwrap_or(old.email.clone())),
                    users::email_verified_at.eq(if new_address {
                        None
                    } else {
                        old.email_verified_at
                    }),
                ))
                .returning(User::as_returning())
                .get_result(conn)
                .await?;
            if new_address {
                codes::issue(conn, config, &user, Purpose::VerifyEmail).await?;
                email::enqueue(
                    conn,
                    Some(user.id),
                    &old.email,
                    &email::EmailChanged {
                        username: user.username.clone(),
                        new_address: masked(&user.email),
                        changed_at: Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
                    },
                )
                .await?;
            }
            Ok(Ok(user))
        })
        .await;
    match result {
        Ok(outcome) => outcome,
        Err(error) if db::unique_violation(&error) == Some("users_email_key") => {
            Err(AccountError::Taken(vec!["email"]))
        }
        Err(diesel::result::Error::NotFound) => Err(AccountError::NotFound),
        Err(error) => Err(error.into()),
    }
}

/// `ada@example.com` → `a***@example.com`: enough for the owner to
/// recognise, not a full address to whoever reads the old mailbox.
fn masked(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_are_masked() {
        assert_eq!(super::masked("ada@example.com"), "a***@example.com");
        assert_eq!(super::masked("x"), "***");
    }
}
