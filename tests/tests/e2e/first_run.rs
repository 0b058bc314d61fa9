//! What a first user trips on: `/metrics` in a format Prometheus and
//! promtool read as typed, a request id on every answer (the framework's own
//! included), gzipped docs and web files, and `scripts/up` honouring `.env`.
//! Behaviour of the binaries is tested on the real `bourse-api` and
//! `bourse-worker`.

use std::{collections::HashMap, io::Read as _, net::IpAddr, path::PathBuf, time::Duration};

use diesel_async::RunQueryDsl;
use harness::{
    TestApp, TestAppBuilder, eventually, free_port,
    process::{ApiProcess, WorkerProcess},
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// The repository's root.
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// An API process with `overrides` on top of `app`'s settings, answering.
async fn api_with(app: &TestApp, overrides: &[(&str, &str)]) -> ApiProcess {
    let mut settings: HashMap<String, String> = app.settings.clone();
    for (name, value) in overrides {
        settings.insert((*name).to_owned(), (*value).to_owned());
    }
    let api = ApiProcess::spawn(&settings);
    let healthz = format!("{}/healthz", api.base_url);
    answering(&healthz).await;
    api
}

/// A worker process on `app`'s settings, answering `/healthz`; returns it
/// and its base URL.
async fn worker_for(app: &TestApp, name: &str) -> (WorkerProcess, String) {
    let worker = WorkerProcess::spawn(&app.settings, name, &[]);
    // Healthy, and every queue worker started: a queue still starting
    // counts as healthy only for a grace period, which a loaded machine
    // can outlast while the test runs.
    eventually("every queue worker started", WAIT, || async {
        let response = reqwest::get(&worker.health_url).await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body: serde_json::Value = response.json().await.ok()?;
        body["starting"]
            .as_array()
            .is_some_and(Vec::is_empty)
            .then_some(())
    })
    .await;
    let base = worker.health_url.trim_end_matches("/healthz").to_owned();
    (worker, base)
}

async fn answering(url: &str) {
    eventually(&format!("{url} to answer 200"), WAIT, || async {
        let response = reqwest::get(url).await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
}

// --- /metrics ------------------------------------------------------------------

/// promtool, installed by tests/promtool/setup.sh when missing.
fn promtool() -> PathBuf {
    let script = repo().join("tests/promtool/setup.sh");
    let output = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .expect("run tests/promtool/setup.sh");
    assert!(
        output.status.success(),
        "promtool is missing and tests/promtool/setup.sh could not install it (install Debian's `prometheus` package):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// `promtool check metrics` on `text`: its findings, or `None` when clean.
fn promtool_findings(promtool: &PathBuf, text: &str) -> Option<String> {
    use std::io::Write as _;
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (!output.status.success()).then(|| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// What Prometheus sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_prometheus_gets_labelled_openmetrics() {
    let promtool = promtool();
    let app = TestAppBuilder::new().without_worker().start().await;
    let api = api_with(&app, &[]).await;
    let (_worker, worker_url) = worker_for(&app, "metrics-worker").await;
    // Traffic, so counter series exist: requests of several routes and
    // statuses, and jobs (the rate refresh runs every second).
    let client = reqwest::Client::new();
    for path in ["/healthz", "/readyz", "/no-such-page", "/api/v1/rates"] {
        client
            .get(format!("{}{path}", api.base_url))
            .send()
            .await
            .unwrap();
    }
    for (url, counter) in [
        (api.base_url.clone(), "bourse_http_requests_total{"),
        (worker_url, "bourse_jobs_total{"),
    ] {
        eventually(&format!("{counter} series at {url}"), WAIT, || async {
            let response = client.get(format!("{url}/metrics")).send().await.ok()?;
            let text = response.text().await.ok()?;
            text.contains(counter).then_some(())
        })
        .await;

        // A client not asking for OpenMetrics (promtool, curl) gets the
        // Prometheus text format, which promtool finds clean.
        let plain = client.get(format!("{url}/metrics")).send().await.unwrap();
        assert_eq!(
            plain.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let plain = plain.text().await.unwrap();
        assert!(!plain.contains("# EOF"), "{plain}");
        if let Some(findings) = promtool_findings(&promtool, &plain) {
            panic!("promtool check metrics on {url}/metrics:\n{findings}\n{plain}");
        }

        // Prometheus asks for OpenMetrics first and gets it, labelled so.
        let open = client
            .get(format!("{url}/metrics"))
            .header("accept", PROMETHEUS_ACCEPT)
            .send()
            .await
            .unwrap();
        assert_eq!(
            open.headers()["content-type"],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        let open = open.text().await.unwrap();
        assert!(open.ends_with("# EOF\n"), "{open}");
        let family = counter.trim_end_matches("_total{");
        assert!(
            open.contains(&format!("# TYPE {family} counter\n")),
            "{open}"
        );
    }
}

// --- X-Request-Id ----------------------------------------------------------------

/// `response`'s request id; panics naming `what` when there is none.
fn request_id(what: &str, response: &reqwest::Response) -> String {
    let id = response
        .headers()
        .get("x-request-id")
        .unwrap_or_else(|| panic!("{what} ({}) has no X-Request-Id", response.status()));
    let id = id.to_str().unwrap().to_owned();
    assert!(!id.is_empty(), "{what}: empty X-Request-Id");
    id
}

fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_a_request_id() {
    let app = TestAppBuilder::new().without_worker().start().await;
    let api = api_with(
        &app,
        &[
            ("MAX_BODY_BYTES", "1024"),
            ("REQUEST_TIMEOUT_SECS", "1"),
            ("RATES_STREAM_MAX_PER_IP", "1"),
            ("RATES_STREAM_MAX_TOTAL", "2"),
        ],
    )
    .await;
    let (_worker, worker_url) = worker_for(&app, "request-id-worker").await;
    let client = reqwest::Client::new();
    let api_url = |path: &str| format!("{}{path}", api.base_url);
    let register = api_url("/api/v1/auth/register");

    let mut answers: Vec<(&str, u16, reqwest::RequestBuilder)> = vec![
        ("health", 200, client.get(api_url("/healthz"))),
        ("readiness", 200, client.get(api_url("/readyz"))),
        ("metrics", 200, client.get(api_url("/metrics"))),
        (
            "docs bundle",
            200,
            client.get(api_url("/docs/swagger-ui-bundle.js")),
        ),
        ("web page", 200, client.get(api_url("/"))),
        ("unknown route", 404, client.get(api_url("/no-such-page"))),
        ("unknown web file", 404, client.get(api_url("/web/nope.js"))),
        ("wrong method", 405, client.delete(api_url("/healthz"))),
        ("no session", 401, client.get(api_url("/api/v1/me"))),
        (
            "declared body over the limit",
            413,
            client
                .post(&register)
                .header("content-type", "application/json")
                .body(vec![b' '; 4096]),
        ),
        (
            "chunked body over the limit",
            413,
            client
                .post(&register)
                .header("content-type", "application/json")
                .body(reqwest::Body::wrap_stream(futures::stream::iter(
                    (0..8).map(|_| Ok::<_, std::io::Error>(vec![b' '; 512])),
                ))),
        ),
        (
            "wrong content type",
            415,
            client
                .post(&register)
                .header("content-type", "text/plain")
                .body("{}"),
        ),
        (
            "malformed JSON",
            400,
            client
                .post(&register)
                .header("content-type", "application/json")
                .body("{"),
        ),
        (
            "worker health",
            200,
            client.get(format!("{worker_url}/healthz")),
        ),
        (
            "worker readiness",
            200,
            client.get(format!("{worker_url}/readyz")),
        ),
        (
            "worker metrics",
            200,
            client.get(format!("{worker_url}/metrics")),
        ),
        (
            "worker unknown route",
            404,
            client.get(format!("{worker_url}/nope")),
        ),
        (
            "worker wrong method",
            405,
            client.post(format!("{worker_url}/healthz")),
        ),
    ];
    for (what, status, request) in answers.drain(..) {
        let response = request.send().await.unwrap();
        let got = response.status().as_u16();
        request_id(what, &response);
        let body = response.text().await.unwrap_or_default();
        assert_eq!(got, status, "{what}: {body}");
    }

    // A caller's own plain id comes back, from the worker too.
    let echoed = client
        .get(format!("{worker_url}/healthz"))
        .header("x-request-id", "trace-7")
        .send()
        .await
        .unwrap();
    assert_eq!(request_id("worker echo", &echoed), "trace-7");

    // The stream caps: one per address (429), two in all (503).
    let first = client_from("127.0.0.1");
    let second = client_from("127.0.0.2");
    let third = client_from("127.0.0.3");
    let stream = api_url("/api/v1/rates/stream");
    let open = first.get(&stream).send().await.unwrap();
    assert_eq!(open.status(), 200);
    request_id("open stream", &open);
    let per_ip = first.get(&stream).send().await.unwrap();
    assert_eq!(per_ip.status(), 429);
    request_id("stream over the per-address cap", &per_ip);
    let other = second.get(&stream).send().await.unwrap();
    assert_eq!(other.status(), 200);
    let total = third.get(&stream).send().await.unwrap();
    assert_eq!(total.status(), 503);
    request_id("stream over the total cap", &total);
    drop((open, other));

    // A request over REQUEST_TIMEOUT_SECS: sign-in waits on a users table
    // this test holds locked.
    let mut conn = app.conn().await;
    diesel::sql_query("BEGIN").execute(&mut conn).await.unwrap();
    diesel::sql_query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .execute(&mut conn)
        .await
        .unwrap();
    let slow = client
        .post(api_url("/api/v1/auth/login"))
        .json(&json!({ "login": "nobody", "password": "whatever-long" }))
        .send()
        .await
        .unwrap();
    diesel::sql_query("ROLLBACK")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(slow.status(), 503);
    request_id("request over the time limit", &slow);

    // A panicking handler (a route only the in-process API has; same
    // middleware as the binary).
    let panicked = app
        .client
        .get(app.url("/api/v1/test/panic"))
        .send()
        .await
        .unwrap();
    assert_eq!(panicked.status(), 500);
    request_id("panicking handler", &panicked);
}

// --- Compressed docs and web files ----------------------------------------------

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a gzip stream");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_and_web_files_are_gzipped_for_clients_that_take_it() {
    let app = TestAppBuilder::new().without_worker().start().await;
    let files = [
        (
            "/docs/swagger-ui-bundle.js",
            "api/assets/swagger-ui/swagger-ui-bundle.js",
        ),
        (
            "/docs/swagger-ui.css",
            "api/assets/swagger-ui/swagger-ui.css",
        ),
        ("/", "api/web/index.html"),
        ("/web/app.js", "api/web/app.js"),
        ("/web/api.js", "api/web/api.js"),
        ("/web/pages/market.js", "api/web/pages/market.js"),
        ("/web/style.css", "api/web/style.css"),
    ];
    for (path, file) in files {
        let original = std::fs::read(repo().join(file)).unwrap();

        let identity = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(identity.status(), 200, "{path}");
        assert!(
            !identity.headers().contains_key("content-encoding"),
            "{path}"
        );
        assert_eq!(identity.headers()["vary"], "accept-encoding", "{path}");
        assert!(
            identity.bytes().await.unwrap() == original,
            "{path}: the file as it is"
        );

        let gzipped = app
            .client
            .get(app.url(path))
            .header("accept-encoding", "gzip, deflate, br")
            .send()
            .await
            .unwrap();
        assert_eq!(gzipped.status(), 200, "{path}");
        assert_eq!(gzipped.headers()["content-encoding"], "gzip", "{path}");
        assert_eq!(gzipped.headers()["vary"], "accept-encoding", "{path}");
        let body = gzipped.bytes().await.unwrap();
        assert!(body.len() < original.len(), "{path}: smaller compressed");
        assert!(gunzip(&body) == original, "{path}: decodes to the file");
    }

    // The web page's validators name each copy, and a copy's tag revalidates.
    let gzipped = app
        .client
        .get(app.url("/web/app.js"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    let tag = gzipped.headers()["etag"].to_str().unwrap().to_owned();
    let plain = app.client.get(app.url("/web/app.js")).send().await.unwrap();
    assert_ne!(plain.headers()["etag"].to_str().unwrap(), tag);
    let revalidated = app
        .client
        .get(app.url("/web/app.js"))
        .header("accept-encoding", "gzip")
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);

    // JSON answers stay as they are.
    let json = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 200);
    assert!(!json.headers().contains_key("content-encoding"));
}

// --- scripts/up and .env ---------------------------------------------------------

/// A free port `p` with `p + 1` free too (scripts/up puts its second worker
/// on the next port).
fn two_free_ports() -> u16 {
    loop {
        let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// Drops database `name` when the test ends, however it ends.
struct DropDatabase(String);

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                &harness::db::admin_url(),
                "-qc",
                &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.0),
            ])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_up_takes_its_settings_from_dot_env_and_stops_on_ctrl_c() {
    shared::tls::install_crypto_provider();
    // A copy of the checkout's scripts next to its binaries: the test's own
    // .env must not touch the developer's. scripts/test built the binaries
    // already, so a stand-in `cargo` keeps scripts/up from building again
    // (a checkout at another path would rebuild everything).
    let root = tempdir();
    let bin = harness::process::binary("bourse-api");
    let target = bin.parent().unwrap().parent().unwrap();
    assert_eq!(bin.parent().unwrap().file_name().unwrap(), "debug");
    copy_dir(&repo().join("scripts"), &root.join("scripts"));
    std::os::unix::fs::symlink(target, root.join("target")).unwrap();
    std::fs::create_dir(root.join("bin")).unwrap();
    std::fs::write(root.join("bin/cargo"), "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(
        root.join("bin/cargo"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    let database = format!("up_{}", harness::random_suffix());
    let _drop_database = DropDatabase(database.clone());
    let admin = harness::db::admin_url();
    let database_url = format!("{}/{database}", admin.rsplit_once('/').unwrap().0);
    let http_addr = format!("127.0.0.1:{}", free_port());
    let worker_port = two_free_ports();
    let mail_dir = root.join("mail");
    let secret = format!("a-secret-from-dot-env-{}", harness::random_suffix());
    // Comments, quotes and `export`, as people write them.
    std::fs::write(
        root.join(".env"),
        format!(
            "# written by the test\n\
             export DATABASE_URL={database_url}\n\
             HTTP_ADDR=\"{http_addr}\" # the API\n\
             MAIL_OUTBOX_DIR='{}'\n\
             WORKER_HTTP_ADDR=127.0.0.1:{worker_port}\n\
             JWT_SECRET={secret}\n\
             REDIS_PREFIX=up{}\n\
             BCRYPT_COST=4\n\
             HTTP_ADDR=127.0.0.1:1\n",
            mail_dir.display(),
            harness::random_suffix(),
        ),
    )
    .unwrap();

    let path = format!(
        "{}:{}",
        root.join("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let mut up = tokio::process::Command::new("bash")
        .arg(root.join("scripts/up"))
        // Nothing from the test's own environment: .env alone decides.
        .env_clear()
        .env("PATH", path)
        .env(
            "HOME",
            std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
        )
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Whatever happens, no process of this test outlives it.
    let _stop = StopOnDrop(up.id().unwrap());

    // Migrations and demo data first; a fresh database takes a while.
    let long = Duration::from_secs(120);
    let client = reqwest::Client::new();
    let api = format!("http://{http_addr}");
    eventually("the API of scripts/up to be ready", long, || async {
        let response = client.get(format!("{api}/readyz")).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
    for port in [worker_port, worker_port + 1] {
        answering(&format!("http://127.0.0.1:{port}/healthz")).await;
    }

    // The signing key is .env's: the demo user's token verifies with it.
    let login = client
        .post(format!("{api}/api/v1/auth/login"))
        .json(&json!({ "login": "demo", "password": "bourse-demo" }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let body: serde_json::Value = login.json().await.unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    jsonwebtoken::decode::<serde_json::Value>(
        body["access_token"].as_str().unwrap(),
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .expect("the token is signed with JWT_SECRET from .env");

    // Emails land in .env's mail directory.
    let registered = client
        .post(format!("{api}/api/v1/auth/register"))
        .json(&json!({
            "username": "newcomer",
            "email": "newcomer@example.com",
            "password": "a long enough password",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    eventually(
        "the verification email in MAIL_OUTBOX_DIR",
        WAIT,
        || async {
            let entries = std::fs::read_dir(&mail_dir).ok()?;
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .then_some(())
        },
    )
    .await;

    // Ctrl-C stops everything and scripts/up exits 0.
    signal(up.id().unwrap(), "-INT").await;
    let status = tokio::time::timeout(WAIT, up.wait())
        .await
        .expect("scripts/up exits after Ctrl-C")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    for addr in [
        http_addr.clone(),
        format!("127.0.0.1:{worker_port}"),
        format!("127.0.0.1:{}", worker_port + 1),
    ] {
        eventually(&format!("nothing listening on {addr}"), WAIT, || async {
            tokio::net::TcpStream::connect(&addr)
                .await
                .is_err()
                .then_some(())
        })
        .await;
    }
    let _ = std::fs::remove_dir_all(&root);
}

async fn signal(pid: u32, signal: &str) {
    let status = tokio::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

/// SIGTERM to scripts/up (which stops its processes) when the test ends.
struct StopOnDrop(u32);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.0.to_string()])
            .status();
    }
}

/// A new empty directory in the system's temporary directory; a failing
/// test leaves it there for inspection.
fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bourse-up-{}", harness::random_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A database that does not exist is named in the error, not reported as
/// a bare "db error" (what tokio-postgres's own text says).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_database_is_named_in_the_connection_error() {
    let url = testkit::with_database(&harness::db::admin_url(), "bourse_no_such_database");
    let error = shared::db::connect(&url, None, diesel_async::StatementMode::Named)
        .await
        .err()
        .expect("no such database");
    assert!(
        error.contains("bourse_no_such_database") && error.contains("does not exist"),
        "{error}"
    );
}
