//! The arithmetic of a bet's outcome (PRODUCT.md §7), pure so it can be
//! checked case by case.

use rust_decimal::{Decimal, RoundingStrategy};

/// Which way the user bets the price goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
}

impl Direction {
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }

    pub fn parse(raw: &str) -> Option<Direction> {
        match raw {
            "up" => Some(Direction::Up),
            "down" => Some(Direction::Down),
            _ => None,
        }
    }
}

/// `W` (the price moved the chosen way), `L` (the other way) or `D` (no
/// move).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Won,
    Lost,
    Draw,
}

impl Outcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Won => "W",
            Outcome::Lost => "L",
            Outcome::Draw => "D",
        }
    }
}

/// A settled bet's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    pub outcome: Outcome,
    /// What the wallet receives: stake + P&L, floored at zero, rounded down
    /// to the cent.
    pub payout: Decimal,
    /// `payout − stake`.
    pub profit: Decimal,
}

/// P&L = stake × leverage × (end − start) / start, positive when the price
/// moved the chosen way, floored at −stake (the stake is all one can lose);
/// the payout is stake + P&L rounded down to the cent.
pub fn settle(
    direction: Direction,
    stake: Decimal,
    leverage: u32,
    start: Decimal,
    end: Decimal,
) -> Settlement {
    let moved = match direction {
        Direction::Up => end - start,
        Direction::Down => start - end,
    };
    let outcome = if moved.is_zero() || start.is_zero() {
        Outcome::Draw
    } else if moved.is_sign_positive() {
        Outcome::Won
    } else {
        Outcome::Lost
    };
    // Multiply before dividing: exact for any realistic price. A win too
    // large to represent (or to store) is capped at the largest amount the
    // system handles.
    let cap = Decimal::from(crate::money::MAX_AMOUNT);
    let pnl = if start.is_zero() {
        Decimal::ZERO
    } else {
        stake
            .checked_mul(Decimal::from(leverage))
            .and_then(|x| x.checked_mul(moved))
            .and_then(|x| x.checked_div(start))
            .unwrap_or(if moved.is_sign_positive() {
                cap
            } else {
                -stake
            })
    };
    let pnl = pnl.clamp(-stake, cap);
    let payout = (stake + pnl)
        .round_dp_with_strategy(2, RoundingStrategy::ToZero)
        .max(Decimal::ZERO);
    Settlement {
        outcome,
        payout,
        profit: payout - stake,
    }
}

/// A bet closed at its liquidation price: the whole stake lost.
pub fn liquidated(stake: Decimal) -> Settlement {
    Settlement {
        outcome: Outcome::Lost,
        payout: Decimal::ZERO,
        profit: -stake,
    }
}

