//! `GET /api/v1/alerts/{id}`.

use super::*;

/// One of your alerts (cached like the list).
#[utoipa::path(
    get,
    path = "/alerts/{id}",
    tag = "alerts",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Alert id")),
    responses(
        spec::Unavailable, spec::SignedIn,
        (status = 200, description = "The alert (a deleted one too, with status `deleted`)", body = AlertResponse, headers(("X-Cache" = String, description = "`hit` or `miss`"))),
        (status = 404, description = "No such alert of yours (`not_found`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_alert(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let ttl = state.config.alerts.cache_ttl;
    let (body, lookup) = user_cache::json(
        &state,
        &generation_key(&state, user.id),
        &format!("one:{id}"),
        ttl,
        async || {
            let mut conn = state.conn().await?;
            let alert = alerts::get(&mut conn, user.id, id)
                .await?
                .ok_or_else(not_found)?;
            to_json(&AlertResponse::from(alert))
        },
    )
    .await?;
    Ok(json_response(body, lookup))
}
