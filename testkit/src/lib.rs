//! What the end-to-end tests (`tests/src`, the `harness`) and the bench
//! (`bench/`) both need to run Bourse's processes beside them: a free
//! port, a scratch database's URL, signals and a graceful stop. Small on
//! purpose: anything with a policy of its own (the tests' migrated
//! template, the bench's release binaries) stays with its user.

pub mod hosts;

use std::{net::TcpListener, process::ExitStatus, time::Duration};

use tokio::process::{Child, Command};

/// A port nobody listens on now on 127.0.0.1 (the OS picks it; it stays
/// free until someone binds it).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `url` (a PostgreSQL URL) naming database `name` instead of its own.
pub fn with_database(url: &str, name: &str) -> String {
    let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
    format!("{base}/{name}")
}

/// Sends `signal` (`-TERM`, `-STOP`, `-CONT`, ...) to process `pid` with
/// kill(1): tokio's `Child` can only send SIGKILL.
pub async fn signal(pid: u32, signal: &str) -> std::io::Result<ExitStatus> {
    Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .await
}

/// SIGTERM, then up to `grace` for the process to exit (draining what it
/// holds), then SIGKILL.
pub async fn stop(child: &mut Child, grace: Duration) {
    if let Some(pid) = child.id() {
        let _ = signal(pid, "-TERM").await;
    }
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_can_be_bound() {
        let port = free_port().unwrap();
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
    }

    #[test]
    fn the_database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/bourse", "bourse_test_1"),
            "postgres://u:p@h:5432/bourse_test_1"
        );
    }

    #[tokio::test]
    async fn stop_ends_a_process_that_ignores_nothing() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        stop(&mut child, Duration::from_secs(5)).await;
        assert!(child.try_wait().unwrap().is_some());
    }
}
