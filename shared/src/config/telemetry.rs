//! Trace export. Reads `OTEL_EXPORTER_OTLP_ENDPOINT` and `OTEL_SERVICE_NAME`
//! (OpenTelemetry's own names, so a collector's usual setup applies).

use super::env::EnvReader;

#[derive(Debug, Clone, Default)]
pub struct TelemetryConfig {
    /// Where spans go over OTLP/HTTP (JSON), e.g. `http://collector:4318`;
    /// `/v1/traces` is appended. None: no export (trace context still
    /// travels with jobs, and logs carry trace and request ids).
    pub otlp_endpoint: Option<String>,
    /// The `service.name` of exported spans; by default the binary's name
    /// (`bourse-api`, `bourse-worker`).
    pub service_name: Option<String>,
}

impl TelemetryConfig {
    pub(super) fn read(env: &mut EnvReader) -> Self {
        let otlp_endpoint = env
            .optional("OTEL_EXPORTER_OTLP_ENDPOINT")
            .map(|e| e.trim().trim_end_matches('/').to_owned())
            .filter(|e| !e.is_empty());
        if let Some(endpoint) = &otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            env.problem(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("invalid value {endpoint:?} (expected an http:// or https:// URL)"),
            );
        }
        Self {
            otlp_endpoint,
            service_name: env
                .optional("OTEL_SERVICE_NAME")
                .filter(|n| !n.trim().is_empty()),
        }
    }
}
