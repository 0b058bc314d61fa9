//! `GET /api/v1/alerts`.

use super::*;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertParams {
    /// Only alerts in this status.
    #[param(value_type = Option<AlertStatus>, inline)]
    status: Option<String>,
    /// Page size, default 20.
    #[param(minimum = 1, maximum = 100, nullable = false)]
    limit: Option<i64>,
    #[param(value_type = Option<spec::UuidCursor>, inline)]
    cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertPage {
    pub items: Vec<AlertResponse>,
    pub next_cursor: Option<String>,
}

/// Your alerts, newest first.
///
/// Answers are cached per user and invalidated by every change (create,
/// delete, trigger); `X-Cache: hit|miss` says which this was.
#[utoipa::path(
    get,
    path = "/alerts",
    tag = "alerts",
    security(("bearer" = []), ("cookie" = [])),
    params(AlertParams),
    responses(
        spec::Unavailable, spec::SignedIn,
        (status = 200, description = "One page", body = AlertPage, headers(("X-Cache" = String, description = "`hit` or `miss`"))),
        (status = 400, description = "Bad status, limit or cursor (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_alerts(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Query(params): Query<AlertParams>,
) -> Result<Response, ApiError> {
    let status = match params.status.as_deref() {
        None => None,
        Some(s) if let Some(status) = alerts::AlertStatus::parse(s) => Some(status),
        Some(_) => {
            return Err(ApiError::field(
                "status",
                "must be created, triggered or deleted",
            ));
        }
    };
    let limit = pagination::limit(params.limit)?;
    let before = pagination::uuid_cursor(params.cursor.as_deref())?;
    let query = format!(
        "list:{}:{limit}:{}",
        status.map_or("", |s| s.as_str()),
        before.map(|id| id.to_string()).unwrap_or_default()
    );
    let ttl = state.config.alerts.cache_ttl;
    let (body, lookup) = user_cache::json(
        &state,
        &generation_key(&state, user.id),
        &query,
        ttl,
        async || {
            let mut conn = state.conn().await?;
            let rows = alerts::list(&mut conn, user.id, status, before, limit + 1).await?;
            let (rows, next_cursor) = pagination::uuid_page(rows, limit, |row| row.id);
            to_json(&AlertPage {
                items: rows.into_iter().map(Into::into).collect(),
                next_cursor,
            })
        },
    )
    .await?;
    Ok(json_response(body, lookup))
}
