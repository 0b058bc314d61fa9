//! `/alerts`: price alerts (PRODUCT.md §8). Creating one only writes a row;
//! the worker checks every new observation against all active alerts with
//! one indexed query and emails the owners of those it triggers. Answers
//! to GETs are cached in Redis per user (see [`crate::user_cache`]).

use std::collections::BTreeMap;

use axum::{
    extract::{Path, Query, State},
    http::{HeaderName, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::money::AmountInput;
use shared::{
    alerts::{self, Alert, AlertDirection, AlertError, NewAlert},
    currencies,
    rates::RateError,
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::pagination;
use crate::{
    auth::{CurrentUser, VerifiedUser},
    error::{ApiError, ErrorCode, Problem},
    extract::ApiJson,
    rate_limit,
    routes::spec,
    state::AppState,
    user_cache::{self, Lookup},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_alert, list_alerts))
        .routes(routes!(get_alert, delete_alert))
}

/// The symbol an alert watches when the request names none.
const DEFAULT_SYMBOL: &str = "BTC";
/// Target prices are stored with at most this many decimal places.
const PRICE_DECIMALS: u32 = 18;

impl From<AlertError> for ApiError {
    fn from(error: AlertError) -> Self {
        match error {
            AlertError::Limit(detail) => ApiError::Refused {
                code: ErrorCode::LimitExceeded,
                detail,
            },
            AlertError::Rate(RateError::Unavailable { symbol, reason }) => {
                ApiError::rate_unavailable(&symbol, &reason)
            }
            AlertError::Rate(RateError::UnknownSymbol(symbol)) => {
                ApiError::field("symbol", format!("unknown symbol {symbol:?}"))
            }
            AlertError::Rate(RateError::Database(e)) | AlertError::Database(e) => e.into(),
        }
    }
}

/// A price alert as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertResponse {
    pub id: Uuid,
    #[schema(example = "BTC")]
    pub symbol: String,
    /// USD per unit.
    #[schema(example = "50000")]
    pub target_price: String,
    /// `above` (triggers when the price is at or above the target) or
    /// `below` (at or below).
    #[schema(value_type = AlertDirectionValue)]
    pub direction: String,
    /// `created` (active), `triggered` or `deleted`.
    #[schema(value_type = AlertStatus)]
    pub status: &'static str,
    pub created_at: DateTime<Utc>,
    /// The observed price that triggered it, USD per unit.
    pub triggered_price: Option<String>,
    /// When we received that price.
    pub observed_at: Option<DateTime<Utc>>,
    pub triggered_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(ToSchema)]
#[schema(as = AlertDirection, rename_all = "snake_case")]
#[allow(dead_code, reason = "documents the values of alert directions")]
pub enum AlertDirectionValue {
    Above,
    Below,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code, reason = "documents the values of AlertResponse::status")]
pub enum AlertStatus {
    Created,
    Triggered,
    Deleted,
}

