//! The two text formats `/metrics` can answer in, chosen by the scraper's
//! `Accept` header.
//!
//! prometheus-client writes OpenMetrics 1.0. Prometheus asks for it first
//! and reads it correctly only when it is labelled as such. Clients that do
//! not ask for it (curl, `promtool check metrics`, older scrapers) read the
//! Prometheus text format 0.0.4, where a counter family is named with its
//! `_total` suffix: fed OpenMetrics, they see each `_total` series as an
//! untyped metric without help. Those get the same registry converted.

/// The content type of OpenMetrics 1.0 text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of the Prometheus text format 0.0.4.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a client sending `accept` prefers OpenMetrics to the Prometheus
/// text format: it lists `application/openmetrics-text` with a weight above
/// zero and at least that of `text/plain` (Prometheus sends
/// `application/openmetrics-text;version=1.0.0,...,text/plain;version=0.0.4;q=0.5,...`).
pub fn prefers_openmetrics(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let mut openmetrics: Option<f32> = None;
    let mut text: Option<f32> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let weight = parts
            .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let best = match media.as_str() {
            "application/openmetrics-text" => &mut openmetrics,
            "text/plain" => &mut text,
            _ => continue,
        };
        *best = Some(best.map_or(weight, |w| w.max(weight)));
    }
    match openmetrics {
        Some(weight) if weight > 0.0 => weight >= text.unwrap_or(0.0),
        _ => false,
    }
}

/// The answer to a scrape: the content type and body for a client sending
/// `accept`, from the registry's OpenMetrics text.
pub fn negotiate(accept: Option<&str>, openmetrics: String) -> (&'static str, String) {
    if prefers_openmetrics(accept) {
        (OPENMETRICS, openmetrics)
    } else {
        (PROMETHEUS_TEXT, to_prometheus_text(&openmetrics))
    }
}

/// Rewrites OpenMetrics text as written by prometheus-client (no
/// exemplars) in the Prometheus text format 0.0.4: counter and info
/// families take the suffix their samples carry, `_created` samples and
/// `# UNIT` / `# EOF` lines (which 0.0.4 lacks) are dropped.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // Families whose `_created` samples are dropped.
    let mut created: Vec<String> = Vec::new();
    // (family, its 0.0.4 name, its 0.0.4 type) from the TYPE lines.
    let mut renamed: Vec<(String, String, &str)> = Vec::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (new_name, new_kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "stateset" => (name.to_owned(), "gauge"),
                "unknown" => (name.to_owned(), "untyped"),
                other => (name.to_owned(), other),
            };
            if matches!(kind, "counter" | "histogram" | "summary") {
                created.push(format!("{name}_created"));
            }
            renamed.push((name.to_owned(), new_name, new_kind));
        }
    }
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split_once(' ').map_or(rest, |(name, _)| name);
            if let Some((_, new_name, kind)) = renamed.iter().find(|(n, ..)| n == name) {
                out.push_str(&format!("# TYPE {new_name} {kind}\n"));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = renamed
                .iter()
                .find(|(n, ..)| n == name)
                .map_or(name, |(_, new_name, _)| new_name.as_str());
            // OpenMetrics escapes `"` in help text; 0.0.4 does not.
            out.push_str(&format!("# HELP {name} {}\n", help.replace("\\\"", "\"")));
            continue;
        }
        let sample_name = line.split(['{', ' ']).next().unwrap_or_default();
        if created.iter().any(|c| c == sample_name) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENMETRICS_TEXT: &str = "# HELP app_requests Requests \\\"answered\\\".\n\
        # TYPE app_requests counter\n\
        app_requests_total{route=\"/a\"} 3\n\
        app_requests_created{route=\"/a\"} 1700000000.0\n\
        # HELP app_build Build.\n\
        # TYPE app_build info\n\
        app_build_info{version=\"1\"} 1\n\
        # HELP app_up_seconds Up.\n\
        # TYPE app_up_seconds gauge\n\
        # UNIT app_up_seconds seconds\n\
        app_up_seconds 4\n\
        # EOF\n";

    #[test]
    fn counters_take_their_total_name_and_openmetrics_only_lines_go() {
        assert_eq!(
            to_prometheus_text(OPENMETRICS_TEXT),
            "# HELP app_requests_total Requests \"answered\".\n\
             # TYPE app_requests_total counter\n\
             app_requests_total{route=\"/a\"} 3\n\
             # HELP app_build_info Build.\n\
             # TYPE app_build_info gauge\n\
             app_build_info{version=\"1\"} 1\n\
             # HELP app_up_seconds Up.\n\
             # TYPE app_up_seconds gauge\n\
             app_up_seconds 4\n"
        );
    }

    #[test]
    fn prometheus_gets_openmetrics_and_others_the_text_format() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(prefers_openmetrics(Some(prometheus)));
        assert!(prefers_openmetrics(Some("application/openmetrics-text")));
        for other in [
            None,
            Some("*/*"),
            Some("text/plain"),
            Some("text/plain, application/openmetrics-text;q=0.5"),
            Some("application/openmetrics-text;q=0"),
        ] {
            assert!(!prefers_openmetrics(other), "{other:?}");
        }
        assert_eq!(negotiate(Some(prometheus), "# EOF\n".into()).0, OPENMETRICS);
        assert_eq!(
            negotiate(None, "# EOF\n".into()),
            (PROMETHEUS_TEXT, String::new())
        );
    }
}
