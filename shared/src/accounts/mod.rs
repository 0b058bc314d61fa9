//! Accounts (PRODUCT.md §3): registration, email verification, login
//! credentials, profile, password change and reset, administrators.

mod admin;
mod codes;
mod cooldown;
mod login;
pub mod model;
mod password_change;
mod profile;
mod register;
pub mod validate;
mod verify;

pub use admin::{create_admin, promote};
pub use codes::CodeRejection;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
pub use login::{authenticate, check_password};
pub use model::{Role, User};
pub use password_change::{change_password, confirm_password_reset, request_password_reset};
pub use profile::{ProfileChanges, update_profile};
pub use register::{Registration, register};
pub use validate::FieldErrors;
pub use verify::{Resend, resend_verification, verify_email};

use crate::{password::PasswordError, schema::users};

diesel::define_sql_function!(
    /// SQL `lower(text)`; matches the `lower(...)` unique indexes.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text
);

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The named fields (`username`, `email`) belong to another account.
    #[error("{} already taken", .0.join(" and "))]
    Taken(Vec<&'static str>),
    #[error("invalid or expired code ({0:?})")]
    InvalidCode(CodeRejection),
    /// Unknown login or wrong password: deliberately one error.
    #[error("invalid login or password")]
    BadCredentials,
    /// The current password given to a password change is wrong.
    #[error("the current password is wrong")]
    WrongPassword,
    /// Changing the email address needs the current password, and none
    /// was given.
    #[error("the current password is required to change the email address")]
    CurrentPasswordRequired,
    #[error("no such user")]
    NotFound,
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    /// No connection could be had from the pool (the database is down or
    /// every connection is busy).
    #[error("database unavailable: {0}")]
    Pool(#[from] crate::db::PoolError),
}

/// The user whose email matches, ignoring case.
pub async fn find_by_email(conn: &mut AsyncPgConnection, email: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(lower(users::email).eq(email.trim().to_lowercase()))
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}

/// The user with this id.
pub async fn find(conn: &mut AsyncPgConnection, id: uuid::Uuid) -> QueryResult<Option<User>> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}