impl From<Alert> for AlertResponse {
    fn from(a: Alert) -> Self {
        Self {
            id: a.id,
            symbol: a.symbol,
            target_price: a.target_price.normalize().to_string(),
            direction: a.direction,
            status: a.status.as_str(),
            created_at: a.created_at,
            triggered_price: a.triggered_price.map(|p| p.normalize().to_string()),
            observed_at: a.observed_at,
            triggered_at: a.triggered_at,
            deleted_at: a.deleted_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRequest {
    /// Default `BTC`.
    #[schema(schema_with = spec::priced_or_null)]
    symbol: Option<String>,
    /// USD per unit.
    #[schema(schema_with = spec::price, required = true)]
    target_price: Option<AmountInput>,
    /// Default: `above` when the target is above the current price, else
    /// `below`.
    #[schema(value_type = Option<AlertDirectionValue>)]
    direction: Option<String>,
}

/// Set a price alert.
///
/// You are emailed once, when an observed price reaches the target: at or
/// above it for `above`, at or below it for `below`. Without a direction,
/// the current price (which must then be fresh) picks it: `above` when the
/// target is above the current price, else `below`. Refusals: 422
/// `limit_exceeded` (too many active alerts), `rate_unavailable` (no
/// direction given and no fresh price).
#[utoipa::path(
    post,
    path = "/alerts",
    tag = "alerts",
    security(("bearer" = []), ("cookie" = [])),
    request_body = AlertRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::SignedInWrite, spec::RateLimited,
        (status = 201, description = "The active alert", body = AlertResponse),
        (status = 403, description = "Email not verified (`email_not_verified`), or signed in by cookie without the CSRF proof (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`limit_exceeded` (too many active alerts) or `rate_unavailable`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_alert(
    State(state): State<AppState>,
    VerifiedUser(user): VerifiedUser,
    ApiJson(body): ApiJson<AlertRequest>,
) -> Result<Response, ApiError> {
    rate_limit::hit(
        &state,
        "alert_create",
        &user.id.to_string(),
        state.config.auth.limits.alert_create_per_account,
    )
    .await?;
    let mut errors = BTreeMap::new();
    let symbol = body
        .symbol
        .as_deref()
        .map_or(DEFAULT_SYMBOL.to_owned(), |s| s.trim().to_ascii_uppercase());
    let mut conn = state.conn().await?;
    match currencies::find(&mut conn, &symbol).await? {
        None => {
            errors.insert("symbol".into(), format!("unknown symbol {symbol:?}"));
        }
        Some(c) if c.code == "USD" => {
            errors.insert(
                "symbol".into(),
                "prices are in USD: USD itself is always 1".into(),
            );
        }
        Some(_) => {}
    }
    let target = match &body.target_price {
        None => {
            errors.insert("target_price".into(), "is required".into());
            None
        }
        Some(raw) => shared::money::parse_json_amount(raw, PRICE_DECIMALS)
            .map_err(|m| errors.insert("target_price".into(), m))
            .ok(),
    };
    let direction = match body.direction.as_deref().map(str::trim) {
        None => None,
        Some(raw) => match AlertDirection::parse(raw) {
            Some(direction) => Some(direction),
            None => {
                errors.insert("direction".into(), "must be above or below".into());
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(
            "the request has invalid fields",
            errors,
        ));
    }
    let Some(target_price) = target else {
        return Err(ApiError::internal("alert validation lost a field"));
    };
    let alert = alerts::create(
        &mut conn,
        &state.config.rates,
        &state.config.alerts,
        NewAlert {
            user_id: user.id,
            symbol,
            target_price,
            direction,
        },
    )
    .await?;
    drop(conn);
    user_cache::invalidate(&state, &generation_key(&state, user.id)).await;
    Ok((StatusCode::CREATED, axum::Json(AlertResponse::from(alert))).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertParams {
    /// Only alerts in this status.
    #[param(value_type = Option<AlertStatus>, inline)]
    status: Option<String>,
    /// Page size, default 20.
    #[param(minimum = 1, maximum = 100, nullable = false)]
    limit: Option<i64>,
    #[param(value_type = Option<spec::UuidCursor>, inline)]
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertPage {
    pub items: Vec<AlertResponse>,
    pub next_cursor: Option<String>,
}

/// Your alerts, newest first.
///
/// Answers are cached per user and invalidated by every change (create,
/// delete, trigger); `X-Cache: hit|miss` says which this was.
#[utoipa::path(
    get,
    path = "/alerts",
    tag = "alerts",
    security(("bearer" = []), ("cookie" = [])),
    params(AlertParams),
    responses(
        spec::Unavailable, spec::SignedIn,
        (status = 200, description = "One page", body = AlertPage, headers(("X-Cache" = String, description = "`hit` or `miss`"))),
        (status = 400, description = "Bad status, limit or cursor (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_alerts(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Query(params): Query<AlertParams>,
) -> Result<Response, ApiError> {
    let status = match params.status.as_deref() {
        None => None,
        Some(s) if let Some(status) = alerts::AlertStatus::parse(s) => Some(status),
        Some(_) => {
            return Err(ApiError::field(
                "status",
                "must be created, triggered or deleted",
            ));
        }
    };
    let limit = pagination::limit(params.limit)?;
    let before = pagination::uuid_cursor(params.cursor.as_deref())?;
    let query = format!(
        "list:{}:{limit}:{}",
        status.map_or("", |s| s.as_str()),
        before.map(|id| id.to_string()).unwrap_or_default()
    );
    let ttl = state.config.alerts.cache_ttl;
    let (body, lookup) = user_cache::json(
        &state,
        &generation_key(&state, user.id),
        &query,
        ttl,
        async || {
            let mut conn = state.conn().await?;
            let rows = alerts::list(&mut conn, user.id, status, before, limit + 1).await?;
            let (rows, next_cursor) = pagination::uuid_page(rows, limit, |row| row.id);
            to_json(&AlertPage {
                items: rows.into_iter().map(Into::into).collect(),
                next_cursor,
            })
        },
    )
    .await?;
    Ok(json_response(body, lookup))
}

/// One of your alerts (cached like the list).
#[utoipa::path(
    get,
    path = "/alerts/{id}",
    tag = "alerts",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Alert id")),
    responses(
        spec::Unavailable, spec::SignedIn,
        (status = 200, description = "The alert (a deleted one too, with status `deleted`)", body = AlertResponse, headers(("X-Cache" = String, description = "`hit` or `miss`"))),
        (status = 404, description = "No such alert of yours (`not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_alert(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let ttl = state.config.alerts.cache_ttl;
    let (body, lookup) = user_cache::json(
        &state,
        &generation_key(&state, user.id),
        &format!("one:{id}"),
        ttl,
        async || {
            let mut conn = state.conn().await?;
            let alert = alerts::get(&mut conn, user.id, id)
                .await?
                .ok_or_else(not_found)?;
            to_json(&AlertResponse::from(alert))
        },
    )
    .await?;
    Ok(json_response(body, lookup))
}

/// Delete one of your alerts.
///
/// Its status becomes `deleted` and it never triggers. Deleting it again
/// answers the same.
#[utoipa::path(
    delete,
    path = "/alerts/{id}",
    tag = "alerts",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Alert id")),
    responses(
        spec::Unavailable, spec::SignedInWrite,
        (status = 200, description = "The deleted alert", body = AlertResponse),
        (status = 404, description = "No such alert of yours (`not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_alert(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<axum::Json<AlertResponse>, ApiError> {
    let id = parse_id(&id)?;
    let mut conn = state.conn().await?;
    let alert = alerts::delete(&mut conn, user.id, id)
        .await?
        .ok_or_else(not_found)?;
    drop(conn);
    user_cache::invalidate(&state, &generation_key(&state, user.id)).await;
    Ok(axum::Json(alert.into()))
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such alert".into())
}

/// An id in a path: anything that is not a UUID names no alert of yours.
fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| not_found())
}

fn generation_key(state: &AppState, user: Uuid) -> String {
    alerts::cache_generation_key(&state.config.redis.prefix, user)
}

fn to_json(value: &impl Serialize) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(ApiError::internal)
}

fn json_response(body: String, lookup: Lookup) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (HeaderName::from_static("x-cache"), lookup.header_value()),
        ],
        body,
    )
        .into_response()
}
