//! The web page (PRODUCT.md §12): plain HTML, CSS and JavaScript modules
//! from `api/web/`, compiled into the binary, served at `/` and `/web/...`.
//! The page talks to the public JSON API only, with the session cookies and
//! the `X-CSRF-Token` header; no build step and no third-party code.
//!
//! Clients accepting gzip get copies compressed at build time (build.rs).
//!
//! Every answer carries a Content-Security-Policy that allows nothing but
//! this origin: no inline script or style, no other hosts, no framing.

use std::sync::LazyLock;

use axum::{
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// This origin only, nothing inline; `connect-src 'self'` covers `fetch`
/// and the rates `EventSource`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
    /// `body` gzipped by build.rs.
    gzip: &'static [u8],
}

/// The gzipped copy build.rs made of the file at `path` (under `api/`).
macro_rules! gzipped {
    ($path:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $path, ".gz"))
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// The page's files, by their path under `/web/`.
const ASSETS: &[Asset] = &[
    Asset {
        path: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../web/style.css"),
        gzip: gzipped!("web/style.css"),
    },
    Asset {
        path: "icon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../../web/icon.svg"),
        gzip: gzipped!("web/icon.svg"),
    },
    Asset {
        path: "app.js",
        content_type: JS,
        body: include_str!("../../web/app.js"),
        gzip: gzipped!("web/app.js"),
    },
    Asset {
        path: "api.js",
        content_type: JS,
        body: include_str!("../../web/api.js"),
        gzip: gzipped!("web/api.js"),
    },
    Asset {
        path: "dom.js",
        content_type: JS,
        body: include_str!("../../web/dom.js"),
        gzip: gzipped!("web/dom.js"),
    },
    Asset {
        path: "state.js",
        content_type: JS,
        body: include_str!("../../web/state.js"),
        gzip: gzipped!("web/state.js"),
    },
    Asset {
        path: "format.js",
        content_type: JS,
        body: include_str!("../../web/format.js"),
        gzip: gzipped!("web/format.js"),
    },
    Asset {
        path: "chart.js",
        content_type: JS,
        body: include_str!("../../web/chart.js"),
        gzip: gzipped!("web/chart.js"),
    },
    Asset {
        path: "throughput.js",
        content_type: JS,
        body: include_str!("../../web/throughput.js"),
        gzip: gzipped!("web/throughput.js"),
    },
    Asset {
        path: "pages/account.js",
        content_type: JS,
        body: include_str!("../../web/pages/account.js"),
        gzip: gzipped!("web/pages/account.js"),
    },
    Asset {
        path: "pages/money.js",
        content_type: JS,
        body: include_str!("../../web/pages/money.js"),
        gzip: gzipped!("web/pages/money.js"),
    },
    Asset {
        path: "pages/market.js",
        content_type: JS,
        body: include_str!("../../web/pages/market.js"),
        gzip: gzipped!("web/pages/market.js"),
    },
    Asset {
        path: "pages/webhooks.js",
        content_type: JS,
        body: include_str!("../../web/pages/webhooks.js"),
        gzip: gzipped!("web/pages/webhooks.js"),
    },
    Asset {
        path: "pages/admin.js",
        content_type: JS,
        body: include_str!("../../web/pages/admin.js"),
        gzip: gzipped!("web/pages/admin.js"),
    },
];

const INDEX: &str = include_str!("../../web/index.html");
const INDEX_GZIP: &[u8] = gzipped!("web/index.html");

/// Strong validators, computed once: the files never change while the
/// process runs.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    std::iter::once(INDEX)
        .chain(ASSETS.iter().map(|a| a.body))
        .map(|body| {
            format!(
                "\"{}\"",
                hex::encode(&Sha256::digest(body.as_bytes())[..12])
            )
        })
        .collect()
});

/// Whether a client sending these request headers takes a gzipped answer:
/// its `Accept-Encoding` names `gzip` (or `*`) with a weight above zero.
pub(super) fn accepts_gzip(request: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for value in request.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for coding in value.split(',') {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default().to_ascii_lowercase();
            let weight = parts
                .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match name.as_str() {
                "gzip" | "x-gzip" => gzip = Some(weight),
                "*" => any = Some(weight),
                _ => {}
            }
        }
    }
    gzip.or(any).is_some_and(|weight| weight > 0.0)
}

