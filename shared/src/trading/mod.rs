//! Trading (PRODUCT.md §6): users buy crypto from and sell it to the house
//! at the fresh price ([`orders`]); the house then hedges at an outside
//! exchange ([`clearing`], through an [`exchange::Exchange`]): an order
//! worth the threshold or more alone, smaller ones in batches per currency
//! and side once their sum reaches the threshold.

pub mod clearing;
pub mod exchange;
pub mod orders;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use orders::{Order, OrderError, OrderStatus, PlaceOrder, get, list, place};

/// Which way an order goes, from the user's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The user pays USD and receives crypto (the house must buy it).
    Buy,
    /// The user gives crypto and receives USD (the house must sell it).
    Sell,
}

impl Side {
    pub const fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }

    pub fn parse(raw: &str) -> Option<Side> {
        match raw {
            "buy" => Some(Side::Buy),
            "sell" => Some(Side::Sell),
            _ => None,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
