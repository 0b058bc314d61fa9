//! Webhooks (PRODUCT.md §11): API clients register endpoints, and events
//! that concern them are POSTed there, signed, through the job system.
//!
//! This module holds the endpoints ([`endpoints`]), the event types, and
//! the rules on where deliveries may go ([`target`] for the URL,
//! [`address`] for the addresses it resolves to: no server-side request
//! forgery), and how deliveries are signed ([`signature`]). Events are
//! emitted in the transaction of their change ([`events`]) and delivered by
//! `deliver_webhook` jobs ([`deliveries`] for the rows, [`send`] for the
//! POST).

pub mod address;
pub mod deliveries;
pub mod endpoints;
pub mod events;
pub mod payloads;
pub mod send;
pub mod signature;
pub mod target;

/// The events an endpoint may subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// A price alert of the user's was triggered.
    AlertTriggered,
    /// A bet of the user's was settled (won, lost, or liquidated).
    BetSettled,
    /// An order of the user's was cleared with the exchange.
    OrderCleared,
    /// A wallet of the user's was blocked (monthly fee unpaid).
    WalletBlocked,
    /// A transfer reached a wallet of the user's.
    TransferReceived,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::AlertTriggered,
        EventType::BetSettled,
        EventType::OrderCleared,
        EventType::WalletBlocked,
        EventType::TransferReceived,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::AlertTriggered => "alert.triggered",
            EventType::BetSettled => "bet.settled",
            EventType::OrderCleared => "order.cleared",
            EventType::WalletBlocked => "wallet.blocked",
            EventType::TransferReceived => "transfer.received",
        }
    }

    pub fn parse(raw: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|e| e.as_str() == raw)
    }

    pub fn names() -> Vec<&'static str> {
        EventType::ALL.iter().map(|e| e.as_str()).collect()
    }
}
