//! The OpenAPI document and an interactive docs page (Swagger UI), served
//! from the binary: the UI's script and style are compiled in, no CDN,
//! and gzipped at build time for clients that accept it.
//!
//! The page runs under a Content-Security-Policy: scripts from this origin
//! only (the UI is started by `/docs/init.js`, not an inline script), no
//! framing (clickjacking: "Try it out" sends the visitor's cookies).

use std::sync::Arc;

use axum::{
    Extension,
    http::{HeaderMap, HeaderValue, header},
    response::{Html, IntoResponse, Response},
};

/// This origin's scripts only. Swagger UI sets inline styles and draws
/// its icons from `data:` images; its requests go to this origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

#[derive(Clone)]
pub struct OpenApiJson(pub Arc<String>);

pub async fn openapi_json(
    Extension(OpenApiJson(json)): Extension<OpenApiJson>,
) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        (*json).clone(),
    )
}

const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Bourse API docs</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-url="/api/v1/openapi.json"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"##;

/// Starts Swagger UI on the document the page names.
const INIT_JS: &str = r##"const root = document.getElementById("swagger-ui");
window.ui = SwaggerUIBundle({
  url: root.dataset.url,
  dom_id: "#swagger-ui",
  deepLinking: true,
  tryItOutEnabled: true,
  withCredentials: true
});
"##;

pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(PAGE),
    )
}

const ASSET_CACHE: &str = "public, max-age=86400";

/// Swagger UI's files, gzipped to clients that take it (build.rs made the
/// copies; see `web::serve_static`).
fn asset(
    request: &HeaderMap,
    body: &'static str,
    gzip: &'static [u8],
    kind: &'static str,
) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(ASSET_CACHE));
    super::web::serve_static(request, headers, body, gzip, None)
}

pub async fn css(request: HeaderMap) -> Response {
    asset(
        &request,
        include_str!("../../assets/swagger-ui/swagger-ui.css"),
        include_bytes!(concat!(
            env!("OUT_DIR"),
            "/assets/swagger-ui/swagger-ui.css.gz"
        )),
        "text/css; charset=utf-8",
    )
}

pub async fn js(request: HeaderMap) -> Response {
    asset(
        &request,
        include_str!("../../assets/swagger-ui/swagger-ui-bundle.js"),
        include_bytes!(concat!(
            env!("OUT_DIR"),
            "/assets/swagger-ui/swagger-ui-bundle.js.gz"
        )),
        "text/javascript; charset=utf-8",
    )
}

/// `GET /docs/init.js`.
pub async fn init_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, ASSET_CACHE),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        INIT_JS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_no_inline_script() {
        let scripts = PAGE.matches("<script").count();
        let external = PAGE.matches("<script src=\"/docs/").count();
        assert_eq!(scripts, 2);
        assert_eq!(scripts, external, "every script is a file of this origin");
        assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
    }
}
