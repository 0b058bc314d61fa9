//! One PostgreSQL database per test, cloned from a template that holds the
//! migrated schema. The template is named after a hash of `migrations/`, so a
//! changed migration makes a new one; concurrent test processes agree on who
//! builds it through an advisory lock.

use std::{path::Path, sync::OnceLock};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use sha2::{Digest, Sha256};

/// Server-level URL used to create and drop databases.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `host:port` of the PostgreSQL server the tests use.
pub fn server_addr() -> String {
    let url = admin_url();
    let after_scheme = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let host = after_scheme
        .rsplit_once('@')
        .map_or(after_scheme, |(_, host)| host);
    host.split('/')
        .next()
        .unwrap_or("127.0.0.1:5432")
        .to_owned()
}

/// `url` with its host and port replaced by 127.0.0.1:`port` (a proxy).
pub fn through(url: &str, port: u16) -> String {
    url.replacen(&server_addr(), &format!("127.0.0.1:{port}"), 1)
}

use testkit::with_database;

fn migrations_hash() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut files: Vec<_> = walk(&dir);
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        // Relative names: every checkout of the same migrations (a second
        // worktree, CI's clean clone) shares one template.
        let relative = file.strip_prefix(&dir).unwrap_or(&file);
        hasher.update(relative.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&file).unwrap_or_default());
    }
    hex::encode(hasher.finalize())[..12].to_owned()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

fn epoch_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

pub fn template_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| format!("bourse_tmpl_{}", migrations_hash()))
}

async fn admin() -> AsyncPgConnection {
    AsyncPgConnection::establish(&admin_url())
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL at {}: {e}", admin_url()))
}

async fn exec(conn: &mut AsyncPgConnection, sql: &str) {
    diesel::sql_query(sql)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    datname: String,
}

async fn ensure_template() {
    let mut conn = admin().await;
    exec(&mut conn, "SELECT pg_advisory_lock(7262099)").await;
    let name = template_name();
    let stale: Vec<Name> = diesel::sql_query(
        "SELECT datname::text AS datname FROM pg_database WHERE datname LIKE 'bourse_tmpl_%' \
         AND coalesce(shobj_description(oid, 'pg_database'), '0')::bigint \
             < extract(epoch FROM now())::bigint - 86400",
    )
    .load(&mut conn)
    .await
    .unwrap_or_default();
    let exists: Vec<Name> = diesel::sql_query(format!(
        "SELECT datname::text AS datname FROM pg_database WHERE datname = '{name}'"
    ))
    .load(&mut conn)
    .await
    .unwrap_or_default();
    if exists.is_empty() {
        // Templates of other migrations are dead weight once nobody has
        // built them for a day; a younger one may belong to another
        // checkout testing other migrations right now.
        for old in stale {
            exec(
                &mut conn,
                &format!("ALTER DATABASE {} IS_TEMPLATE false", old.datname),
            )
            .await;
            exec(
                &mut conn,
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", old.datname),
            )
            .await;
        }
        let building = format!("{name}_build");
        exec(
            &mut conn,
            &format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"),
        )
        .await;
        exec(&mut conn, &format!("CREATE DATABASE {building}")).await;
        let target = shared::db::connect(
            &with_database(&admin_url(), &building),
            None,
            diesel_async::StatementMode::Named,
        )
        .await
        .unwrap_or_else(|e| panic!("connecting to the test template failed: {e}"));
        shared::db::run_migrations(target)
            .await
            .unwrap_or_else(|e| panic!("migrating the test template failed: {e}"));
        // The migration connection closes asynchronously; renaming needs it gone.
        let rename = format!("ALTER DATABASE {building} RENAME TO {name}");
        let mut tries = 0;
        while let Err(error) = diesel::sql_query(&rename).execute(&mut conn).await {
            tries += 1;
            assert!(tries < 100, "{rename}: {error}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        exec(
            &mut conn,
            &format!("ALTER DATABASE {name} IS_TEMPLATE true ALLOW_CONNECTIONS false"),
        )
        .await;
    }
    // When it was last wanted (seconds since the epoch), for the clean-up
    // of other checkouts above.
    exec(
        &mut conn,
        &format!("COMMENT ON DATABASE {name} IS '{}'", epoch_seconds()),
    )
    .await;
    exec(&mut conn, "SELECT pg_advisory_unlock(7262099)").await;
}

/// A fresh, migrated database, dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new() -> Self {
        ensure_template().await;
        let name = format!("bourse_test_{}", crate::random_suffix());
        let mut conn = admin().await;
        exec(
            &mut conn,
            &format!("CREATE DATABASE {name} TEMPLATE {}", template_name()),
        )
        .await;
        let url = with_database(&admin_url(), &name);
        Self { name, url }
    }

    pub async fn conn(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.name))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // FORCE also closes connections a test's pool still holds. Drop runs
        // outside any runtime guarantee, so use a private one on a thread.
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = AsyncPgConnection::establish(&admin_url()).await {
                    let _ =
                        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .execute(&mut conn)
                            .await;
                }
            });
        })
        .join();
    }
}
