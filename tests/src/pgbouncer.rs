//! A PgBouncer of one test's own, in transaction pooling mode, in front of
//! the test PostgreSQL server: Debian's `pgbouncer` (1.18, which keeps no
//! prepared statements across transactions), installed by
//! `tests/pgbouncer/setup.sh`.
//!
//! It is set up as a deployment would be (README, "PgBouncer"): the server
//! sessions get their `statement_timeout` from `connect_query`, since a
//! client's own `SET` would not survive the next transaction, and a pool
//! smaller than the clients' pools, so that transactions really do move
//! between server sessions.

use std::{path::PathBuf, process::Stdio, time::Duration};

use tokio::process::{Child, Command};

/// Server sessions PgBouncer keeps per database and user: fewer than the
/// processes' pools hold together (`DATABASE_POOL_SIZE=5` per process), so
/// a client's consecutive transactions land on different sessions.
const SERVER_POOL_SIZE: u32 = 4;

pub struct PgBouncer {
    pub port: u16,
    dir: PathBuf,
    _child: Child,
}

impl PgBouncer {
    pub async fn start() -> Self {
        let program = setup();
        let port = crate::free_port();
        let dir = std::env::temp_dir().join(format!("bourse-pgbouncer-{}", crate::random_suffix()));
        std::fs::create_dir_all(&dir).expect("create the PgBouncer directory");
        let (host, server_port) = crate::db::server_addr()
            .rsplit_once(':')
            .map(|(h, p)| (h.to_owned(), p.to_owned()))
            .expect("the test server's host:port");
        let auth_file = dir.join("userlist.txt");
        std::fs::write(&auth_file, "\"postgres\" \"\"\n\"root\" \"\"\n")
            .expect("write PgBouncer's auth file");
        let ini = format!(
            "[databases]\n\
             * = host={host} port={server_port} connect_query='SET statement_timeout = 15000; SET idle_in_transaction_session_timeout = 5000'\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {auth}\n\
             pool_mode = transaction\n\
             default_pool_size = {SERVER_POOL_SIZE}\n\
             max_client_conn = 1000\n\
             ignore_startup_parameters = extra_float_digits\n\
             server_reset_query =\n",
            auth = auth_file.display(),
        );
        let ini_path = dir.join("pgbouncer.ini");
        std::fs::write(&ini_path, ini).expect("write pgbouncer.ini");
        // It logs to standard error, into a file opened here: as root it
        // must drop to another user (it refuses to run as root), who could
        // not create files in this directory.
        let log = std::fs::File::create(dir.join("pgbouncer.log")).expect("create the log");
        let mut command = Command::new(program);
        if is_root() {
            command.args(["-u", "nobody"]);
        }
        let child = command
            .arg(&ini_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start pgbouncer");
        let bouncer = Self {
            port,
            dir,
            _child: child,
        };
        let url = bouncer.url(&crate::db::admin_url());
        crate::eventually("PgBouncer to answer", Duration::from_secs(20), || {
            let url = url.clone();
            async move {
                let statements = diesel_async::StatementMode::Unnamed;
                let mut conn = shared::db::connect(&url, None, statements).await.ok()?;
                diesel_async::RunQueryDsl::execute(diesel::sql_query("SELECT 1"), &mut conn)
                    .await
                    .ok()
            }
        })
        .await;
        bouncer
    }

    /// `database_url` (a URL of the test server) through this PgBouncer.
    pub fn url(&self, database_url: &str) -> String {
        crate::db::through(database_url, self.port)
    }

    /// PgBouncer's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Runs `tests/pgbouncer/setup.sh` (installs Debian's package when
/// missing) and returns the program's path; panics when it cannot be had.
fn setup() -> PathBuf {
    let script = crate::docker::workspace().join("tests/pgbouncer/setup.sh");
    let output = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .expect("run tests/pgbouncer/setup.sh");
    assert!(
        output.status.success(),
        "tests/pgbouncer/setup.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}
