//! Accounts: registration and email verification (PRODUCT.md §3).

mod codes;
pub mod model;
mod register;
pub mod validate;
mod verify;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
pub use model::User;
pub use register::{Registration, register};
pub use validate::FieldErrors;
pub use verify::{CodeRejection, RESEND_COOLDOWN, Resend, resend_verification, verify_email};

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
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
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
