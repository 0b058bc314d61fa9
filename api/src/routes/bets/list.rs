//! `GET /api/v1/bets`.

use super::*;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BetParams {
    /// Only bets in this status.
    #[param(value_type = Option<BetStatus>, inline)]
    status: Option<String>,
    /// Page size, default 20.
    #[param(minimum = 1, maximum = 100, nullable = false)]
    limit: Option<i64>,
    #[param(value_type = Option<spec::UuidCursor>, inline)]
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BetPage {
    pub items: Vec<BetResponse>,
    pub next_cursor: Option<String>,
}

/// Your bets, newest first.
#[utoipa::path(
    get,
    path = "/bets",
    tag = "bets",
    security(("bearer" = []), ("cookie" = [])),
    params(BetParams),
    responses(
        spec::Unavailable, spec::SignedIn,
        (status = 200, description = "One page", body = BetPage),
        (status = 400, description = "Bad status, limit or cursor (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_bets(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Query(params): Query<BetParams>,
) -> Result<axum::Json<BetPage>, ApiError> {
    let status = match params.status.as_deref() {
        None => None,
        Some(s) if let Some(status) = bets::BetStatus::parse(s) => Some(status),
        Some(_) => return Err(ApiError::field("status", "must be open, settled or void")),
    };
    let limit = pagination::limit(params.limit)?;
    let before = pagination::uuid_cursor(params.cursor.as_deref())?;
    let mut conn = state.conn().await?;
    let rows = bets::list(&mut conn, user.id, status, before, limit + 1).await?;
    let (rows, next_cursor) = pagination::uuid_page(rows, limit, |row| row.id);
    Ok(axum::Json(BetPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}
