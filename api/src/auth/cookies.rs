//! The auth cookies of the web page: the access token, the refresh token
//! (sent only to `/api/v1/auth`), and a CSRF token readable by the page's
//! script for the double-submit check. All `Secure` and `SameSite=Strict`;
//! the two tokens are `HttpOnly`.

use axum::http::{HeaderMap, HeaderValue, header};
use shared::{config::AuthConfig, sessions::Tokens};

pub const ACCESS: &str = "bourse_access";
pub const REFRESH: &str = "bourse_refresh";
pub const CSRF: &str = "bourse_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of cookie `name` in the request, if any.
pub fn get(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
    http_only: bool,
    secure: bool,
) -> String {
    let mut cookie = format!("{name}={value}; Path={path}; Max-Age={max_age}; SameSite=Strict");
    if http_only {
        cookie.push_str("; HttpOnly");
    }
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

fn random_token() -> String {
    let mut bytes = [0u8; 24];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}

/// `Set-Cookie` values for a fresh session.
pub fn for_session(config: &AuthConfig, tokens: &Tokens) -> Vec<String> {
    let refresh_age = config.refresh_token_ttl.as_secs();
    vec![
        cookie(
            ACCESS,
            &tokens.access_token,
            "/",
            tokens.expires_in,
            true,
            config.cookie_secure,
        ),
        cookie(
            REFRESH,
            &tokens.refresh_token,
            "/api/v1/auth",
            refresh_age,
            true,
            config.cookie_secure,
        ),
        cookie(
            CSRF,
            &random_token(),
            "/",
            refresh_age,
            false,
            config.cookie_secure,
        ),
    ]
}

/// `Set-Cookie` values that delete the auth cookies.
pub fn cleared(config: &AuthConfig) -> Vec<String> {
    vec![
        cookie(ACCESS, "", "/", 0, true, config.cookie_secure),
        cookie(REFRESH, "", "/api/v1/auth", 0, true, config.cookie_secure),
        cookie(CSRF, "", "/", 0, false, config.cookie_secure),
    ]
}

/// Adds `Set-Cookie` headers.
pub fn set(headers: &mut HeaderMap, cookies: Vec<String>) {
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_cookie_among_many() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; bourse_access=tok; b=2"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("bourse_csrf=xyz"));
        assert_eq!(get(&headers, ACCESS).as_deref(), Some("tok"));
        assert_eq!(get(&headers, CSRF).as_deref(), Some("xyz"));
        assert_eq!(get(&headers, REFRESH), None);
    }

    #[test]
    fn cookies_are_locked_down() {
        let c = cookie(ACCESS, "t", "/", 900, true, true);
        assert_eq!(
            c,
            "bourse_access=t; Path=/; Max-Age=900; SameSite=Strict; HttpOnly; Secure"
        );
        assert!(!cookie(CSRF, "t", "/", 1, false, true).contains("HttpOnly"));
    }
}
