//! `GET /api/v1/rates`.

use super::*;

/// A latest price and whether it is fresh enough to move money.
#[derive(Debug, Serialize, ToSchema)]
pub struct RateItem {
    #[serde(flatten)]
    pub rate: Rate,
    /// False when older than the staleness limit: trades, transfers and
    /// bets refuse it (`rate_unavailable`).
    pub fresh: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RateList {
    pub items: Vec<RateItem>,
    /// Always null: the list is complete.
    pub next_cursor: Option<String>,
}

/// Latest prices.
///
/// Served from the latest-price cache (mirrored in memory by every API
/// process); never an outside call.
#[utoipa::path(
    get,
    path = "/rates",
    tag = "rates",
    responses(
        spec::Unavailable,
        (status = 200, description = "The latest USD price of every currency", body = RateList),
    )
)]
pub async fn list_rates(State(state): State<AppState>) -> axum::Json<RateList> {
    let now = Utc::now();
    let fiat = chrono::Duration::from_std(state.config.rates.fiat_max_age).unwrap_or_default();
    let crypto = chrono::Duration::from_std(state.config.rates.max_age).unwrap_or_default();
    let mut items = Vec::new();
    for rate in state.rates.snapshot().await {
        let limit = if state.rates.is_crypto(&rate.symbol).await {
            crypto
        } else {
            fiat
        };
        let fresh = now - rate.as_of <= limit;
        items.push(RateItem { rate, fresh });
    }
    axum::Json(RateList {
        items,
        next_cursor: None,
    })
}
