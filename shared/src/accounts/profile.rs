use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{
    AccountError,
    codes::{self, Purpose},
    model::User,
    validate::{self, FieldErrors},
};
use crate::{config::AuthConfig, db, schema::users};

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
/// just a change of letter case) is unverified until the code sent to it is
/// confirmed; money movements are refused meanwhile.
pub async fn update_profile(
    conn: &mut AsyncPgConnection,
    config: &AuthConfig,
    user_id: Uuid,
    changes: ProfileChanges,
) -> Result<User, AccountError> {
    let result = conn
        .transaction::<User, diesel::result::Error, _>(async |conn| {
            let mut user: User = users::table
                .find(user_id)
                .select(User::as_select())
                .for_update()
                .first(conn)
                .await?;
            let mut new_address = false;
            if let Some(email) = &changes.email {
                new_address = !email.eq_ignore_ascii_case(&user.email);
            }
            user = diesel::update(users::table.find(user_id))
                .set((
                    users::first_name.eq(changes.first_name.clone().unwrap_or(user.first_name)),
                    users::last_name.eq(changes.last_name.clone().unwrap_or(user.last_name)),
                    users::email.eq(changes.email.clone().unwrap_or(user.email)),
                    users::email_verified_at.eq(if new_address {
                        None
                    } else {
                        user.email_verified_at
                    }),
                ))
                .returning(User::as_returning())
                .get_result(conn)
                .await?;
            if new_address {
                codes::issue(conn, config, &user, Purpose::VerifyEmail).await?;
            }
            Ok(user)
        })
        .await;
    match result {
        Ok(user) => Ok(user),
        Err(error) if db::unique_violation(&error) == Some("users_email_key") => {
            Err(AccountError::Taken(vec!["email"]))
        }
        Err(diesel::result::Error::NotFound) => Err(AccountError::NotFound),
        Err(error) => Err(error.into()),
    }
}
