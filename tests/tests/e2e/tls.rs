//! TLS to PostgreSQL and Redis, as managed services require it: the real
//! binaries migrate, serve and run jobs against a PostgreSQL that accepts
//! TLS connections only and a Redis on a TLS port only, both with a
//! certificate of a private CA the test makes.

use std::time::Duration;

use harness::{
    TestAppBuilder, eventually,
    process::{ApiProcess, WorkerProcess},
    tls_servers::{Certificates, TlsPostgres, TlsRedis},
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

async fn status(url: &str) -> Option<u16> {
    reqwest::get(url).await.ok().map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binaries_run_on_tls_only_postgres_and_redis() {
    let certificates = Certificates::make();
    let postgres = TlsPostgres::start(&certificates).await;
    let redis = TlsRedis::start(&certificates).await;
    postgres.create_database("bourse");
    // The test's own SMTP receiver and settings; its API and database are
    // not used here.
    let app = TestAppBuilder::new().without_worker().start().await;
    let ca = certificates.ca().display().to_string();
    let mut settings = app.settings.clone();
    settings.insert(
        "DATABASE_URL".into(),
        postgres.url("bourse", "sslmode=verify-full"),
    );
    settings.insert("DATABASE_CA_FILE".into(), ca.clone());
    settings.insert("REDIS_URL".into(), redis.url());
    settings.insert("REDIS_CA_FILE".into(), ca.clone());

    // Migrations over TLS, verifying the server against the CA.
    let migrate = tokio::process::Command::new(harness::process::binary("bourse-api"))
        .arg("migrate")
        .envs(&settings)
        .current_dir(std::env::temp_dir())
        .output()
        .await
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );

    let api = ApiProcess::spawn(&settings);
    let _worker = WorkerProcess::spawn(&settings, "tls-worker", &[]);
    eventually("the API to be ready over TLS", WAIT, || async {
        (status(&format!("{}/readyz", api.base_url)).await == Some(200)).then_some(())
    })
    .await;
    // A job goes through Redis and PostgreSQL: the verification email.
    let registered = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/register", api.base_url))
        .json(
            &json!({ "username": "ada", "email": "ada@example.com", "password": "correct horse" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status().as_u16(), 201);
    let mail = app.smtp.wait_for("ada@example.com", WAIT).await;
    assert!(mail.subject().starts_with("Your Bourse verification code"));

    // `sslmode=require` with the CA in the URL verifies too; plain text is
    // refused by this server, and a certificate from an unknown CA is
    // refused by us.
    let mut in_url = settings.clone();
    in_url.remove("DATABASE_CA_FILE");
    in_url.insert(
        "DATABASE_URL".into(),
        postgres.url("bourse", &format!("sslmode=require&sslrootcert={ca}")),
    );
    let mut plain = settings.clone();
    plain.insert(
        "DATABASE_URL".into(),
        postgres.url("bourse", "sslmode=disable"),
    );
    let other_ca = Certificates::make();
    let mut untrusted = settings.clone();
    untrusted.insert(
        "DATABASE_CA_FILE".into(),
        other_ca.ca().display().to_string(),
    );
    untrusted.insert("REDIS_CA_FILE".into(), other_ca.ca().display().to_string());
    let verified = ApiProcess::spawn(&in_url);
    let refused_plain = ApiProcess::spawn(&plain);
    let refused_untrusted = ApiProcess::spawn(&untrusted);
    eventually("sslrootcert in the URL to work", WAIT, || async {
        (status(&format!("{}/readyz", verified.base_url)).await == Some(200)).then_some(())
    })
    .await;
    for (what, api) in [
        ("plain text", &refused_plain),
        ("an unknown CA", &refused_untrusted),
    ] {
        let ready = eventually(&format!("{what} to answer /readyz"), WAIT, || async {
            let response = reqwest::get(format!("{}/readyz", api.base_url))
                .await
                .ok()?;
            Some((
                response.status().as_u16(),
                response.json::<serde_json::Value>().await.ok()?,
            ))
        })
        .await;
        assert_eq!(ready.0, 503, "{what}: {}", ready.1);
        assert_eq!(ready.1["checks"]["postgres"], "failing", "{what}");
    }
    let untrusted_ready = reqwest::get(format!("{}/readyz", refused_untrusted.base_url))
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(untrusted_ready["checks"]["redis"], "failing");
}
