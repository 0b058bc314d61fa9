//! `GET /api/v1/orders/{id}`.

use super::*;

/// One of your orders.
#[utoipa::path(
    get,
    path = "/orders/{id}",
    tag = "orders",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        spec::Unavailable, spec::SignedIn,
        (status = 200, description = "The order", body = OrderResponse),
        (status = 404, description = "No such order of yours (`not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_order(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<axum::Json<OrderResponse>, ApiError> {
    let not_found = || ApiError::NotFound("no such order".into());
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let mut conn = state.conn().await?;
    let order = trading::get(&mut conn, user.id, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(axum::Json(order.into()))
}
