//! `DELETE /api/v1/alerts/{id}`.

use super::*;

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
