//! The OpenAPI document is the API's contract. Its snapshot is a unit test
//! of the `api` crate (`api/src/openapi_snapshot.rs`, insta), so every
//! contract change shows in review.
//!
//! - `schemathesis_finds_no_contract_failure`: the property-based fuzzer
//!   Schemathesis (installed by `tests/contract/setup.sh`, run by
//!   `scripts/test` and again here) runs every operation but the SSE stream
//!   against the real `bourse-api` binary, as a verified user and as an
//!   administrator, with `--checks all` and a fresh seed each run. Anything
//!   it finds beyond `tests/contract/baseline.json` fails the test with its
//!   report. When Schemathesis cannot be installed the test fails: it never
//!   skips.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use harness::{TestApp, TestAppBuilder, eventually, process::ApiProcess};
use reqwest::Method;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "correct horse battery";
const ADMIN_PASSWORD: &str = "admin horse battery";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

fn contract_dir() -> PathBuf {
    repo_root().join("tests/contract")
}

/// Installs Schemathesis when missing; panics (with the installer's output)
/// when that fails. Returns the `st` executable.
async fn schemathesis() -> PathBuf {
    let output = tokio::process::Command::new("bash")
        .arg(contract_dir().join("setup.sh"))
        .output()
        .await
        .expect("bash runs tests/contract/setup.sh");
    assert!(
        output.status.success(),
        "Schemathesis is missing and could not be installed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo_root().join("target"), PathBuf::from);
    let st = target.join("contract-venv/bin/st");
    assert!(
        st.exists(),
        "{} is missing after tests/contract/setup.sh",
        st.display()
    );
    st
}

/// Every entry of the baseline says why it is accepted.
fn check_baseline(path: &Path) {
    let text = std::fs::read_to_string(path).expect("tests/contract/baseline.json is readable");
    let baseline: Value = serde_json::from_str(&text).expect("the baseline is JSON");
    for entry in baseline["entries"].as_array().expect("baseline entries") {
        let reason = entry["reason"].as_str().unwrap_or_default();
        assert!(
            !reason.trim().is_empty() && !reason.contains('\n'),
            "every baseline entry needs a one-line `reason`: {entry}"
        );
    }
}

/// Limits that would throttle the fuzzer into noise (every request comes
/// from one address and a handful of accounts). The limits themselves are
/// tested in security.rs and auth.rs.
const UNTHROTTLED: &[&str] = &[
    "RATE_LIMIT_LOGIN_PER_IP",
    "RATE_LIMIT_LOGIN_PER_ACCOUNT",
    "RATE_LIMIT_REGISTER_PER_IP",
    "RATE_LIMIT_RESEND_PER_IP",
    "RATE_LIMIT_RESEND_PER_ACCOUNT",
    "RATE_LIMIT_RESET_PER_IP",
    "RATE_LIMIT_RESET_PER_ACCOUNT",
    "RATE_LIMIT_VERIFY_PER_IP",
    "RATE_LIMIT_VERIFY_PER_ACCOUNT",
    "RATE_LIMIT_CURRENT_PASSWORD_PER_ACCOUNT",
    "RATE_LIMIT_ALERT_CREATE_PER_ACCOUNT",
];

async fn start() -> (TestApp, ApiProcess) {
    let mut builder = TestAppBuilder::new()
        // The fuzzer's token must outlive the run.
        .env("ACCESS_TOKEN_TTL_SECS", "3600")
        // A second code for one address within the cool-down is 429 (tested
        // in registration.rs); here it would hide the endpoints behind it.
        .env("CODE_RESEND_COOLDOWN_SECS", "0");
    for name in UNTHROTTLED {
        builder = builder.env(name, "1000000/60");
    }
    // The in-process worker sends the verification emails and keeps the
    // simulated prices fresh, so orders and bets can be placed throughout.
    let mut app = builder.start().await;
    let api = ApiProcess::spawn(&app.settings);
    let ready = format!("{}/readyz", api.base_url);
    eventually("bourse-api to be ready", WAIT, || async {
        let response = reqwest::get(&ready).await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
    app.base_url = api.base_url.clone();
    (app, api)
}

async fn create_admin(app: &TestApp, username: &str) {
    let output = tokio::process::Command::new(harness::process::binary("bourse-api"))
        .args([
            "admin",
            "create",
            "--username",
            username,
            "--email",
            &format!("{username}@example.com"),
        ])
        .envs(&app.settings)
        .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
        .current_dir(std::env::temp_dir())
        .output()
        .await
        .expect("bourse-api admin create runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn created(app: &TestApp, access: &str, path: &str, body: Value) -> Value {
    let reply = app.send_as(Method::POST, path, access, &body).await;
    assert!(
        reply.status == 201 || reply.status == 200,
        "{path}: {} {}",
        reply.status,
        reply.body
    );
    reply.body
}

/// Wallets with money, an order, a bet and an alert, so the operations
/// that read them have something to read.
async fn seed(app: &TestApp, access: &str) {
    let usd = created(app, access, "/api/v1/wallets", json!({ "currency": "USD" })).await;
    created(app, access, "/api/v1/wallets", json!({ "currency": "EUR" })).await;
    let usd_id = usd["id"].as_str().expect("wallet id");
    created(
        app,
        access,
        &format!("/api/v1/wallets/{usd_id}/deposit"),
        json!({ "amount": "100000.00" }),
    )
    .await;
    created(
        app,
        access,
        "/api/v1/orders/buy",
        json!({ "currency": "BTC", "amount": "0.01" }),
    )
    .await;
    created(
        app,
        access,
        "/api/v1/bets",
        json!({ "symbol": "BTC", "direction": "up", "stake": "10.00", "leverage": 2, "duration_seconds": 3600 }),
    )
    .await;
    created(
        app,
        access,
        "/api/v1/alerts",
        json!({ "symbol": "BTC", "target_price": "1000000", "direction": "above" }),
    )
    .await;
}

/// One Schemathesis run; returns its exit status and its report.
async fn fuzz(
    st: &Path,
    base_url: &str,
    token: &str,
    seed: u64,
    selection: &[&str],
    max_time: u64,
) -> (bool, String) {
    let work = std::env::temp_dir().join(format!("bourse-contract-{}", harness::random_suffix()));
    std::fs::create_dir_all(&work).expect("a scratch folder");
    let mut command = tokio::process::Command::new(st);
    command
        .arg("--config-file")
        .arg(contract_dir().join("schemathesis.toml"))
        .arg("--no-color")
        .arg("run")
        .arg(format!("{base_url}/api/v1/openapi.json"))
        .args(["--url", base_url])
        .args(["--checks", "all"])
        .args(["--seed", &seed.to_string()])
        .args(["--max-time", &max_time.to_string()])
        .arg("--baseline")
        .arg(contract_dir().join("baseline.json"))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(selection)
        // Nothing is written into the checkout (no .hypothesis folder).
        .args(["--generation-database", "none"])
        .current_dir(&work)
        .kill_on_drop(true);
    let output = command.output().await.expect("st runs");
    let _ = std::fs::remove_dir_all(&work);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_contract_failure() {
    let st = schemathesis().await;
    check_baseline(&contract_dir().join("baseline.json"));
    let (app, mut api) = start().await;

    app.register_verified("fuzz_user", "fuzz_user@example.com", PASSWORD)
        .await;
    let user = app.login("fuzz_user", PASSWORD).await;
    create_admin(&app, "fuzz_admin").await;
    let admin = app.login("fuzz_admin", ADMIN_PASSWORD).await;
    // Signing out ends the session whose token signs the request, so
    // `/auth/logout` gets a session of its own.
    let leaving = app.login("fuzz_user", PASSWORD).await;
    app.set_prices(&[("BTC", "50000"), ("ETH", "3000"), ("SOL", "150")])
        .await;
    seed(&app, &user.access).await;
    seed(&app, &admin.access).await;

    let seed = std::env::var("CONTRACT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("schemathesis seed: {seed} (replay with CONTRACT_SEED={seed})");

    let url = api.base_url.clone();
    let everything = [
        "--exclude-path",
        "/api/v1/rates/stream",
        "--exclude-path",
        "/api/v1/auth/logout",
    ];
    let (as_user, as_admin, logout) = tokio::join!(
        fuzz(&st, &url, &user.access, seed, &everything, 60),
        fuzz(&st, &url, &admin.access, seed, &everything, 60),
        fuzz(
            &st,
            &url,
            &leaving.access,
            seed,
            &["--include-path", "/api/v1/auth/logout"],
            10
        ),
    );
    assert!(
        api.exit_status().is_none(),
        "bourse-api exited during the run:\n{}",
        api.log()
    );
    let mut failed = Vec::new();
    for (who, (ok, report)) in [
        ("verified user", as_user),
        ("administrator", as_admin),
        ("logout", logout),
    ] {
        println!("===== schemathesis as {who} =====\n{report}");
        if !ok {
            failed.push(who);
        }
    }
    assert!(
        failed.is_empty(),
        "schemathesis found contract failures not in tests/contract/baseline.json \
         (runs: {failed:?}; seed {seed}, replay with CONTRACT_SEED={seed}); the reports are above"
    );
}
