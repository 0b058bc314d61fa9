//! `POST /api/v1/wallets/{id}/deposit`.

use super::*;

/// Deposit into a fiat wallet.
///
/// Stands for a card top-up. Crypto wallets are 422
/// `currency_not_supported`. Accepts `Idempotency-Key`.
#[utoipa::path(
    post,
    path = "/wallets/{id}/deposit",
    tag = "wallets",
    security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Wallet id"), spec::IdempotencyHeader),
    request_body = AmountRequest,
    responses(
        spec::Unavailable, spec::JsonBody, spec::SignedInWrite,
        (status = 201, description = "Deposited", body = MovementResponse),
        (status = 403, description = "Email not verified (`email_not_verified`), or signed in by cookie without the CSRF proof (`forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such wallet of yours (`not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Idempotency-Key reused with another request, or its first request still running (`conflict`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`currency_not_supported` (a crypto wallet) or `limit_exceeded` (the balance would pass its cap)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn deposit(
    State(state): State<AppState>,
    caller: Authenticated,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AmountRequest>,
) -> Result<Response, ApiError> {
    let wallet = wallet_id(&id)?;
    let hash = request_hash(
        &format!("/wallets/{wallet}/deposit"),
        &Fingerprint {
            amount: &body.amount,
            to_wallet_number: None,
        },
    );
    let user_id = caller.user_id;
    let operation: Operation = Box::new(move |conn| {
        Box::pin(async move {
            let (wallet, amount) = wallet_and_amount(conn, user_id, wallet, &body.amount).await?;
            let receipt = wallets::deposit(conn, user_id, wallet, amount).await?;
            Ok(movement_answer(TxKind::Deposit, amount, receipt))
        })
    });
    idempotency::run(&state, caller.user_id, key, hash, operation).await
}
