//! `POST /api/v1/orders/buy`, `POST /api/v1/orders/sell`.

use super::*;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BuyRequest {
    /// A fiat currency is 422 `currency_not_supported`.
    #[schema(schema_with = spec::crypto, required = true)]
    currency: Option<String>,
    /// The crypto amount.
    #[schema(schema_with = spec::crypto_amount, required = true)]
    amount: Option<AmountInput>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SellRequest {
    /// A fiat currency is 422 `currency_not_supported`.
    #[schema(schema_with = spec::crypto, required = true)]
    currency: Option<String>,
    /// The crypto amount.
    #[schema(schema_with = spec::crypto_amount, required = true)]
    amount: Option<AmountInput>,
    /// Pay the USD to this user's USD wallet instead of yours (404 when
    /// there is no such user or wallet).
    #[schema(pattern = "^[A-Za-z0-9_]{3,32}$", example = "grace_hopper")]
    to_username: Option<String>,
}

/// The validated parts of an order request.
struct Parsed {
    currency: String,
    amount: rust_decimal::Decimal,
}

/// Checks the currency (a known crypto currency) and the amount (within
/// its places).
async fn parse(
    state: &AppState,
    currency: Option<&str>,
    amount: Option<&AmountInput>,
) -> Result<Parsed, ApiError> {
    let mut errors = std::collections::BTreeMap::new();
    let code = currency.map(|c| c.trim().to_ascii_uppercase());
    let known = match &code {
        None => {
            errors.insert("currency".to_owned(), "is required".to_owned());
            None
        }
        Some(code) => {
            let mut conn = state.conn().await?;
            let found = currencies::find(&mut conn, code).await?;
            if found.is_none() {
                errors.insert("currency".to_owned(), format!("unknown currency {code:?}"));
            }
            found
        }
    };
    let parsed = match (amount, &known) {
        (None, _) => {
            errors.insert("amount".to_owned(), "is required".to_owned());
            None
        }
        (Some(raw), Some(currency)) => {
            match shared::money::parse_json_amount(raw, currency.decimals) {
                Ok(amount) => Some(amount),
                Err(message) => {
                    errors.insert("amount".to_owned(), message);
                    None
                }
            }
        }
        (Some(_), None) => None,
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(
            "the request has invalid fields",
            errors,
        ));
    }
    let (Some(currency), Some(amount)) = (known, parsed) else {
        return Err(ApiError::internal("order validation lost a field"));
    };
    if currency.kind != Kind::Crypto {
        return Err(ApiError::Refused {
            code: ErrorCode::CurrencyNotSupported,
            detail: format!(
                "{} is a fiat currency: orders buy and sell crypto for USD (use a transfer to convert fiat)",
                currency.code
            ),
        });
    }
    Ok(Parsed {
        currency: currency.code,
        amount,
    })
}

async fn place(
    state: AppState,
    user_id: Uuid,
    key: Option<String>,
    path: &str,
    fingerprint: Value,
    order: PlaceOrder,
) -> Result<Response, ApiError> {
    let hash = idempotency::fingerprint("POST", path, &fingerprint);
    let rates = state.config.rates.clone();
    let operation: Operation = Box::new(move |conn| {
        Box::pin(async move {
            let placed = trading::place(conn, &rates, order, Utc::now()).await?;
            Ok((
                StatusCode::CREATED,
                serde_json::to_value(OrderResponse::from(placed)).unwrap_or_default(),
            ))
        })
    });
    idempotency::run(&state, user_id, key, hash, operation).await
}

/// Buy crypto with USD.
///
/// Paid from your USD wallet (which must exist) at the fresh price, rounded
/// up to the cent; the crypto wallet is opened if you have none. The order
/// is `pending` until the house has hedged it at the exchange. Refusals:
/// 422 `insufficient_funds`, `wallet_blocked`, `rate_unavailable`,
/// `currency_not_supported` (a fiat currency). Accepts `Idempotency-Key`.
#[utoipa::path(
    post,
    path = "/orders/buy",
    tag = "orders",
    security(("bearer" = []), ("cookie" = [])),
    params(spec::IdempotencyHeader),
    request_body = BuyRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::SignedInWrite,
        (status = 201, description = "Bought", body = OrderResponse),
        (status = 403, description = "Email not verified (`email_not_verified`), or signed in by cookie without the CSRF proof (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "You have no USD wallet (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Idempotency-Key reused with another request, or its first request still running (`conflict`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`insufficient_funds`, `wallet_blocked`, `rate_unavailable`, `currency_not_supported` or `limit_exceeded` (a balance would pass its cap)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn buy(
    State(state): State<AppState>,
    VerifiedUser(user): VerifiedUser,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<BuyRequest>,
) -> Result<Response, ApiError> {
    let parsed = parse(&state, body.currency.as_deref(), body.amount.as_ref()).await?;
    let fingerprint = serde_json::json!({ "currency": parsed.currency, "amount": parsed.amount });
    let order = PlaceOrder {
        user_id: user.id,
        side: Side::Buy,
        currency: parsed.currency,
        amount: parsed.amount,
        to_username: None,
    };
    place(state, user.id, key, "/orders/buy", fingerprint, order).await
}

/// Sell crypto for USD.
///
/// At the fresh price, rounded down to the cent; the USD goes to your USD
/// wallet (opened if you have none) or, with `to_username`, to that user's
/// USD wallet (404 if there is no such user or wallet). Refusals: 422
/// `insufficient_funds`, `wallet_blocked`, `rate_unavailable`,
/// `currency_not_supported`. Accepts `Idempotency-Key`.
#[utoipa::path(
    post,
    path = "/orders/sell",
    tag = "orders",
    security(("bearer" = []), ("cookie" = [])),
    params(spec::IdempotencyHeader),
    request_body = SellRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::SignedInWrite,
        (status = 201, description = "Sold", body = OrderResponse),
        (status = 403, description = "Email not verified (`email_not_verified`), or signed in by cookie without the CSRF proof (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "You have no wallet in that currency, or no such recipient with a USD wallet (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Idempotency-Key reused with another request, or its first request still running (`conflict`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`insufficient_funds`, `wallet_blocked`, `rate_unavailable`, `currency_not_supported` or `limit_exceeded` (a balance would pass its cap)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sell(
    State(state): State<AppState>,
    VerifiedUser(user): VerifiedUser,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<SellRequest>,
) -> Result<Response, ApiError> {
    let to_username = match body.to_username.as_deref().map(str::trim) {
        Some("") => return Err(ApiError::field("to_username", "must not be empty")),
        Some(name) if crate::routes::auth::names_no_account(name) => {
            return Err(OrderError::RecipientNotFound(name.to_owned()).into());
        }
        other => other.map(str::to_owned),
    };
    let parsed = parse(&state, body.currency.as_deref(), body.amount.as_ref()).await?;
    let fingerprint = serde_json::json!({
        "currency": parsed.currency,
        "amount": parsed.amount,
        "to_username": to_username.as_deref().map(str::to_lowercase),
    });
    let order = PlaceOrder {
        user_id: user.id,
        side: Side::Sell,
        currency: parsed.currency,
        amount: parsed.amount,
        to_username,
    };
    place(state, user.id, key, "/orders/sell", fingerprint, order).await
}
