//! Scenario `house` (ISSUE 22, item 4): does the house lose on average?
//!
//! A deterministic simulation, no database: the product's own simulated
//! price walk (`rates::providers::simulated`, one step per second, seed
//! fixed) for BTC over `days`, and `bets` bets on it, each with a start
//! second, a direction, a leverage and a duration drawn from a seeded
//! generator. Each bet is settled by the product's own arithmetic
//! (`bets::settle`'s P&L, `bets::liquidation_price`) twice: with
//! liquidation (closed at a total loss if any observation after placement
//! and at or before its end reaches the liquidation price) and without
//! (held to the end, the loss floored at the stake). Printed per leverage
//! and in all: the house's mean result per bet (stake − payout) with its
//! 95 % confidence interval.

use rust_decimal::{Decimal, prelude::ToPrimitive as _};
use shared::{
    bets::{Direction, liquidation_price},
    rates::providers::{Simulated, base_price},
};

pub struct HouseRun {
    pub bets: usize,
    pub days: u32,
    pub seed: u64,
    pub leverages: Vec<u32>,
    pub durations: Vec<u32>,
}

/// Block minima and maxima over the walk: whether a window reached a level
/// is answered from whole blocks and the two partial ends.
struct Walk {
    prices: Vec<Decimal>,
    low: Vec<Decimal>,
    high: Vec<Decimal>,
}

const BLOCK: usize = 1024;

impl Walk {
    fn new(seed: u64, steps: usize) -> Self {
        let feed = Simulated::new(seed);
        let mut price = base_price("BTC").unwrap_or(Decimal::ONE);
        let mut prices = Vec::with_capacity(steps);
        for at in 0..steps {
            price = feed.step("BTC", price, i64::try_from(at).unwrap_or(i64::MAX));
            prices.push(price);
        }
        let low = prices
            .chunks(BLOCK)
            .map(|c| c.iter().copied().min().unwrap_or_default())
            .collect();
        let high = prices
            .chunks(BLOCK)
            .map(|c| c.iter().copied().max().unwrap_or_default())
            .collect();
        Self { prices, low, high }
    }

    /// The lowest and highest price over `from..=to`.
    fn range(&self, from: usize, to: usize) -> (Decimal, Decimal) {
        let mut low = self.prices[from];
        let mut high = low;
        let mut at = from;
        while at <= to {
            if at.is_multiple_of(BLOCK) && at + BLOCK - 1 <= to {
                low = low.min(self.low[at / BLOCK]);
                high = high.max(self.high[at / BLOCK]);
                at += BLOCK;
            } else {
                low = low.min(self.prices[at]);
                high = high.max(self.prices[at]);
                at += 1;
            }
        }
        (low, high)
    }
}

/// Mean and the half-width of its 95 % confidence interval.
#[derive(Default, Clone)]
struct Tally {
    n: f64,
    sum: f64,
    squares: f64,
}

impl Tally {
    fn add(&mut self, x: f64) {
        self.n += 1.0;
        self.sum += x;
        self.squares += x * x;
    }

    fn mean(&self) -> f64 {
        self.sum / self.n.max(1.0)
    }

    fn half_width(&self) -> f64 {
        if self.n < 2.0 {
            return f64::NAN;
        }
        let mean = self.mean();
        let variance = (self.squares - self.n * mean * mean) / (self.n - 1.0);
        1.96 * (variance.max(0.0) / self.n).sqrt()
    }
}

/// What the house made on one bet of `stake`: with liquidation, without.
fn house_results(walk: &Walk, bet: &Drawn, stake: Decimal) -> (f64, f64) {
    let start = walk.prices[bet.start];
    let end_at = bet.start + bet.duration as usize;
    let end = walk.prices[end_at];
    let held = shared::bets::settle_at_price(bet.direction, stake, bet.leverage, start, end).payout;
    let without = (stake - held).to_f64().unwrap_or(0.0);
    // Observations after placement and at or before the end.
    let level = liquidation_price(bet.direction, start, bet.leverage);
    let (low, high) = walk.range(bet.start + 1, end_at);
    let reached = match bet.direction {
        Direction::Up => low <= level,
        Direction::Down => high >= level,
    };
    let with = if reached {
        stake.to_f64().unwrap_or(0.0)
    } else {
        without
    };
    (with, without)
}

struct Drawn {
    start: usize,
    direction: Direction,
    leverage: u32,
    duration: u32,
}

impl HouseRun {
    /// Runs the simulation; returns the lines it prints and the overall
    /// (with, without) tallies' (mean, half-width).
    pub fn simulate(&self) -> (Vec<String>, (f64, f64), (f64, f64)) {
        let longest = self.durations.iter().copied().max().unwrap_or(60) as usize;
        let steps = (self.days as usize * 86_400).max(longest * 2 + 2);
        let walk = Walk::new(self.seed, steps);
        let mut state = self.seed ^ 0x5eed;
        let mut next = || {
            // SplitMix64, as the walk's.
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let stake = Decimal::from(10);
        let mut by_leverage: Vec<(u32, Tally, Tally)> = self
            .leverages
            .iter()
            .map(|&l| (l, Tally::default(), Tally::default()))
            .collect();
        let (mut with_all, mut without_all) = (Tally::default(), Tally::default());
        for _ in 0..self.bets {
            let duration = self.durations[(next() % self.durations.len() as u64) as usize];
            let slot = (next() % self.leverages.len() as u64) as usize;
            let bet = Drawn {
                start: (next() % (steps - duration as usize - 1) as u64) as usize,
                direction: if next() % 2 == 0 {
                    Direction::Up
                } else {
                    Direction::Down
                },
                leverage: self.leverages[slot],
                duration,
            };
            let (with, without) = house_results(&walk, &bet, stake);
            with_all.add(with);
            without_all.add(without);
            if let Some((_, w, wo)) = by_leverage.get_mut(slot) {
                w.add(with);
                wo.add(without);
            }
        }
        let mut lines = Vec::new();
        for (leverage, with, without) in &by_leverage {
            lines.push(format!(
                "scenario=house leverage={leverage} bets={} house_mean_with_liquidation_usd={:.4} ci95={:.4} house_mean_without_usd={:.4} ci95={:.4}",
                with.n, with.mean(), with.half_width(), without.mean(), without.half_width()
            ));
        }
        lines.push(format!(
            "scenario=house leverage=all bets={} stake_usd=10 days={} seed={} durations_s={:?} house_mean_with_liquidation_usd={:.4} ci95={:.4} house_mean_without_usd={:.4} ci95={:.4}",
            self.bets,
            self.days,
            self.seed,
            self.durations,
            with_all.mean(),
            with_all.half_width(),
            without_all.mean(),
            without_all.half_width()
        ));
        (
            lines,
            (with_all.mean(), with_all.half_width()),
            (without_all.mean(), without_all.half_width()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small enough for a debug build, large enough to tell: with
    /// liquidation the house's mean result is not below zero (within its
    /// 95 % interval); without, it loses.
    #[test]
    fn with_liquidation_the_house_does_not_lose_on_average_and_without_it_does() {
        let (_, with, without) = HouseRun {
            bets: 20_000,
            days: 3,
            seed: 7,
            leverages: vec![10, 50, 100],
            durations: vec![600, 3_600, 14_400],
        }
        .simulate();
        assert!(with.0 + with.1 >= 0.0, "with liquidation: {with:?}");
        assert!(without.0 + without.1 < 0.0, "without: {without:?}");
    }
}
