//! Login, refresh and logout.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use shared::{
    accounts::{self, AccountError},
    sessions::{self, SessionError, Tokens},
};
use utoipa::ToSchema;

use crate::{
    auth::{self, cookies},
    error::{ApiError, Problem},
    extract::{ApiJson, OptionalJson},
    rate_limit::{self, ClientIp},
    routes::spec,
    state::AppState,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Username or email, any letter case.
    #[schema(example = "ada_lovelace")]
    login: String,
    #[schema(example = "correct horse battery")]
    password: String,
}

/// A new token pair. The same tokens are also set as `HttpOnly`, `Secure`,
/// `SameSite=Strict` cookies, with a readable `bourse_csrf` cookie whose
/// value cookie-authenticated writes send back in `X-CSRF-Token`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Opaque; exchange it at `/auth/refresh` (each use rotates it).
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Access token lifetime in seconds.
    pub expires_in: u64,
}

fn with_cookies(state: &AppState, tokens: Tokens) -> Response {
    let mut headers = HeaderMap::new();
    cookies::set(
        &mut headers,
        cookies::for_session(&state.config.auth, &tokens),
    );
    let body = TokenResponse {
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        token_type: "Bearer",
        expires_in: tokens.expires_in,
    };
    (StatusCode::OK, headers, axum::Json(body)).into_response()
}

fn session_error(error: SessionError) -> ApiError {
    match error {
        SessionError::Invalid => {
            ApiError::Unauthenticated("the refresh token is invalid, expired or revoked".into())
        }
        SessionError::Reused => ApiError::Unauthenticated(
            "this refresh token was already used; the session has been revoked, sign in again"
                .into(),
        ),
        SessionError::Signing(e) => ApiError::internal(e),
        SessionError::Database(e) => e.into(),
    }
}

/// Sign in.
///
/// Unknown account and wrong password give the same answer after the same
/// work. Limited per IP and per account (429 with `Retry-After`); a
/// successful sign-in clears the account's count.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::RateLimited,
        (status = 200, description = "Signed in; cookies set too", body = TokenResponse),
        (status = 401, description = "Invalid login or password (`unauthenticated`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let limits = state.config.auth.limits;
    let account = body.login.trim().to_lowercase();
    rate_limit::hit(&state, "login_ip", &ip, limits.login_per_ip).await?;
    // Counted before the password is checked, so a concurrent burst of
    // guesses is cut off too (a count taken after each failure is not);
    // a right password clears it.
    rate_limit::hit(&state, "login_account", &account, limits.login_per_account).await?;
    if super::names_no_account(&body.login) {
        return Err(ApiError::Unauthenticated(
            "invalid login or password".into(),
        ));
    }
    // No connection is held while bcrypt runs (see accounts::authenticate).
    match accounts::authenticate(&state.db, &state.config.auth, &body.login, &body.password).await {
        Ok(user) => {
            rate_limit::clear(&state, "login_account", &account).await;
            let mut conn = state.conn().await?;
            let tokens = sessions::start(&mut conn, &state.config.auth, user.id)
                .await
                .map_err(session_error)?;
            tracing::info!(user.id = %user.id, "signed in");
            Ok(with_cookies(&state, tokens))
        }
        Err(AccountError::BadCredentials) => Err(ApiError::Unauthenticated(
            "invalid login or password".into(),
        )),
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// Omit to use the `bourse_refresh` cookie.
    refresh_token: Option<String>,
}

/// `/auth/refresh` and `/auth/logout` may come without a body (the cookie
/// carries the token); utoipa marks every body required.
pub(crate) struct OptionalBodies;

impl utoipa::Modify for OptionalBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, Required};
        for path in ["/api/v1/auth/refresh", "/api/v1/auth/logout"] {
            let body = openapi
                .paths
                .paths
                .get_mut(path)
                .and_then(|item| item.post.as_mut())
                .and_then(|post| post.request_body.as_mut());
            if let Some(RefOr::T(body)) = body {
                body.required = Some(Required::False);
            }
        }
    }
}

/// The refresh token from the body, else from the cookie (then the request
/// must pass the CSRF check).
fn refresh_token_of(
    parts: &axum::http::request::Parts,
    state: &AppState,
    body: Option<RefreshRequest>,
) -> Result<Option<String>, ApiError> {
    if let Some(token) = body.and_then(|b| b.refresh_token) {
        return Ok(Some(token));
    }
    match cookies::get(&parts.headers, cookies::REFRESH) {
        Some(token) => {
            auth::check_csrf(parts, state)?;
            Ok(Some(token))
        }
        None => Ok(None),
    }
}

/// Exchange a refresh token for a new pair.
///
/// The refresh token is rotated: the old one stops working. Presenting an
/// already-rotated token revokes its whole session (it was copied).
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "auth",
    request_body(content = RefreshRequest, description = "Optional when the bourse_refresh cookie is sent"),
    responses(
        spec::Unavailable, spec::JsonBody,
        (status = 200, description = "New tokens; cookies set too", body = TokenResponse),
        (status = 401, description = "No refresh token, or an invalid, expired, revoked or reused one (`unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Refresh cookie sent without the CSRF proof (`forbidden`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    OptionalJson(body): OptionalJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let token = refresh_token_of(&parts, &state, body)?.ok_or_else(|| {
        ApiError::Unauthenticated("no refresh token in the body or cookie".into())
    })?;
    let mut conn = state.conn().await?;
    let tokens = sessions::refresh(&mut conn, &state.config.auth, &token)
        .await
        .map_err(session_error)?;
    Ok(with_cookies(&state, tokens))
}

/// Sign out.
///
/// Revokes the session of the refresh token given (body or cookie), or of
/// the access token when only that is sent, and clears the cookies. The
/// session's access tokens stop working at once on every API process.
/// Signing out twice is harmless.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    request_body(content = RefreshRequest, description = "Optional"),
    responses(
        spec::Unavailable, spec::JsonBody,
        (status = 204, description = "Signed out (or already signed out); cookies cleared"),
        (status = 403, description = "Refresh cookie sent without the CSRF proof (`forbidden`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    mut parts: axum::http::request::Parts,
    OptionalJson(body): OptionalJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let mut conn = state.conn().await?;
    let ended = match refresh_token_of(&parts, &state, body)? {
        Some(token) => sessions::logout(&mut conn, &token).await?,
        None => {
            use axum::extract::FromRequestParts as _;
            match auth::Authenticated::from_request_parts(&mut parts, &state).await {
                Ok(caller) => {
                    sessions::end_session(&mut conn, caller.session_id).await?;
                    Some(caller.session_id)
                }
                Err(_) => None,
            }
        }
    };
    // Refused here at once; other API processes learn it from their poll.
    if let Some(session) = ended {
        state
            .revoked
            .add([session], state.config.auth.access_token_ttl);
    }
    let mut headers = HeaderMap::new();
    cookies::set(&mut headers, cookies::cleared(&state.config.auth));
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}
