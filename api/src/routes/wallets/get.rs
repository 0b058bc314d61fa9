//! `GET /api/v1/wallets/{id}`.

use super::*;

/// One of your wallets.
#[utoipa::path(
    get,
    path = "/wallets/{id}",
    tag = "wallets",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Wallet id")),
    responses(
        spec::Unavailable, spec::SignedIn,
        (status = 200, description = "The wallet", body = WalletResponse),
        (status = 404, description = "No such wallet of yours (`not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_wallet(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<axum::Json<WalletResponse>, ApiError> {
    let id = wallet_id(&id)?;
    let mut conn = state.conn().await?;
    let wallet = wallets::get(&mut conn, user.id, id)
        .await?
        .ok_or(WalletError::NotFound)?;
    Ok(axum::Json(wallet.into()))
}
