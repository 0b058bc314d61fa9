use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{
    AccountError, Registration, Role, lower,
    model::{NewUser, User},
    register::taken_fields,
};
use crate::{db, password, schema::users};

/// Creates an administrator with a verified email (operators create admins
/// from the command line; there is no public route for it).
pub async fn create_admin(
    conn: &mut AsyncPgConnection,
    bcrypt_cost: u32,
    input: Registration,
) -> Result<User, AccountError> {
    let taken = taken_fields(conn, &input.username, &input.email).await?;
    if !taken.is_empty() {
        return Err(AccountError::Taken(taken));
    }
    let hash = password::hash(input.password.clone(), bcrypt_cost).await?;
    diesel::insert_into(users::table)
        .values(NewUser {
            id: Uuid::new_v4(),
            username: &input.username,
            email: &input.email,
            password_hash: &hash,
            role: Role::Admin,
            email_verified_at: Some(Utc::now()),
        })
        .returning(User::as_returning())
        .get_result(conn)
        .await
        .map_err(|error| match db::unique_violation(&error) {
            Some(_) => AccountError::Taken(vec!["username"]),
            None => error.into(),
        })
}

/// Makes an existing user an administrator.
pub async fn promote(conn: &mut AsyncPgConnection, username: &str) -> Result<User, AccountError> {
    diesel::update(users::table.filter(lower(users::username).eq(username.trim().to_lowercase())))
        .set(users::role.eq(Role::Admin))
        .returning(User::as_returning())
        .get_result(conn)
        .await
        .optional()?
        .ok_or(AccountError::NotFound)
}
