//! Signing in from tests: accounts with verified emails, token pairs and
//! the cookies a browser would keep.

use std::{collections::BTreeMap, time::Duration};

use serde_json::json;

use crate::{TestApp, app::Reply};

/// What a login gave: the tokens from the body and the cookies set.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub refresh: String,
    pub cookies: BTreeMap<String, String>,
    /// The raw `Set-Cookie` lines.
    pub set_cookie: Vec<String>,
}

impl Session {
    pub fn from_reply(reply: &Reply) -> Self {
        assert_eq!(reply.status, 200, "login/refresh failed: {}", reply.body);
        let set_cookie: Vec<String> = reply
            .headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let cookies = set_cookie
            .iter()
            .filter_map(|c| c.split(';').next())
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self {
            access: reply.body["access_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            refresh: reply.body["refresh_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            cookies,
            set_cookie,
        }
    }

    /// The `Cookie` header a browser would send back.
    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn csrf(&self) -> String {
        self.cookies.get("bourse_csrf").cloned().unwrap_or_default()
    }
}

fn code_in(subject: &str) -> String {
    subject.rsplit(' ').next().unwrap_or_default().to_owned()
}

impl TestApp {
    /// Registers an account and confirms its email with the code from the
    /// SMTP receiver. Needs a worker.
    pub async fn register_verified(&self, username: &str, email: &str, password: &str) {
        let reply = self
            .post(
                "/api/v1/auth/register",
                &json!({ "username": username, "email": email, "password": password }),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        self.verify_email(email).await;
    }

    /// Confirms `email` with the code of the latest mail to it. Needs a
    /// worker.
    pub async fn verify_email(&self, email: &str) {
        let mail = self.smtp.wait_for(email, Duration::from_secs(20)).await;
        let reply = self
            .post(
                "/api/v1/auth/verify-email",
                &json!({ "email": email, "code": code_in(&mail.subject()) }),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    pub async fn try_login(&self, login: &str, password: &str) -> Reply {
        self.post(
            "/api/v1/auth/login",
            &json!({ "login": login, "password": password }),
        )
        .await
    }

    pub async fn login(&self, login: &str, password: &str) -> Session {
        Session::from_reply(&self.try_login(login, password).await)
    }

    /// `GET` with a bearer token.
    pub async fn get_as(&self, path: &str, access: &str) -> Reply {
        self.send(self.client.get(self.url(path)).bearer_auth(access))
            .await
    }

    /// A JSON request with a bearer token.
    pub async fn send_as(
        &self,
        method: reqwest::Method,
        path: &str,
        access: &str,
        body: &serde_json::Value,
    ) -> Reply {
        self.send(
            self.client
                .request(method, self.url(path))
                .bearer_auth(access)
                .json(body),
        )
        .await
    }

    /// The code of the newest email to `to` whose subject starts with
    /// `subject`, waiting for it to arrive.
    pub async fn code_from_mail(&self, to: &str, subject: &str, nth: usize) -> String {
        let mail = crate::eventually(
            &format!("email {nth} '{subject}' to {to}"),
            Duration::from_secs(20),
            || async {
                self.smtp
                    .mails_to(to)
                    .into_iter()
                    .filter(|m| m.subject().starts_with(subject))
                    .nth(nth)
            },
        )
        .await;
        code_in(&mail.subject())
    }
}

impl TestApp {
    /// A verified, signed-in user with one wallet per currency given;
    /// returns the session and the wallets' JSON (in the order given).
    pub async fn user_with_wallets(
        &self,
        username: &str,
        currencies: &[&str],
    ) -> (Session, Vec<serde_json::Value>) {
        let email = format!("{username}@example.com");
        self.register_verified(username, &email, "correct horse")
            .await;
        let session = self.login(username, "correct horse").await;
        let mut wallets = Vec::new();
        for currency in currencies {
            let reply = self
                .send_as(
                    reqwest::Method::POST,
                    "/api/v1/wallets",
                    &session.access,
                    &json!({ "currency": currency }),
                )
                .await;
            assert_eq!(reply.status, 201, "{}", reply.body);
            wallets.push(reply.body);
        }
        (session, wallets)
    }

    /// A verified user with one USD wallet holding `amount` (deposited).
    pub async fn user_with_usd(&self, username: &str, amount: &str) -> Session {
        let (session, wallets) = self.user_with_wallets(username, &["USD"]).await;
        let wallet = wallets[0]["id"].as_str().expect("wallet id");
        let reply = self
            .send_as(
                reqwest::Method::POST,
                &format!("/api/v1/wallets/{wallet}/deposit"),
                &session.access,
                &json!({ "amount": amount }),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        session
    }

    /// Records one observation of `prices` (one stamp, by the database's
    /// clock, as a refresh does) and, when `announce`, its `prices_observed`
    /// job through the outbox in the same transaction. Returns the stamp.
    pub async fn observe(
        &self,
        prices: &[(&str, &str)],
        announce: bool,
    ) -> chrono::DateTime<chrono::Utc> {
        use diesel::sql_types;
        use diesel_async::{AsyncConnection as _, RunQueryDsl};
        #[derive(diesel::QueryableByName)]
        struct Stamp {
            #[diesel(sql_type = sql_types::Timestamptz)]
            at: chrono::DateTime<chrono::Utc>,
        }
        let mut conn = self.conn().await;
        let prices: Vec<(String, String)> = prices
            .iter()
            .map(|(s, p)| ((*s).to_owned(), (*p).to_owned()))
            .collect();
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            let stamp: Stamp = diesel::sql_query("SELECT clock_timestamp() AS at")
                .get_result(conn)
                .await?;
            for (symbol, price) in &prices {
                diesel::sql_query(
                    "INSERT INTO price_history (symbol, price_usd, source, observed_at)
                     VALUES ($1, $2::numeric, 'test', $3)",
                )
                .bind::<sql_types::Text, _>(symbol)
                .bind::<sql_types::Text, _>(price)
                .bind::<sql_types::Timestamptz, _>(stamp.at)
                .execute(conn)
                .await?;
            }
            if announce {
                let job = shared::jobs::PricesObserved {
                    observed_at: stamp.at,
                    symbols: prices.iter().map(|(s, _)| s.clone()).collect(),
                };
                shared::outbox::push(conn, &job, None).await?;
            }
            Ok(stamp.at)
        })
        .await
        .unwrap()
    }

    /// Records fresh prices (as if a refresh just ran), for tests that need
    /// exact, known rates.
    pub async fn set_prices(&self, prices: &[(&str, &str)]) {
        use diesel_async::RunQueryDsl;
        let mut conn = self.conn().await;
        for (symbol, price) in prices {
            diesel::sql_query(format!(
                "INSERT INTO price_history (symbol, price_usd, source, observed_at) VALUES ('{symbol}', {price}, 'test', clock_timestamp())"
            ))
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }
}
