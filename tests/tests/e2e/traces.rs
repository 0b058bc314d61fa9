//! Traces across the job hop (PRODUCT.md §10): a request's W3C
//! `traceparent` travels with the job it queues through the outbox, so one
//! trace holds the request, the relay's push and the job, exported over
//! OTLP/HTTP by the real binaries; and the job's logs name the request.

use std::{collections::HashMap, time::Duration};

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

/// The real binaries: an API and a worker serving `email`, both answering.
async fn api_and_worker(settings: &HashMap<String, String>) -> (ApiProcess, WorkerProcess) {
    let api = ApiProcess::spawn(settings);
    let worker = WorkerProcess::spawn_healthy(settings, &["traced"], &["--queues", "email"])
        .await
        .remove(0);
    let health = format!("{}/healthz", api.base_url);
    harness::poll::healthy("the API", &health, WAIT).await;
    (api, worker)
}

/// Registers `name` through `api` with these headers: the request queues a
/// verification email. Returns the answer's status.
async fn register(api: &ApiProcess, name: &str, traceparent: &str, request_id: &str) -> u16 {
    let body = json!({ "username": name, "email": format!("{name}@example.com"), "password": "correct horse" });
    reqwest::Client::new()
        .post(format!("{}/api/v1/auth/register", api.base_url))
        .header("traceparent", traceparent)
        .header("x-request-id", request_id)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The worker's log line of the email it sent.
async fn sent_line(worker: &WorkerProcess) -> String {
    eventually("the job's log line", WAIT, || async {
        worker
            .log()
            .lines()
            .find(|l| l.contains("email sent"))
            .map(str::to_owned)
    })
    .await
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
    let (api, worker) = api_and_worker(&app.settings).await;

    // A caller in a trace registers: the request queues a verification email.
    let traceparent = format!("00-{TRACE}-{CALLER_SPAN}-01");
    assert_eq!(
        register(&api, "tracy", &traceparent, "traced-request-1").await,
        201
    );
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
    let line = sent_line(&worker).await;
    assert!(line.contains("traced-request-1"), "{line}");
    assert!(line.contains(TRACE), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_export_the_trace_and_request_ids_still_reach_the_jobs_logs() {
    let app = TestAppBuilder::new()
        .without_worker()
        .env("RUST_LOG", LOG)
        .start()
        .await;
    let (api, worker) = api_and_worker(&app.settings).await;
    let traceparent = format!("00-{TRACE}-{CALLER_SPAN}-01");
    assert_eq!(
        register(&api, "plain", &traceparent, "plain-request-1").await,
        201
    );
    let line = sent_line(&worker).await;
    assert!(line.contains("plain-request-1"), "{line}");
    assert!(line.contains(TRACE), "{line}");
    // A malformed traceparent starts a new trace instead of failing.
    assert_eq!(
        register(&api, "plain2", "00-not-a-trace-01", "plain-request-2").await,
        201
    );
}
