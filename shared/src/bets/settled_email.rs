//! The email a bet's owner gets when it settles. Presentation, apart from
//! the settlement: amounts to the cent, prices as observed, the due time
//! in UTC to the millisecond.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::{BetStatus, settle::OpenBet};
use crate::email::BetSettled;

pub(super) fn settled_email(
    bet: &OpenBet,
    status: BetStatus,
    result: Option<&str>,
    payout: Decimal,
    end_price: Option<Decimal>,
) -> BetSettled {
    let money = |d: Decimal| format!("{d:.2}");
    BetSettled {
        username: bet.username.clone(),
        symbol: bet.symbol.clone(),
        direction: bet.direction.clone(),
        status: status.as_str().to_owned(),
        result: result.unwrap_or_default().to_owned(),
        stake: money(bet.stake),
        leverage: bet.leverage,
        start_price: bet.start_price.normalize().to_string(),
        end_price: end_price
            .map(|p| p.normalize().to_string())
            .unwrap_or_default(),
        payout: money(payout),
        profit: money(payout - bet.stake),
        settles_at: shown(bet.settles_at),
        liquidated: false,
        liquidation_price: bet.liquidation_price.normalize().to_string(),
        liquidated_at: String::new(),
    }
}

/// The email of a bet closed by an observation at `price`, made at
/// `observed_at`, that reached its liquidation price.
pub(super) fn liquidated_email(
    bet: &OpenBet,
    price: Decimal,
    observed_at: DateTime<Utc>,
) -> BetSettled {
    BetSettled {
        liquidated: true,
        liquidated_at: shown(observed_at),
        ..settled_email(
            bet,
            BetStatus::Settled,
            Some("L"),
            Decimal::ZERO,
            Some(price),
        )
    }
}

/// A time as shown to the user: UTC to the millisecond.
fn shown(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()
}
