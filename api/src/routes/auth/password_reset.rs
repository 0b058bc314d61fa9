//! Forgotten passwords: a code by email, then a new password.

use axum::{extract::State, http::StatusCode};
use serde::Deserialize;
use shared::accounts::{self, AccountError, CodeRejection, validate};
use utoipa::ToSchema;

use super::verify_email::Accepted;
use crate::{
    error::{ApiError, Problem},
    extract::ApiJson,
    rate_limit::{self, ClientIp},
    routes::spec,
    state::AppState,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    #[schema(format = Email, max_length = 254, example = "ada@example.com")]
    email: String,
}

/// Ask for a password-reset code.
///
/// 202 whether or not the address has an account; a code goes only to a
/// verified address. It expires after 15 minutes and allows five tries.
/// Limited per IP and per address; a request for the same address within
/// the cool-down (30 s by default) answers 429 `rate_limited` with
/// `Retry-After`, for every address alike.
#[utoipa::path(
    post,
    path = "/auth/password-reset",
    tag = "auth",
    request_body = PasswordResetRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::RateLimited,
        (status = 202, description = "Accepted", body = Accepted),
    )
)]
pub async fn request_reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<PasswordResetRequest>,
) -> Result<(StatusCode, axum::Json<Accepted>), ApiError> {
    let email =
        validate::email(&body.email).map_err(|message| ApiError::field("email", message))?;
    let limits = state.config.auth.limits;
    rate_limit::hit(&state, "reset_ip", &ip, limits.reset_per_ip).await?;
    rate_limit::hit(
        &state,
        "reset_account",
        &email.to_lowercase(),
        limits.reset_per_account,
    )
    .await?;
    let mut conn = state.conn().await?;
    if let accounts::Resend::TooSoon(wait) =
        accounts::request_password_reset(&mut conn, &state.config.auth, &email).await?
    {
        return Err(super::verify_email::too_soon(wait));
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(Accepted {
            status: "accepted",
            detail: "If this address belongs to an account, a reset code is on its way.",
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetConfirm {
    #[schema(example = "ada@example.com")]
    email: String,
    /// The six-digit code from the email.
    #[schema(pattern = "^[0-9]{6}$", example = "271828")]
    code: String,
    /// At least 8 characters, at most 72 bytes in UTF-8 (bcrypt's limit).
    #[schema(min_length = 8, max_length = 72)]
    new_password: String,
}

/// Set a new password with the emailed code.
///
/// Every session of the account is signed out, and a notice is emailed.
#[utoipa::path(
    post,
    path = "/auth/password-reset/confirm",
    tag = "auth",
    request_body = PasswordResetConfirm,
    responses(
        spec::Unavailable, spec::JsonBody, spec::RateLimited,
        (status = 204, description = "Password changed; all sessions revoked"),
        (status = 400, description = "Invalid fields, or the code is wrong, expired or spent (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn confirm_reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<PasswordResetConfirm>,
) -> Result<StatusCode, ApiError> {
    let mut errors = shared::accounts::FieldErrors::default();
    let code = body.code.trim();
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        errors.add("code", "must be the six digits from the email");
    }
    if let Err(message) = validate::new_password(&body.new_password) {
        errors.add("new_password", message);
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(
            "the request has invalid fields",
            errors.0,
        ));
    }
    rate_limit::hit(
        &state,
        "reset_ip",
        &ip,
        state.config.auth.limits.reset_per_ip,
    )
    .await?;
    if super::names_no_account(&body.email) {
        return Err(AccountError::InvalidCode(CodeRejection::NoLiveCode).into());
    }
    // Hashes before taking a connection (see accounts::confirm_password_reset).
    accounts::confirm_password_reset(
        &state.db,
        &state.config.auth,
        &body.email,
        code,
        &body.new_password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
