//! The worker's own small HTTP server: `/healthz`, `/readyz`, `/metrics`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use queue::JobQueues;
use shared::db::DbPool;

use crate::{health::Health, metrics::Metrics};

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

/// Serves health and metrics until `stop` turns true.
pub fn spawn(
    listener: tokio::net::TcpListener,
    state: HttpState,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let app = router(state);
    tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!(%error, "worker HTTP server failed");
        }
    })
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn(request_id))
        .with_state(state)
}

/// Echoes a caller's `X-Request-Id` when it is short and plain (safe in
/// logs), as the API does, or makes one: every answer carries an id a
/// report can quote, the framework's 404s and 405s included.
async fn request_id(request: Request, next: Next) -> Response {
    let id = shared::telemetry::request_id_or_new(
        request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
    );
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
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
            "starting": report.starting,
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
    let redis = queue::ping(&state.queues.connection(), timeout).await;
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

/// OpenMetrics for scrapers asking for it (Prometheus does), the
/// Prometheus text format otherwise (see `shared::metrics_text`).
async fn metrics(State(state): State<HttpState>, request: HeaderMap) -> impl IntoResponse {
    let accept = request.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (content_type, body) = shared::metrics_text::negotiate(accept, state.metrics.render());
    ([(header::CONTENT_TYPE, content_type)], body)
}
