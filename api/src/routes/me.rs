//! `/me`: the signed-in user's profile and password.

use axum::{extract::State, http::StatusCode};
use serde::{Deserialize, Deserializer};
use shared::accounts::{self, ProfileChanges, validate};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::UserResponse;
use crate::{
    auth::{Authenticated, CurrentUser},
    error::{ApiError, Problem},
    extract::ApiJson,
    rate_limit,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_me, update_me))
        .routes(routes!(change_password))
}

/// Your account.
#[utoipa::path(
    get,
    path = "/me",
    tag = "me",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The signed-in user", body = UserResponse),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_me(CurrentUser(user): CurrentUser) -> axum::Json<UserResponse> {
    axum::Json(user.into())
}

/// `Some(None)` for an explicit `null`, `None` when the field is absent.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    /// Up to 100 characters; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    first_name: Option<Option<String>>,
    /// Up to 100 characters; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    last_name: Option<Option<String>>,
    /// A new address needs `current_password`, is unverified until the
    /// code emailed to it is confirmed (money movements are refused
    /// meanwhile), and the old address is told of the change.
    email: Option<String>,
    /// Required when `email` changes the address.
    current_password: Option<String>,
}

/// Update your profile.
#[utoipa::path(
    patch,
    path = "/me",
    tag = "me",
    security(("bearer" = []), ("cookie" = [])),
    request_body = UpdateMeRequest,
    responses(
        (status = 200, description = "The updated user", body = UserResponse),
        (status = 400, description = "Invalid fields; `errors.current_password` when an email change lacks it", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Cookie sent without the CSRF proof", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Email taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong current password (`invalid_current_password`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many current-password attempts (`rate_limited`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update_me(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiJson(body): ApiJson<UpdateMeRequest>,
) -> Result<axum::Json<UserResponse>, ApiError> {
    let changes = ProfileChanges::parse(body.first_name, body.last_name, body.email)
        .map_err(|errors| ApiError::validation("the request has invalid fields", errors.0))?;
    let limiter = CurrentPasswordLimit::new(&state, caller.user_id);
    if body.current_password.is_some() {
        limiter.count().await?;
    }
    let user = accounts::update_profile(
        &state.db,
        &state.config.auth,
        caller.user_id,
        changes,
        body.current_password.as_deref(),
    )
    .await
    .map_err(account_error)?;
    if body.current_password.is_some() {
        limiter.clear().await;
    }
    Ok(axum::Json(user.into()))
}

/// The API's answer to a failed profile or password change.
fn account_error(error: accounts::AccountError) -> ApiError {
    match error {
        accounts::AccountError::NotFound => {
            ApiError::Unauthenticated("the account no longer exists".into())
        }
        other => other.into(),
    }
}

/// Current-password attempts per account. Each attempt is counted before
/// bcrypt runs — a count taken after each failure would let a concurrent
/// burst through — and a right password clears the count.
struct CurrentPasswordLimit<'a> {
    state: &'a AppState,
    account: String,
}

impl<'a> CurrentPasswordLimit<'a> {
    fn new(state: &'a AppState, user_id: uuid::Uuid) -> Self {
        Self {
            state,
            account: user_id.to_string(),
        }
    }

    async fn count(&self) -> Result<(), ApiError> {
        rate_limit::hit(
            self.state,
            "current_password",
            &self.account,
            self.state.config.auth.limits.current_password_per_account,
        )
        .await
    }

    async fn clear(&self) {
        rate_limit::clear(self.state, "current_password", &self.account).await;
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    current_password: String,
    /// At least 8 characters, at most 72 bytes.
    new_password: String,
    new_password_confirm: String,
}

/// Change your password.
///
/// Every other session is signed out (this one stays) and a notice is
/// emailed. A wrong current password is 422 `invalid_current_password`;
/// attempts are limited per account (429 with `Retry-After`), and no
/// database connection is held while the password is hashed.
#[utoipa::path(
    post,
    path = "/me/password",
    tag = "me",
    security(("bearer" = []), ("cookie" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Password changed"),
        (status = 400, description = "Weak new password or confirmation mismatch", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not signed in", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Cookie sent without the CSRF proof", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong current password (`invalid_current_password`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many current-password attempts (`rate_limited`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn change_password(
    State(state): State<AppState>,
    caller: Authenticated,
    ApiJson(body): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let mut errors = shared::accounts::FieldErrors::default();
    if let Err(message) = validate::new_password(&body.new_password) {
        errors.add("new_password", message);
    }
    if body.new_password != body.new_password_confirm {
        errors.add("new_password_confirm", "does not match new_password");
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(
            "the request has invalid fields",
            errors.0,
        ));
    }
    let limiter = CurrentPasswordLimit::new(&state, caller.user_id);
    limiter.count().await?;
    accounts::change_password(
        &state.db,
        &state.config.auth,
        caller.user_id,
        caller.session_id,
        &body.current_password,
        &body.new_password,
    )
    .await
    .map_err(account_error)?;
    limiter.clear().await;
    Ok(StatusCode::NO_CONTENT)
}
