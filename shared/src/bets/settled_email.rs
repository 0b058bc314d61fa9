//! The email a bet's owner gets when it settles. Presentation, apart from
//! the settlement: amounts to the cent, prices as observed, the due time
//! in UTC to the millisecond.

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
        settles_at: bet
            .settles_at
            .format("%Y-%m-%d %H:%M:%S%.3f UTC")
            .to_string(),
    }
}
