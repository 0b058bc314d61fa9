//! A webhook receiver, as an API client would run one: it keeps every
//! request it is sent (headers and body) and answers as the test scripts
//! it — 200, a number of 500s first, or never (a receiver that hangs).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::SystemTime,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use serde_json::Value;

/// One request received.
#[derive(Debug, Clone)]
pub struct Received {
    pub signature: String,
    pub event_id: String,
    pub body: Bytes,
    pub at: SystemTime,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200 to everything, after the first `fail_first` requests got 500.
    Ok { fail_first: u32 },
    /// 500 to everything.
    Fail,
    /// Never: the request is held open.
    Hang,
    /// 307 to another address (`Location` set by [`WebhookReceiver::redirect_to`]).
    Redirect,
}

#[derive(Default)]
struct Inner {
    received: Mutex<Vec<Received>>,
    failed: AtomicU32,
    location: Mutex<String>,
}

pub struct WebhookReceiver {
    /// The URL to register, `http://127.0.0.1:PORT/hook`.
    pub url: String,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    pub async fn start(answer: Answer) -> Self {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state((inner.clone(), answer));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, inner, task }
    }

    /// Where [`Answer::Redirect`] sends requests.
    pub fn redirect_to(&self, url: &str) {
        *self.inner.location.lock().unwrap() = url.to_owned();
    }

    /// Every request received so far, in order of arrival.
    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State((inner, answer)): State<(Arc<Inner>, Answer)>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    inner.received.lock().unwrap().push(Received {
        signature: header("bourse-signature"),
        event_id: header("bourse-event-id"),
        body,
        at: SystemTime::now(),
    });
    match answer {
        Answer::Ok { fail_first } => {
            if inner.failed.fetch_add(1, Ordering::SeqCst) < fail_first {
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            } else {
                StatusCode::OK.into_response()
            }
        }
        Answer::Fail => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Answer::Hang => {
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
        Answer::Redirect => {
            let location = inner.location.lock().unwrap().clone();
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(axum::http::header::LOCATION, location)],
            )
                .into_response()
        }
    }
}
