use axum::{extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use shared::accounts::{self, AccountError, CodeRejection, Resend};
use utoipa::ToSchema;

use super::UserResponse;
use crate::rate_limit::{self, ClientIp};
use crate::{
    error::{ApiError, Problem},
    extract::ApiJson,
    routes::spec,
    state::AppState,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    #[schema(example = "ada@example.com")]
    email: String,
    /// The six-digit code from the email.
    #[schema(pattern = "^[0-9]{6}$", example = "042424")]
    code: String,
}

/// Confirm an email address with its code.
///
/// Codes expire after 15 minutes; five wrong tries burn the code (ask for a
/// new one). An already verified address is refused exactly like a wrong
/// code. Limited per IP and per address (429 with `Retry-After`).
#[utoipa::path(
    post,
    path = "/auth/verify-email",
    tag = "auth",
    request_body = VerifyEmailRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::RateLimited,
        (status = 200, description = "Email verified", body = UserResponse),
        (status = 400, description = "Invalid fields, or the code is wrong, expired or spent (also for an already verified address) (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn verify_email(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<VerifyEmailRequest>,
) -> Result<axum::Json<UserResponse>, ApiError> {
    let code = body.code.trim();
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return Err(ApiError::field(
            "code",
            "must be the six digits from the email",
        ));
    }
    let limits = state.config.auth.limits;
    rate_limit::hit(&state, "verify_ip", &ip, limits.verify_per_ip).await?;
    rate_limit::hit(
        &state,
        "verify_account",
        &body.email.trim().to_lowercase(),
        limits.verify_per_account,
    )
    .await?;
    if super::names_no_account(&body.email) {
        return Err(AccountError::InvalidCode(CodeRejection::NoLiveCode).into());
    }
    let mut conn = state.conn().await?;
    let user = accounts::verify_email(&mut conn, &state.config.auth, &body.email, code).await?;
    Ok(axum::Json(user.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendRequest {
    #[schema(format = Email, max_length = 254, example = "ada@example.com")]
    email: String,
}

/// 429 for a code asked again within the cool-down.
pub fn too_soon(wait: std::time::Duration) -> ApiError {
    ApiError::RateLimited {
        retry_after_secs: wait
            .as_millis()
            .div_ceil(1000)
            .try_into()
            .unwrap_or(u64::MAX)
            .max(1),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// Always `accepted`.
    #[schema(example = "accepted")]
    pub status: &'static str,
    pub detail: &'static str,
}

/// Send a new verification code.
///
/// Answers 202 whether or not the address has an unverified account, so
/// the endpoint cannot be used to discover accounts. A request for the
/// same address within the cool-down (30 s by default) answers 429
/// `rate_limited` with `Retry-After` — for every address alike — instead
/// of being silently dropped. The new code replaces the old one.
#[utoipa::path(
    post,
    path = "/auth/verify-email/resend",
    tag = "auth",
    request_body = ResendRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::RateLimited,
        (status = 202, description = "Accepted", body = Accepted),
    )
)]
pub async fn resend(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<ResendRequest>,
) -> Result<(StatusCode, axum::Json<Accepted>), ApiError> {
    let email = shared::accounts::validate::email(&body.email)
        .map_err(|message| ApiError::field("email", message))?;
    let limits = state.config.auth.limits;
    rate_limit::hit(&state, "resend_ip", &ip, limits.resend_per_ip).await?;
    rate_limit::hit(
        &state,
        "resend_account",
        &email.to_lowercase(),
        limits.resend_per_account,
    )
    .await?;
    let mut conn = state.conn().await?;
    match accounts::resend_verification(&mut conn, &state.config.auth, &email).await? {
        Resend::Sent => tracing::info!("verification code re-sent"),
        Resend::Nothing => {}
        Resend::TooSoon(wait) => return Err(too_soon(wait)),
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(Accepted {
            status: "accepted",
            detail: "If this address belongs to an unverified account, a new code is on its way.",
        }),
    ))
}
