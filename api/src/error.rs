//! Errors at the HTTP edge: every failure becomes an RFC 9457
//! `application/problem+json` body `{type, title, status, detail, code,
//! errors?}` with a stable snake_case `code` (PRODUCT.md §2).

use std::collections::BTreeMap;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use shared::{accounts::AccountError, db};
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// The problem document (RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type: `/problems/{code}`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short, human-readable summary of the problem type.
    pub title: String,
    pub status: u16,
    /// What went wrong in this occurrence.
    pub detail: String,
    /// Stable machine-readable code, e.g. `validation_failed`.
    pub code: String,
    /// Field → message, for `validation_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<BTreeMap<String, String>>,
}

/// Every error the API can answer with. Causes of 500s are logged here and
/// never sent to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    Validation {
        detail: String,
        errors: BTreeMap<String, String>,
    },
    #[error("{0}")]
    Unauthenticated(String),
    /// 403; `code` is `forbidden` or a more precise one such as
    /// `email_not_verified`.
    #[error("{detail}")]
    Forbidden { code: ErrorCode, detail: String },
    /// 422 business-rule refusal with its own code (`insufficient_funds`,
    /// `wallet_blocked`, `same_wallet`, `currency_not_supported`,
    /// `rate_unavailable`, `limit_exceeded`).
    #[error("{detail}")]
    Refused { code: ErrorCode, detail: String },
    #[error("too many requests; retry in {retry_after_secs}s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{0}")]
    Conflict(String, BTreeMap<String, String>),
    #[error("{0}")]
    NotFound(String),
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the database is unavailable; nothing was changed, try again shortly")]
    Unavailable,
    #[error("the job queues (Redis) are unreachable; try again shortly")]
    QueuesUnavailable,
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn validation(detail: impl Into<String>, errors: BTreeMap<String, String>) -> Self {
        Self::Validation {
            detail: detail.into(),
            errors,
        }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let mut errors = BTreeMap::new();
        errors.insert(field.to_owned(), message.into());
        Self::validation("the request has invalid fields", errors)
    }

    /// 422 `rate_unavailable`: no fresh price of `symbol` to move money at.
    pub fn rate_unavailable(symbol: &str, reason: &str) -> Self {
        Self::Refused {
            code: ErrorCode::RateUnavailable,
            detail: format!("no fresh price for {symbol} ({reason}); try again shortly"),
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    /// True for 4xx answers other than 429: the request itself was refused,
    /// and retrying it unchanged gives the same answer.
    pub fn is_client_error(&self) -> bool {
        let (status, _) = self.parts();
        status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS
    }

    /// The status and problem document this error answers with.
    pub fn to_answer(&self) -> (StatusCode, serde_json::Value) {
        let (status, code) = self.parts();
        let errors = match self {
            Self::Validation { errors, .. } => Some(errors.clone()),
            Self::Conflict(_, errors) if !errors.is_empty() => Some(errors.clone()),
            _ => None,
        };
        let body = Problem {
            kind: format!("/problems/{code}"),
            title: code.title().to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: code.as_str().to_owned(),
            errors,
        };
        (status, serde_json::to_value(body).unwrap_or_default())
    }

    fn parts(&self) -> (StatusCode, ErrorCode) {
        match self {
            Self::Validation { .. } => (StatusCode::BAD_REQUEST, ErrorCode::ValidationFailed),
            Self::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated),
            Self::Forbidden { code, .. } => (StatusCode::FORBIDDEN, *code),
            Self::Refused { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, *code),
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited),
            Self::Conflict(..) => (StatusCode::CONFLICT, ErrorCode::Conflict),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge),
            Self::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
            ),
            Self::Unavailable | Self::QueuesUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable)
            }
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
        }
    }
}

