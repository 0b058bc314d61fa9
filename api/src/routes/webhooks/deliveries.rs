//! `GET /api/v1/webhooks/{id}/deliveries` and
//! `POST /api/v1/webhooks/{id}/deliveries/{delivery_id}/resend`.

use axum::extract::Query;
use shared::webhooks::deliveries::{self, AttemptView, DeliveryView, Resend};
use utoipa::IntoParams;

use super::*;
use crate::routes::pagination;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// Page size, default 20.
    #[param(minimum = 1, maximum = 100, nullable = false)]
    limit: Option<i64>,
    #[param(value_type = Option<spec::UuidCursor>, inline)]
    cursor: Option<String>,
}

/// One attempt at a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptResponse {
    pub attempted_at: DateTime<Utc>,
    /// The endpoint's answer; null when there was none.
    #[schema(example = 200)]
    pub status_code: Option<i32>,
    /// Why the attempt failed (a non-2xx answer, a timeout, a refused
    /// address); null for a success.
    pub error: Option<String>,
    pub duration_ms: i32,
}

/// One event's delivery to this endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryResponse {
    pub id: Uuid,
    /// The event's id: the `id` of the body and `Bourse-Event-Id`, the same
    /// on every attempt.
    pub event_id: Uuid,
    #[schema(example = "bet.settled")]
    pub event_type: String,
    /// `pending` (an attempt is queued), `delivered` (a 2xx answer) or
    /// `failed` (given up).
    #[schema(example = "delivered")]
    pub status: String,
    pub created_at: DateTime<Utc>,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// Every attempt, oldest first.
    pub attempts: Vec<AttemptResponse>,
}

impl From<DeliveryView> for DeliveryResponse {
    fn from(d: DeliveryView) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            status: d.status,
            created_at: d.created_at,
            next_attempt_at: d.next_attempt_at,
            delivered_at: d.delivered_at,
            attempts: d.attempts.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<AttemptView> for AttemptResponse {
    fn from(a: AttemptView) -> Self {
        Self {
            attempted_at: a.attempted_at,
            status_code: a.status_code,
            error: a.error,
            duration_ms: a.duration_ms,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryResponse>,
    pub next_cursor: Option<String>,
}

/// The deliveries to one of your endpoints, newest first.
///
/// Each with every attempt: its time, the answer's status code or the
/// error, and how long it took.
#[utoipa::path(
    get,
    path = "/webhooks/{id}/deliveries",
    tag = "webhooks",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id"), DeliveryParams),
    responses(
        spec::Unavailable, spec::SignedIn,
        (status = 200, description = "One page", body = DeliveryPage),
        (status = 400, description = "Bad limit or cursor (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint of yours (`not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    Query(params): Query<DeliveryParams>,
) -> Result<axum::Json<DeliveryPage>, ApiError> {
    let id = parse_id(&id)?;
    let limit = pagination::limit(params.limit)?;
    let before = pagination::uuid_cursor(params.cursor.as_deref())?;
    let mut conn = state.conn().await?;
    if !deliveries::owns(&mut conn, user.id, id).await? {
        return Err(not_found());
    }
    let rows = deliveries::list(&mut conn, id, before, limit + 1).await?;
    let (rows, next_cursor) = pagination::uuid_page(rows, limit, |row| row.id);
    Ok(axum::Json(DeliveryPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResendResponse {
    pub id: Uuid,
    /// `pending`: an attempt is queued now.
    #[schema(example = "pending")]
    pub status: &'static str,
}

/// Send a delivery again.
///
/// Whatever its status: the same event, with the same id, so a receiver
/// that has it already can tell. Answers 202 with the delivery pending.
#[utoipa::path(
    post,
    path = "/webhooks/{id}/deliveries/{delivery_id}/resend",
    tag = "webhooks",
    security(("bearer" = []), ("cookie" = [])),
    params(
        ("id" = Uuid, Path, description = "Endpoint id"),
        ("delivery_id" = Uuid, Path, description = "Delivery id"),
    ),
    responses(
        spec::Unavailable, spec::SignedInWrite,
        (status = 202, description = "Queued", body = ResendResponse),
        (status = 404, description = "No such endpoint of yours, or no such delivery to it (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The endpoint is disabled (`conflict`): register it again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn resend_delivery(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<(StatusCode, axum::Json<ResendResponse>), ApiError> {
    let id = parse_id(&id)?;
    let delivery = Uuid::parse_str(&delivery).map_err(|_| no_delivery())?;
    let mut conn = state.conn().await?;
    if !deliveries::owns(&mut conn, user.id, id).await? {
        return Err(not_found());
    }
    // The middleware wakes the relays once this answers.
    match deliveries::resend(&mut conn, id, delivery).await? {
        Resend::Queued => {}
        Resend::NotFound => return Err(no_delivery()),
        Resend::EndpointDisabled => {
            return Err(ApiError::Conflict(
                "the endpoint is disabled; register it again to receive deliveries".into(),
                BTreeMap::new(),
            ));
        }
    }
    tracing::info!(user = %user.id, webhook = %id, delivery = %delivery, "webhook delivery re-sent");
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(ResendResponse {
            id: delivery,
            status: "pending",
        }),
    ))
}

fn no_delivery() -> ApiError {
    ApiError::NotFound("no such delivery to this endpoint".into())
}
