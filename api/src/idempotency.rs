//! `Idempotency-Key` for money-moving POSTs (PRODUCT.md §2).
//!
//! The key is claimed in the same PostgreSQL transaction as the movement it
//! answers for, and the response stored there too. The same key with the
//! same request within 24 hours replays the stored response without moving
//! money; with another request it is 409. Two concurrent requests with one
//! key: the second waits on the first's claim (the unique index) and then
//! replays its answer, so money moves once. Business refusals (4xx) are
//! stored and replayed too; an outage (5xx) stores nothing, so the client
//! may retry the key.

use axum::{
    extract::FromRequestParts,
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures::future::BoxFuture;
use serde_json::Value;
use sha2::{Digest, Sha256};
use shared::schema::idempotency_keys as keys;
use uuid::Uuid;

use crate::{
    error::{ApiError, ErrorCode, problem_response},
    state::AppState,
};

/// The `Idempotency-Key` header, if sent: 1–255 visible ASCII characters.
pub struct IdempotencyKey(pub Option<String>);

impl FromRequestParts<AppState> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let key = value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                ApiError::field(
                    "Idempotency-Key",
                    "must be 1 to 255 visible ASCII characters",
                )
            })?;
        Ok(IdempotencyKey(Some(key.to_owned())))
    }
}

/// An answer: status and JSON body (a problem document when status ≥ 400).
pub type Answer = (StatusCode, Value);

/// The operation to run at most once per key.
pub type Operation = Box<
    dyn for<'c> FnOnce(&'c mut AsyncPgConnection) -> BoxFuture<'c, Result<Answer, ApiError>> + Send,
>;

/// How long a key is remembered.
const KEY_TTL: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// A fingerprint of the request a key was first used with.
pub fn fingerprint(method: &str, path: &str, body: &Value) -> String {
    // serde_json maps are ordered by key, so equal bodies print equally.
    hex::encode(Sha256::digest(format!("{method} {path} {body}").as_bytes()))
}

fn into_response((status, body): Answer) -> Response {
    if status.is_client_error() || status.is_server_error() {
        // A stored answer carries one of our codes; anything else (never
        // written) replays as `internal`.
        let code = body["code"]
            .as_str()
            .and_then(ErrorCode::parse)
            .unwrap_or(ErrorCode::Internal);
        let detail = body["detail"].as_str().unwrap_or_default().to_owned();
        let errors = serde_json::from_value(body["errors"].clone()).ok();
        return problem_response(status, code, detail, errors);
    }
    (status, axum::Json(body)).into_response()
}

enum Outcome {
    Fresh(Answer),
    Replay(Answer),
}

/// Runs `operation` under `key` (or plainly without one).
pub async fn run(
    state: &AppState,
    user_id: Uuid,
    key: Option<String>,
    request_hash: String,
    operation: Operation,
) -> Result<Response, ApiError> {
    let mut conn = state.conn().await?;
    let Some(key) = key else {
        return operation(&mut conn).await.map(into_response);
    };
    let outcome = conn
        .transaction::<Outcome, ApiError, _>(async |conn| {
            if let Some(stored) = claim(conn, user_id, &key, &request_hash).await? {
                return Ok(Outcome::Replay(stored));
            }
            // The movement runs in its own savepoint: a refusal rolls it
            // back while the key keeps the refusal as its answer.
            let answer = match operation(conn).await {
                Ok(answer) => answer,
                // Who may call is not part of the answer: a refused caller
                // (401, 403) leaves the key unused, for when they may.
                Err(error @ (ApiError::Unauthenticated(_) | ApiError::Forbidden { .. })) => {
                    return Err(error);
                }
                Err(error) if error.is_client_error() => error.to_answer(),
                Err(error) => return Err(error),
            };
            diesel::update(keys::table.find((user_id, &key)))
                .set((
                    keys::response_status.eq(Some(i16::try_from(answer.0.as_u16()).unwrap_or(500))),
                    keys::response_body.eq(Some(&answer.1)),
                ))
                .execute(conn)
                .await?;
            Ok(Outcome::Fresh(answer))
        })
        .await?;
    Ok(match outcome {
        Outcome::Fresh(answer) => into_response(answer),
        Outcome::Replay(answer) => {
            let mut response = into_response(answer);
            response.headers_mut().insert(
                "idempotent-replayed",
                axum::http::HeaderValue::from_static("true"),
            );
            response
        }
    })
}

/// Claims `key` for this request, or returns the answer stored for it.
async fn claim(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    key: &str,
    request_hash: &str,
) -> Result<Option<Answer>, ApiError> {
    // Waits for a concurrent claim of the same key to commit or roll back.
    let claimed = diesel::insert_into(keys::table)
        .values((
            keys::user_id.eq(user_id),
            keys::key.eq(key),
            keys::request_hash.eq(request_hash),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    if claimed == 1 {
        return Ok(None);
    }
    let (stored_hash, status, body, created_at): (
        String,
        Option<i16>,
        Option<Value>,
        chrono::DateTime<Utc>,
    ) = keys::table
        .find((user_id, key))
        .select((
            keys::request_hash,
            keys::response_status,
            keys::response_body,
            keys::created_at,
        ))
        .for_update()
        .first(conn)
        .await?;
    if Utc::now() - created_at > KEY_TTL {
        // Expired: the key starts over for this request.
        diesel::update(keys::table.find((user_id, key)))
            .set((
                keys::request_hash.eq(request_hash),
                keys::response_status.eq(None::<i16>),
                keys::response_body.eq(None::<Value>),
                keys::created_at.eq(Utc::now()),
            ))
            .execute(conn)
            .await?;
        return Ok(None);
    }
    if stored_hash != request_hash {
        return Err(ApiError::Conflict(
            "this Idempotency-Key was already used with a different request".into(),
            Default::default(),
        ));
    }
    match (status, body) {
        (Some(status), Some(body)) => Ok(Some((
            StatusCode::from_u16(u16::try_from(status).unwrap_or(500)).unwrap_or(StatusCode::OK),
            body,
        ))),
        _ => Err(ApiError::Conflict(
            "a request with this Idempotency-Key is still running".into(),
            Default::default(),
        )),
    }
}
