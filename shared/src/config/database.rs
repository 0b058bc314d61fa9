//! PostgreSQL. Reads `DATABASE_URL`, `DATABASE_POOL_SIZE`,
//! `DATABASE_CONNECT_TIMEOUT_SECS`, `DATABASE_STATEMENT_TIMEOUT_MS`,
//! `DATABASE_CA_FILE`.

use std::{path::PathBuf, time::Duration};

use secrecy::SecretString;

use super::env::{EnvReader, millis, secs};

const LOCAL_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/bourse";

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: SecretString,
    pub pool_size: usize,
    pub connect_timeout: Duration,
    pub statement_timeout: Duration,
    /// PEM certificates that sign the server's certificate, for
    /// `sslmode=require`/`verify-full` with a private CA (else the
    /// webpki roots).
    pub ca_file: Option<PathBuf>,
}

impl DatabaseConfig {
    pub(super) fn read(env: &mut EnvReader) -> Self {
        Self {
            url: env.secret("DATABASE_URL", LOCAL_DATABASE_URL),
            pool_size: env.range_or("DATABASE_POOL_SIZE", 16, 1, 1000),
            connect_timeout: secs(env.range_or("DATABASE_CONNECT_TIMEOUT_SECS", 5, 1, 600)),
            statement_timeout: millis(env.range_or(
                "DATABASE_STATEMENT_TIMEOUT_MS",
                15_000,
                10,
                3_600_000,
            )),
            ca_file: env.optional("DATABASE_CA_FILE").map(PathBuf::from),
        }
    }
}
