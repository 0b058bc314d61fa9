//! `POST /api/v1/bets`.

use super::*;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BetRequest {
    /// A fiat currency is 422 `currency_not_supported`.
    #[schema(schema_with = spec::crypto, required = true)]
    symbol: Option<String>,
    #[schema(value_type = BetDirection, required = true)]
    direction: Option<String>,
    /// USD from your USD wallet; outside the configured stake limits it is
    /// 422 `limit_exceeded`.
    #[schema(schema_with = spec::fiat_amount, required = true)]
    stake: Option<AmountInput>,
    #[schema(schema_with = spec::leverage, required = true)]
    leverage: Option<Value>,
    /// Seconds until settlement.
    #[schema(schema_with = spec::duration_seconds, required = true)]
    duration_seconds: Option<Value>,
    /// Refused: the server sets the price.
    #[schema(ignore)]
    start_price: Option<Value>,
    /// Refused: the server sets the price.
    #[schema(ignore)]
    price: Option<Value>,
    /// Refused: the server sets the price.
    #[schema(ignore)]
    end_price: Option<Value>,
}

/// Bet on a price move.
///
/// The server sets the start price (the price in force now, which must be
/// fresh) and `settles_at` = now + `duration_seconds`; a client-supplied
/// price is a 400. The stake moves from your USD wallet to escrow at once;
/// at `settles_at` the bet is settled at the price in force then: P&L =
/// stake × leverage × (end − start) / start (sign by direction, at worst
/// −stake), paid out rounded down to the cent. No fresh price at
/// `settles_at`: `void`, stake returned. Before then, the first observation
/// that reaches the bet's `liquidation_price` (start × (1 − 1/leverage) for
/// `up`, × (1 + 1/leverage) for `down`) closes it at a total loss
/// (`liquidated`). You are emailed the outcome. Refusals: 422
/// `limit_exceeded` (stake outside the limits, too many open bets or too
/// much open stake of yours, or the house's open notional on that symbol
/// and direction full), `insufficient_funds`, `wallet_blocked`,
/// `rate_unavailable`, `currency_not_supported`. Accepts `Idempotency-Key`.
#[utoipa::path(
    post,
    path = "/bets",
    tag = "bets",
    security(("bearer" = []), ("cookie" = [])),
    params(spec::IdempotencyHeader),
    request_body = BetRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::SignedInWrite,
        (status = 201, description = "The open bet", body = BetResponse),
        (status = 400, description = "Bad or missing field, or a client-supplied price (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Email not verified (`email_not_verified`), or signed in by cookie without the CSRF proof (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "You have no USD wallet (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Idempotency-Key reused with another request, or its first request still running (`conflict`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`limit_exceeded`, `insufficient_funds`, `wallet_blocked`, `rate_unavailable` or `currency_not_supported`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn place_bet(
    State(state): State<AppState>,
    VerifiedUser(user): VerifiedUser,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<BetRequest>,
) -> Result<Response, ApiError> {
    let mut errors = BTreeMap::new();
    for (field, given) in [
        ("start_price", &body.start_price),
        ("price", &body.price),
        ("end_price", &body.end_price),
    ] {
        if given.is_some() {
            errors.insert(
                field.to_owned(),
                "is set by the server, not the client".to_owned(),
            );
        }
    }
    let symbol = body
        .symbol
        .as_deref()
        .map(|s| s.trim().to_ascii_uppercase());
    let currency = match &symbol {
        None => {
            errors.insert("symbol".into(), "is required".into());
            None
        }
        Some(code) => {
            let mut conn = state.conn().await?;
            let found = currencies::find(&mut conn, code).await?;
            if found.is_none() {
                errors.insert("symbol".into(), format!("unknown symbol {code:?}"));
            }
            found
        }
    };
    let direction = match body.direction.as_deref().map(str::trim) {
        None => {
            errors.insert("direction".into(), "is required".into());
            None
        }
        Some(raw) => Direction::parse(raw).or_else(|| {
            errors.insert("direction".into(), "must be up or down".into());
            None
        }),
    };
    let stake = match &body.stake {
        None => {
            errors.insert("stake".into(), "is required".into());
            None
        }
        Some(raw) => shared::money::parse_json_amount(raw, 2)
            .map_err(|m| errors.insert("stake".into(), m))
            .ok(),
    };
    let leverage = whole(body.leverage.as_ref(), 1..=100)
        .map_err(|m| errors.insert("leverage".into(), m))
        .ok();
    let duration = whole(body.duration_seconds.as_ref(), 10..=86_400)
        .map_err(|m| errors.insert("duration_seconds".into(), m))
        .ok();
    if !errors.is_empty() {
        return Err(ApiError::validation(
            "the request has invalid fields",
            errors,
        ));
    }
    let (Some(currency), Some(direction), Some(stake), Some(leverage), Some(duration)) =
        (currency, direction, stake, leverage, duration)
    else {
        return Err(ApiError::internal("bet validation lost a field"));
    };
    if currency.kind != Kind::Crypto {
        return Err(ApiError::Refused {
            code: ErrorCode::CurrencyNotSupported,
            detail: format!("bets are on crypto prices; {} is fiat", currency.code),
        });
    }
    let hash = idempotency::fingerprint(
        "POST",
        "/bets",
        &serde_json::json!({
            "symbol": currency.code,
            "direction": direction.as_str(),
            "stake": stake,
            "leverage": leverage,
            "duration_seconds": duration,
        }),
    );
    let bet = PlaceBet {
        user_id: user.id,
        symbol: currency.code,
        direction,
        stake,
        leverage,
        duration_seconds: duration,
    };
    let rates = state.config.rates.clone();
    let limits = state.config.bets.clone();
    let operation: Operation = Box::new(move |conn| {
        Box::pin(async move {
            let placed = bets::place(conn, &rates, &limits, bet).await?;
            Ok((
                StatusCode::CREATED,
                serde_json::to_value(BetResponse::from(placed)).unwrap_or_default(),
            ))
        })
    });
    idempotency::run(&state, user.id, key, hash, operation).await
}
