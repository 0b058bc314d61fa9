//! `GET /api/v1/rates/convert`.

use super::*;

fn rate_error(error: rates::RateError) -> ApiError {
    match error {
        rates::RateError::UnknownSymbol(symbol) => {
            ApiError::field("symbol", format!("unknown currency {symbol:?}"))
        }
        rates::RateError::Unavailable { symbol, reason } => ApiError::Refused {
            code: ErrorCode::RateUnavailable,
            detail: format!("no fresh price for {symbol} ({reason}); try again shortly"),
        },
        rates::RateError::Database(e) => e.into(),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConvertParams {
    /// Currency converted from.
    #[param(value_type = spec::CurrencyCode, inline, required = true)]
    from: Option<String>,
    /// Currency converted to.
    #[param(value_type = spec::CurrencyCode, inline, required = true)]
    to: Option<String>,
    /// Amount of `from`, a decimal string with at most its places (two for
    /// fiat, eight for crypto).
    #[param(value_type = spec::AmountText, inline, required = true)]
    amount: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversionQuote {
    pub from: String,
    pub to: String,
    #[schema(value_type = String)]
    pub amount: String,
    /// Rounded down to `to`'s decimal places.
    #[schema(value_type = String)]
    pub converted: String,
    /// Units of `to` per unit of `from`.
    #[schema(value_type = String)]
    pub rate: String,
    /// The older of the two prices used.
    pub as_of: DateTime<Utc>,
}

/// Quote a conversion.
///
/// Exactly the quote a transfer would use now: fresh prices only (422
/// `rate_unavailable` otherwise), the result rounded down.
#[utoipa::path(
    get,
    path = "/rates/convert",
    tag = "rates",
    params(ConvertParams),
    responses(
        spec::Unavailable,
        (status = 200, description = "The quote", body = ConversionQuote),
        (status = 400, description = "A missing or unknown currency, or a bad amount (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No fresh price (`rate_unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn convert(
    State(state): State<AppState>,
    Query(params): Query<ConvertParams>,
) -> Result<axum::Json<ConversionQuote>, ApiError> {
    let mut errors = BTreeMap::new();
    for (field, value) in [
        ("from", &params.from),
        ("to", &params.to),
        ("amount", &params.amount),
    ] {
        if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
            errors.insert(field.to_owned(), "is required".to_owned());
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(
            "the query has invalid parameters",
            errors,
        ));
    }
    let from = currency(&state, "from", params.from.as_deref().unwrap_or_default()).await?;
    let to = currency(&state, "to", params.to.as_deref().unwrap_or_default()).await?;
    let amount =
        shared::money::parse_amount(params.amount.as_deref().unwrap_or_default(), from.decimals)
            .map_err(|message| ApiError::field("amount", message))?;
    let mut conn = state.conn().await?;
    let quote = rates::convert(
        &mut conn,
        &state.config.rates,
        &from.code,
        &to.code,
        amount,
        Utc::now(),
    )
    .await
    .map_err(rate_error)?;
    Ok(axum::Json(ConversionQuote {
        from: quote.from,
        to: quote.to,
        amount: quote.amount.to_string(),
        converted: quote.converted.to_string(),
        rate: quote.rate.to_string(),
        as_of: quote.as_of,
    }))
}
