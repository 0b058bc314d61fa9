//! The worker's own small HTTP server: `/healthz`, `/readyz`, `/metrics`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use shared::db::DbPool;

use crate::{health::Health, metrics::Metrics, queue::JobQueues};

#[derive(Clone)]
pub struct HttpState {
    pub health: Health,
    pub lease: Duration,
    pub started: Instant,
    pub db: DbPool,
    pub queues: JobQueues,
    pub metrics: Arc<Metrics>,
    pub worker_name: String,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// 200 while every queue worker of this process is running and heartbeating;
/// 503 naming the problems otherwise.
async fn healthz(State(state): State<HttpState>) -> impl IntoResponse {
    // A fresh process gets a few leases to connect before it counts as down.
    let report = state
        .health
        .report(state.lease, state.lease * 3, state.started);
    let status = if report.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({
            "status": if report.healthy { "ok" } else { "unhealthy" },
            "worker": state.worker_name,
            "problems": report.problems,
        })),
    )
}

/// 200 when PostgreSQL and Redis both answer; each check is `ok` or
/// `failing` (the reason is logged, not answered).
async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    let timeout = Duration::from_secs(2);
    let postgres = match tokio::time::timeout(timeout, shared::db::ping(&state.db)).await {
        Ok(result) => result,
        Err(_) => Err("timed out".to_owned()),
    };
    let mut conn = state.queues.connection();
    let ping = redis::cmd("PING");
    let redis = match tokio::time::timeout(timeout, ping.query_async::<String>(&mut conn)).await {
        Ok(result) => result.map(|_| ()).map_err(|e| e.to_string()),
        Err(_) => Err("timed out".to_owned()),
    };
    let postgres = shared::startup::readiness_verdict("postgres", postgres);
    let redis = shared::startup::readiness_verdict("redis", redis);
    let ready = postgres == "ok" && redis == "ok";
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(serde_json::json!({
            "status": if ready { "ready" } else { "unavailable" },
            "checks": { "postgres": postgres, "redis": redis },
        })),
    )
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
