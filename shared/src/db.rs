//! PostgreSQL access: one deadpool of diesel-async connections per process,
//! embedded migrations, and the error classification the edges need.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{
    AnsiTransactionManager, AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl, StatementMode,
    TransactionManager,
    pooled_connection::{
        AsyncDieselConnectionManager, ManagerConfig,
        deadpool::{Object, Pool},
    },
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures::FutureExt;
use secrecy::ExposeSecret;

use crate::config::{DatabaseConfig, Pooler};

/// The migrations in `migrations/`, compiled into every binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

pub use diesel_async::pooled_connection::deadpool::PoolError;

pub type DbPool = Pool<AsyncPgConnection>;
pub type DbConn = Object<AsyncPgConnection>;

/// Builds the pool. No connection is opened here: a process starts even when
/// PostgreSQL is down and reports that through `/readyz` and 503s.
///
/// Every connection gets an `application_name` (visible in `pg_stat_activity`),
/// a `statement_timeout`, so a stuck query cannot hold a connection
/// forever, and an `idle_in_transaction_session_timeout`, so a process
/// frozen mid-transaction cannot hold its locks for longer than that.
///
/// Prepared statements use generic plans: our statements are point lookups
/// and short inserts by key, whose plan never depends on the values, and
/// re-planning them for every execution (PostgreSQL's default for a
/// statement whose generic plan looks no cheaper) was a tenth of the
/// database's CPU in the transfers benchmark.
///
/// Through a pooler in transaction mode (`DATABASE_POOLER=transaction`)
/// none of that session state would survive the next transaction: the
/// statements go unnamed, and only `application_name` is set (PgBouncer
/// tracks it and sets it again on whichever server session it hands
/// out); the statement timeout belongs to the pooler's `connect_query` or
/// the role (README, "PgBouncer"), and a connection warns once when it
/// finds none.
pub fn pool(config: &DatabaseConfig, application_name: &str) -> Result<DbPool, String> {
    let application_name = format!(
        "SET application_name = '{}'",
        application_name.replace('\'', "")
    );
    let setup_sql = match config.pooler {
        Pooler::None => format!(
            "{application_name}; SET statement_timeout = {}; \
             SET idle_in_transaction_session_timeout = {}; \
             SET plan_cache_mode = force_generic_plan",
            config.statement_timeout.as_millis(),
            config.idle_transaction_timeout.as_millis()
        ),
        Pooler::Transaction => application_name,
    };
    let pooler = config.pooler;
    let statements = statement_mode(pooler);
    let connect_timeout = config.connect_timeout;
    let ca_file = config.ca_file.clone();
    let mut manager_config = ManagerConfig::<AsyncPgConnection>::default();
    // No test query on every checkout (a round trip per request): a closed
    // connection is still detected (is_broken), and a failing query on a
    // connection the server dropped is answered as unavailable.
    manager_config.recycling_method = diesel_async::pooled_connection::RecyclingMethod::Fast;
    manager_config.custom_setup = Box::new(move |url| {
        let setup_sql = setup_sql.clone();
        let url = url.to_owned();
        let ca_file = ca_file.clone();
        async move {
            let connect = establish(&url, ca_file.as_deref(), statements);
            let mut conn = tokio::time::timeout(connect_timeout, connect)
                .await
                .map_err(|_| {
                    diesel::ConnectionError::BadConnection("connect timed out".to_owned())
                })??;
            diesel_async::SimpleAsyncConnection::batch_execute(&mut conn, &setup_sql)
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            if pooler == Pooler::Transaction {
                warn_once_without_statement_timeout(&mut conn).await;
            }
            Ok(conn)
        }
        .boxed()
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
        config.url.expose_secret(),
        manager_config,
    );
    Pool::builder(manager)
        .max_size(config.pool_size)
        .runtime(deadpool_runtime())
        .wait_timeout(Some(config.connect_timeout))
        .create_timeout(Some(config.connect_timeout))
        .recycle_timeout(Some(config.connect_timeout))
        .build()
        .map_err(|e| e.to_string())
}

fn deadpool_runtime() -> deadpool::Runtime {
    deadpool::Runtime::Tokio1
}

/// How a connection through `pooler` sends its statements: named and
/// cached on a server session of its own, unnamed through a pooler in
/// transaction mode (diesel-async patch 1, `vendor/diesel-async`).
pub fn statement_mode(pooler: Pooler) -> StatementMode {
    match pooler {
        Pooler::None => StatementMode::Named,
        Pooler::Transaction => StatementMode::Unnamed,
    }
}

/// Behind a pooler in transaction mode the process cannot set its own
/// statement timeout; say so once if nobody else did either.
async fn warn_once_without_statement_timeout(conn: &mut AsyncPgConnection) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if std::sync::atomic::AtomicBool::load(&WARNED, std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        setting: String,
    }
    let current = diesel::sql_query("SELECT current_setting('statement_timeout') AS setting")
        .get_result::<Setting>(conn)
        .await;
    if matches!(&current, Ok(s) if s.setting == "0")
        && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        tracing::warn!(
            "DATABASE_POOLER=transaction and the server sessions have no statement_timeout: \
             set it in PgBouncer's connect_query or on the role (ALTER ROLE ... SET \
             statement_timeout), as DATABASE_STATEMENT_TIMEOUT_MS cannot be set per session"
        );
    }
}