/// Answers `body`, or its gzipped copy to a client that takes gzip, with
/// `headers`. Caches keep the two apart by `Accept-Encoding` (`Vary`);
/// `etag` (when given, quoted) is suffixed for the gzipped copy, since a
/// strong validator names one representation.
pub(super) fn serve_static(
    request: &HeaderMap,
    mut headers: HeaderMap,
    body: &'static str,
    gzip: &'static [u8],
    etag: Option<&str>,
) -> Response {
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    let gzipped = accepts_gzip(request);
    if let Some(etag) = etag {
        let tag = if gzipped {
            format!("{}-gzip\"", etag.trim_end_matches('"'))
        } else {
            etag.to_owned()
        };
        if let Ok(value) = HeaderValue::from_str(&tag) {
            headers.insert(header::ETAG, value);
        }
        // Either copy's tag means the client has these bytes' content.
        let fresh = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .map(str::trim)
                    .any(|t| t == etag || t == tag || t == "*")
            });
        if fresh {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
    }
    if gzipped {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        (StatusCode::OK, headers, gzip).into_response()
    } else {
        (StatusCode::OK, headers, body).into_response()
    }
}

fn serve(
    request: &HeaderMap,
    content_type: &'static str,
    (body, gzip): (&'static str, &'static [u8]),
    etag: &str,
) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Revalidate every time (the ETag makes that a 304): a new binary's
    // page is never mixed with an old one's modules.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    serve_static(request, headers, body, gzip, Some(etag))
}

/// `GET /`: the page itself (the views are chosen by the URL's fragment).
pub async fn index(request: HeaderMap) -> Response {
    serve(
        &request,
        "text/html; charset=utf-8",
        (INDEX, INDEX_GZIP),
        &ETAGS[0],
    )
}

/// `GET /web/{path}`: a script, the stylesheet or the icon.
pub async fn asset(Path(path): Path<String>, request: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.path == path) {
        Some(i) => serve(
            &request,
            ASSETS[i].content_type,
            (ASSETS[i].body, ASSETS[i].gzip),
            &ETAGS[i + 1],
        ),
        None => ApiError::NotFound("no such file".into()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paths a file refers to with `prefix"...`, up to the closing quote.
    fn references<'a>(text: &'a str, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        text.match_indices(prefix).filter_map(move |(at, _)| {
            let rest = &text[at + prefix.len()..];
            rest.find(['"', '\'']).map(|end| &rest[..end])
        })
    }

    fn known(path: &str) -> bool {
        ASSETS.iter().any(|a| a.path == path)
    }

    #[test]
    fn the_page_refers_only_to_embedded_files() {
        let linked: Vec<&str> = references(INDEX, "\"/web/").collect();
        assert!(linked.contains(&"app.js") && linked.contains(&"style.css"));
        for path in linked {
            assert!(
                known(path),
                "index.html links /web/{path}, which is not embedded"
            );
        }
    }

    #[test]
    fn every_module_import_is_embedded() {
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            let dir = asset.path.rsplit_once('/').map_or("", |(dir, _)| dir);
            for quote in ["from '", "from \"", "import('"] {
                for target in references(asset.body, quote) {
                    let resolved = match target.strip_prefix("./") {
                        Some(rest) if dir.is_empty() => rest.to_owned(),
                        Some(rest) => format!("{dir}/{rest}"),
                        None => match target.strip_prefix("../") {
                            Some(rest) => rest.to_owned(),
                            None => panic!("{}: import {target:?} is not relative", asset.path),
                        },
                    };
                    assert!(
                        known(&resolved),
                        "{} imports {target}, which is not embedded",
                        asset.path
                    );
                }
            }
        }
    }

    #[test]
    fn gzip_is_sent_only_to_clients_that_take_it() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
            accepts_gzip(&headers)
        };
        assert!(!accepts_gzip(&HeaderMap::new()));
        for yes in ["gzip", "gzip, deflate, br", "br;q=1.0, GZIP;q=0.5", "*"] {
            assert!(with(yes), "{yes}");
        }
        for no in [
            "identity",
            "br",
            "gzip;q=0",
            "*;q=0",
            "br, *;q=0.5, gzip;q=0",
        ] {
            assert!(!with(no), "{no}");
        }
    }

    #[test]
    fn nothing_inline_or_from_elsewhere() {
        assert!(!INDEX.contains("<script>") && !INDEX.contains("style="));
        for asset in ASSETS {
            // The SVG namespace is a name, not an address.
            let body = asset.body.replace("http://www.w3.org/2000/svg", "");
            assert!(
                !body.contains("http://") && !body.contains("https://"),
                "{} refers to another host",
                asset.path
            );
        }
    }
}
