//! The HTTP surface: `/api/v1/...` JSON routes (documented in the generated
//! OpenAPI document), health and metrics endpoints, the API docs page and
//! the web page.

mod admin;
mod alerts;
mod amount;
pub mod auth;
mod bets;
mod docs;
mod health;
mod me;
mod orders;
mod pagination;
mod rates;
mod spec;
mod wallets;
mod web;
mod webhooks;

use std::sync::Arc;

use axum::{Extension, Router, extract::DefaultBodyLimit, middleware, routing::get};
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::{
    error::{ApiError, Problem},
    extract::BodyLimit,
    metrics, middleware as mw,
    state::AppState,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bourse API",
        description = "Wallets, transfers, trading, bets and price alerts. Errors are RFC 9457 problem+json documents with a stable `code`.",
        license(name = "MIT"),
    ),
    components(schemas(Problem)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Registration, verification, sign-in, sessions and password reset"),
        (name = "me", description = "The signed-in user's profile and password"),
        (name = "rates", description = "Latest prices, history, conversion quotes and a live stream"),
        (name = "wallets", description = "Wallets, deposits, withdrawals, transfers and history"),
        (name = "orders", description = "Buying and selling crypto against the house; exchange clearing"),
        (name = "bets", description = "Bets on price moves, settled at the price in force when due"),
        (name = "alerts", description = "Price alerts: an email when a price crosses your target"),
        (name = "webhooks", description = "Webhook endpoints: events (`alert.triggered`, `bet.settled`, `order.cleared`, `wallet.blocked`, `transfer.received`) POSTed to your server as `{id, type, created_at, data}`, signed with `Bourse-Signature: t=<unix>,v1=<hex HMAC-SHA256 of \"t.body\" keyed with the secret>` and identified by `Bourse-Event-Id`; retried with backoff for a day, at least once (deduplicate by event id). README: Webhooks"),
        (name = "admin", description = "Operator views (administrators only)"),
    ),
)]
struct ApiDoc;

/// Access tokens go in `Authorization: Bearer`, or (for the web page) in the
/// `bourse_access` cookie, with `X-CSRF-Token` on writes.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "Access token from /auth/login or /auth/refresh (15 minutes)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "bourse_access",
                "Set by /auth/login; state-changing requests must also send X-CSRF-Token equal to the bourse_csrf cookie",
            ))),
        );
    }
}

/// The OpenAPI document generated from the route annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, openapi) = api_routes().split_for_parts();
    openapi
}

fn api_routes() -> OpenApiRouter<AppState> {
    let mut routes = OpenApiRouter::with_openapi(ApiDoc::openapi()).nest(
        "/api/v1",
        auth::router()
            .merge(me::router())
            .merge(rates::router())
            .merge(wallets::router())
            .merge(orders::router())
            .merge(bets::router())
            .merge(alerts::router())
            .merge(webhooks::router())
            .merge(admin::router()),
    );
    // Rules the derive macros cannot state, added once every schema is in.
    utoipa::Modify::modify(&me::EmailChangeNeedsPassword, routes.get_openapi_mut());
    utoipa::Modify::modify(&auth::OptionalBodies, routes.get_openapi_mut());
    routes
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The application plus `extra` routes, which get the same middleware
/// (tests add stand-in routes this way).
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    let (api, openapi) = api_routes().split_for_parts();
    let openapi_json = Arc::new(openapi.to_pretty_json().unwrap_or_else(|_| "{}".to_owned()));
    let body_limit = state.config.http.max_body_bytes;
    Router::new()
        .merge(api)
        .merge(extra)
        .route("/api/v1/openapi.json", get(docs::openapi_json))
        .route("/docs", get(docs::page))
        .route("/docs/", get(docs::page))
        .route("/docs/swagger-ui.css", get(docs::css))
        .route("/docs/swagger-ui-bundle.js", get(docs::js))
        .route("/docs/init.js", get(docs::init_js))
        .route("/", get(web::index))
        .route("/web/{*path}", get(web::asset))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(not_found)
        .layer(Extension(docs::OpenApiJson(openapi_json)))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            mw::wake_relays,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::record,
        ))
        .layer(CatchPanicLayer::custom(mw::panic_response))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(Extension(BodyLimit(body_limit)))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            mw::time_limit,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            mw::body_limit,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            mw::problem_details,
        ))
        .layer(middleware::from_fn(mw::request_id))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such resource".into())
}
