//! `POST /api/v1/wallets/{id}/withdraw`.

use super::*;

/// Withdraw from a fiat wallet.
///
/// Stands for a payout to a card. Refusals: 422 `insufficient_funds`,
/// `wallet_blocked`, `currency_not_supported`. Accepts `Idempotency-Key`.
#[utoipa::path(
    post,
    path = "/wallets/{id}/withdraw",
    tag = "wallets",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Wallet id"), spec::IdempotencyHeader),
    request_body = AmountRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::SignedInWrite,
        (status = 201, description = "Withdrawn", body = MovementResponse),
        (status = 403, description = "Email not verified (`email_not_verified`), or signed in by cookie without the CSRF proof (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such wallet of yours (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Idempotency-Key reused with another request, or its first request still running (`conflict`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`insufficient_funds`, `wallet_blocked` or `currency_not_supported`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn withdraw(
    State(state): State<AppState>,
    caller: Authenticated,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AmountRequest>,
) -> Result<Response, ApiError> {
    let wallet = wallet_id(&id)?;
    let hash = request_hash(
        &format!("/wallets/{wallet}/withdraw"),
        &Fingerprint {
            amount: &body.amount,
            to_wallet_number: None,
        },
    );
    let user_id = caller.user_id;
    let operation: Operation = Box::new(move |conn| {
        Box::pin(async move {
            let (wallet, amount) = wallet_and_amount(conn, user_id, wallet, &body.amount).await?;
            let receipt = wallets::withdraw(conn, user_id, wallet, amount).await?;
            Ok(movement_answer(TxKind::Withdrawal, amount, receipt))
        })
    });
    idempotency::run(&state, caller.user_id, key, hash, operation).await
}