/// The price at which a bet's loss reaches its stake, fixed at placement
/// (PRODUCT.md §7): `start × (1 − 1/leverage)` for `up`, `start × (1 +
/// 1/leverage)` for `down`, to 8 decimal places, rounded away from the
/// start (an observation that reaches it has cost at least the stake, never
/// a hair less). Leverage 1 going `up` gives 0, which no price reaches.
pub fn liquidation_price(direction: Direction, start: Decimal, leverage: u32) -> Decimal {
    let leverage = Decimal::from(leverage.max(1));
    let (factor, strategy) = match direction {
        Direction::Up => (
            leverage - Decimal::ONE,
            RoundingStrategy::ToNegativeInfinity,
        ),
        Direction::Down => (
            leverage + Decimal::ONE,
            RoundingStrategy::ToPositiveInfinity,
        ),
    };
    // Multiply before dividing, as `settle` does; a start price too large
    // to multiply (none a feed gives) falls back to dividing first.
    start
        .checked_mul(factor)
        .and_then(|x| x.checked_div(leverage))
        .or_else(|| {
            start
                .checked_div(leverage)
                .and_then(|x| x.checked_mul(factor))
        })
        .unwrap_or(start)
        .round_dp_with_strategy(8, strategy)
        .max(Decimal::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liquidation_prices() {
        use Direction::{Down, Up};
        let cases = [
            (Up, "43000", 10, "38700"),
            (Down, "43000", 10, "47300"),
            (Up, "100", 100, "99"),
            (Down, "100", 100, "101"),
            (Up, "200", 1, "0"),
            (Down, "200", 1, "400"),
            // 100 × 2/3 = 66.666…: rounded down for `up`; 100 × 4/3 up.
            (Up, "100", 3, "66.66666666"),
            (Down, "100", 3, "133.33333334"),
        ];
        for (direction, start, leverage, expected) in cases {
            assert_eq!(
                liquidation_price(direction, d(start), leverage),
                d(expected),
                "{direction:?} {start} ×{leverage}"
            );
            // At the liquidation price the whole stake is lost.
            let at = settle(
                direction,
                d("10"),
                leverage,
                d(start),
                liquidation_price(direction, d(start), leverage),
            );
            if leverage > 1 || direction == Down {
                assert_eq!(
                    at.payout,
                    Decimal::ZERO,
                    "{direction:?} {start} ×{leverage}"
                );
            }
        }
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn profit_and_loss_cases() {
        use Direction::{Down, Up};
        use Outcome::{Draw, Lost, Won};
        // (direction, stake, leverage, start, end, outcome, payout)
        let cases = [
            // 1% up, ×10: +10% of 100.
            (Up, "100", 10, "100", "101", Won, "110.00"),
            (Down, "100", 10, "100", "101", Lost, "90.00"),
            (Down, "100", 10, "100", "99", Won, "110.00"),
            (Up, "100", 10, "100", "99", Lost, "90.00"),
            // No move: the stake back.
            (Up, "100", 100, "43210.99", "43210.99", Draw, "100.00"),
            (Down, "25.50", 1, "3000", "3000", Draw, "25.50"),
            // Leverage bounds.
            (Up, "10", 1, "200", "300", Won, "15.00"),
            (Up, "10", 100, "200", "201", Won, "15.00"),
            // Liquidation: a loss bigger than the stake stops at the stake.
            (Up, "10", 100, "200", "190", Lost, "0.00"),
            (Down, "10", 100, "200", "400", Lost, "0.00"),
            // Exactly the stake lost.
            (Up, "10", 100, "100", "99", Lost, "0.00"),
            // Rounding: always down to the cent, never in the user's favour.
            // 10 × 3 × 0.01/3 = 0.1 → 10.10; 10 × 7 × 1/3 = 23.333… → 33.33.
            (Up, "10", 3, "3", "3.01", Won, "10.10"),
            (Up, "10", 7, "3", "4", Won, "33.33"),
            // 10 × 7 × −1/3 = −23.33… floored at −10 → 0.
            (Up, "10", 7, "3", "2", Lost, "0.00"),
            // A loss of 1/3: 10 − 3.333… = 6.666… → 6.66.
            (Down, "10", 1, "3", "4", Lost, "6.66"),
            // A tiny win that rounds to nothing is still a win.
            (Up, "1.00", 1, "43210.99", "43211.00", Won, "1.00"),
        ];
        for (direction, stake, leverage, start, end, outcome, payout) in cases {
            let s = settle(direction, d(stake), leverage, d(start), d(end));
            assert_eq!(
                (s.outcome, s.payout),
                (outcome, d(payout)),
                "{direction:?} {stake} ×{leverage} {start} → {end}"
            );
            assert_eq!(s.profit, s.payout - d(stake));
        }
    }

    #[test]
    fn a_huge_move_does_not_overflow() {
        let s = settle(
            Direction::Up,
            d("1000000000"),
            100,
            d("0.000000000000000001"),
            d("1000000000"),
        );
        assert_eq!(s.outcome, Outcome::Won);
        assert!(s.payout > d("1000000000"));
        assert!(s.payout <= Decimal::from(crate::money::MAX_AMOUNT) + d("1000000000"));
    }
}
