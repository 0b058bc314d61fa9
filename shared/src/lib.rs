//! Code shared by the Bourse API and workers: configuration, the PostgreSQL
//! schema and pool, domain rules, job payloads, the outbox and email.
//!
//! Dependencies point one way: `queue` (everything in Redis), `api` and
//! `worker` depend on this crate; `api` and `worker` depend on `queue` too,
//! never on each other. This crate has no HTTP framework, no job runtime
//! and no Redis client; business rules are async functions over an
//! `AsyncPgConnection`.

pub mod accounts;
pub mod alerts;
pub mod bets;
pub mod cli;
pub mod clock;
pub mod config;
pub mod currencies;
pub mod db;
pub mod email;
pub mod fees;
pub mod hygiene;
pub mod jobs;
pub mod ledger;
pub mod metrics_text;
pub mod money;
pub mod outbox;
pub mod password;
pub mod probe;
pub mod rates;
pub mod schedule;
pub mod schema;
pub mod seed;
pub mod sessions;
pub mod startup;
pub mod telemetry;
pub mod text_enum;
pub mod tls;
pub mod trace;
pub mod trading;
pub mod wallets;
pub mod webhooks;
