//! Market data (PRODUCT.md §4): price providers, stored observations, the
//! scheduled refresh, and fresh prices for everything that moves money.

mod cached;
pub mod partitions;
pub mod providers;
mod refresh;
mod store;

pub use cached::CachedPrice;
pub use refresh::{Providers, RefreshError, RefreshOutcome, refresh};
pub use store::{
    Conversion, HistoryPage, Price, RateError, convert, fresh_price, history, latest, lock_prices,
    lock_prices_for_writing, max_age, price_at,
};
