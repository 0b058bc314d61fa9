//! `/webhooks`: a user's webhook endpoints (PRODUCT.md §11). Registering
//! one checks its URL and that every address its host resolves to may take
//! deliveries (`shared::webhooks::address`: no server-side request
//! forgery), and answers the signing secret, once.

mod create;
mod delete;
mod deliveries;
mod list;

use std::collections::BTreeMap;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::webhooks::{
    EventType, address,
    endpoints::{self, Endpoint, EndpointError, NewEndpoint},
    target,
};
use utoipa::{
    ToSchema,
    openapi::{ArrayBuilder, ObjectBuilder, Schema, Type},
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::{CurrentUser, VerifiedUser},
    error::{ApiError, ErrorCode, Problem},
    extract::ApiJson,
    routes::spec,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create::create_webhook, list::list_webhooks))
        .routes(routes!(delete::delete_webhook))
        .routes(routes!(deliveries::list_deliveries))
        .routes(routes!(deliveries::resend_delivery))
}

impl From<EndpointError> for ApiError {
    fn from(error: EndpointError) -> Self {
        match error {
            EndpointError::Limit(detail) => ApiError::Refused {
                code: ErrorCode::LimitExceeded,
                detail,
            },
            EndpointError::Database(e) => e.into(),
        }
    }
}

fn event_type() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(EventType::names()))
}

/// One to five distinct event types.
fn event_types() -> Schema {
    ArrayBuilder::new()
        .items(event_type())
        .min_items(Some(1))
        .max_items(Some(EventType::ALL.len()))
        .unique_items(true)
        .build()
        .into()
}

spec::schema_type!(EventTypes => event_types());

/// A webhook endpoint as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookResponse {
    pub id: Uuid,
    #[schema(example = "https://hooks.example.com/bourse")]
    pub url: String,
    #[schema(value_type = EventTypes)]
    pub events: Vec<String>,
    /// False once deliveries failed for a day (`disabled_reason` says why).
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<Endpoint> for WebhookResponse {
    fn from(e: Endpoint) -> Self {
        Self {
            id: e.id,
            url: e.url,
            events: e.events,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            created_at: e.created_at,
        }
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such webhook endpoint".into())
}

/// An id in a path: anything that is not a UUID names no endpoint of yours.
fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| not_found())
}
