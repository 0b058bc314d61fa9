//! `GET /api/v1/rates/{symbol}/history`.

use super::*;
use crate::routes::pagination::Cursor;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Start (inclusive), before `to` and at most 31 days before it;
    /// default one hour before `to`.
    #[param(format = DateTime, nullable = false)]
    from: Option<String>,
    /// End (exclusive); default now.
    #[param(format = DateTime, nullable = false)]
    to: Option<String>,
    /// Points per page, default 20.
    #[param(minimum = 1, maximum = 100, nullable = false)]
    limit: Option<i64>,
    /// The previous page's `next_cursor`, with the same `from` and `to`.
    #[param(pattern = "^[A-Za-z0-9_-]+$", nullable = false)]
    cursor: Option<String>,
    /// Down-sample: one point (the last) per this many seconds.
    #[param(minimum = 1, maximum = 86400, nullable = false)]
    interval: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPoint {
    #[schema(value_type = String)]
    pub price_usd: String,
    pub as_of: DateTime<Utc>,
    pub source: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPage {
    pub symbol: String,
    pub items: Vec<HistoryPoint>,
    pub next_cursor: Option<String>,
}

/// The longest range one request may cover.
const MAX_RANGE_DAYS: i64 = 31;

fn parse_time(field: &str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.to_utc())
        .map_err(|_| {
            ApiError::field(
                field,
                "must be an RFC 3339 time such as 2026-01-31T12:00:00Z",
            )
        })
}

/// The cursor's time, which must lie in `[from, to)` as every cursor this
/// endpoint hands out does: the down-sampled query starts at the cursor,
/// so a forged one from long before `from` would escape the range limit.
fn decode_cursor(
    raw: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<DateTime<Utc>, ApiError> {
    let Some(at) = Cursor::<DateTime<Utc>>::decode(Some(raw))? else {
        return Err(ApiError::field(
            "cursor",
            "is not a cursor from this endpoint",
        ));
    };
    if at < from || at >= to {
        return Err(ApiError::field(
            "cursor",
            "is outside the range from..to; pass the same range as the page it came from",
        ));
    }
    Ok(at)
}

/// Price history of one currency.
///
/// Oldest first, at most 31 days per request, cursor-paginated; `interval`
/// down-samples long ranges for charts.
#[utoipa::path(
    get,
    path = "/rates/{symbol}/history",
    tag = "rates",
    params(("symbol" = String, Path, description = "Currency code, any letter case, e.g. BTC"), HistoryParams),
    responses(
        spec::Unavailable,
        (status = 200, description = "One page of observations", body = HistoryPage),
        (status = 400, description = "Bad range, limit, interval or cursor (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown currency (`not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    Path(symbol): Path<String>,
    Query(params): Query<HistoryParams>,
) -> Result<axum::Json<HistoryPage>, ApiError> {
    let code = symbol.trim().to_ascii_uppercase();
    let mut conn = state.conn().await?;
    if shared::currencies::find(&mut conn, &code).await?.is_none() {
        return Err(ApiError::NotFound(format!("no currency {symbol:?}")));
    }
    let to = match &params.to {
        Some(raw) => parse_time("to", raw)?,
        None => Utc::now(),
    };
    let from = match &params.from {
        Some(raw) => parse_time("from", raw)?,
        None => to - chrono::Duration::hours(1),
    };
    if from >= to {
        return Err(ApiError::field("from", "must be before to"));
    }
    if to - from > chrono::Duration::days(MAX_RANGE_DAYS) {
        return Err(ApiError::field(
            "to",
            format!("the range may cover at most {MAX_RANGE_DAYS} days"),
        ));
    }
    let limit = params.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::field("limit", "must be from 1 to 100"));
    }
    if let Some(interval) = params.interval
        && !(1..=86_400).contains(&interval)
    {
        return Err(ApiError::field(
            "interval",
            "must be from 1 to 86400 seconds",
        ));
    }
    let after = params
        .cursor
        .as_deref()
        .map(|raw| decode_cursor(raw, from, to))
        .transpose()?;
    let page = rates::history(&mut conn, &code, from, to, after, limit, params.interval).await?;
    Ok(axum::Json(HistoryPage {
        symbol: code,
        items: page
            .points
            .into_iter()
            .map(|p| HistoryPoint {
                price_usd: p.price_usd.normalize().to_string(),
                as_of: p.observed_at,
                source: p.source,
            })
            .collect(),
        next_cursor: page.next.map(|at| Cursor(at).encode()),
    }))
}
