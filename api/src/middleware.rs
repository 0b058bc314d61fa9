//! Cross-cutting request handling: request ids, access logs, time limits,
//! waking the outbox relays, and turning every framework-made error into
//! problem+json.

use std::{any::Any, time::Duration};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderName, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use shared::trace::{Origin, TraceParent};

use crate::{
    error::{ErrorCode, PROBLEM_JSON, code_for_status, problem_response},
    state::AppState,
};

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The id of the current request, in request extensions.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Wakes the outbox relays after a request that queued a job due now
/// (`shared::outbox::noting_pushes`; an order's clearing, an email), by a
/// Redis publish in the background, so the answer never waits on Redis. A
/// request whose transaction rolled back wakes them for nothing, which
/// costs one claim that finds no row; a lost wake-up costs a poll
/// interval.
pub async fn wake_relays(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (response, pushed) = shared::outbox::noting_pushes(next.run(request)).await;
    if let Some(queue) = pushed {
        state.relays.wake(queue);
    }
    response
}

/// Accepts a caller's `X-Request-Id` when it is short and plain (so it is
/// safe in logs), otherwise makes one; echoes it on the response and wraps
/// the request in a tracing span carrying it. The span continues the
/// caller's W3C `traceparent` (or starts a trace), and the jobs the request
/// queues carry both (`shared::trace`), so one trace shows the request, the
/// relay's push and the job.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = shared::telemetry::request_id_or_new(
        request
            .headers()
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok()),
    );
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        request.id = %id,
        method = %request.method(),
        path = %request.uri().path(),
        trace.id = tracing::field::Empty,
    );
    let caller = request
        .headers()
        .get(&TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse);
    let traceparent = shared::telemetry::continue_trace(&span, caller);
    span.record("trace.id", traceparent.trace_id_hex());
    let origin = Origin {
        traceparent,
        request_id: Some(id.clone()),
    };
    let started = std::time::Instant::now();
    let mut response = shared::trace::scope(
        origin,
        tracing::Instrument::instrument(next.run(request), span.clone()),
    )
    .await;
    let status = response.status();
    span.in_scope(|| {
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), elapsed_ms, "request answered");
        } else {
            tracing::info!(status = status.as_u16(), elapsed_ms, "request answered");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    response
}

/// Refuses a body whose declared `Content-Length` is over `MAX_BODY_BYTES`
/// before any handler runs. Bodies without a declared length are limited
/// while read (see `extract::ApiJson`).
pub async fn body_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.config.http.max_body_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => {
            // Reading what is already on its way lets the client see the
            // answer instead of a reset connection.
            if length <= crate::extract::DRAIN_BYTES as u64 {
                crate::extract::drain(request.into_body().into_data_stream(), 0).await;
            }
            problem_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!("request body is larger than {limit} bytes"),
                None,
            )
        }
        _ => next.run(request).await,
    }
}

/// Ends a request that runs longer than `REQUEST_TIMEOUT_SECS` with a 503.
/// The handler's future is dropped, which rolls back an open transaction.
pub async fn time_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit: Duration = state.config.http.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => problem_response(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            format!(
                "the request took longer than {}s and was abandoned",
                limit.as_secs()
            ),
            None,
        ),
    }
}

/// Rewrites error responses made outside our handlers (unknown routes,
/// wrong methods, body-limit layers) into problem+json, so clients see one
/// error format everywhere.
pub async fn problem_details(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // Our own JSON answers (problems, readiness reports) stay as they are;
    // plain-text and empty framework answers are rewritten.
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON) || v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (parts, _) = response.into_parts();
    let detail = match status {
        StatusCode::NOT_FOUND => "no such resource".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => "this method is not allowed on this resource".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "request body is larger than {} bytes",
            state.config.http.max_body_bytes
        ),
        other => other.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let mut rewritten = problem_response(status, code_for_status(status), detail, None);
    // Keep headers such as Allow or Retry-After.
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}

/// A panicking handler answers 500 problem+json; the panic is logged.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    tracing::error!(panic = %message, "handler panicked");
    problem_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Internal,
        "internal error".to_owned(),
        None,
    )
    .into_response()
}
