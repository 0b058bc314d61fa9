//! The OpenAPI document and an interactive docs page (Swagger UI), served
//! from the binary: the UI's script and style are compiled in, no CDN.

use std::sync::Arc;

use axum::{
    Extension,
    http::header,
    response::{Html, IntoResponse},
};

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
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/api/v1/openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      tryItOutEnabled: true,
      withCredentials: true
    });
  </script>
</body>
</html>
"##;

pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

const ASSET_CACHE: &str = "public, max-age=86400";

pub async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, ASSET_CACHE),
        ],
        include_str!("../../assets/swagger-ui/swagger-ui.css"),
    )
}

pub async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, ASSET_CACHE),
        ],
        include_str!("../../assets/swagger-ui/swagger-ui-bundle.js"),
    )
}
