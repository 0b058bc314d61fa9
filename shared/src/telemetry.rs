//! Logging setup shared by every binary: `tracing` to stderr, human-readable
//! locally and JSON in production (`LOG_FORMAT`), filtered by `RUST_LOG`;
//! and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, the same spans exported
//! over OTLP/HTTP, continuing the trace of whatever caused them
//! ([`continue_trace`], see [`crate::trace`]).

use std::sync::OnceLock;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::{
    config::{LogFormat, TelemetryConfig},
    trace::TraceParent,
};

/// The exporter's provider, when export is on: flushed by [`shutdown`].
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs the global subscriber. Safe to call twice (tests): the second
/// call is ignored. A trace exporter that cannot be built is reported on
/// stderr and left out; logging goes on.
pub fn init(format: LogFormat, default_filter: &str, telemetry: &TelemetryConfig) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let tracer = telemetry.otlp_endpoint.as_deref().and_then(|endpoint| {
        match exporter(endpoint, telemetry.service_name.as_deref()) {
            Ok(provider) => {
                let tracer = provider.tracer("bourse");
                PROVIDER.set(provider).ok().map(|()| tracer)
            }
            Err(error) => {
                eprintln!("OTEL_EXPORTER_OTLP_ENDPOINT: cannot export traces: {error}");
                None
            }
        }
    });
    let otel = tracer.map(|tracer| tracing_opentelemetry::layer().with_tracer(tracer));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let _ = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(fmt::layer().compact().with_writer(std::io::stderr))
            .try_init(),
    };
}

fn exporter(
    endpoint: &str,
    service_name: Option<&str>,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(format!("{endpoint}/v1/traces"))
        .build()?;
    let service = service_name.map_or_else(binary_name, str::to_owned);
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder_empty().with_service_name(service).build())
        .build())
}

fn binary_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|path| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "bourse".to_owned())
}

/// Sends the spans still buffered (at exit).
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.shutdown();
    }
}

/// Makes `span` (new, not yet entered) continue the trace of `parent`, and
/// says what the next hop (a job queued under it) continues from. With
/// export on, that is `span` itself: the exported span's ids, child of
/// `parent`. Without, the trace id travels on (a new trace when there is no
/// parent) with a fresh parent id, for logs.
pub fn continue_trace(span: &tracing::Span, parent: Option<TraceParent>) -> TraceParent {
    if PROVIDER.get().is_some() {
        if let Some(parent) = parent {
            let flags = if parent.sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            };
            let remote = SpanContext::new(
                TraceId::from_bytes(parent.trace_id.to_be_bytes()),
                SpanId::from_bytes(parent.parent_id.to_be_bytes()),
                flags,
                true,
                TraceState::default(),
            );
            let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
        }
        let context = span.context();
        let own = context.span().span_context().clone();
        if own.is_valid() {
            return TraceParent {
                trace_id: u128::from_be_bytes(own.trace_id().to_bytes()),
                parent_id: u64::from_be_bytes(own.span_id().to_bytes()),
                sampled: own.is_sampled(),
            };
        }
    }
    parent.map_or_else(TraceParent::new_root, TraceParent::child)
}

/// Whether spans are exported (`OTEL_EXPORTER_OTLP_ENDPOINT`).
pub fn exporting() -> bool {
    PROVIDER.get().is_some()
}

/// The request id for an answer: the caller's `X-Request-Id` when it is
/// short and plain (so it is safe in logs), otherwise a new one. The API
/// and the worker's HTTP server both follow this one rule.
pub fn request_id_or_new(header: Option<&str>) -> String {
    header
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}
