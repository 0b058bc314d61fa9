use std::time::Duration;

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
};
use serde_json::json;

use crate::state::AppState;

/// The process is up and serving.
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    Json(json!({ "status": "ok", "uptime_secs": state.started.elapsed().as_secs() }))
}

/// PostgreSQL and Redis both answer within two seconds.
///
/// Anyone may ask, so the answer names each check and says `ok` or
/// `failing`, nothing more: the errors (addresses, ports, server messages)
/// go to the log.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let timeout = Duration::from_secs(2);
    let postgres = match tokio::time::timeout(timeout, shared::db::ping(&state.db)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error),
        Err(_) => Err("timed out".to_owned()),
    };
    let redis = queue::ping(&state.redis, timeout).await;
    let postgres = shared::startup::readiness_verdict("postgres", postgres);
    let redis = shared::startup::readiness_verdict("redis", redis);
    let ready = postgres == "ok" && redis == "ok";
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(json!({
            "status": if ready { "ready" } else { "unavailable" },
            "checks": { "postgres": postgres, "redis": redis },
        })),
    )
}

/// OpenMetrics for scrapers asking for it (Prometheus does), the
/// Prometheus text format otherwise (see `shared::metrics_text`).
pub async fn metrics(State(state): State<AppState>, request: HeaderMap) -> impl IntoResponse {
    let accept = request.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (content_type, body) = shared::metrics_text::negotiate(accept, state.metrics.render());
    ([(header::CONTENT_TYPE, content_type)], body)
}
