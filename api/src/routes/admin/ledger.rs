//! `GET /api/v1/admin/ledger/check`.

use axum::extract::State;
use shared::ledger;

use crate::{auth::AdminUser, error::ApiError, routes::spec, state::AppState};

/// Prove the ledger's invariants.
///
/// In one snapshot: entries sum to zero per currency and per transaction,
/// and every wallet balance equals the sum of its entries. `ok` is false
/// and the differences are listed when anything is off.
#[utoipa::path(
    get,
    path = "/admin/ledger/check",
    tag = "admin",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        spec::Unavailable, spec::AdminRead,
        (status = 200, description = "The report", body = Object),
    )
)]
pub async fn ledger_check(
    State(state): State<AppState>,
    AdminUser(_): AdminUser,
) -> Result<axum::Json<ledger::LedgerReport>, ApiError> {
    let mut conn = state.conn().await?;
    Ok(axum::Json(ledger::check(&mut conn).await?))
}
