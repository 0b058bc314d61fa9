//! `GET /api/v1/orders`.

use super::*;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderParams {
    /// Only orders in this status.
    #[param(value_type = Option<OrderStatus>, inline)]
    status: Option<String>,
    /// Page size, default 20.
    #[param(minimum = 1, maximum = 100, nullable = false)]
    limit: Option<i64>,
    #[param(value_type = Option<spec::UuidCursor>, inline)]
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    pub items: Vec<OrderResponse>,
    pub next_cursor: Option<String>,
}

/// Your orders, newest first.
#[utoipa::path(
    get,
    path = "/orders",
    tag = "orders",
    security(("bearer" = []), ("cookie" = [])),
    params(OrderParams),
    responses(
        spec::Unavailable, spec::SignedIn,
        (status = 200, description = "One page", body = OrderPage),
        (status = 400, description = "Bad status, limit or cursor (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_orders(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Query(params): Query<OrderParams>,
) -> Result<axum::Json<OrderPage>, ApiError> {
    let status = match params.status.as_deref() {
        None => None,
        Some(s) if let Some(status) = shared::trading::OrderStatus::parse(s) => Some(status),
        Some(_) => return Err(ApiError::field("status", "must be pending or cleared")),
    };
    let limit = pagination::limit(params.limit)?;
    let before = pagination::uuid_cursor(params.cursor.as_deref())?;
    let mut conn = state.conn().await?;
    let rows = trading::list(&mut conn, user.id, status, before, limit + 1).await?;
    let (rows, next_cursor) = pagination::uuid_page(rows, limit, |row| row.id);
    Ok(axum::Json(OrderPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}
