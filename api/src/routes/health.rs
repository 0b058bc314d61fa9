use std::time::Duration;

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};
use serde_json::json;

use crate::state::AppState;

/// The process is up and serving.
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    Json(json!({ "status": "ok", "uptime_secs": state.started.elapsed().as_secs() }))
}

/// PostgreSQL and Redis both answer within two seconds.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let timeout = Duration::from_secs(2);
    let postgres = match tokio::time::timeout(timeout, shared::db::ping(&state.db)).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(error)) => error,
        Err(_) => "timed out".to_owned(),
    };
    let mut redis = state.redis.clone();
    let ping = redis::cmd("PING");
    let redis = match tokio::time::timeout(timeout, ping.query_async::<String>(&mut redis)).await {
        Ok(Ok(_)) => "ok".to_owned(),
        Ok(Err(error)) => error.to_string(),
        Err(_) => "timed out".to_owned(),
    };
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

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
