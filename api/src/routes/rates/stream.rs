//! `GET /api/v1/rates/stream`.

use super::*;

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
