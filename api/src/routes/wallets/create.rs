//! `POST /api/v1/wallets`.

use super::*;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWalletRequest {
    #[schema(schema_with = spec::currency)]
    currency: String,
    /// 1 to 100 characters (surrounding spaces are dropped), no control
    /// characters. Defaults to "<Currency name> wallet".
    #[schema(
        max_length = 100,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*[^\\s\\x00-\\x1F\\x7F-\\x9F][^\\x00-\\x1F\\x7F-\\x9F]*$",
        example = "Travel money"
    )]
    name: Option<String>,
}

/// Open a wallet.
///
/// One wallet per currency: a second one is 409.
#[utoipa::path(
    post,
    path = "/wallets",
    tag = "wallets",
    security(("bearer" = []), ("cookie" = [])),
    request_body = CreateWalletRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::SignedInWrite,
        (status = 201, description = "The new wallet", body = WalletResponse),
        (status = 409, description = "You already have a wallet in this currency (`conflict`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_wallet(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<CreateWalletRequest>,
) -> Result<(StatusCode, axum::Json<WalletResponse>), ApiError> {
    let name = body
        .name
        .as_deref()
        .map(wallets::validate_name)
        .transpose()
        .map_err(|message| ApiError::field("name", message))?;
    let mut conn = state.conn().await?;
    let wallet = wallets::create(
        &mut conn,
        user.id,
        &body.currency.trim().to_ascii_uppercase(),
        name,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(wallet.into())))
}
