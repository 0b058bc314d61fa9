//! `PATCH /api/v1/wallets/{id}`.

use super::*;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameWalletRequest {
    /// 1 to 100 characters (surrounding spaces are dropped), no control
    /// characters.
    #[schema(
        max_length = 100,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x1F\\x7F-\\x9F]*$",
        example = "Travel money"
    )]
    name: String,
}

/// Rename one of your wallets.
#[utoipa::path(
    patch,
    path = "/wallets/{id}",
    tag = "wallets",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Wallet id")),
    request_body = RenameWalletRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::SignedInWrite,
        (status = 200, description = "The renamed wallet", body = WalletResponse),
        (status = 404, description = "No such wallet of yours (`not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rename_wallet(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RenameWalletRequest>,
) -> Result<axum::Json<WalletResponse>, ApiError> {
    let id = wallet_id(&id)?;
    let name =
        wallets::validate_name(&body.name).map_err(|message| ApiError::field("name", message))?;
    let mut conn = state.conn().await?;
    Ok(axum::Json(
        wallets::rename(&mut conn, user.id, id, &name).await?.into(),
    ))
}
