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
    routes::spec,
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
        spec::Unavailable, spec::SignedIn,
        (status = 200, description = "The signed-in user", body = UserResponse),
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
    /// Up to 100 characters (surrounding spaces are dropped), no control
    /// characters; `null` or blank clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 100, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$")]
    first_name: Option<Option<String>>,
    /// Up to 100 characters (surrounding spaces are dropped), no control
    /// characters; `null` or blank clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 100, pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$")]
    last_name: Option<Option<String>>,
    /// A new address needs `current_password`, is unverified until the
    /// code emailed to it is confirmed (money movements are refused
    /// meanwhile), and the old address is told of the change.
    #[schema(format = Email, max_length = 254)]
    email: Option<String>,
    /// Required with `email` (checked when it changes the address).
    current_password: Option<String>,
}

/// `current_password` (a string) is required whenever `email` is sent (an
/// email change without it is 400): JSON Schema's `dependentSchemas`,
/// which the derive macros cannot state.
pub(super) struct EmailChangeNeedsPassword;

impl utoipa::Modify for EmailChangeNeedsPassword {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, Schema};
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        if let Some(RefOr::T(Schema::Object(object))) =
            components.schemas.get_mut("UpdateMeRequest")
        {
            object
                .extensions
                .get_or_insert_with(Default::default)
                .insert(
                    "dependentSchemas".to_owned(),
                    serde_json::json!({ "email": {
                    "required": ["current_password"],
                    "properties": { "current_password": { "type": "string" } },
                } }),
                );
        }
    }
}

/// Update your profile.
#[utoipa::path(
    patch,
    path = "/me",
    tag = "me",
    security(("bearer" = []), ("cookie" = [])),
    request_body = UpdateMeRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::SignedInWrite, spec::RateLimited,
        (status = 200, description = "The updated user", body = UserResponse),
        (status = 400, description = "Invalid fields; `errors.current_password` when an email change lacks it (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Email taken (`conflict`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong current password (`invalid_current_password`)", body = Problem, content_type = "application/problem+json"),
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
    /// At least 8 characters, at most 72 bytes in UTF-8 (bcrypt's limit).
    #[schema(min_length = 8, max_length = 72)]
    new_password: String,
    /// Equal to `new_password`.
    #[schema(min_length = 8, max_length = 72)]
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
        spec::Unavailable, spec::JsonBody, spec::SignedInWrite, spec::RateLimited,
        (status = 204, description = "Password changed"),
        (status = 400, description = "Weak new password or confirmation mismatch (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong current password (`invalid_current_password`)", body = Problem, content_type = "application/problem+json"),
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
