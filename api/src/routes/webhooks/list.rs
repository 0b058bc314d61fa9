//! `GET /api/v1/webhooks`.

use super::*;

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// Oldest first; at most 10.
    pub items: Vec<WebhookResponse>,
}

/// Your webhook endpoints.
///
/// Without their secrets, which are shown only at registration.
#[utoipa::path(
    get,
    path = "/webhooks",
    tag = "webhooks",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        spec::Unavailable, spec::SignedIn,
        (status = 200, description = "Your endpoints", body = WebhookList),
    )
)]
pub async fn list_webhooks(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<axum::Json<WebhookList>, ApiError> {
    let mut conn = state.conn().await?;
    let items = endpoints::list(&mut conn, user.id)
        .await?
        .into_iter()
        .map(WebhookResponse::from)
        .collect();
    Ok(axum::Json(WebhookList { items }))
}
