//! The first vertical slice: register → PostgreSQL → outbox → Redis →
//! worker → SMTP, and the verification endpoints.

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use harness::{TestApp, TestAppBuilder, eventually};
use serde_json::{Value, json};
use shared::{
    jobs::{JobSpec, SendEmail},
    schema::{emails, outbox, users},
};

const WAIT: Duration = Duration::from_secs(20);

fn code_from(subject: &str) -> String {
    let code = subject.rsplit(' ').next().unwrap_or_default().to_owned();
    assert!(
        code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()),
        "no code in {subject:?}"
    );
    code
}

/// How many users and email jobs exist (the schedule's price refreshes
/// write jobs of their own to the outbox meanwhile).
async fn users_and_jobs(app: &TestApp) -> (i64, i64) {
    let mut conn = app.conn().await;
    let users = users::table.count().get_result(&mut conn).await.unwrap();
    let jobs = outbox::table
        .filter(outbox::job.eq(<SendEmail as JobSpec>::NAME))
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    (users, jobs)
}

async fn register(app: &TestApp, username: &str, email: &str) -> Value {
    let reply = app
        .post(
            "/api/v1/auth/register",
            &json!({ "username": username, "email": email, "password": "correct horse" }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_emails_a_code_over_smtp_that_verifies_the_address() {
    let app = TestAppBuilder::new().start().await;

    let user = register(&app, "Ada_Lovelace", "Ada@Example.com").await;
    assert_eq!(user["username"], "ada_lovelace");
    assert_eq!(user["email"], "Ada@Example.com");
    assert_eq!(user["email_verified"], false);
    assert!(user.get("password_hash").is_none() && user.get("password").is_none());

    let mail = app.smtp.wait_for("Ada@Example.com", WAIT).await;
    assert_eq!(mail.from, "no-reply@bourse.local");
    let code = code_from(&mail.subject());
    let body = mail.decoded();
    assert!(body.contains("Hello ada_lovelace,"), "{body}");
    assert!(
        body.contains(&format!("    {code}\r\n")),
        "text part carries the code"
    );
    assert!(
        body.contains(&format!(">{code}</p>")),
        "html part carries the code"
    );
    assert!(body.contains("multipart/alternative"));
    assert!(mail.header("Message-ID").is_some());

    // A wrong code is refused; the right one (any letter case of the
    // address) verifies; verifying again is refused like a wrong code
    // (no answer hands out an account's data without proof).
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let reply = app
        .post(
            "/api/v1/auth/verify-email",
            &json!({ "email": "ada@example.com", "code": wrong }),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body["code"], "validation_failed");
    assert_eq!(reply.body["errors"]["code"], "is invalid or has expired");
    let wrong_reply = reply.body.clone();

    let reply = app
        .post(
            "/api/v1/auth/verify-email",
            &json!({ "email": "ADA@example.COM", "code": code }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["email_verified"], true);
    let again = app
        .post(
            "/api/v1/auth/verify-email",
            &json!({ "email": "ada@example.com", "code": code }),
        )
        .await;
    assert_eq!(again.status, 400);
    assert_eq!(again.body, wrong_reply);

    // Exactly one email for one registration, and its secrets are gone.
    assert_eq!(app.smtp.mails_to("Ada@Example.com").len(), 1);
    let mut conn = app.conn().await;
    let (status, context): (String, Value) = emails::table
        .select((emails::status, emails::context))
        .first(&mut conn)
        .await
        .unwrap();
    assert_eq!(status, "sent");
    assert_eq!(context, json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_codes_burn_the_code_and_resend_issues_a_new_one() {
    let app = TestAppBuilder::new().start().await;
    register(&app, "grace", "grace@example.com").await;
    let first = code_from(&app.smtp.wait_for("grace@example.com", WAIT).await.subject());
    let wrong = if first == "999999" {
        "999998"
    } else {
        "999999"
    };
    for _ in 0..5 {
        let reply = app
            .post(
                "/api/v1/auth/verify-email",
                &json!({ "email": "grace@example.com", "code": wrong }),
            )
            .await;
        assert_eq!(reply.status, 400);
    }
    // The right code no longer works: it was burned.
    let reply = app
        .post(
            "/api/v1/auth/verify-email",
            &json!({ "email": "grace@example.com", "code": first }),
        )
        .await;
    assert_eq!(reply.status, 400);

    // Resend right away is refused with the time to wait (the cool-down
    // after the code registration sent)...
    let too_soon = app
        .post(
            "/api/v1/auth/verify-email/resend",
            &json!({ "email": "GRACE@example.com" }),
        )
        .await;
    assert_eq!(too_soon.status, 429, "{}", too_soon.body);
    assert!(too_soon.headers.contains_key("retry-after"));
    let mut conn = app.conn().await;
    // ...so make the last request look older than the cool-down.
    diesel::sql_query("UPDATE code_cooldowns SET last_sent_at = now() - interval '5 minutes'")
        .execute(&mut conn)
        .await
        .unwrap();
    let reply = app
        .post(
            "/api/v1/auth/verify-email/resend",
            &json!({ "email": "GRACE@example.com" }),
        )
        .await;
    assert_eq!(reply.status, 202);
    let second = eventually("a second email", WAIT, || async {
        let mails = app.smtp.mails_to("grace@example.com");
        (mails.len() == 2).then(|| code_from(&mails[1].subject()))
    })
    .await;
    let reply = app
        .post(
            "/api/v1/auth/verify-email",
            &json!({ "email": "grace@example.com", "code": second }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_answers_202_for_unknown_and_verified_addresses_without_sending() {
    let app = TestAppBuilder::new().start().await;
    for email in ["nobody@example.com", "not an email"] {
        let reply = app
            .post(
                "/api/v1/auth/verify-email/resend",
                &json!({ "email": email }),
            )
            .await;
        let expected = if email.contains(' ') { 400 } else { 202 };
        assert_eq!(reply.status, expected, "{email}: {}", reply.body);
    }
    assert_eq!(
        users_and_jobs(&app).await,
        (0, 0),
        "no job for an unknown address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_usernames_and_emails_conflict_ignoring_case() {
    let app = TestAppBuilder::new().without_worker().start().await;
    register(&app, "linus", "linus@example.com").await;
    let cases = [
        (
            json!({ "username": "LINUS", "email": "other@example.com", "password": "correct horse" }),
            vec!["username"],
        ),
        (
            json!({ "username": "other", "email": "Linus@Example.com", "password": "correct horse" }),
            vec!["email"],
        ),
        (
            json!({ "username": "Linus", "email": "LINUS@example.com", "password": "correct horse" }),
            vec!["email", "username"],
        ),
    ];
    for (body, fields) in cases {
        let reply = app.post("/api/v1/auth/register", &body).await;
        assert_eq!(reply.status, 409, "{body}");
        assert_eq!(reply.content_type(), "application/problem+json");
        assert_eq!(reply.body["code"], "conflict");
        let mut got: Vec<&str> = reply.body["errors"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        got.sort_unstable();
        assert_eq!(got, fields);
    }
    // A refused registration leaves nothing behind: one user, one job.
    assert_eq!(users_and_jobs(&app).await, (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_registrations_create_one_account() {
    let app = TestAppBuilder::new().without_worker().start().await;
    let body =
        json!({ "username": "twin", "email": "twin@example.com", "password": "correct horse" });
    let replies =
        futures::future::join_all((0..8).map(|_| app.post("/api/v1/auth/register", &body))).await;
    let mut statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses[0], 201);
    assert!(statuses[1..].iter().all(|s| *s == 409), "{statuses:?}");
    assert_eq!(users_and_jobs(&app).await, (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalid_field_is_reported_as_400_problem_json() {
    let app = TestAppBuilder::new().without_worker().start().await;
    let long_password = "é".repeat(37);
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (
            json!({ "username": "ab", "email": "a@example.com", "password": "correct horse" }),
            vec![("username", "must be 3 to 32")],
        ),
        (
            json!({ "username": "a".repeat(33), "email": "a@example.com", "password": "correct horse" }),
            vec![("username", "must be 3 to 32")],
        ),
        (
            json!({ "username": "bad-name", "email": "a@example.com", "password": "correct horse" }),
            vec![("username", "must be 3 to 32")],
        ),
        (
            json!({ "username": "good", "email": "not-an-email", "password": "correct horse" }),
            vec![("email", "must be a valid email")],
        ),
        (
            json!({ "username": "good", "email": "a@b", "password": "correct horse" }),
            vec![("email", "must be a valid email")],
        ),
        (
            json!({ "username": "good", "email": "a@example.com", "password": "short" }),
            vec![("password", "at least 8")],
        ),
        (
            json!({ "username": "good", "email": "a@example.com", "password": long_password }),
            vec![("password", "at most 72 bytes")],
        ),
        (
            json!({ "email": "a@example.com" }),
            vec![("password", "is required"), ("username", "is required")],
        ),
        (
            json!({ "username": "x", "email": "y", "password": "z" }),
            vec![
                ("email", "valid"),
                ("password", "at least"),
                ("username", "3 to 32"),
            ],
        ),
        (
            json!({ "username": 42, "email": "a@example.com", "password": "correct horse" }),
            vec![("username", "invalid type: integer `42`")],
        ),
        (
            json!({ "username": "good", "email": ["a@example.com"], "password": "correct horse" }),
            vec![("email", "invalid type: sequence")],
        ),
        (
            json!({ "username": "good", "email": "a@example.com", "password": "correct horse", "admin": true }),
            vec![("admin", "is not a known field")],
        ),
        (
            json!(["good", "a@example.com", "correct horse"]),
            vec![("body", "must be a JSON object")],
        ),
    ];
    for (body, expected) in cases {
        let reply = app.post("/api/v1/auth/register", &body).await;
        assert_eq!(reply.status, 400, "{body} -> {}", reply.body);
        assert_eq!(reply.content_type(), "application/problem+json");
        assert_eq!(reply.body["code"], "validation_failed");
        assert_eq!(reply.body["status"], 400);
        assert_eq!(reply.body["type"], "/problems/validation_failed");
        let errors = reply.body["errors"]
            .as_object()
            .unwrap_or_else(|| panic!("no errors for {body}: {}", reply.body));
        assert_eq!(errors.len(), expected.len(), "{body} -> {errors:?}");
        for (field, fragment) in expected {
            let message = errors[field].as_str().unwrap_or_default();
            assert!(message.contains(fragment), "{body}: {field} -> {message:?}");
        }
    }
    assert_eq!(users_and_jobs(&app).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_never_reach_the_handler() {
    let app = TestAppBuilder::new().without_worker().start().await;
    let url = app.url("/api/v1/auth/register");
    let raw = |content_type: &'static str, body: Vec<u8>| {
        app.client
            .post(&url)
            .header("content-type", content_type)
            .body(body)
    };
    let cases: Vec<(reqwest::RequestBuilder, u16, &str, &str)> = vec![
        (
            raw("application/json", b"{\"username\": ".to_vec()),
            400,
            "validation_failed",
            "malformed JSON",
        ),
        (
            raw("application/json", b"{username: 'x'}".to_vec()),
            400,
            "validation_failed",
            "malformed JSON",
        ),
        (
            raw("application/json", Vec::new()),
            400,
            "validation_failed",
            "malformed JSON",
        ),
        (
            raw("application/json", b"{} {}".to_vec()),
            400,
            "validation_failed",
            "malformed JSON",
        ),
        (
            raw("application/json", vec![0xff, 0xfe, 0x00]),
            400,
            "validation_failed",
            "malformed JSON",
        ),
        (
            raw("text/plain", b"{}".to_vec()),
            415,
            "unsupported_media_type",
            "application/json",
        ),
        (
            app.client.post(&url).body("{}"),
            415,
            "unsupported_media_type",
            "application/json",
        ),
        (
            raw(
                "application/json",
                format!("{{\"username\": \"{}\"}}", "a".repeat(70 * 1024)).into_bytes(),
            ),
            413,
            "payload_too_large",
            "larger than 65536 bytes",
        ),
    ];
    for (request, status, code, detail) in cases {
        let reply = app.send(request).await;
        assert_eq!(reply.status, status, "{code}: {}", reply.body);
        assert_eq!(
            reply.content_type(),
            "application/problem+json",
            "{code} {detail}"
        );
        assert_eq!(reply.body["code"], code);
        let got = reply.body["detail"].as_str().unwrap_or_default();
        assert!(got.contains(detail), "{got:?} should mention {detail:?}");
    }
    // A body over the limit streamed without Content-Length is cut off too.
    // The client sends one byte more than the limit and then waits (the
    // stream never ends), so the server has read everything it was sent
    // when it answers and closes: no reset can race the 413.
    use futures::StreamExt as _;
    let over_limit = futures::stream::iter(
        (0..64)
            .map(|_| bytes_of(1024))
            .chain(std::iter::once(bytes_of(1)))
            .map(Ok::<_, std::io::Error>),
    )
    .chain(futures::stream::pending());
    let reply = app
        .send(raw("application/json", Vec::new()).body(reqwest::Body::wrap_stream(over_limit)))
        .await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.body["code"], "payload_too_large");
}

fn bytes_of(n: usize) -> Vec<u8> {
    vec![b' '; n]
}