/// Opens one connection to `url`, over TLS when its `sslmode` asks for it
/// (managed services): `require` encrypts and, given a CA file, verifies
/// the server as libpq does; `verify-ca` and `verify-full` verify the chain
/// and the host name against the CA file (`DATABASE_CA_FILE`, or
/// `sslrootcert=` in the URL) or the webpki roots. `disable` and `prefer`
/// (the default) connect in plain text, as before.
pub async fn establish(
    url: &str,
    ca_file: Option<&Path>,
    statements: StatementMode,
) -> diesel::ConnectionResult<AsyncPgConnection> {
    let target =
        Target::parse(url, ca_file).map_err(diesel::ConnectionError::InvalidConnectionUrl)?;
    let Some(verify) = target.tls else {
        let (client, connection) = tokio_postgres::connect(&target.url, tokio_postgres::NoTls)
            .await
            .map_err(|e| diesel::ConnectionError::BadConnection(describe(&e)))?;
        return AsyncPgConnection::try_from_client_and_connection_with(
            client, connection, statements,
        )
        .await;
    };
    let config = crate::tls::client_config(target.ca_file.as_deref(), verify)
        .map_err(diesel::ConnectionError::BadConnection)?;
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(config);
    let (client, connection) = tokio_postgres::connect(&target.url, tls)
        .await
        .map_err(|e| diesel::ConnectionError::BadConnection(describe(&e)))?;
    AsyncPgConnection::try_from_client_and_connection_with(client, connection, statements).await
}

/// A tokio-postgres error with its cause: its own text is only "db error"
/// when the server refused (a database that does not exist, a wrong
/// password), and the server's message is what an operator needs.
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{db}"),
        None => match std::error::Error::source(error) {
            Some(cause) => format!("{error}: {cause}"),
            None => error.to_string(),
        },
    }
}

/// A connection URL as tokio-postgres reads it, and the TLS it needs.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    url: String,
    tls: Option<crate::tls::Verify>,
    ca_file: Option<PathBuf>,
}

impl Target {
    /// Takes `sslmode` and `sslrootcert` out of the URL's query (tokio-postgres
    /// knows only `disable`, `prefer` and `require`, and no root file).
    fn parse(url: &str, ca_file: Option<&Path>) -> Result<Self, String> {
        use crate::tls::Verify;
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept: Vec<&str> = Vec::new();
        let mut mode = None;
        let mut root = ca_file.map(Path::to_path_buf);
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", value)) => mode = Some(value),
                Some(("sslrootcert", value)) => root = Some(PathBuf::from(value)),
                _ => kept.push(pair),
            }
        }
        let tls = match mode {
            None | Some("disable" | "allow" | "prefer") => None,
            Some("require") if root.is_some() => Some(Verify::Full),
            Some("require") => Some(Verify::EncryptOnly),
            Some("verify-ca" | "verify-full") => Some(Verify::Full),
            Some(other) => {
                return Err(format!(
                    "sslmode={other}: expected disable, prefer, require, verify-ca or verify-full"
                ));
            }
        };
        match (tls, mode) {
            (Some(_), _) => kept.push("sslmode=require"),
            (None, Some("disable")) => kept.push("sslmode=disable"),
            _ => {}
        }
        let url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok(Self {
            url,
            tls,
            ca_file: root,
        })
    }
}

/// Errors from running migrations.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(String),
    #[error("the migration transaction failed: {0}")]
    Database(#[from] DieselError),
    #[error("migration failed: {0}")]
    Run(String),
}

/// Holds the transaction-scoped advisory lock named `name` until the
/// surrounding transaction ends: one holder at a time across every process
/// (a user's capped registrations, one currency's clearing). Names hash to
/// the lock's 64-bit key; a rare collision only serialises two unrelated
/// holders.
pub async fn lock_for_transaction(
    conn: &mut AsyncPgConnection,
    name: &str,
) -> diesel::QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind::<diesel::sql_types::Text, _>(name)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Applies pending migrations on `conn` and returns the versions applied.
///
/// All of them run in one transaction that first takes a transaction-scoped
/// advisory lock: processes started together (an API and several workers)
/// cannot apply the same migration twice, a failing migration leaves none
/// of the batch applied, and the lock holds through a pooler in
/// transaction mode as well (a session lock would not: the pooler may run
/// the unlock, or the migration, on another server session).
pub async fn run_migrations(mut conn: AsyncPgConnection) -> Result<Vec<String>, MigrationError> {
    AnsiTransactionManager::begin_transaction(&mut conn).await?;
    let locked = diesel::sql_query("SELECT pg_advisory_xact_lock(72620113)")
        .execute(&mut conn)
        .await;
    if let Err(error) = locked {
        let _ = AnsiTransactionManager::rollback_transaction(&mut conn).await;
        return Err(error.into());
    }
    // The harness runs diesel's synchronous migration code with
    // `block_in_place`, which needs the multi-threaded runtime. Each
    // migration's own transaction nests as a savepoint.
    let mut harness = AsyncMigrationHarness::new(conn);
    let result = harness
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>())
        .map_err(|e| MigrationError::Run(e.to_string()));
    let mut conn = harness.into_inner();
    match result {
        Ok(applied) => {
            AnsiTransactionManager::commit_transaction(&mut conn).await?;
            Ok(applied)
        }
        Err(error) => {
            let _ = AnsiTransactionManager::rollback_transaction(&mut conn).await;
            Err(error)
        }
    }
}

