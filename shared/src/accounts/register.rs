use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{
    AccountError, Role, codes, lower,
    model::{NewUser, User},
    validate::{self, FieldErrors},
};
use crate::{config::AuthConfig, db, db::DbPool, password, schema::users};

/// Registration input that passed validation (see [`Registration::parse`]).
#[derive(Debug, Clone)]
pub struct Registration {
    pub(super) username: String,
    pub(super) email: String,
    pub(super) password: String,
}

impl Registration {
    /// Checks every field, reporting all problems at once.
    pub fn parse(username: &str, email: &str, password: &str) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let username = validate::username(username)
            .map_err(|e| errors.add("username", e))
            .unwrap_or_default();
        let email = validate::email(email)
            .map_err(|e| errors.add("email", e))
            .unwrap_or_default();
        if let Err(e) = validate::new_password(password) {
            errors.add("password", e);
        }
        errors.into_result(Self {
            username,
            email,
            password: password.to_owned(),
        })
    }
}

/// Creates an unverified user and, in the same transaction, the verification
/// code and its email job. The password is hashed off the async threads
/// with no database connection held (a burst of registrations waits for
/// the hashing slots, not for the connections everyone needs).
///
/// Username and email are unique ignoring case; a clash answers
/// [`AccountError::Taken`] naming every clashing field, also when two
/// registrations race (the unique indexes decide).
pub async fn register(
    pool: &DbPool,
    config: &AuthConfig,
    input: Registration,
) -> Result<User, AccountError> {
    let mut taken = {
        let mut conn = pool.get().await?;
        taken_fields(&mut conn, &input.username, &input.email).await?
    };
    if !taken.is_empty() {
        return Err(AccountError::Taken(taken));
    }
    let password_hash = password::hash(input.password.clone(), config.bcrypt_cost).await?;

    let mut conn = pool.get().await?;
    let result = conn
        .transaction::<User, diesel::result::Error, _>(async |conn| {
            let user: User = diesel::insert_into(users::table)
                .values(NewUser {
                    id: Uuid::new_v4(),
                    username: &input.username,
                    email: &input.email,
                    password_hash: &password_hash,
                    role: Role::User,
                    email_verified_at: None,
                })
                .returning(User::as_returning())
                .get_result(conn)
                .await?;
            codes::issue(conn, config, &user, codes::Purpose::VerifyEmail).await?;
            Ok(user)
        })
        .await;

    match result {
        Ok(user) => Ok(user),
        Err(error) => match db::unique_violation(&error) {
            Some("users_username_key") => {
                taken.push("username");
                Err(AccountError::Taken(taken))
            }
            Some("users_email_key") => {
                taken.push("email");
                Err(AccountError::Taken(taken))
            }
            _ => Err(error.into()),
        },
    }
}

pub(super) async fn taken_fields(
    conn: &mut AsyncPgConnection,
    username: &str,
    email: &str,
) -> Result<Vec<&'static str>, AccountError> {
    let username_taken: bool = diesel::select(diesel::dsl::exists(
        users::table.filter(lower(users::username).eq(username.to_lowercase())),
    ))
    .get_result(conn)
    .await?;
    let email_taken: bool = diesel::select(diesel::dsl::exists(
        users::table.filter(lower(users::email).eq(email.to_lowercase())),
    ))
    .get_result(conn)
    .await?;
    let mut taken = Vec::new();
    if username_taken {
        taken.push("username");
    }
    if email_taken {
        taken.push("email");
    }
    Ok(taken)
}
