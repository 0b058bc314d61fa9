//! Who is calling: access tokens from the `Authorization: Bearer` header or
//! the access cookie, checked on every request, and the extractors handlers
//! declare what they need with.
//!
//! - [`Authenticated`]: a valid access token (no database read).
//! - [`CurrentUser`]: the account behind it, which must still exist.
//! - [`VerifiedUser`]: and its email verified (money movements), else 403
//!   `email_not_verified`. The hottest money routes instead check this in
//!   the query that reads the wallet (one statement, not two): see
//!   `shared::wallets::Refusal`.
//! - [`AdminUser`]: and an administrator, else 403 `forbidden`.
//!
//! A request authenticated by cookie that changes state must prove it comes
//! from our page (CSRF): the `X-CSRF-Token` header equal to the
//! `bourse_csrf` cookie, or an `Origin` equal to `PUBLIC_URL`'s.

pub mod cookies;

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, Method, header, request::Parts},
};
use shared::{accounts::User, sessions::tokens};
use uuid::Uuid;

use crate::{
    error::{ApiError, ErrorCode},
    state::AppState,
};

/// A caller with a valid access token.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated {
    pub user_id: Uuid,
    pub session_id: Uuid,
}

/// The bearer token of the `Authorization` header, if one is given.
/// `Some(Err)` for a malformed header: a present but broken credential is
/// refused, never ignored in favour of a cookie.
fn bearer(headers: &HeaderMap) -> Option<Result<String, ApiError>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let parsed = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned())
        .filter(|token| !token.is_empty());
    Some(parsed.ok_or_else(|| {
        ApiError::Unauthenticated("the Authorization header must be `Bearer <access token>`".into())
    }))
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The origin (`scheme://host[:port]`) of a URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    url[after_scheme..]
        .find('/')
        .map_or(url, |i| &url[..after_scheme + i])
}

/// Double-submit token or same-origin `Origin` header.
pub fn check_csrf(parts: &Parts, state: &AppState) -> Result<(), ApiError> {
    if is_safe(&parts.method) {
        return Ok(());
    }
    let header_token = parts
        .headers
        .get(cookies::CSRF_HEADER)
        .and_then(|v| v.to_str().ok());
    let cookie_token = cookies::get(&parts.headers, cookies::CSRF);
    if let (Some(sent), Some(expected)) = (header_token, cookie_token.as_deref())
        && constant_time_eq(sent.as_bytes(), expected.as_bytes())
    {
        return Ok(());
    }
    let origin = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    if origin.is_some_and(|o| o == origin_of(&state.config.http.public_url)) {
        return Ok(());
    }
    Err(ApiError::Forbidden {
        code: ErrorCode::Forbidden,
        detail: "cross-site request refused: send the X-CSRF-Token header with the bourse_csrf cookie's value".into(),
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(done) = parts.extensions.get::<Authenticated>() {
            return Ok(*done);
        }
        let (token, via_cookie) = match bearer(&parts.headers) {
            Some(token) => (token?, false),
            None => match cookies::get(&parts.headers, cookies::ACCESS) {
                Some(token) => (token, true),
                None => {
                    return Err(ApiError::Unauthenticated(
                        "sign in: no access token in the Authorization header or cookie".into(),
                    ));
                }
            },
        };
        let claims = tokens::verify_access(&state.config.auth, &token).map_err(|_| {
            ApiError::Unauthenticated("the access token is invalid or expired".into())
        })?;
        if state.revoked.is_revoked(&claims.sid) {
            return Err(ApiError::Unauthenticated(
                "this session has ended (signed out, password changed or token reused); sign in again"
                    .into(),
            ));
        }
        if via_cookie {
            check_csrf(parts, state)?;
        }
        let caller = Authenticated {
            user_id: claims.sub,
            session_id: claims.sid,
        };
        parts.extensions.insert(caller);
        Ok(caller)
    }
}

/// The signed-in user's account.
pub struct CurrentUser(pub User);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Authenticated::from_request_parts(parts, state).await?;
        let mut conn = state.conn().await?;
        shared::accounts::find(&mut conn, caller.user_id)
            .await?
            .map(CurrentUser)
            .ok_or_else(|| ApiError::Unauthenticated("the account no longer exists".into()))
    }
}

/// A signed-in user whose email is verified: required for every money
/// movement.
pub struct VerifiedUser(pub User);

impl FromRequestParts<AppState> for VerifiedUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        if !user.is_email_verified() {
            return Err(email_not_verified());
        }
        Ok(VerifiedUser(user))
    }
}

/// 403 `email_not_verified`: money moves only for verified users.
pub fn email_not_verified() -> ApiError {
    ApiError::Forbidden {
        code: ErrorCode::EmailNotVerified,
        detail: "verify your email address first (POST /api/v1/auth/verify-email)".into(),
    }
}

/// Why the caller may not move money, in [`VerifiedUser`]'s terms: the
/// account is gone (401), its email is not verified (403
/// `email_not_verified`), or the wallet is not theirs (404).
impl From<shared::wallets::Refusal> for ApiError {
    fn from(refusal: shared::wallets::Refusal) -> Self {
        use shared::wallets::{Refusal, WalletError};
        match refusal {
            Refusal::NoSuchUser => ApiError::Unauthenticated("the account no longer exists".into()),
            Refusal::EmailNotVerified => email_not_verified(),
            Refusal::NoSuchWallet => WalletError::NotFound.into(),
        }
    }
}

/// A signed-in administrator.
pub struct AdminUser(pub User);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        if user.role != shared::accounts::Role::Admin {
            return Err(ApiError::Forbidden {
                code: ErrorCode::Forbidden,
                detail: "administrators only".into(),
            });
        }
        Ok(AdminUser(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(
            origin_of("https://bourse.example/app"),
            "https://bourse.example"
        );
    }

    #[test]
    fn bearer_headers() {
        let mut headers = HeaderMap::new();
        assert!(bearer(&headers).is_none());
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&headers).unwrap().unwrap(), "abc");
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert!(bearer(&headers).unwrap().is_err());
        headers.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert!(bearer(&headers).unwrap().is_err());
    }
}
