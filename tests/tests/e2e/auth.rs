//! Sign-in, tokens, sessions, profile, passwords, rate limits, CSRF and the
//! role and verification checks.

use std::time::Duration;

use base64::Engine as _;
use harness::{TestApp, TestAppBuilder, eventually, session::Session};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse";
const WAIT: Duration = Duration::from_secs(20);

async fn app_with_ada() -> TestApp {
    let app = TestAppBuilder::new().start().await;
    app.register_verified("ada", "ada@example.com", PASSWORD)
        .await;
    app
}

fn secret(app: &TestApp) -> String {
    app.settings["JWT_SECRET"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_by_username_or_email_gives_tokens_and_locked_down_cookies() {
    let app = app_with_ada().await;
    for login in ["ada", "ADA", "Ada@Example.com"] {
        let reply = app.try_login(login, PASSWORD).await;
        assert_eq!(reply.status, 200, "{login}: {}", reply.body);
        assert_eq!(reply.body["token_type"], "Bearer");
        assert_eq!(reply.body["expires_in"], 900);
        let session = Session::from_reply(&reply);
        assert!(session.refresh.len() >= 64);
        for name in ["bourse_access", "bourse_refresh", "bourse_csrf"] {
            let line = session
                .set_cookie
                .iter()
                .find(|c| c.starts_with(name))
                .unwrap();
            assert!(
                line.contains("Secure") && line.contains("SameSite=Strict"),
                "{line}"
            );
            assert_eq!(line.contains("HttpOnly"), name != "bourse_csrf", "{line}");
        }
        assert_eq!(session.cookies["bourse_access"], session.access);
        assert_eq!(session.cookies["bourse_refresh"], session.refresh);

        let me = app.get_as("/api/v1/me", &session.access).await;
        assert_eq!(me.status, 200);
        assert_eq!(me.body["username"], "ada");
        assert_eq!(me.body["email_verified"], true);
        let by_cookie = app
            .send(
                app.client
                    .get(app.url("/api/v1/me"))
                    .header("cookie", session.cookie_header()),
            )
            .await;
        assert_eq!(
            by_cookie.status, 200,
            "a GET with the cookie needs no CSRF proof"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_accounts_and_wrong_passwords_get_the_same_401() {
    let app = app_with_ada().await;
    let wrong_password = app.try_login("ada", "not the password").await;
    let unknown = app.try_login("nobody", "not the password").await;
    for reply in [&wrong_password, &unknown] {
        assert_eq!(reply.status, 401);
        assert_eq!(reply.content_type(), "application/problem+json");
        assert_eq!(reply.body["code"], "unauthenticated");
    }
    assert_eq!(wrong_password.body, unknown.body);
    let missing = app
        .post("/api/v1/auth/login", &json!({ "login": "ada" }))
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body["errors"]["password"], "is required");
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_expired_and_foreign_tokens_are_401() {
    let app = app_with_ada().await;
    let session = app.login("ada", PASSWORD).await;
    let parts: Vec<&str> = session.access.split('.').collect();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    let sign = |claims: &Value, key: &str, alg: Algorithm| {
        jsonwebtoken::encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_secret(key.as_bytes()),
        )
        .unwrap()
    };
    let with = |field: &str, value: Value| {
        let mut changed = claims.clone();
        changed[field] = value;
        sign(&changed, &secret(&app), Algorithm::HS256)
    };
    let none_header = b64(&json!({ "alg": "none", "typ": "JWT" }));
    let mut promoted = claims.clone();
    promoted["sub"] = json!(uuid::Uuid::new_v4());
    let cases = [
        ("alg none, unsigned", format!("{none_header}.{}.", parts[1])),
        (
            "alg none, old signature",
            format!("{none_header}.{}.{}", parts[1], parts[2]),
        ),
        (
            "another key",
            sign(
                &claims,
                "some-other-secret-of-32-characters!!",
                Algorithm::HS256,
            ),
        ),
        (
            "another algorithm",
            sign(&claims, &secret(&app), Algorithm::HS512),
        ),
        ("another audience", with("aud", json!("other-api"))),
        ("another issuer", with("iss", json!("evil"))),
        ("expired", with("exp", json!(now() - 1))),
        (
            "claims changed under the old signature",
            format!("{}.{}.{}", parts[0], b64(&promoted), parts[2]),
        ),
        ("garbage", "abc.def.ghi".to_owned()),
    ];
    for (what, token) in cases {
        let reply = app.get_as("/api/v1/me", &token).await;
        assert_eq!(reply.status, 401, "{what}");
        assert_eq!(reply.body["code"], "unauthenticated", "{what}");
    }
    for header in ["Basic YWRhOnB3", "Bearer", "Token abc"] {
        let reply = app
            .send(
                app.client
                    .get(app.url("/api/v1/me"))
                    .header("authorization", header),
            )
            .await;
        assert_eq!(reply.status, 401, "{header}");
    }
    assert_eq!(app.get("/api/v1/me").await.status, 401, "no token at all");
    // The genuine token still works.
    assert_eq!(app.get_as("/api/v1/me", &session.access).await.status, 200);
}

async fn refresh(app: &TestApp, token: &str) -> harness::app::Reply {
    app.post("/api/v1/auth/refresh", &json!({ "refresh_token": token }))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_and_a_reused_token_revokes_its_session() {
    let app = app_with_ada().await;
    let first = app.login("ada", PASSWORD).await;
    let other = app.login("ada", PASSWORD).await;

    let second = Session::from_reply(&refresh(&app, &first.refresh).await);
    assert_ne!(second.refresh, first.refresh);
    assert_eq!(app.get_as("/api/v1/me", &second.access).await.status, 200);

    // The old token comes back: someone copied it. Its whole session dies.
    let reused = refresh(&app, &first.refresh).await;
    assert_eq!(reused.status, 401);
    assert!(
        reused.body["detail"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    assert_eq!(
        refresh(&app, &second.refresh).await.status,
        401,
        "the family is revoked"
    );
    // Another login is another session, untouched.
    assert_eq!(refresh(&app, &other.refresh).await.status, 200);
    assert_eq!(refresh(&app, "not-a-token").await.status, 401);
    assert_eq!(
        app.post("/api/v1/auth/refresh", &json!({})).await.status,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_session_and_clears_cookies() {
    let app = app_with_ada().await;
    let session = app.login("ada", PASSWORD).await;
    let reply = app
        .post(
            "/api/v1/auth/logout",
            &json!({ "refresh_token": session.refresh }),
        )
        .await;
    assert_eq!(reply.status, 204);
    let cleared: Vec<&str> = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(cleared.len(), 3);
    assert!(cleared.iter().all(|c| c.contains("Max-Age=0")));
    assert_eq!(refresh(&app, &session.refresh).await.status, 401);
    // Twice is harmless.
    let again = app
        .post(
            "/api/v1/auth/logout",
            &json!({ "refresh_token": session.refresh }),
        )
        .await;
    assert_eq!(again.status, 204);

    // The web page logs out with its cookies (and the CSRF proof).
    let browser = app.login("ada", PASSWORD).await;
    let reply = app
        .send(
            app.client
                .post(app.url("/api/v1/auth/logout"))
                .header("cookie", browser.cookie_header())
                .header("x-csrf-token", browser.csrf()),
        )
        .await;
    assert_eq!(reply.status, 204);
    assert_eq!(refresh(&app, &browser.refresh).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_authenticated_writes_need_the_csrf_proof() {
    let app = app_with_ada().await;
    let browser = app.login("ada", PASSWORD).await;
    let patch = |extra: Vec<(&'static str, String)>| {
        let mut request = app
            .client
            .patch(app.url("/api/v1/me"))
            .header("cookie", browser.cookie_header())
            .json(&json!({ "first_name": "Ada" }));
        for (name, value) in extra {
            request = request.header(name, value);
        }
        request
    };
    let cross_site = app
        .send(patch(vec![("origin", "https://evil.example".to_owned())]))
        .await;
    assert_eq!(cross_site.status, 403);
    assert_eq!(cross_site.body["code"], "forbidden");
    let no_proof = app.send(patch(vec![])).await;
    assert_eq!(no_proof.status, 403);
    let wrong_token = app
        .send(patch(vec![("x-csrf-token", "guess".to_owned())]))
        .await;
    assert_eq!(wrong_token.status, 403);

    let double_submit = app
        .send(patch(vec![("x-csrf-token", browser.csrf())]))
        .await;
    assert_eq!(double_submit.status, 200, "{}", double_submit.body);
    assert_eq!(double_submit.body["first_name"], "Ada");
    let same_origin = app
        .send(patch(vec![("origin", app.config.http.public_url.clone())]))
        .await;
    assert_eq!(same_origin.status, 200);

    // Refreshing by cookie is a write too.
    let refresh_by_cookie = app
        .send(
            app.client
                .post(app.url("/api/v1/auth/refresh"))
                .header("cookie", browser.cookie_header()),
        )
        .await;
    assert_eq!(refresh_by_cookie.status, 403);
    let with_proof = app
        .send(
            app.client
                .post(app.url("/api/v1/auth/refresh"))
                .header("cookie", browser.cookie_header())
                .header("x-csrf-token", browser.csrf()),
        )
        .await;
    assert_eq!(with_proof.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_password_signs_out_other_sessions_and_emails_a_notice() {
    let app = app_with_ada().await;
    let here = app.login("ada", PASSWORD).await;
    let elsewhere = app.login("ada", PASSWORD).await;
    let change = |current: &str, new: &str, confirm: &str| json!({ "current_password": current, "new_password": new, "new_password_confirm": confirm });

    let wrong = app
        .send_as(
            Method::POST,
            "/api/v1/me/password",
            &here.access,
            &change("nope", "new password 1", "new password 1"),
        )
        .await;
    assert_eq!(wrong.status, 422);
    assert_eq!(wrong.body["code"], "invalid_current_password");
    let mismatch = app
        .send_as(
            Method::POST,
            "/api/v1/me/password",
            &here.access,
            &change(PASSWORD, "new password 1", "new password 2"),
        )
        .await;
    assert_eq!(mismatch.status, 400);
    assert_eq!(
        mismatch.body["errors"]["new_password_confirm"],
        "does not match new_password"
    );
    let weak = app
        .send_as(
            Method::POST,
            "/api/v1/me/password",
            &here.access,
            &change(PASSWORD, "short", "short"),
        )
        .await;
    assert_eq!(weak.status, 400);
    assert!(
        weak.body["errors"]["new_password"]
            .as_str()
            .unwrap()
            .contains("at least 8")
    );

    let done = app
        .send_as(
            Method::POST,
            "/api/v1/me/password",
            &here.access,
            &change(PASSWORD, "new password 1", "new password 1"),
        )
        .await;
    assert_eq!(done.status, 204, "{}", done.body);
    assert_eq!(
        refresh(&app, &elsewhere.refresh).await.status,
        401,
        "other sessions end"
    );
    assert_eq!(
        refresh(&app, &here.refresh).await.status,
        200,
        "this one stays"
    );
    assert_eq!(app.try_login("ada", PASSWORD).await.status, 401);
    assert_eq!(app.try_login("ada", "new password 1").await.status, 200);
    let notice = eventually("the change notice", WAIT, || async {
        app.smtp
            .mails_to("ada@example.com")
            .into_iter()
            .find(|m| m.subject() == "Your Bourse password was changed")
    })
    .await;
    assert!(
        notice
            .decoded()
            .contains("every\r\nother session was signed out")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_password_is_reset_with_an_emailed_code() {
    let app = app_with_ada().await;
    let before = app.login("ada", PASSWORD).await;

    let unknown = app
        .post(
            "/api/v1/auth/password-reset",
            &json!({ "email": "nobody@example.com" }),
        )
        .await;
    assert_eq!(unknown.status, 202);
    let known = app
        .post(
            "/api/v1/auth/password-reset",
            &json!({ "email": "ADA@example.com" }),
        )
        .await;
    assert_eq!(known.status, 202);
    assert_eq!(
        known.body, unknown.body,
        "no hint whether the account exists"
    );
    let code = app
        .code_from_mail("ada@example.com", "Your Bourse password reset code", 0)
        .await;

    let confirm = |code: &str, password: &str| json!({ "email": "ada@example.com", "code": code, "new_password": password });
    let wrong_code = if code == "000000" { "000001" } else { "000000" };
    let wrong = app
        .post(
            "/api/v1/auth/password-reset/confirm",
            &confirm(wrong_code, "brand new pass"),
        )
        .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.body["errors"]["code"], "is invalid or has expired");
    let weak = app
        .post(
            "/api/v1/auth/password-reset/confirm",
            &confirm(&code, "short"),
        )
        .await;
    assert_eq!(weak.status, 400);

    let done = app
        .post(
            "/api/v1/auth/password-reset/confirm",
            &confirm(&code, "brand new pass"),
        )
        .await;
    assert_eq!(done.status, 204, "{}", done.body);
    assert_eq!(
        refresh(&app, &before.refresh).await.status,
        401,
        "every session ends"
    );
    assert_eq!(app.try_login("ada", PASSWORD).await.status, 401);
    assert_eq!(app.try_login("ada", "brand new pass").await.status, 200);
    let reused = app
        .post(
            "/api/v1/auth/password-reset/confirm",
            &confirm(&code, "another new pass"),
        )
        .await;
    assert_eq!(reused.status, 400, "a code works once");
    eventually("the change notice", WAIT, || async {
        app.smtp
            .mails_to("ada@example.com")
            .into_iter()
            .find(|m| m.subject() == "Your Bourse password was changed")
    })
    .await;
    assert!(app.smtp.mails_to("nobody@example.com").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_trip_hold_across_api_processes_and_reset() {
    let mut app = TestAppBuilder::new()
        .env("RATE_LIMIT_LOGIN_PER_ACCOUNT", "3/2")
        // The per-IP limit is tested through registrations below; keep it
        // out of the way of the polling here.
        .env("RATE_LIMIT_LOGIN_PER_IP", "10000/60")
        .env("RATE_LIMIT_REGISTER_PER_IP", "3/60")
        .start()
        .await;
    app.register_verified("ada", "ada@example.com", PASSWORD)
        .await;
    let second_api = app.spawn_api().await;
    let login_at = |base: String, password: &'static str| {
        let client = app.client.clone();
        async move {
            let response = client
                .post(format!("{base}/api/v1/auth/login"))
                .json(&json!({ "login": "ada", "password": password }))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (status, retry_after)
        }
    };
    // Three failures, spread over two API processes, use up the allowance.
    assert_eq!(login_at(app.base_url.clone(), "wrong").await.0, 401);
    assert_eq!(login_at(second_api.clone(), "wrong").await.0, 401);
    assert_eq!(login_at(app.base_url.clone(), "wrong").await.0, 401);
    let (status, retry_after) = login_at(second_api.clone(), PASSWORD).await;
    assert_eq!(status, 429, "even the right password waits");
    let retry_after: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&retry_after));
    let limited = app.try_login("ada", PASSWORD).await;
    assert_eq!(limited.body["code"], "rate_limited");
    // The window passes; the account is usable again.
    eventually("the login limit to reset", Duration::from_secs(10), || {
        let attempt = login_at(app.base_url.clone(), PASSWORD);
        async move { (attempt.await.0 == 200).then_some(()) }
    })
    .await;

    // Registrations per IP: the first one above used one of three.
    for i in 0..2 {
        let reply = app
            .post(
                "/api/v1/auth/register",
                &json!({ "username": format!("user{i}"), "email": format!("u{i}@example.com"), "password": PASSWORD }),
            )
            .await;
        assert_eq!(reply.status, 201);
    }
    let over = app
        .post(
            "/api/v1/auth/register",
            &json!({ "username": "user9", "email": "u9@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(over.status, 429);
    assert!(over.headers.contains_key("retry-after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_movement_needs_a_verified_email_and_admin_routes_need_an_admin() {
    let app = TestAppBuilder::new().start().await;
    let reply = app
        .post(
            "/api/v1/auth/register",
            &json!({ "username": "grace", "email": "grace@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(reply.status, 201);
    let unverified = app.login("grace", PASSWORD).await;
    let refused = app
        .send_as(
            Method::POST,
            "/api/v1/test/money",
            &unverified.access,
            &json!({}),
        )
        .await;
    assert_eq!(
        refused.status, 403,
        "{} {:?}",
        refused.body, refused.headers
    );
    assert_eq!(refused.body["code"], "email_not_verified");
    assert_eq!(
        app.send_as(Method::POST, "/api/v1/test/money", "junk", &json!({}))
            .await
            .status,
        401
    );

    app.register_verified("ada", "ada@example.com", PASSWORD)
        .await;
    let ada = app.login("ada", PASSWORD).await;
    let allowed = app
        .send(
            app.client
                .post(app.url("/api/v1/test/money"))
                .bearer_auth(&ada.access),
        )
        .await;
    assert_eq!(allowed.status, 200);

    let not_admin = app
        .send(
            app.client
                .post(app.url("/api/v1/test/admin"))
                .bearer_auth(&ada.access),
        )
        .await;
    assert_eq!(not_admin.status, 403);
    assert_eq!(not_admin.body["code"], "forbidden");
    let mut conn = app.conn().await;
    shared::accounts::promote(&mut conn, "ada").await.unwrap();
    let admin = app
        .send(
            app.client
                .post(app.url("/api/v1/test/admin"))
                .bearer_auth(&ada.access),
        )
        .await;
    assert_eq!(admin.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_profile_changes_and_a_new_email_must_be_verified_again() {
    let app = app_with_ada().await;
    let ada = app.login("ada", PASSWORD).await;
    let patch = |body: Value| {
        let request = app
            .client
            .patch(app.url("/api/v1/me"))
            .bearer_auth(&ada.access)
            .json(&body);
        app.send(request)
    };

    let named = patch(json!({ "first_name": "  Ada ", "last_name": "Lovelace" })).await;
    assert_eq!(named.status, 200);
    assert_eq!(
        (
            named.body["first_name"].clone(),
            named.body["last_name"].clone()
        ),
        (json!("Ada"), json!("Lovelace"))
    );
    let cleared = patch(json!({ "last_name": null })).await;
    assert_eq!(cleared.body["last_name"], Value::Null);
    assert_eq!(cleared.body["first_name"], "Ada", "absent fields stay");
    let too_long = patch(json!({ "first_name": "x".repeat(101), "email": "bad" })).await;
    assert_eq!(too_long.status, 400);
    assert_eq!(too_long.body["errors"].as_object().unwrap().len(), 2);
    let unknown = patch(json!({ "role": "admin" })).await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.body["errors"]["role"], "is not a known field");

    app.register_verified("grace", "grace@example.com", PASSWORD)
        .await;
    let taken = patch(json!({ "email": "GRACE@example.com", "current_password": PASSWORD })).await;
    assert_eq!(taken.status, 409);

    let moved = patch(json!({ "email": "ada@new.example", "current_password": PASSWORD })).await;
    assert_eq!(moved.status, 200);
    assert_eq!(moved.body["email"], "ada@new.example");
    assert_eq!(moved.body["email_verified"], false);
    let refused = app
        .send_as(Method::POST, "/api/v1/test/money", &ada.access, &json!({}))
        .await;
    assert_eq!(refused.body["code"], "email_not_verified");
    let code = app
        .code_from_mail("ada@new.example", "Your Bourse verification code", 0)
        .await;
    let verified = app
        .post(
            "/api/v1/auth/verify-email",
            &json!({ "email": "ada@new.example", "code": code }),
        )
        .await;
    assert_eq!(verified.body["email_verified"], true);
    assert_eq!(
        app.send_as(Method::POST, "/api/v1/test/money", &ada.access, &json!({}))
            .await
            .status,
        200
    );
    // Changing only the letter case keeps the address verified.
    let recased = patch(json!({ "email": "Ada@New.example" })).await;
    assert_eq!(recased.body["email_verified"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_command_creates_and_promotes_administrators() {
    let app = TestAppBuilder::new().without_worker().start().await;
    let output = tokio::process::Command::new(harness::process::binary("bourse-api"))
        .args([
            "admin",
            "create",
            "--username",
            "root_admin",
            "--email",
            "root@example.com",
        ])
        .envs(&app.settings)
        .env("ADMIN_PASSWORD", "admin password 1")
        .current_dir(std::env::temp_dir())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let admin = app.login("root_admin", "admin password 1").await;
    let me = app.get_as("/api/v1/me", &admin.access).await;
    assert_eq!(
        (me.body["role"].clone(), me.body["email_verified"].clone()),
        (json!("admin"), json!(true))
    );

    let reply = app
        .post(
            "/api/v1/auth/register",
            &json!({ "username": "later", "email": "later@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(reply.status, 201);
    let output = tokio::process::Command::new(harness::process::binary("bourse-api"))
        .args(["admin", "promote", "later"])
        .envs(&app.settings)
        .current_dir(std::env::temp_dir())
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let later = app.login("later", PASSWORD).await;
    assert_eq!(
        app.get_as("/api/v1/me", &later.access).await.body["role"],
        "admin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_and_reset_are_limited_per_account() {
    let app = TestAppBuilder::new()
        .env("RATE_LIMIT_RESET_PER_ACCOUNT", "2/60")
        .env("RATE_LIMIT_RESEND_PER_ACCOUNT", "2/60")
        // No cool-down between requests: the per-address limit is tested
        // (the cool-down has its own test in security.rs).
        .env("CODE_RESEND_COOLDOWN_SECS", "0")
        .without_worker()
        .start()
        .await;
    for (path, field) in [
        ("/api/v1/auth/password-reset", "email"),
        ("/api/v1/auth/verify-email/resend", "email"),
    ] {
        for _ in 0..2 {
            let reply = app
                .post(path, &json!({ field: "Target@example.com" }))
                .await;
            assert_eq!(reply.status, 202, "{path}");
        }
        // Letter case does not make a new account key.
        let limited = app
            .post(path, &json!({ field: "target@EXAMPLE.com" }))
            .await;
        assert_eq!(limited.status, 429, "{path}");
        assert_eq!(limited.body["code"], "rate_limited");
        let other = app
            .post(path, &json!({ field: "someone@example.com" }))
            .await;
        assert_eq!(other.status, 202, "{path}: other accounts are not affected");
    }
}
