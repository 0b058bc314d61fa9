//! Webhook endpoints through the API (PRODUCT.md §11): registration with a
//! signing secret shown once, a user's own endpoints only, the cap, and no
//! server-side request forgery: private, loopback, link-local and metadata
//! addresses refused, private ones admitted only where configured.

use harness::{TestApp, TestAppBuilder, app::Reply, session::Session};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse";

async fn register(app: &TestApp, session: &Session, url: &str, events: Value) -> Reply {
    app.send_as(
        Method::POST,
        "/api/v1/webhooks",
        &session.access,
        &json!({ "url": url, "events": events }),
    )
    .await
}

async fn verified(app: &TestApp, name: &str) -> Session {
    let email = format!("{name}@example.com");
    app.register_verified(name, &email, PASSWORD).await;
    app.login(name, PASSWORD).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_registered_with_a_secret_shown_once_and_seen_by_their_owner_only() {
    let app = TestAppBuilder::new().start().await;
    let ada = verified(&app, "ada").await;
    let bob = verified(&app, "bob").await;

    // A public address: no lookup needed, nothing is sent yet.
    let created = register(
        &app,
        &ada,
        "https://93.184.216.34/hooks/bourse",
        json!(["bet.settled", "alert.triggered"]),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let secret = created.body["secret"].as_str().unwrap();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 6 + 64,
        "{secret}"
    );
    assert_eq!(created.body["url"], "https://93.184.216.34/hooks/bourse");
    assert_eq!(
        created.body["events"],
        json!(["bet.settled", "alert.triggered"])
    );
    assert_eq!(created.body["enabled"], true);
    assert_eq!(created.body["disabled_reason"], Value::Null);

    // Listed without the secret; only to its owner.
    let listed = app.get_as("/api/v1/webhooks", &ada.access).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert!(items[0].get("secret").is_none(), "{}", listed.body);
    let theirs = app.get_as("/api/v1/webhooks", &bob.access).await;
    assert_eq!(theirs.body["items"], json!([]));
    let path = format!("/api/v1/webhooks/{id}");
    let stolen = app
        .send_as(Method::DELETE, &path, &bob.access, &json!({}))
        .await;
    assert_eq!(stolen.status, 404, "{}", stolen.body);
    assert_eq!(stolen.body["code"], "not_found");
    for bad in ["not-a-uuid", "00000000-0000-0000-0000-000000000000"] {
        let reply = app
            .send_as(
                Method::DELETE,
                &format!("/api/v1/webhooks/{bad}"),
                &ada.access,
                &json!({}),
            )
            .await;
        assert_eq!(reply.status, 404, "{bad}");
    }
    let deleted = app
        .send_as(Method::DELETE, &path, &ada.access, &json!({}))
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    let again = app
        .send_as(Method::DELETE, &path, &ada.access, &json!({}))
        .await;
    assert_eq!(again.status, 404);
    assert_eq!(
        app.get_as("/api/v1/webhooks", &ada.access).await.body["items"],
        json!([])
    );

    // Ten at most.
    for i in 0..10 {
        let reply = register(
            &app,
            &ada,
            &format!("https://93.184.216.34/hooks/{i}"),
            json!(["order.cleared"]),
        )
        .await;
        assert_eq!(reply.status, 201, "{i}: {}", reply.body);
    }
    let refused = register(
        &app,
        &ada,
        "https://93.184.216.34/hooks/10",
        json!(["order.cleared"]),
    )
    .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.body["code"], "limit_exceeded");

    // An unverified account cannot register one.
    let reply = app
        .post(
            "/api/v1/auth/register",
            &json!({ "username": "grace", "email": "grace@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(reply.status, 201);
    let grace = app.login("grace", PASSWORD).await;
    let refused = register(
        &app,
        &grace,
        "https://93.184.216.34/h",
        json!(["bet.settled"]),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.body["code"], "email_not_verified");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_loopback_link_local_and_metadata_addresses_are_refused() {
    let app = TestAppBuilder::new().start().await;
    let ada = verified(&app, "ada").await;
    for url in [
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.0.0.7/hook",
        "https://192.168.1.1/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[fd00::1]/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fe80::1]/hook",
        "https://0.0.0.0/hook",
        "https://224.0.0.1/hook",
        "https://no-such-host.invalid/hook",
        // Not https, credentials, a fragment, not a URL.
        "http://93.184.216.34/hook",
        "https://user:pw@93.184.216.34/hook",
        "https://93.184.216.34/hook#x",
        "93.184.216.34/hook",
        "",
    ] {
        let reply = register(&app, &ada, url, json!(["bet.settled"])).await;
        assert_eq!(reply.status, 400, "{url}: {}", reply.body);
        assert_eq!(reply.body["code"], "validation_failed", "{url}");
        assert!(
            reply.body["errors"]["url"].is_string(),
            "{url}: {}",
            reply.body
        );
    }
    for events in [
        json!([]),
        json!(["bet.won"]),
        json!(["bet.settled", "bet.settled"]),
        json!(null),
    ] {
        let reply = register(&app, &ada, "https://93.184.216.34/hook", events.clone()).await;
        assert_eq!(reply.status, 400, "{events}: {}", reply.body);
        assert!(
            reply.body["errors"]["events"].is_string(),
            "{events}: {}",
            reply.body
        );
    }
    let unknown = app
        .send_as(
            Method::POST,
            "/api/v1/webhooks",
            &ada.access,
            &json!({ "url": "https://93.184.216.34/hook", "events": ["bet.settled"], "extra": 1 }),
        )
        .await;
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    assert_eq!(
        app.get_as("/api/v1/webhooks", &ada.access).await.body["items"],
        json!([]),
        "nothing was registered"
    );

    // Where private addresses are allowed (tests, local runs): loopback,
    // private networks and http pass; link-local and metadata never do.
    let local = TestAppBuilder::new()
        .env("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", "true")
        .start()
        .await;
    let bob = verified(&local, "bob").await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "https://10.0.0.7/hook",
        "http://[::1]:9/hook",
    ] {
        let reply = register(&local, &bob, url, json!(["transfer.received"])).await;
        assert_eq!(reply.status, 201, "{url}: {}", reply.body);
    }
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/hook",
        "http://100.100.100.200/hook",
        "http://[fd00:ec2::254]/hook",
        "http://[::ffff:169.254.169.254]/hook",
        "ftp://127.0.0.1/hook",
    ] {
        let reply = register(&local, &bob, url, json!(["transfer.received"])).await;
        assert_eq!(reply.status, 400, "{url}: {}", reply.body);
        assert!(reply.body["errors"]["url"].is_string(), "{url}");
    }
}
