//! `GET /api/v1/wallets`.

use super::*;

#[derive(Debug, Serialize, ToSchema)]
pub struct WalletList {
    pub items: Vec<WalletResponse>,
    pub next_cursor: Option<String>,
}

/// Your wallets.
#[utoipa::path(
    get,
    path = "/wallets",
    tag = "wallets",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        spec::Unavailable, spec::SignedIn,
        (status = 200, description = "Every wallet you hold (one page: `next_cursor` is null)", body = WalletList),
    )
)]
pub async fn list_wallets(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<axum::Json<WalletList>, ApiError> {
    let mut conn = state.conn().await?;
    let items = wallets::list(&mut conn, user.id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(axum::Json(WalletList {
        items,
        next_cursor: None,
    }))
}
