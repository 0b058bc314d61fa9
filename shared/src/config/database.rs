//! PostgreSQL. Reads `DATABASE_URL`, `DATABASE_POOLER`,
//! `DATABASE_DIRECT_URL`, `DATABASE_POOL_SIZE`,
//! `DATABASE_CONNECT_TIMEOUT_SECS`, `DATABASE_STATEMENT_TIMEOUT_MS`,
//! `DATABASE_IDLE_TRANSACTION_TIMEOUT_MS`, `DATABASE_CA_FILE`.

use std::{path::PathBuf, time::Duration};

use secrecy::SecretString;

use super::env::{EnvReader, millis, secs};

const LOCAL_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/bourse";

/// What stands between `DATABASE_URL` and PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooler {
    /// Nothing, or a pooler in session mode: a connection is one server
    /// session for its whole life.
    None,
    /// A pooler in transaction mode (PgBouncer `pool_mode = transaction`):
    /// each transaction, and each statement outside one, may run on a
    /// different server session. So no named prepared statements, no
    /// session settings and no session locks through it.
    Transaction,
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: SecretString,
    pub pooler: Pooler,
    /// A URL that reaches the server without the pooler, for migrations.
    /// Optional: without it they run through the pooler (in one
    /// transaction, under a transaction-scoped lock).
    pub direct_url: Option<SecretString>,
    pub pool_size: usize,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
    /// How long a transaction may wait on its client between statements
    /// before the server ends the session and releases its locks: a
    /// process frozen mid-transaction (SIGSTOP, a stalled VM) would
    /// otherwise hold its rows until it wakes, and the jobs taken over
    /// from it could not run.
    pub idle_transaction_timeout: Duration,
    /// PEM certificates that sign the server's certificate, for
    /// `sslmode=require`/`verify-full` with a private CA (else the
    /// webpki roots).
    pub ca_file: Option<PathBuf>,
}

impl DatabaseConfig {
    pub(super) fn read(env: &mut EnvReader) -> Self {
        Self {
            url: env.secret("DATABASE_URL", LOCAL_DATABASE_URL),
            pooler: env.choice_or(
                "DATABASE_POOLER",
                Pooler::None,
                &[("none", Pooler::None), ("transaction", Pooler::Transaction)],
            ),
            direct_url: env.optional_secret("DATABASE_DIRECT_URL"),
            pool_size: env.range_or("DATABASE_POOL_SIZE", 16, 1, 1000),
            connect_timeout: secs(env.range_or("DATABASE_CONNECT_TIMEOUT_SECS", 5, 1, 600)),
            statement_timeout: millis(env.range_or(
                "DATABASE_STATEMENT_TIMEOUT_MS",
                15_000,
                10,
                3_600_000,
            )),
            idle_transaction_timeout: millis(env.range_or(
                "DATABASE_IDLE_TRANSACTION_TIMEOUT_MS",
                5_000,
                100,
                3_600_000,
            )),
            ca_file: env.optional("DATABASE_CA_FILE").map(PathBuf::from),
        }
    }

    /// The URL to open a server session on, for migrations:
    /// `DATABASE_DIRECT_URL`, else `DATABASE_URL` unless that goes through a
    /// pooler in transaction mode.
    pub fn session_url(&self) -> Option<&SecretString> {
        match (&self.direct_url, self.pooler) {
            (Some(direct), _) => Some(direct),
            (None, Pooler::None) => Some(&self.url),
            (None, Pooler::Transaction) => None,
        }
    }
}
