//! `/rates`: latest prices, history, conversion quotes and a live stream.

mod convert;
mod history;
mod list;
mod stream;

use std::{collections::BTreeMap, convert::Infallible, time::Duration};

use axum::{
    extract::{Path, Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{
        Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use shared::{currencies::Currency, rates};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::{ApiError, ErrorCode, Problem, problem_response},
    rate_limit::ClientIp,
    rates_feed::{Rate, StreamRefused},
    routes::spec,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list::list_rates))
        .routes(routes!(convert::convert))
        .routes(routes!(stream::stream))
        .routes(routes!(history::history))
}

/// The currency with `code`, or a 400 naming `field`.
async fn currency(state: &AppState, field: &str, code: &str) -> Result<Currency, ApiError> {
    let mut conn = state.conn().await?;
    let wanted = code.trim().to_ascii_uppercase();
    shared::currencies::find(&mut conn, &wanted)
        .await?
        .ok_or_else(|| ApiError::field(field, format!("unknown currency {code:?}")))
}
