//! The HTTP skeleton: health, readiness, metrics, request ids, OpenAPI,
//! docs, and behaviour while PostgreSQL is unreachable.

use std::time::Duration;

use harness::{TestAppBuilder, eventually};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_answer_on_the_api_and_the_worker() {
    let app = TestAppBuilder::new().start().await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body["status"], "ok");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(
        ready.body["checks"],
        json!({ "postgres": "ok", "redis": "ok" })
    );

    app.post("/api/v1/auth/register", &json!({})).await;
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains(r#"bourse_http_requests_total{method="POST",route="/api/v1/auth/register",status="400"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("bourse_http_request_duration_seconds_bucket"));

    let worker = &app.workers[0].health_url;
    let worker_health = eventually("the worker healthy", Duration::from_secs(20), || async {
        let response = reqwest::get(worker).await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
    let () = worker_health;
    let base = worker.trim_end_matches("/healthz");
    let ready: serde_json::Value = reqwest::get(format!("{base}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    let worker_metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        worker_metrics.contains("bourse_outbox_relay_errors_total 0"),
        "{worker_metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_or_made() {
    let app = TestAppBuilder::new().without_worker().start().await;
    let mine = app
        .send(
            app.client
                .get(app.url("/healthz"))
                .header("x-request-id", "trace-42"),
        )
        .await;
    assert_eq!(mine.headers["x-request-id"], "trace-42");
    // An unsafe id is replaced, not echoed into logs and headers.
    let unsafe_id = app
        .send(
            app.client
                .get(app.url("/healthz"))
                .header("x-request-id", "not safe; for logs"),
        )
        .await;
    let made = unsafe_id.headers["x-request-id"].to_str().unwrap();
    assert_eq!(made.len(), 36, "a fresh UUID: {made}");
    let error = app.get("/api/v1/nowhere").await;
    assert_eq!(error.status, 404);
    assert!(error.headers.contains_key("x-request-id"));
    assert_eq!(error.body["code"], "not_found");
    let wrong_method = app
        .send(app.client.get(app.url("/api/v1/auth/register")))
        .await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.body["code"], "method_not_allowed");
    assert!(wrong_method.headers.contains_key("allow"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_and_docs_are_served_from_the_binary() {
    let app = TestAppBuilder::new().without_worker().start().await;
    let doc = app.get("/api/v1/openapi.json").await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body["openapi"], "3.1.0");
    for (method, path) in [
        ("post", "/api/v1/auth/register"),
        ("post", "/api/v1/auth/verify-email"),
        ("post", "/api/v1/auth/verify-email/resend"),
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/auth/refresh"),
        ("post", "/api/v1/auth/logout"),
        ("post", "/api/v1/auth/password-reset"),
        ("post", "/api/v1/auth/password-reset/confirm"),
        ("get", "/api/v1/me"),
        ("patch", "/api/v1/me"),
        ("post", "/api/v1/me/password"),
    ] {
        let operation = &doc.body["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} documented");
        assert!(
            operation["responses"].as_object().unwrap().len() >= 2,
            "{method} {path} lists its errors"
        );
    }
    let schemes = &doc.body["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["cookie"]["in"], "cookie");
    assert!(doc.body["paths"]["/api/v1/me"]["get"]["security"].is_array());
    let register = &doc.body["paths"]["/api/v1/auth/register"]["post"];
    for status in ["201", "400", "409", "413", "503"] {
        assert!(
            register["responses"][status].is_object(),
            "register documents {status}"
        );
    }
    assert!(doc.body["components"]["schemas"]["Problem"].is_object());

    let page = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("/docs/swagger-ui-bundle.js") && html.contains("/api/v1/openapi.json"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no CDN"
    );
    let js = app
        .client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.text().await.unwrap().len() > 500_000);
    let css = app
        .client
        .get(app.url("/docs/swagger-ui.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgres_is_unreachable_writes_answer_503_and_readiness_fails() {
    // Port 9 (discard) has nothing listening: connections are refused.
    let app = TestAppBuilder::new()
        .without_worker()
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:9/nothing")
        .env("DATABASE_CONNECT_TIMEOUT_SECS", 1)
        .start()
        .await;
    let reply = app
        .post(
            "/api/v1/auth/register",
            &json!({ "username": "nobody", "email": "nobody@example.com", "password": "correct horse" }),
        )
        .await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.content_type(), "application/problem+json");
    assert_eq!(reply.body["code"], "unavailable");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.body["checks"]["redis"], "ok");
    assert_ne!(ready.body["checks"]["postgres"], "ok");
    // The process itself is fine.
    assert_eq!(app.get("/healthz").await.status, 200);
}
