//! `POST /api/v1/alerts`.

use super::*;

/// The symbol an alert watches when the request names none.
const DEFAULT_SYMBOL: &str = "BTC";
/// Target prices are stored with at most this many decimal places.
const PRICE_DECIMALS: u32 = 18;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRequest {
    /// Default `BTC`.
    #[schema(schema_with = spec::priced_or_null)]
    symbol: Option<String>,
    /// USD per unit.
    #[schema(schema_with = spec::price, required = true)]
    target_price: Option<AmountInput>,
    /// Default: `above` when the target is above the current price, else
    /// `below`.
    #[schema(value_type = Option<AlertDirectionValue>)]
    direction: Option<String>,
}

/// Set a price alert.
///
/// You are emailed once, when an observed price reaches the target: at or
/// above it for `above`, at or below it for `below`. Without a direction,
/// the current price (which must then be fresh) picks it: `above` when the
/// target is above the current price, else `below`. Refusals: 422
/// `limit_exceeded` (too many active alerts), `rate_unavailable` (no
/// direction given and no fresh price).
#[utoipa::path(
    post,
    path = "/alerts",
    tag = "alerts",
    security(("bearer" = []), ("cookie" = [])),
    request_body = AlertRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::SignedInWrite, spec::RateLimited,
        (status = 201, description = "The active alert", body = AlertResponse),
        (status = 403, description = "Email not verified (`email_not_verified`), or signed in by cookie without the CSRF proof (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`limit_exceeded` (too many active alerts) or `rate_unavailable`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_alert(
    State(state): State<AppState>,
    VerifiedUser(user): VerifiedUser,
    ApiJson(body): ApiJson<AlertRequest>,
) -> Result<Response, ApiError> {
    rate_limit::hit(
        &state,
        "alert_create",
        &user.id.to_string(),
        state.config.auth.limits.alert_create_per_account,
    )
    .await?;
    let mut errors = BTreeMap::new();
    let symbol = body
        .symbol
        .as_deref()
        .map_or(DEFAULT_SYMBOL.to_owned(), |s| s.trim().to_ascii_uppercase());
    let mut conn = state.conn().await?;
    match currencies::find(&mut conn, &symbol).await? {
        None => {
            errors.insert("symbol".into(), format!("unknown symbol {symbol:?}"));
        }
        Some(c) if c.code == "USD" => {
            errors.insert(
                "symbol".into(),
                "prices are in USD: USD itself is always 1".into(),
            );
        }
        Some(_) => {}
    }
    let target = match &body.target_price {
        None => {
            errors.insert("target_price".into(), "is required".into());
            None
        }
        Some(raw) => shared::money::parse_json_amount(raw, PRICE_DECIMALS)
            .map_err(|m| errors.insert("target_price".into(), m))
            .ok(),
    };
    let direction = match body.direction.as_deref().map(str::trim) {
        None => None,
        Some(raw) => match AlertDirection::parse(raw) {
            Some(direction) => Some(direction),
            None => {
                errors.insert("direction".into(), "must be above or below".into());
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(
            "the request has invalid fields",
            errors,
        ));
    }
    let Some(target_price) = target else {
        return Err(ApiError::internal("alert validation lost a field"));
    };
    let alert = alerts::create(
        &mut conn,
        &state.config.rates,
        &state.config.alerts,
        NewAlert {
            user_id: user.id,
            symbol,
            target_price,
            direction,
        },
    )
    .await?;
    drop(conn);
    user_cache::invalidate(&state, &generation_key(&state, user.id)).await;
    Ok((StatusCode::CREATED, axum::Json(AlertResponse::from(alert))).into_response())
}
