//! Demo data for local runs: an admin and a demo user with verified emails.
//! Idempotent: existing accounts are left as they are.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::{
    accounts::Role,
    accounts::{AccountError, lower, model::NewUser},
    password,
    schema::users,
};

/// One demo account and whether this run created it.
#[derive(Debug, Clone)]
pub struct SeededUser {
    pub username: &'static str,
    pub email: &'static str,
    pub role: Role,
    pub created: bool,
}

/// Creates `admin` and `demo` if missing, with the given passwords.
pub async fn seed_demo_users(
    conn: &mut AsyncPgConnection,
    bcrypt_cost: u32,
    admin_password: &str,
    demo_password: &str,
) -> Result<Vec<SeededUser>, AccountError> {
    let accounts = [
        ("admin", "admin@bourse.local", Role::Admin, admin_password),
        ("demo", "demo@bourse.local", Role::User, demo_password),
    ];
    let mut seeded = Vec::new();
    for (username, email, role, password) in accounts {
        let exists: bool = diesel::select(diesel::dsl::exists(
            users::table.filter(lower(users::username).eq(username)),
        ))
        .get_result(conn)
        .await?;
        if !exists {
            let hash = password::hash(password.to_owned(), bcrypt_cost).await?;
            diesel::insert_into(users::table)
                .values(NewUser {
                    id: Uuid::new_v4(),
                    username,
                    email,
                    password_hash: &hash,
                    role,
                    email_verified_at: Some(Utc::now()),
                })
                .execute(conn)
                .await?;
        }
        seeded.push(SeededUser {
            username,
            email,
            role,
            created: !exists,
        });
    }
    Ok(seeded)
}
