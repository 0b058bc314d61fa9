//! `POST /api/v1/wallets/{id}/transfer`.

use super::*;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// The payee's ten-digit wallet number (anyone's).
    #[schema(value_type = String, required = true, pattern = "^[0-9]{10}$", example = "4821930571")]
    to_wallet_number: Option<String>,
    /// In your wallet's currency: two places for fiat, eight for crypto.
    #[schema(schema_with = spec::any_amount, required = true)]
    amount: Option<AmountInput>,
}

/// Pay another wallet.
///
/// Across currencies the payee receives the amount converted at fresh
/// prices, rounded down to its currency's places (the rate is stored).
/// Refusals: 422 `insufficient_funds`, `wallet_blocked`, `same_wallet`,
/// `rate_unavailable`. Accepts `Idempotency-Key`.
#[utoipa::path(
    post,
    path = "/wallets/{id}/transfer",
    tag = "wallets",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Your paying wallet's id"), spec::IdempotencyHeader),
    request_body = TransferRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::SignedInWrite,
        (status = 201, description = "Transferred", body = MovementResponse),
        (status = 403, description = "Email not verified (`email_not_verified`), or signed in by cookie without the CSRF proof (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such wallet of yours, or no wallet with that number (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Idempotency-Key reused with another request, or its first request still running (`conflict`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`insufficient_funds`, `wallet_blocked`, `same_wallet`, `rate_unavailable` or `limit_exceeded` (the payee's balance would pass its cap)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn transfer(
    State(state): State<AppState>,
    caller: Authenticated,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TransferRequest>,
) -> Result<Response, ApiError> {
    let wallet = wallet_id(&id)?;
    let number = body.to_wallet_number.as_deref().map(WalletNumber::parse);
    let mut errors = std::collections::BTreeMap::new();
    match &number {
        None => {
            errors.insert("to_wallet_number".to_owned(), "is required".to_owned());
        }
        Some(Err(message)) => {
            errors.insert("to_wallet_number".to_owned(), (*message).to_owned());
        }
        Some(Ok(_)) => {}
    }
    if body.amount.is_none() {
        errors.insert("amount".to_owned(), "is required".to_owned());
    }
    if !errors.is_empty() {
        // A caller who may not move money hears that first.
        wallets::may_move_money(&mut *state.conn().await?, caller.user_id).await??;
        return Err(ApiError::validation(
            "the request has invalid fields",
            errors,
        ));
    }
    let Some(Ok(number)) = number else {
        return Err(ApiError::field("to_wallet_number", "is required"));
    };
    let hash = request_hash(
        &format!("/wallets/{wallet}/transfer"),
        &Fingerprint {
            amount: &body.amount,
            to_wallet_number: Some(number.as_str()),
        },
    );
    let user_id = caller.user_id;
    let rates = state.config.rates.clone();
    let operation: Operation = Box::new(move |conn| {
        Box::pin(async move {
            let (payer, payee) = wallets::payer_and_payee(conn, user_id, wallet, &number).await?;
            let payer = payer?;
            let amount = amount_in(&payer, &body.amount)?;
            let payee =
                payee.ok_or_else(|| WalletError::RecipientNotFound(number.as_str().to_owned()))?;
            let receipt =
                wallets::transfer(conn, &rates, user_id, payer, payee, amount, Utc::now()).await?;
            Ok(movement_answer(TxKind::Transfer, amount, receipt))
        })
    });
    idempotency::run(&state, caller.user_id, key, hash, operation).await
}
