//! A small OTLP/HTTP trace receiver (JSON encoding, `POST /v1/traces`), as
//! an OpenTelemetry collector would be: it keeps every span it is sent, with
//! the `service.name` of the process that sent it.

use std::sync::{Arc, Mutex};

use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
use serde_json::Value;

/// One span received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSpan {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// Its attributes, as `key=value` text.
    pub attributes: Vec<(String, String)>,
}

pub struct OtlpReceiver {
    /// The endpoint to give as `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub url: String,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    task: tokio::task::JoinHandle<()>,
}

impl OtlpReceiver {
    pub async fn start() -> Self {
        let spans: Arc<Mutex<Vec<ReceivedSpan>>> = Arc::default();
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, spans, task }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap().clone()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| value.to_string())
}

/// An OTLP attribute value (`{"stringValue": "..."}`, `{"intValue": ...}`).
fn any_value(value: &Value) -> String {
    value
        .as_object()
        .and_then(|o| o.values().next())
        .map(text)
        .unwrap_or_default()
}

async fn receive(
    State(spans): State<Arc<Mutex<Vec<ReceivedSpan>>>>,
    Json(body): Json<Value>,
) -> StatusCode {
    let empty = Vec::new();
    for resource in body["resourceSpans"].as_array().unwrap_or(&empty) {
        let service = resource["resource"]["attributes"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .find(|a| a["key"] == "service.name")
            .map(|a| any_value(&a["value"]))
            .unwrap_or_default();
        for scope in resource["scopeSpans"].as_array().unwrap_or(&empty) {
            for span in scope["spans"].as_array().unwrap_or(&empty) {
                let attributes = span["attributes"]
                    .as_array()
                    .unwrap_or(&empty)
                    .iter()
                    .map(|a| (text(&a["key"]), any_value(&a["value"])))
                    .collect();
                spans.lock().unwrap().push(ReceivedSpan {
                    service: service.clone(),
                    name: text(&span["name"]),
                    trace_id: text(&span["traceId"]).to_lowercase(),
                    span_id: text(&span["spanId"]).to_lowercase(),
                    parent_span_id: span["parentSpanId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_lowercase(),
                    attributes,
                });
            }
        }
    }
    StatusCode::OK
}
