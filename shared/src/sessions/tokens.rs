//! Access tokens: short-lived JWTs signed with HS256. The algorithm is
//! pinned: a token announcing any other algorithm (or `none`) is rejected,
//! as is one signed with another key, for another issuer or audience, or
//! past its `exp` (no leeway).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::AuthConfig;

/// What an access token says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// The user id.
    pub sub: Uuid,
    /// The session (refresh token family) the token was issued for.
    pub sid: Uuid,
    pub iat: u64,
    pub exp: u64,
    pub iss: String,
    pub aud: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("invalid access token: {0}")]
    Invalid(String),
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Signs an access token for `user` in session `sid`. Returns the token and
/// its lifetime in seconds.
pub fn issue_access(
    config: &AuthConfig,
    user: Uuid,
    sid: Uuid,
) -> Result<(String, u64), TokenError> {
    let ttl = config.access_token_ttl.as_secs();
    let iat = now_secs();
    let claims = AccessClaims {
        sub: user,
        sid,
        iat,
        exp: iat + ttl,
        iss: config.jwt_issuer.clone(),
        aud: config.jwt_audience.clone(),
    };
    let key = EncodingKey::from_secret(config.jwt_secret.expose_secret().as_bytes());
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
        .map(|token| (token, ttl))
        .map_err(|e| TokenError::Invalid(e.to_string()))
}

/// Verifies signature, algorithm, `exp`, `iss` and `aud`.
pub fn verify_access(config: &AuthConfig, token: &str) -> Result<AccessClaims, TokenError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_issuer(&[&config.jwt_issuer]);
    validation.set_audience(&[&config.jwt_audience]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    let key = DecodingKey::from_secret(config.jwt_secret.expose_secret().as_bytes());
    jsonwebtoken::decode::<AccessClaims>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| TokenError::Invalid(e.to_string()))
}

/// Seconds until a token with these claims expires (0 when it has).
pub fn remaining(claims: &AccessClaims) -> Duration {
    Duration::from_secs(claims.exp.saturating_sub(now_secs()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use base64::Engine as _;

    use super::*;

    fn config(secret: &str) -> AuthConfig {
        let mut map = HashMap::new();
        map.insert("JWT_SECRET".to_owned(), secret.to_owned());
        crate::config::Config::from_map(map).unwrap().auth
    }

    const SECRET: &str = "a-test-secret-of-at-least-32-characters";

    fn b64(value: &serde_json::Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    }

    #[test]
    fn a_token_round_trips() {
        let config = config(SECRET);
        let (user, sid) = (Uuid::new_v4(), Uuid::new_v4());
        let (token, ttl) = issue_access(&config, user, sid).unwrap();
        assert_eq!(ttl, 900);
        let claims = verify_access(&config, &token).unwrap();
        assert_eq!((claims.sub, claims.sid), (user, sid));
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn tampered_tokens_are_rejected() {
        let config = config(SECRET);
        let (token, _) = issue_access(&config, Uuid::new_v4(), Uuid::new_v4()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[1])
                .unwrap(),
        )
        .unwrap();

        // Another key.
        let other = config_with_other_secret();
        assert!(
            verify_access(
                &config,
                &issue_access(&other, claims_sub(&claims), Uuid::new_v4())
                    .unwrap()
                    .0
            )
            .is_err()
        );
        // alg: none, with and without a signature.
        let none = b64(&serde_json::json!({ "alg": "none", "typ": "JWT" }));
        assert!(verify_access(&config, &format!("{none}.{}.", parts[1])).is_err());
        assert!(verify_access(&config, &format!("{none}.{}.{}", parts[1], parts[2])).is_err());
        // Another algorithm announced with the right signature bytes.
        let hs512 = b64(&serde_json::json!({ "alg": "HS512", "typ": "JWT" }));
        assert!(verify_access(&config, &format!("{hs512}.{}.{}", parts[1], parts[2])).is_err());
        // Changed claims under the old signature.
        let mut forged = claims.clone();
        forged["sub"] = serde_json::json!(Uuid::new_v4());
        assert!(
            verify_access(
                &config,
                &format!("{}.{}.{}", parts[0], b64(&forged), parts[2])
            )
            .is_err()
        );
        // Garbage.
        assert!(verify_access(&config, "not.a.token").is_err());
        assert!(verify_access(&config, "").is_err());
    }

    #[test]
    fn wrong_issuer_audience_and_expired_tokens_are_rejected() {
        let config = config(SECRET);
        let key = EncodingKey::from_secret(SECRET.as_bytes());
        let now = now_secs();
        let make = |iss: &str, aud: &str, exp: u64| {
            let claims = AccessClaims {
                sub: Uuid::new_v4(),
                sid: Uuid::new_v4(),
                iat: now.saturating_sub(10),
                exp,
                iss: iss.to_owned(),
                aud: aud.to_owned(),
            };
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
        };
        assert!(verify_access(&config, &make("bourse", "bourse-api", now + 60)).is_ok());
        assert!(verify_access(&config, &make("evil", "bourse-api", now + 60)).is_err());
        assert!(verify_access(&config, &make("bourse", "other-api", now + 60)).is_err());
        assert!(verify_access(&config, &make("bourse", "bourse-api", now - 1)).is_err());
    }

    fn config_with_other_secret() -> AuthConfig {
        config("another-secret-that-is-32-characters-long")
    }

    fn claims_sub(claims: &serde_json::Value) -> Uuid {
        claims["sub"].as_str().and_then(|s| s.parse().ok()).unwrap()
    }
}
