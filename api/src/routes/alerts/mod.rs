//! `/alerts`: price alerts (PRODUCT.md §8). Creating one only writes a row;
//! the worker checks every new observation against all active alerts with
//! one indexed query and emails the owners of those it triggers. Answers
//! to GETs are cached in Redis per user (see [`crate::user_cache`]).

mod create;
mod delete;
mod get;
mod list;

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
        .routes(routes!(create::create_alert, list::list_alerts))
        .routes(routes!(get::get_alert, delete::delete_alert))
}

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
#[expect(dead_code, reason = "documents the values of alert directions")]
pub enum AlertDirectionValue {
    Above,
    Below,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[expect(dead_code, reason = "documents the values of AlertResponse::status")]
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
