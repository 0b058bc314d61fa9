//! `ApiJson<T>`: the JSON body extractor of every route. Unlike axum's
//! `Json`, every rejection is a problem+json answer: malformed JSON, wrong
//! types and unknown fields are 400 `validation_failed` naming the field; a
//! body over `MAX_BODY_BYTES` is 413; a missing JSON content type is 415.

use std::collections::BTreeMap;

use std::time::Duration;

use axum::{
    body::Body,
    extract::{FromRequest, Request},
    http::header,
};
use futures::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(&req) {
            return Err(ApiError::UnsupportedMediaType(
                "expected a JSON body with Content-Type: application/json".into(),
            ));
        }
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(64 * 1024, |l| l.0);
        let bytes = read_limited(req.into_body(), limit).await?;
        parse(&bytes).map(ApiJson)
    }
}

/// An optional JSON body: no body at all (no `Content-Type`, empty) is
/// `None`; anything else must be valid JSON of `T`.
pub struct OptionalJson<T>(pub Option<T>);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declared_empty = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0");
        let untyped = !req.headers().contains_key(header::CONTENT_TYPE);
        if declared_empty || untyped {
            return Ok(OptionalJson(None));
        }
        ApiJson::<T>::from_request(req, state)
            .await
            .map(|ApiJson(value)| OptionalJson(Some(value)))
    }
}

/// After refusing a body, keep reading (and discarding) this much of it, for
/// at most [`DRAIN_TIME`], so the client can read our 413 instead of having
/// its connection reset while it is still sending.
pub const DRAIN_BYTES: usize = 1024 * 1024;
pub const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Reads a body of at most `limit` bytes.
async fn read_limited(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut stream = body.into_data_stream();
    let mut buffer = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::validation(format!("cannot read the body: {e}"), BTreeMap::new())
        })?;
        if buffer.len() + chunk.len() > limit {
            drain(stream, buffer.len() + chunk.len()).await;
            return Err(ApiError::PayloadTooLarge(limit));
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer)
}

/// Discards the rest of a refused body, within [`DRAIN_BYTES`] and
/// [`DRAIN_TIME`].
pub async fn drain(mut stream: axum::body::BodyDataStream, mut seen: usize) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while seen <= DRAIN_BYTES {
            match stream.next().await {
                Some(Ok(chunk)) => seen += chunk.len(),
                _ => break,
            }
        }
    })
    .await;
}

/// The configured body limit, put in request extensions by the router so
/// rejections can name it.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

fn has_json_content_type(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime_essence::Essence>().ok())
        .is_some_and(|essence| essence.is_json())
}

/// Deserialises `bytes`, turning serde's error into a field → message map.
/// Request bodies are JSON objects: serde would also fill a struct from an
/// array, which no client means to send.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            return Err(ApiError::validation(
                format!("malformed JSON: {e}"),
                BTreeMap::new(),
            ));
        }
        let mut errors = BTreeMap::new();
        errors.insert("body".to_owned(), "must be a JSON object".to_owned());
        return Err(ApiError::validation(
            "the request body has invalid fields",
            errors,
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut deserializer);
    let value = match result {
        Ok(value) => value,
        Err(error) => return Err(describe(&error)),
    };
    // Trailing garbage after the JSON value.
    deserializer
        .end()
        .map_err(|e| ApiError::validation(format!("malformed JSON: {e}"), BTreeMap::new()))?;
    Ok(value)
}

fn describe(error: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = error.inner();
    if inner.is_syntax() || inner.is_eof() {
        return ApiError::validation(format!("malformed JSON: {inner}"), BTreeMap::new());
    }
    let message = inner.to_string();
    // serde reports "... at line 1 column 9"; the field name says where.
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_owned();
    let path = error.path().to_string();
    let (field, message) = if let Some(name) = backticked(&message, "unknown field `") {
        // The path already ends at the unknown key.
        let field = if path.rsplit('.').next() == Some(name.as_str()) {
            path
        } else {
            join_path(&path, &name)
        };
        (field, "is not a known field".to_owned())
    } else if let Some(name) = backticked(&message, "missing field `") {
        (join_path(&path, &name), "is required".to_owned())
    } else if path == "." {
        ("body".to_owned(), message)
    } else {
        (path, message)
    };
    let mut errors = BTreeMap::new();
    errors.insert(field, message);
    ApiError::validation("the request body has invalid fields", errors)
}

fn backticked(message: &str, lead: &str) -> Option<String> {
    let rest = message.strip_prefix(lead)?;
    rest.split('`').next().map(str::to_owned)
}

fn join_path(path: &str, name: &str) -> String {
    if path == "." || path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// A tiny content-type check: `application/json` or `application/*+json`,
/// any parameters.
mod mime_essence {
    pub struct Essence(String);

    impl std::str::FromStr for Essence {
        type Err = ();
        fn from_str(s: &str) -> Result<Self, ()> {
            let essence = s
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if essence.is_empty() {
                Err(())
            } else {
                Ok(Self(essence))
            }
        }
    }

    impl Essence {
        pub fn is_json(&self) -> bool {
            self.0 == "application/json"
                || (self.0.starts_with("application/") && self.0.ends_with("+json"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(
        dead_code,
        reason = "the fields are only deserialized, to test the extractor"
    )]
    struct Sample {
        name: String,
        age: Option<u8>,
    }

    fn errors_of(json: &str) -> (String, BTreeMap<String, String>) {
        match parse::<Sample>(json.as_bytes()) {
            Err(ApiError::Validation { detail, errors }) => (detail, errors),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn names_the_offending_field() {
        let (_, errors) = errors_of(r#"{"name": 5}"#);
        assert!(
            errors["name"].starts_with("invalid type: integer `5`"),
            "{errors:?}"
        );
        let (_, errors) = errors_of(r#"{"name": "a", "nope": 1}"#);
        assert_eq!(errors["nope"], "is not a known field");
        let (_, errors) = errors_of(r#"{"age": 1}"#);
        assert_eq!(errors["name"], "is required");
        let (_, errors) = errors_of(r#"{"name": "a", "age": 300}"#);
        assert!(errors.contains_key("age"));
        let (_, errors) = errors_of(r#"[1, 2]"#);
        assert_eq!(errors["body"], "must be a JSON object");
    }

    #[test]
    fn malformed_json_is_reported_without_fields() {
        for bad in [r#"{"name": "#, "{oops}", "", r#"{"name": "a"} trailing"#] {
            let (detail, errors) = errors_of(bad);
            assert!(detail.starts_with("malformed JSON"), "{bad}: {detail}");
            assert!(errors.is_empty());
        }
    }

    #[test]
    fn json_content_types() {
        use std::str::FromStr;
        let is_json = |s: &str| mime_essence::Essence::from_str(s).is_ok_and(|e| e.is_json());
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/problem+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json(""));
    }
}
