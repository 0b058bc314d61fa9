//! One POST of one delivery, to where the rules allow only.
//!
//! The client resolves names through [`CheckedResolver`]: the addresses a
//! connection is made to are the ones checked, at delivery time, so a name
//! that resolved to a public address at registration and to a private one
//! now (DNS rebinding) is refused. An IP literal in the URL skips any
//! resolver, so it is checked here before the call. No redirect is
//! followed (a 3xx is an answer, and a failed attempt), calls have short
//! timeouts, and at most [`BODY_CAP`] bytes of an answer are read.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use reqwest::{
    Url,
    dns::{Addrs, Name, Resolve, Resolving},
    header,
};

use super::{address, signature};

/// How much of an answer's body is read (and then dropped): enough to
/// finish a small response, never a receiver's stream.
pub const BODY_CAP: usize = 16 * 1024;

/// What one attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The answer's status code; `None` when there was no answer.
    pub status: Option<u16>,
    /// Why the attempt failed without an answer, or what the answer was
    /// when it was not a success.
    pub error: Option<String>,
    pub duration: Duration,
}

impl Answer {
    /// A 2xx answer: the event is delivered.
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// A delivery's request.
pub struct Request<'a> {
    pub url: &'a str,
    pub event_id: uuid::Uuid,
    pub secret: &'a str,
    pub body: &'a [u8],
}

/// Posts deliveries; one per process, its connections pooled.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    allow_private: bool,
}

impl Sender {
    /// `timeout` bounds a whole attempt; connecting gets at most 5 s of it.
    pub fn new(allow_private: bool, timeout: Duration) -> Result<Self, String> {
        crate::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(CheckedResolver { allow_private }))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .pool_max_idle_per_host(1)
            .user_agent("Bourse-Webhooks/1.0")
            .build()
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        Ok(Self {
            client,
            allow_private,
        })
    }

    /// POSTs `request`, signed at `now` (unix seconds).
    pub async fn post(&self, request: &Request<'_>, now: i64) -> Answer {
        let started = Instant::now();
        let outcome = self.try_post(request, now).await;
        let duration = started.elapsed();
        match outcome {
            Ok(status) => Answer {
                status: Some(status),
                error: (!(200..300).contains(&status))
                    .then(|| format!("the endpoint answered {status}")),
                duration,
            },
            Err(error) => Answer {
                status: None,
                error: Some(error),
                duration,
            },
        }
    }

    async fn try_post(&self, request: &Request<'_>, now: i64) -> Result<u16, String> {
        let url =
            Url::parse(request.url).map_err(|_| "the endpoint URL is not valid".to_owned())?;
        // A literal address is connected to as is: check it here.
        let literal = url
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<IpAddr>().ok());
        if let Some(ip) = literal
            && !address::allowed(ip, self.allow_private)
        {
            return Err(format!("{ip} is not a public address"));
        }
        let response = self
            .client
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                signature::HEADER,
                signature::header(request.secret, now, request.body),
            )
            .header("Bourse-Event-Id", request.event_id.to_string())
            .body(request.body.to_vec())
            .send()
            .await
            .map_err(describe)?;
        let status = response.status().as_u16();
        // Read a little of the answer so the connection can be reused, and
        // no more: a receiver streaming forever must not hold the attempt.
        let mut read = 0usize;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(bytes) => {
                    read += bytes.len();
                    if read >= BODY_CAP {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        Ok(status)
    }
}

/// What went wrong, in words for the deliveries list, without the URL
/// (the owner knows it) and without reqwest's nested sources.
fn describe(error: reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = &error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if error.is_timeout() {
        "no answer within the timeout".to_owned()
    } else if error.is_connect() {
        format!("cannot connect: {cause}")
    } else {
        format!("the request failed: {cause}")
    }
}

/// Resolves a name and refuses it unless every address it has may take
/// deliveries ([`address::resolve`]).
struct CheckedResolver {
    allow_private: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            // The port is the URL's; the connector puts it in.
            let addrs: Vec<SocketAddr> = address::resolve(name.as_str(), 0, allow_private)
                .await
                .map_err(|refused| Box::new(refused) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}
