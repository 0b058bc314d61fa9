//! `GET /api/v1/bets/{id}`.

use super::*;

/// One of your bets.
#[utoipa::path(
    get,
    path = "/bets/{id}",
    tag = "bets",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Bet id")),
    responses(
        spec::Unavailable, spec::SignedIn,
        (status = 200, description = "The bet", body = BetResponse),
        (status = 404, description = "No such bet of yours (`not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_bet(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<axum::Json<BetResponse>, ApiError> {
    let not_found = || ApiError::NotFound("no such bet".into());
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let mut conn = state.conn().await?;
    let bet = bets::get(&mut conn, user.id, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(axum::Json(bet.into()))
}
