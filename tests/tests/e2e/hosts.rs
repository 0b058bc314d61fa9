//! Bourse across hosts (ISSUE 21, item 2): `bourse-bench hosts`, small,
//! run as a test. PostgreSQL and Redis on a data host, the API and
//! workers on three more, each a network namespace with its own address,
//! 2 ms ± 1 ms between them, one worker host's clock 3 s ahead and one
//! 3 s behind; a worker SIGKILLed mid-run and another SIGSTOPped past its
//! lease. The scenario itself fails on a payout made twice, a probe run
//! twice with every host up, a missing payout or a red ledger check; this
//! test also checks from its report that the hosts were real: the links
//! delayed what crossed them and the skewed clocks were off.
//!
//! Needs root (namespaces), Debian's faketime (tests/faketime/setup.sh)
//! and PostgreSQL's server programs (initdb), all on this machine.

use std::{collections::HashMap, process::Command};

use harness::process::binary;

/// `key=value` pairs of the scenario's report line.
fn report(stdout: &str) -> HashMap<String, String> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("scenario=hosts"))
        .unwrap_or_else(|| panic!("no report line in: {stdout}"));
    line.split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn settlement_across_hosts_survives_a_killed_and_a_frozen_worker_with_skewed_clocks() {
    // Installed by its setup script when missing (the skew of hosts b, c).
    super::leases::libfaketime();
    let output = Command::new(binary("bourse-bench"))
        .args([
            "hosts", "--probes", "1000", "--bets", "600", "--spread", "24",
        ])
        // A 3 s lease: the frozen worker's jobs are taken over well
        // before it wakes, 20 s later.
        .args([
            "--concurrency",
            "8",
            "--freeze-secs",
            "12",
            "--lease-secs",
            "3",
        ])
        // The scenario makes its own data host; these only satisfy the
        // configuration every scenario loads.
        .env(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        )
        .env("JWT_SECRET", "hosts-test-secret-hosts-test-secret")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "bourse-bench hosts failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let r = report(&stdout);
    let number = |key: &str| -> f64 {
        r.get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{key} missing from {r:?}"))
    };
    assert_eq!(number("settled"), 600.0, "{r:?}");
    assert_eq!(number("payouts"), 600.0, "{r:?}");
    assert_eq!(number("double_payouts"), 0.0, "{r:?}");
    assert_eq!(number("probe_repeats_without_faults"), 0.0, "{r:?}");
    assert_eq!(r.get("ledger_ok").map(String::as_str), Some("true"));
    assert_eq!(r.get("api_ready").map(String::as_str), Some("true"));
    // The links delayed what crossed them, by 1–3 ms a chunk (tokio's
    // timer rounds up to the next millisecond).
    assert!(number("chunks_delayed") > 1000.0, "{r:?}");
    let delay = number("link_delay_ms_mean");
    assert!((1.0..=3.0).contains(&delay), "{r:?}");
    // The skewed hosts' workers started by clocks 3 s off, each way: each
    // offset is the skew plus the worker's start-up time (well under
    // 1.5 s).
    let offsets = r.get("clock_offsets_s").cloned().unwrap_or_default();
    let offset = |host: &str| -> f64 {
        offsets
            .split(',')
            .find_map(|o| o.strip_prefix(host))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no offset for {host} in {offsets}"))
    };
    assert!(offset("b:") >= 2.9, "{offsets}");
    assert!(offset("c:") <= -1.5, "{offsets}");
    assert!(number("kill_worst_late_s").is_finite(), "{r:?}");
    // What the frozen worker held was settled by the others while it
    // slept: its lease ran out, its jobs were taken over, and PostgreSQL
    // ended its transaction (DATABASE_IDLE_TRANSACTION_TIMEOUT_MS), so its
    // row locks did not hold them up until it woke.
    assert!(
        number("freeze_worst_late_s") < number("freeze_s"),
        "the bets a frozen worker held waited for it to wake: {r:?}"
    );
}

/// The server ends a transaction whose process stopped talking mid-way,
/// and its locks go with it: with DATABASE_IDLE_TRANSACTION_TIMEOUT_MS
/// unset on the session, the lock below is held until the process wakes
/// (for ever here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_whose_process_froze_releases_its_locks_after_the_idle_timeout() {
    use diesel_async::{AsyncConnection as _, SimpleAsyncConnection as _};
    let app = harness::TestAppBuilder::new()
        .without_worker()
        .env("DATABASE_IDLE_TRANSACTION_TIMEOUT_MS", 300)
        .start()
        .await;
    let pool = shared::db::pool(&app.config.database, "frozen").unwrap();
    let mut frozen = pool.get().await.unwrap();
    frozen
        .batch_execute("BEGIN; SELECT pg_advisory_xact_lock(4242)")
        .await
        .unwrap();
    // The process "freezes": it sends nothing more.
    let mut other = diesel_async::AsyncPgConnection::establish(&app.db.url)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while other
        .batch_execute(
            "BEGIN; DO $$ BEGIN IF NOT pg_try_advisory_xact_lock(4242) THEN RAISE 'held'; END IF; END $$; COMMIT",
        )
        .await
        .is_err()
    {
        let _ = other.batch_execute("ROLLBACK").await;
        assert!(
            std::time::Instant::now() < deadline,
            "the frozen transaction still holds its lock after 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // When it wakes, its transaction is gone: the next statement fails
    // (and the pool will not hand that connection out again).
    assert!(frozen.batch_execute("SELECT 1").await.is_err());
}
