//! Waiting for PostgreSQL and Redis at start.
//!
//! Processes start in any order (an orchestrator starts everything at once,
//! a machine reboots, a database restarts under a running worker): rather
//! than crash and be restarted in a loop, a process retries each dependency
//! with exponential backoff, says on one log line per try what it waits for
//! and why, and gives up only after `STARTUP_WAIT_SECS` (0: never).
//!
//! The PostgreSQL checks are here; Redis's (`PING`) is
//! `queue::wait_until_reachable`, over this module's [`wait_for`].

use std::{future::Future, time::Duration};

use tokio::time::Instant;

/// First pause between tries; doubled up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// A dependency that did not come up in time.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what} at {target} still unreachable after {waited_secs} s (STARTUP_WAIT_SECS): {last_error}"
)]
pub struct NotReachable {
    pub what: &'static str,
    pub target: String,
    pub waited_secs: u64,
    pub last_error: String,
}

/// Tries `check` until it succeeds or `limit` passes.
///
/// `what` names the dependency for the log (`PostgreSQL`), `target` says
/// where it is, without credentials (see [`redact`]).
pub async fn wait_for<F, Fut>(
    what: &'static str,
    target: &str,
    limit: Option<Duration>,
    mut check: F,
) -> Result<(), NotReachable>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    let mut pause = FIRST_PAUSE;
    let mut tries: u32 = 0;
    loop {
        tries += 1;
        let error = match check().await {
            Ok(()) => {
                if tries > 1 {
                    tracing::info!(
                        dependency = what,
                        target,
                        tries,
                        waited_ms = started.elapsed().as_millis() as u64,
                        "{what} is reachable; starting"
                    );
                }
                return Ok(());
            }
            Err(error) => error,
        };
        if let Some(limit) = limit
            && started.elapsed() + pause > limit
        {
            return Err(NotReachable {
                what,
                target: target.to_owned(),
                waited_secs: started.elapsed().as_secs(),
                last_error: error,
            });
        }
        tracing::warn!(
            dependency = what,
            target,
            %error,
            retry_in_ms = pause.as_millis() as u64,
            "waiting for {what} at {target}: {error}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// `scheme://host:port/path` of a URL, without user, password or query:
/// safe to log.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    if scheme.is_empty() {
        rest.to_owned()
    } else {
        format!("{scheme}://{rest}")
    }
}

/// Waits for PostgreSQL to answer through `pool`.
pub async fn wait_for_postgres(
    pool: &crate::db::DbPool,
    url: &str,
    limit: Option<Duration>,
) -> Result<(), NotReachable> {
    wait_for("PostgreSQL", &redact(url), limit, || crate::db::ping(pool)).await
}

/// Waits until a connection to the database can be opened (before
/// migrating).
pub async fn wait_for_connection(
    database: &crate::config::DatabaseConfig,
    limit: Option<Duration>,
) -> Result<(), NotReachable> {
    use secrecy::ExposeSecret as _;
    let url = database.url.expose_secret();
    wait_for("PostgreSQL", &redact(url), limit, || async {
        crate::db::connect_for_migrations(database).await.map(drop)
    })
    .await
}

/// Waits until the database has every migration this build knows (the
/// `migrate` step of a deployment may still be running).
pub async fn wait_for_migrations(
    database: &crate::config::DatabaseConfig,
    limit: Option<Duration>,
) -> Result<(), NotReachable> {
    use secrecy::ExposeSecret as _;
    let url = database.url.expose_secret();
    wait_for("the database migrations", &redact(url), limit, || async {
        match crate::db::pending_migrations(database).await {
            Ok(0) => Ok(()),
            Ok(n) => Err(format!("{n} not applied yet (run `bourse-api migrate`)")),
            Err(error) => Err(error),
        }
    })
    .await
}

/// A readiness check's answer to the outside: `ok` or `failing`. The
/// reason of a failure (a connection error naming hosts and ports) is
/// logged, never answered to whoever asks `/readyz`.
pub fn readiness_verdict(check: &str, outcome: Result<(), String>) -> &'static str {
    match outcome {
        Ok(()) => "ok",
        Err(error) => {
            tracing::warn!(check, %error, "readiness check failing");
            "failing"
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn redact_drops_credentials_and_query() {
        assert_eq!(
            redact("postgres://bourse:secret@db:5432/bourse?sslmode=require"),
            "postgres://db:5432/bourse"
        );
        assert_eq!(redact("redis://:pw@redis:6379/0"), "redis://redis:6379/0");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[tokio::test]
    async fn retries_with_backoff_until_the_check_passes() {
        let tries = AtomicU32::new(0);
        let result = wait_for("thing", "here", Some(Duration::from_secs(60)), || async {
            if tries.fetch_add(1, Ordering::SeqCst) < 2 {
                Err("refused".to_owned())
            } else {
                Ok(())
            }
        })
        .await;
        assert!(result.is_ok());
        assert_eq!(tries.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn gives_up_after_the_limit_naming_the_setting() {
        let error = wait_for(
            "thing",
            "here",
            Some(Duration::from_millis(300)),
            || async { Err::<(), _>("refused".to_owned()) },
        )
        .await
        .unwrap_err();
        assert!(error.to_string().contains("STARTUP_WAIT_SECS"), "{error}");
        assert!(error.to_string().contains("refused"), "{error}");
    }
}
