//! Bourse's end-to-end tests: one test binary with a module per area (as
//! crates_io and *Zero To Production* lay theirs out), so the workspace's
//! crates are linked once instead of once per area. Each test starts what
//! it needs: real PostgreSQL (a database per test), Redis (a key prefix
//! per test, or its own Cluster or Sentinel servers), an SMTP receiver,
//! and the API and workers in-process or as the real binaries; see the
//! `harness` crate (`tests/src`).
//!
//! Run one area with `scripts/test <area>::` (e.g. `scripts/test wallets::`).

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure must stop the test"
)]

mod admin_jobs;
mod alerts;
mod apalis_redis;
mod auth;
mod bet_limits;
mod bets;
mod chaos;
mod compose;
mod contract;
mod fees;
mod first_run;
mod hardening;
mod hosts;
mod http;
mod jobs;
mod leases;
mod ledger_model;
mod liquidation;
mod pgbouncer;
mod processes;
mod providers;
mod rates;
mod redis_cluster;
mod redis_outage;
mod redis_sentinel;
mod registration;
mod schedule;
mod security;
mod stack;
mod tls;
mod traces;
mod trading;
mod unique_jobs;
mod upkeep;
mod wallets;
mod web;
mod webhook_deliveries;
mod webhooks;
