//! PostgreSQL and Redis that speak TLS only, for one test: a private
//! certificate authority and a server certificate for `127.0.0.1` and
//! `localhost` (made with the `openssl` command), a PostgreSQL cluster
//! started with `ssl=on` and `hostssl` as its only way in, and a
//! `redis-server` listening on a TLS port only.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::process::{Child, Command};

/// Where PostgreSQL 15's server programs are on Debian.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

use crate::free_port;

fn run(program: &str, args: &[&str]) {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA and a server certificate it signed, in a temporary folder.
pub struct Certificates {
    pub dir: PathBuf,
}

impl Certificates {
    pub fn make() -> Self {
        let dir = std::env::temp_dir().join(format!("bourse-tls-{}", crate::random_suffix()));
        std::fs::create_dir_all(&dir).expect("certificate folder");
        let p = |name: &str| dir.join(name).display().to_string();
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=Bourse test CA",
                "-keyout",
                &p("ca.key"),
                "-out",
                &p("ca.pem"),
            ],
        );
        run(
            "openssl",
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                &p("server.key"),
                "-out",
                &p("server.csr"),
            ],
        );
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("extensions file");
        run(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                &p("server.csr"),
                "-CA",
                &p("ca.pem"),
                "-CAkey",
                &p("ca.key"),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &p("server.ext"),
                "-out",
                &p("server.pem"),
            ],
        );
        Self { dir }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL cluster of its own, reachable over TLS only.
pub struct TlsPostgres {
    pub port: u16,
    dir: PathBuf,
}

impl TlsPostgres {
    /// Starts it with `certificates`' server certificate. PostgreSQL
    /// refuses to run as root, so the cluster belongs to `postgres`.
    pub async fn start(certificates: &Certificates) -> Self {
        assert!(
            Path::new(PG_BIN).join("initdb").exists(),
            "{PG_BIN}/initdb is missing: PostgreSQL 15's server package is needed"
        );
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("bourse-pg-tls-{}", crate::random_suffix()));
        std::fs::create_dir_all(&dir).expect("cluster folder");
        let data = dir.join("data");
        // The key must be the server user's and private to it.
        let key = dir.join("server.key");
        let cert = dir.join("server.pem");
        std::fs::copy(certificates.server_key(), &key).expect("copy key");
        std::fs::copy(certificates.server_cert(), &cert).expect("copy certificate");
        run("chmod", &["600", &key.display().to_string()]);
        run(
            "chown",
            &["-R", "postgres:postgres", &dir.display().to_string()],
        );
        let as_postgres = |args: &[&str]| {
            let mut all = vec!["-u", "postgres", "--"];
            all.extend_from_slice(args);
            run("runuser", &all);
        };
        as_postgres(&[
            &format!("{PG_BIN}/initdb"),
            "-D",
            &data.display().to_string(),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ]);
        let conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nfsync = off\n",
            dir.display(),
            cert.display(),
            key.display()
        );
        append(&data.join("postgresql.conf"), &conf);
        // TLS is the only way in over TCP: plain connections are refused.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("pg_hba.conf");
        run(
            "chown",
            &["-R", "postgres:postgres", &dir.display().to_string()],
        );
        as_postgres(&[
            &format!("{PG_BIN}/pg_ctl"),
            "-D",
            &data.display().to_string(),
            "-l",
            &dir.join("log").display().to_string(),
            "-w",
            "start",
        ]);
        Self { port, dir }
    }

    /// A URL with `query` (say `sslmode=verify-full`) to database `name`.
    pub fn url(&self, name: &str, query: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}?{query}", self.port)
    }

    /// Creates database `name` over the local socket.
    pub fn create_database(&self, name: &str) {
        run(
            "runuser",
            &[
                "-u",
                "postgres",
                "--",
                "psql",
                "-h",
                &self.dir.display().to_string(),
                "-p",
                &self.port.to_string(),
                "-d",
                "postgres",
                "-qc",
                &format!("CREATE DATABASE {name}"),
            ],
        );
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for appending");
    file.write_all(text.as_bytes()).expect("append");
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                &format!("{PG_BIN}/pg_ctl"),
                "-D",
                &self.dir.join("data").display().to_string(),
                "-m",
                "immediate",
                "stop",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `redis-server` listening on a TLS port only.
pub struct TlsRedis {
    pub port: u16,
    _child: Child,
}

impl TlsRedis {
    pub async fn start(certificates: &Certificates) -> Self {
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--tls-cert-file",
                &certificates.server_cert().display().to_string(),
                "--tls-key-file",
                &certificates.server_key().display().to_string(),
                "--tls-ca-cert-file",
                &certificates.ca().display().to_string(),
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start redis-server (is it installed?)");
        crate::eventually(
            "the TLS Redis port to open",
            Duration::from_secs(10),
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(drop)
            },
        )
        .await;
        Self {
            port,
            _child: child,
        }
    }

    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/0", self.port)
    }
}
