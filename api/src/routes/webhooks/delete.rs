//! `DELETE /api/v1/webhooks/{id}`.

use super::*;

/// Delete one of your webhook endpoints.
///
/// Nothing more is delivered to it.
#[utoipa::path(
    delete,
    path = "/webhooks/{id}",
    tag = "webhooks",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses(
        spec::Unavailable, spec::SignedInWrite,
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such endpoint of yours (`not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_webhook(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let mut conn = state.conn().await?;
    if !endpoints::delete(&mut conn, user.id, id).await? {
        return Err(not_found());
    }
    tracing::info!(user = %user.id, webhook = %id, "webhook endpoint deleted");
    Ok(StatusCode::NO_CONTENT)
}
