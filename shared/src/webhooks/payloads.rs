//! The `data` of each event type: ids to fetch the full record with, and
//! the facts a receiver acts on. Amounts and prices are decimal strings,
//! as in the API. README's Webhooks section shows each.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// `alert.triggered`.
#[derive(Debug, Clone, Serialize)]
pub struct AlertTriggered {
    pub alert_id: Uuid,
    pub symbol: String,
    pub direction: String,
    pub target_price: String,
    pub triggered_price: String,
    pub observed_at: DateTime<Utc>,
}

/// `bet.settled`: `status` is `settled` (at its end: `result` `W`, `L`
/// or `D`), `void` (no price at its end: the stake went back) or
/// `liquidated` (closed early at its liquidation price, result `L`).
#[derive(Debug, Clone, Serialize)]
pub struct BetSettled {
    pub bet_id: Uuid,
    pub wallet_id: Uuid,
    pub status: &'static str,
    pub result: Option<String>,
    pub symbol: String,
    pub direction: String,
    pub stake: String,
    pub payout: String,
    pub currency: &'static str,
}

/// `order.cleared`: the house placed the order's hedge at the exchange.
#[derive(Debug, Clone, Serialize)]
pub struct OrderCleared {
    pub order_id: Uuid,
    pub batch_id: Uuid,
    pub side: String,
    pub currency: String,
}

/// `wallet.blocked`: the monthly fee could not be paid.
#[derive(Debug, Clone, Serialize)]
pub struct WalletBlocked {
    pub wallet_id: Uuid,
    pub currency: String,
    pub fee: String,
    pub balance: String,
}

/// `transfer.received`: money reached a wallet of the receiver's from
/// another user's (a transfer between one's own wallets is not an event).
#[derive(Debug, Clone, Serialize)]
pub struct TransferReceived {
    pub wallet_id: Uuid,
    pub transaction_id: Uuid,
    pub amount: String,
    pub currency: String,
    pub from_wallet_number: String,
}