/// Every problem `code` the API answers with, and its title (the wording
/// clients see for the problem type). An enum, not strings: a typo is a
/// compile error instead of a problem titled "Internal error".
macro_rules! error_codes {
    ($($variant:ident = ($code:literal, $title:literal),)+) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $($variant,)+
        }

        impl ErrorCode {
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The stable machine-readable code, e.g. `validation_failed`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)+
                }
            }

            pub const fn title(self) -> &'static str {
                match self {
                    $(Self::$variant => $title,)+
                }
            }

            pub fn parse(raw: &str) -> Option<Self> {
                match raw {
                    $($code => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

error_codes! {
    ValidationFailed = ("validation_failed", "Validation failed"),
    Unauthenticated = ("unauthenticated", "Authentication required"),
    Forbidden = ("forbidden", "Forbidden"),
    EmailNotVerified = ("email_not_verified", "Email not verified"),
    InsufficientFunds = ("insufficient_funds", "Insufficient funds"),
    WalletBlocked = ("wallet_blocked", "Wallet blocked"),
    SameWallet = ("same_wallet", "Same wallet"),
    CurrencyNotSupported = ("currency_not_supported", "Currency not supported"),
    RateUnavailable = ("rate_unavailable", "Rate unavailable"),
    LimitExceeded = ("limit_exceeded", "Limit exceeded"),
    InvalidCurrentPassword = ("invalid_current_password", "Invalid current password"),
    NotFound = ("not_found", "Not found"),
    MethodNotAllowed = ("method_not_allowed", "Method not allowed"),
    Conflict = ("conflict", "Conflict"),
    PayloadTooLarge = ("payload_too_large", "Payload too large"),
    UnsupportedMediaType = ("unsupported_media_type", "Unsupported media type"),
    RateLimited = ("rate_limited", "Too many requests"),
    Unavailable = ("unavailable", "Service unavailable"),
    Timeout = ("timeout", "Request timed out"),
    Internal = ("internal", "Internal error"),
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The code used when a response was produced without our error type (a
/// framework rejection, a layer), by status.
pub fn code_for_status(status: StatusCode) -> ErrorCode {
    match status.as_u16() {
        400 => ErrorCode::ValidationFailed,
        401 => ErrorCode::Unauthenticated,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        405 => ErrorCode::MethodNotAllowed,
        408 => ErrorCode::Timeout,
        409 => ErrorCode::Conflict,
        413 => ErrorCode::PayloadTooLarge,
        415 => ErrorCode::UnsupportedMediaType,
        429 => ErrorCode::RateLimited,
        503 => ErrorCode::Unavailable,
        _ => ErrorCode::Internal,
    }
}

/// Builds a problem+json response.
pub fn problem_response(
    status: StatusCode,
    code: ErrorCode,
    detail: String,
    errors: Option<BTreeMap<String, String>>,
) -> Response {
    let body = Problem {
        kind: format!("/problems/{code}"),
        title: code.title().to_owned(),
        status: status.as_u16(),
        detail,
        code: code.as_str().to_owned(),
        errors,
    };
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        if let Self::Internal(cause) = &self {
            tracing::error!(error = %cause, "request failed");
        }
        let detail = self.to_string();
        let retry_after = match &self {
            Self::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        let errors = match self {
            Self::Validation { errors, .. } => Some(errors),
            Self::Conflict(_, errors) if !errors.is_empty() => Some(errors),
            _ => None,
        };
        let mut response = problem_response(status, code, detail, errors);
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> Self {
        if db::query_error_is_unavailable(&error) {
            tracing::warn!(%error, "database unavailable");
            Self::Unavailable
        } else {
            Self::internal(error)
        }
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(error: redis::RedisError) -> Self {
        tracing::warn!(%error, "redis unavailable");
        Self::QueuesUnavailable
    }
}

impl From<shared::db::PoolError> for ApiError {
    fn from(error: shared::db::PoolError) -> Self {
        if db::pool_error_is_unavailable(&error) {
            tracing::warn!(%error, "database unavailable");
            Self::Unavailable
        } else {
            Self::internal(error)
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::Taken(fields) => {
                let errors = fields
                    .iter()
                    .map(|f| ((*f).to_owned(), "is already taken".to_owned()))
                    .collect();
                Self::Conflict(format!("{} already taken", fields.join(" and ")), errors)
            }
            AccountError::InvalidCode(_) => Self::field("code", "is invalid or has expired"),
            AccountError::BadCredentials => {
                Self::Unauthenticated("invalid login or password".into())
            }
            AccountError::WrongPassword => Self::Refused {
                code: ErrorCode::InvalidCurrentPassword,
                detail: "the current password is wrong".into(),
            },
            AccountError::CurrentPasswordRequired => Self::field(
                "current_password",
                "is required to change the email address",
            ),
            AccountError::NotFound => Self::NotFound("no such user".into()),
            AccountError::Password(e) => Self::internal(e),
            AccountError::Database(e) => e.into(),
            AccountError::Pool(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code and its title, as clients see them: a change shows as a
    /// diff of the snapshot.
    #[test]
    fn every_code_has_its_title_and_parses_back() {
        let table: Vec<String> = ErrorCode::ALL
            .iter()
            .map(|code| {
                assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
                format!("{}: {}", code.as_str(), code.title())
            })
            .collect();
        insta::assert_snapshot!("error_codes", table.join("\n"));
        assert_eq!(ErrorCode::parse("Internal"), None);
    }

    async fn body_of(error: ApiError) -> (StatusCode, String, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            content_type,
            serde_json::from_slice(&bytes).unwrap(),
        )
    }

    #[tokio::test]
    async fn every_variant_has_its_status_code_and_problem_shape() {
        let cases = [
            (ApiError::field("email", "bad"), 400, "validation_failed"),
            (
                ApiError::Unauthenticated("no token".into()),
                401,
                "unauthenticated",
            ),
            (
                ApiError::Forbidden {
                    code: ErrorCode::Forbidden,
                    detail: "admins only".into(),
                },
                403,
                "forbidden",
            ),
            (
                ApiError::Forbidden {
                    code: ErrorCode::EmailNotVerified,
                    detail: "verify first".into(),
                },
                403,
                "email_not_verified",
            ),
            (
                ApiError::Refused {
                    code: ErrorCode::InsufficientFunds,
                    detail: "balance too low".into(),
                },
                422,
                "insufficient_funds",
            ),
            (
                ApiError::RateLimited {
                    retry_after_secs: 7,
                },
                429,
                "rate_limited",
            ),
            (
                ApiError::Conflict("x".into(), BTreeMap::new()),
                409,
                "conflict",
            ),
            (ApiError::NotFound("x".into()), 404, "not_found"),
            (ApiError::PayloadTooLarge(10), 413, "payload_too_large"),
            (
                ApiError::UnsupportedMediaType("x".into()),
                415,
                "unsupported_media_type",
            ),
            (ApiError::Unavailable, 503, "unavailable"),
            (ApiError::Internal("secret cause".into()), 500, "internal"),
        ];
        for (error, status, code) in cases {
            let (got_status, content_type, body) = body_of(error).await;
            assert_eq!(got_status.as_u16(), status);
            assert_eq!(content_type, PROBLEM_JSON);
            assert_eq!(body["code"], code);
            assert_eq!(body["status"], status);
            assert_eq!(body["type"], format!("/problems/{code}"));
            assert!(body["title"].is_string() && body["detail"].is_string());
            assert!(!body.to_string().contains("secret cause"));
        }
    }

    #[tokio::test]
    async fn rate_limits_say_when_to_retry() {
        let response = ApiError::RateLimited {
            retry_after_secs: 7,
        }
        .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }

    #[tokio::test]
    async fn validation_errors_map_fields_to_messages() {
        let (_, _, body) = body_of(ApiError::field("email", "must be valid")).await;
        assert_eq!(body["errors"]["email"], "must be valid");
        let (_, _, body) = body_of(AccountError::Taken(vec!["username", "email"]).into()).await;
        assert_eq!(body["errors"]["username"], "is already taken");
        assert_eq!(body["detail"], "username and email already taken");
    }
}
