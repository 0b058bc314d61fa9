#![expect(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test harness: a setup step that fails must stop the test loudly"
)]

//! Test harness for Bourse's end-to-end tests: real PostgreSQL (one database
//! per test, cloned from a migrated template), real Redis (one key prefix per
//! test), a real SMTP receiver, and the API and workers either in-process or
//! as the real binaries.

pub mod app;
pub mod db;
pub mod docker;
pub mod exchange;
pub mod failover;
pub mod otlp;
pub mod pgbouncer;
pub mod poll;
pub mod process;
pub mod proxy;
pub mod redis_cluster;
pub mod redis_sentinel;
pub mod redis_server;
pub mod session;
pub mod smtp;
pub mod tls_servers;
pub mod webhook_receiver;

pub use app::{TestApp, TestAppBuilder};
pub use db::TestDb;
pub use poll::eventually;
pub use smtp::SmtpReceiver;

/// A random lowercase suffix for names of databases, prefixes and tags.
/// A free port on 127.0.0.1 (see `testkit::free_port`).
pub fn free_port() -> u16 {
    testkit::free_port().expect("a free port on 127.0.0.1")
}

pub fn random_suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}
