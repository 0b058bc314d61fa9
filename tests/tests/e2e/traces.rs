//! Traces across the job hop (PRODUCT.md §10): a request's W3C
//! `traceparent` travels with the job it queues through the outbox, so one
//! trace holds the request, the relay's push and the job, exported over
//! OTLP/HTTP by the real binaries; and the job's logs name the request.

use std::time::Duration;

use harness::{
    TestAppBuilder, eventually,
    otlp::{OtlpReceiver, ReceivedSpan},
    process::{ApiProcess, WorkerProcess},
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const LOG: &str = "info,apalis_core=warn,apalis_redis=warn";

fn one<'a>(spans: &'a [ReceivedSpan], service: &str, name: &str) -> Option<&'a ReceivedSpan> {
    spans
        .iter()
        .find(|s| s.trace_id == TRACE && s.service == service && s.name == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_holds_the_request_the_relay_push_and_the_job() {
    let receiver = OtlpReceiver::start().await;
    let app = TestAppBuilder::new()
        .without_worker()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url)
        // Export batches every 200 ms instead of every 5 s.
        .env("OTEL_BSP_SCHEDULE_DELAY", 200)
        // Spans are exported as logged: at info, the binaries' default.
        .env("RUST_LOG", LOG)
        .start()
        .await;
    let api = ApiProcess::spawn(&app.settings);
    let worker = WorkerProcess::spawn(&app.settings, "traced", &["--queues", "email"]);
    harness::poll::healthy("the worker", &worker.health_url, WAIT).await;
    let client = reqwest::Client::new();
    eventually("the API answering", WAIT, || async {
        let reply = client
            .get(format!("{}/healthz", api.base_url))
            .send()
            .await
            .ok()?;
        reply.status().is_success().then_some(())
    })
    .await;

    // A caller in a trace registers: the request queues a verification email.
    let reply = client
        .post(format!("{}/api/v1/auth/register", api.base_url))
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .header("x-request-id", "traced-request-1")
        .json(&json!({ "username": "tracy", "email": "tracy@example.com", "password": "correct horse" }))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201);
    app.smtp.wait_for("tracy@example.com", WAIT).await;

    // One trace: the caller → the API's request → the relay's push → the job.
    let (request, relay, job) = eventually("the trace's spans exported", WAIT, || async {
        let spans = receiver.spans();
        let request = one(&spans, "bourse-api", "request")?.clone();
        let relay = one(&spans, "bourse-worker", "outbox.relay")?.clone();
        let job = one(&spans, "bourse-worker", "job")?.clone();
        Some((request, relay, job))
    })
    .await;
    assert_eq!(request.parent_span_id, CALLER_SPAN);
    assert_eq!(relay.parent_span_id, request.span_id);
    assert_eq!(job.parent_span_id, relay.span_id);
    for span in [&request, &relay, &job] {
        assert!(
            span.attributes
                .iter()
                .any(|(k, v)| k == "request.id" && v == "traced-request-1"),
            "{span:?}"
        );
    }
    assert!(
        job.attributes
            .iter()
            .any(|(k, v)| k == "job.name" && v == "send_email"),
        "{job:?}"
    );
    // And the job's log lines name the request and the trace.
    let log = eventually("the job's log line", WAIT, || async {
        let log = worker.log();
        log.lines()
            .find(|l| l.contains("email sent"))
            .map(str::to_owned)
    })
    .await;
    assert!(log.contains("traced-request-1"), "{log}");
    assert!(log.contains(TRACE), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_export_the_trace_and_request_ids_still_reach_the_jobs_logs() {
    let app = TestAppBuilder::new()
        .without_worker()
        .env("RUST_LOG", LOG)
        .start()
        .await;
    let api = ApiProcess::spawn(&app.settings);
    let worker = WorkerProcess::spawn(&app.settings, "untraced", &["--queues", "email"]);
    harness::poll::healthy("the worker", &worker.health_url, WAIT).await;
    let client = reqwest::Client::new();
    eventually("the API answering", WAIT, || async {
        let reply = client
            .get(format!("{}/healthz", api.base_url))
            .send()
            .await
            .ok()?;
        reply.status().is_success().then_some(())
    })
    .await;
    let reply = client
        .post(format!("{}/api/v1/auth/register", api.base_url))
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .header("x-request-id", "plain-request-1")
        .json(&json!({ "username": "plain", "email": "plain@example.com", "password": "correct horse" }))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201);
    let log = eventually("the job's log line", WAIT, || async {
        worker
            .log()
            .lines()
            .find(|l| l.contains("email sent"))
            .map(str::to_owned)
    })
    .await;
    assert!(log.contains("plain-request-1"), "{log}");
    assert!(log.contains(TRACE), "{log}");
    // A malformed traceparent starts a new trace instead of failing.
    let reply = client
        .post(format!("{}/api/v1/auth/register", api.base_url))
        .header("traceparent", "00-not-a-trace-01")
        .json(&json!({ "username": "plain2", "email": "plain2@example.com", "password": "correct horse" }))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 201);
}
