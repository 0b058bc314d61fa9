use axum::{extract::State, http::StatusCode};
use serde::Deserialize;
use shared::accounts::{self, Registration};
use utoipa::ToSchema;

use super::UserResponse;
use crate::rate_limit::{self, ClientIp};
use crate::{
    error::{ApiError, Problem},
    extract::ApiJson,
    routes::spec,
    state::AppState,
};

/// Missing fields are reported together with invalid ones, so every field is
/// optional at the JSON level and required by validation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3–32 characters `[a-z0-9_]`, any letter case (stored lower-case),
    /// unique ignoring case.
    #[schema(value_type = String, required = true, pattern = "^[A-Za-z0-9_]{3,32}$", example = "ada_lovelace")]
    username: Option<String>,
    /// Unique ignoring case.
    #[schema(value_type = String, required = true, format = Email, max_length = 254, example = "ada@example.com")]
    email: Option<String>,
    /// At least 8 characters, at most 72 bytes in UTF-8 (bcrypt's limit).
    #[schema(value_type = String, required = true, min_length = 8, max_length = 72, example = "correct horse battery")]
    password: Option<String>,
}

/// Create an account.
///
/// The account starts unverified; a six-digit code is emailed to the
/// address (by a background job queued in the same transaction).
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::RateLimited,
        (status = 201, description = "Account created; verification code emailed", body = UserResponse),
        (status = 409, description = "Username or email taken (`conflict`; `errors` names them)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, axum::Json<UserResponse>), ApiError> {
    rate_limit::hit(
        &state,
        "register_ip",
        &ip,
        state.config.auth.limits.register_per_ip,
    )
    .await?;
    let mut missing = shared::accounts::FieldErrors::default();
    for (field, value) in [
        ("username", &body.username),
        ("email", &body.email),
        ("password", &body.password),
    ] {
        if value.is_none() {
            missing.add(field, "is required");
        }
    }
    let input = Registration::parse(
        body.username.as_deref().unwrap_or("x"),
        body.email.as_deref().unwrap_or("x@example.com"),
        body.password.as_deref().unwrap_or("xxxxxxxx"),
    );
    let input = match (input, missing.is_empty()) {
        (Ok(input), true) => input,
        (Ok(_), false) => return Err(invalid(missing)),
        (Err(mut errors), _) => {
            for (field, message) in missing.0 {
                errors.0.insert(field, message);
            }
            return Err(invalid(errors));
        }
    };
    // Takes connections only around its queries, never while hashing.
    let user = accounts::register(&state.db, &state.config.auth, input).await?;
    tracing::info!(user.id = %user.id, "user registered");
    Ok((StatusCode::CREATED, axum::Json(user.into())))
}

fn invalid(errors: shared::accounts::FieldErrors) -> ApiError {
    ApiError::validation("the request has invalid fields", errors.0)
}
