//! `/auth/...`: registration and email verification (PRODUCT.md §3).

mod password_reset;
mod register;
mod session;

pub(crate) use session::OptionalBodies;
mod verify_email;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register::register))
        .routes(routes!(verify_email::verify_email))
        .routes(routes!(verify_email::resend))
        .routes(routes!(session::login))
        .routes(routes!(session::refresh))
        .routes(routes!(session::logout))
        .routes(routes!(password_reset::request_reset))
        .routes(routes!(password_reset::confirm_reset))
}

/// True when `text` cannot name any account: it holds a NUL, which no
/// username or address has and PostgreSQL text cannot even hold (a query
/// given one fails). Such input is answered like any unknown account
/// instead of reaching a query.
pub(crate) fn names_no_account(text: &str) -> bool {
    text.contains('\0')
}

/// A user as clients see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub email_verified: bool,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `user` or `admin`.
    pub role: &'static str,
    pub created_at: DateTime<Utc>,
}

impl From<shared::accounts::User> for UserResponse {
    fn from(user: shared::accounts::User) -> Self {
        Self {
            email_verified: user.is_email_verified(),
            id: user.id,
            username: user.username,
            email: user.email,
            first_name: user.first_name,
            last_name: user.last_name,
            role: user.role.as_str(),
            created_at: user.created_at,
        }
    }
}