/// How many of this build's migrations the database lacks.
pub async fn pending_migrations(config: &DatabaseConfig) -> Result<usize, String> {
    let conn = connect_for_migrations(config).await?;
    let mut harness = AsyncMigrationHarness::new(conn);
    harness
        .pending_migrations(MIGRATIONS)
        .map(|pending| pending.len())
        .map_err(|e| e.to_string())
}

/// One connection for migrations: a server session of its own when there
/// is one ([`DatabaseConfig::session_url`]), else through the pooler,
/// with unnamed statements.
pub async fn connect_for_migrations(config: &DatabaseConfig) -> Result<AsyncPgConnection, String> {
    let (url, statements) = match config.session_url() {
        Some(url) => (url, StatementMode::Named),
        None => (&config.url, statement_mode(config.pooler)),
    };
    connect(url.expose_secret(), config.ca_file.as_deref(), statements).await
}

/// One plain connection, given up after 5 s (a host that drops packets).
pub async fn connect(
    url: &str,
    ca_file: Option<&Path>,
    statements: StatementMode,
) -> Result<AsyncPgConnection, String> {
    tokio::time::timeout(Duration::from_secs(5), establish(url, ca_file, statements))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())
}

/// Waits until PostgreSQL answers, up to `deadline`.
pub async fn wait_until_reachable(pool: &DbPool, deadline: Duration) -> bool {
    let started = std::time::Instant::now();
    loop {
        if ping(pool).await.is_ok() {
            return true;
        }
        if started.elapsed() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `SELECT 1` through the pool.
pub async fn ping(pool: &DbPool) -> Result<(), String> {
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    diesel::sql_query("SELECT 1")
        .execute(&mut conn)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// True when a pool error means "the database is unreachable" (a 503), as
/// opposed to a bug.
pub fn pool_error_is_unavailable(error: &PoolError) -> bool {
    matches!(
        error,
        PoolError::Timeout(_)
            | PoolError::Backend(_)
            | PoolError::Closed
            | PoolError::NoRuntimeSpecified
    ) || matches!(error, PoolError::PostCreateHook(_))
}

/// True when a query error means the connection or server went away.
pub fn query_error_is_unavailable(error: &DieselError) -> bool {
    match error {
        // No SQLSTATE at all: the server went away mid-conversation
        // (diesel-async reports a dropped connection this way).
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) => true,
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            // Admin shutdown, connection failure, statement timeout.
            let message = info.message();
            message.contains("terminating connection")
                || message.contains("connection")
                || message.contains("canceling statement due to statement timeout")
        }
        _ => false,
    }
}

/// The constraint a unique violation hit, if that is what `error` is.
pub fn unique_violation(error: &DieselError) -> Option<&str> {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            info.constraint_name()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::Verify;

    fn parsed(url: &str, ca: Option<&str>) -> Target {
        Target::parse(url, ca.map(Path::new)).unwrap()
    }

    #[test]
    fn ssl_modes_choose_the_tls() {
        let plain = parsed("postgres://u@h/db", None);
        assert_eq!((plain.url.as_str(), plain.tls), ("postgres://u@h/db", None));
        let prefer = parsed("postgres://u@h/db?sslmode=prefer&application_name=x", None);
        assert_eq!(prefer.url, "postgres://u@h/db?application_name=x");
        assert_eq!(prefer.tls, None);
        let require = parsed("postgres://u@h/db?sslmode=require", None);
        assert_eq!(require.url, "postgres://u@h/db?sslmode=require");
        assert_eq!(require.tls, Some(Verify::EncryptOnly));
        let verified = parsed("postgres://u@h/db?sslmode=require", Some("/ca.pem"));
        assert_eq!(verified.tls, Some(Verify::Full));
        let full = parsed(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=/x.pem",
            None,
        );
        assert_eq!(full.url, "postgres://u@h/db?sslmode=require");
        assert_eq!(full.tls, Some(Verify::Full));
        assert_eq!(full.ca_file, Some(PathBuf::from("/x.pem")));
        assert!(Target::parse("postgres://u@h/db?sslmode=sometimes", None).is_err());
    }
}
