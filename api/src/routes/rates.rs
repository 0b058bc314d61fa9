//! `/rates`: latest prices, history, conversion quotes and a live stream.

use std::{collections::BTreeMap, convert::Infallible, time::Duration};

use axum::{
    extract::{Path, Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{
        Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use base64::Engine as _;
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
        .routes(routes!(list_rates))
        .routes(routes!(convert))
        .routes(routes!(stream))
        .routes(routes!(history))
}

/// A latest price and whether it is fresh enough to move money.
#[derive(Debug, Serialize, ToSchema)]
pub struct RateItem {
    #[serde(flatten)]
    pub rate: Rate,
    /// False when older than the staleness limit: trades, transfers and
    /// bets refuse it (`rate_unavailable`).
    pub fresh: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RateList {
    pub items: Vec<RateItem>,
    /// Always null: the list is complete.
    pub next_cursor: Option<String>,
}

/// Latest prices.
///
/// Served from the latest-price cache (mirrored in memory by every API
/// process); never an outside call.
#[utoipa::path(
    get,
    path = "/rates",
    tag = "rates",
    responses(
        spec::Unavailable,
        (status = 200, description = "The latest USD price of every currency", body = RateList),
    )
)]
pub async fn list_rates(State(state): State<AppState>) -> axum::Json<RateList> {
    let now = Utc::now();
    let fiat = chrono::Duration::from_std(state.config.rates.fiat_max_age).unwrap_or_default();
    let crypto = chrono::Duration::from_std(state.config.rates.max_age).unwrap_or_default();
    let mut items = Vec::new();
    for rate in state.rates.snapshot().await {
        let limit = if state.rates.is_crypto(&rate.symbol).await {
            crypto
        } else {
            fiat
        };
        let fresh = now - rate.as_of <= limit;
        items.push(RateItem { rate, fresh });
    }
    axum::Json(RateList {
        items,
        next_cursor: None,
    })
}

/// The currency with `code`, or a 400 naming `field`.
async fn currency(state: &AppState, field: &str, code: &str) -> Result<Currency, ApiError> {
    let mut conn = state.conn().await?;
    let wanted = code.trim().to_ascii_uppercase();
    shared::currencies::find(&mut conn, &wanted)
        .await?
        .ok_or_else(|| ApiError::field(field, format!("unknown currency {code:?}")))
}

fn rate_error(error: rates::RateError) -> ApiError {
    match error {
        rates::RateError::UnknownSymbol(symbol) => {
            ApiError::field("symbol", format!("unknown currency {symbol:?}"))
        }
        rates::RateError::Unavailable { symbol, reason } => ApiError::Refused {
            code: ErrorCode::RateUnavailable,
            detail: format!("no fresh price for {symbol} ({reason}); try again shortly"),
        },
        rates::RateError::Database(e) => e.into(),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConvertParams {
    /// Currency converted from.
    #[param(value_type = spec::CurrencyCode, inline, required = true)]
    from: Option<String>,
    /// Currency converted to.
    #[param(value_type = spec::CurrencyCode, inline, required = true)]
    to: Option<String>,
    /// Amount of `from`, a decimal string with at most its places (two for
    /// fiat, eight for crypto).
    #[param(value_type = spec::AmountText, inline, required = true)]
    amount: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversionQuote {
    pub from: String,
    pub to: String,
    #[schema(value_type = String)]
    pub amount: String,
    /// Rounded down to `to`'s decimal places.
    #[schema(value_type = String)]
    pub converted: String,
    /// Units of `to` per unit of `from`.
    #[schema(value_type = String)]
    pub rate: String,
    /// The older of the two prices used.
    pub as_of: DateTime<Utc>,
}

/// Quote a conversion.
///
/// Exactly the quote a transfer would use now: fresh prices only (422
/// `rate_unavailable` otherwise), the result rounded down.
#[utoipa::path(
    get,
    path = "/rates/convert",
    tag = "rates",
    params(ConvertParams),
    responses(
        spec::Unavailable,
        (status = 200, description = "The quote", body = ConversionQuote),
        (status = 400, description = "A missing or unknown currency, or a bad amount (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No fresh price (`rate_unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn convert(
    State(state): State<AppState>,
    Query(params): Query<ConvertParams>,
) -> Result<axum::Json<ConversionQuote>, ApiError> {
    let mut errors = BTreeMap::new();
    for (field, value) in [
        ("from", &params.from),
        ("to", &params.to),
        ("amount", &params.amount),
    ] {
        if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
            errors.insert(field.to_owned(), "is required".to_owned());
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(
            "the query has invalid parameters",
            errors,
        ));
    }
    let from = currency(&state, "from", params.from.as_deref().unwrap_or_default()).await?;
    let to = currency(&state, "to", params.to.as_deref().unwrap_or_default()).await?;
    let amount =
        shared::money::parse_amount(params.amount.as_deref().unwrap_or_default(), from.decimals)
            .map_err(|message| ApiError::field("amount", message))?;
    let mut conn = state.conn().await?;
    let quote = rates::convert(
        &mut conn,
        &state.config.rates,
        &from.code,
        &to.code,
        amount,
        Utc::now(),
    )
    .await
    .map_err(rate_error)?;
    Ok(axum::Json(ConversionQuote {
        from: quote.from,
        to: quote.to,
        amount: quote.amount.to_string(),
        converted: quote.converted.to_string(),
        rate: quote.rate.to_string(),
        as_of: quote.as_of,
    }))
}

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

fn encode_cursor(at: DateTime<Utc>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// The cursor's time, which must lie in `[from, to)` as every cursor this
/// endpoint hands out does: the down-sampled query starts at the cursor,
/// so a forged one from long before `from` would escape the range limit.
fn decode_cursor(
    raw: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<DateTime<Utc>, ApiError> {
    let at = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| DateTime::parse_from_rfc3339(&text).ok())
        .map(|t| t.to_utc())
        .ok_or_else(|| ApiError::field("cursor", "is not a cursor from this endpoint"))?;
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
        next_cursor: page.next.map(encode_cursor),
    }))
}

/// A refused stream's client may try again this soon: a place frees as
/// soon as any stream ends.
const STREAM_RETRY_AFTER_SECS: u64 = 5;

/// Live prices (Server-Sent Events).
///
/// First an event with the current prices, then one `rates` event (a JSON
/// array of rates) per refresh. Every API process relays every refresh.
/// Each client IP may hold a few streams at once (429 beyond), each process
/// a bounded number (503 beyond); both answers carry `Retry-After`.
#[utoipa::path(
    get,
    path = "/rates/stream",
    tag = "rates",
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
        (status = 429, description = "Too many open streams from this address (`rate_limited`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many open streams on this server (`unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Response> {
    let http = &state.config.http;
    let slot = state
        .rates
        .open_stream(ip, http.stream_max_per_ip, http.stream_max_total)
        .map_err(stream_refused)?;
    let current =
        serde_json::to_string(&state.rates.snapshot().await).unwrap_or_else(|_| "[]".into());
    let first =
        futures::stream::once(async move { Ok(Event::default().event("rates").data(current)) });
    let updates = tokio_stream_from(state.rates.subscribe())
        .map(|payload| Ok(Event::default().event("rates").data(payload.as_ref())));
    let events = first
        .chain(updates)
        .take_until(state.rates.streams_closed())
        // The stream holds its place until it is dropped: ended at
        // shutdown, or its client gone.
        .map(move |event| {
            let _held = &slot;
            event
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(keep_alive_every(http.idle_timeout))))
}

/// Comments on a quiet stream often enough that the server's idle timeout
/// never closes a stream whose client is reading.
fn keep_alive_every(idle_timeout: Duration) -> Duration {
    (idle_timeout / 2).min(Duration::from_secs(15))
}

fn stream_refused(refused: StreamRefused) -> Response {
    let (status, code, detail) = match refused {
        StreamRefused::PerIp => (
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "too many open price streams from your address; close one first",
        ),
        StreamRefused::Total => (
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "this server holds as many price streams as it can; try again shortly",
        ),
    };
    let mut response = problem_response(status, code, detail.to_owned(), None);
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(STREAM_RETRY_AFTER_SECS),
    );
    response
}

/// A broadcast receiver as a stream; a client too slow to keep up skips
/// what it missed rather than holding the others back.
fn tokio_stream_from(
    receiver: tokio::sync::broadcast::Receiver<std::sync::Arc<str>>,
) -> impl Stream<Item = std::sync::Arc<str>> {
    futures::stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(item) => return Some((item, receiver)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
