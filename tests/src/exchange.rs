//! A local stand-in for an outside exchange, speaking the JSON protocol of
//! `shared::trading::exchange::HttpExchange` (README, "Exchange API"): it
//! places each `client_order_id` once and answers a repeated one with the
//! order already placed, like a real exchange's idempotent order endpoint.
//! Tests switch it into an outage (503 before placing), a lost answer
//! (placed, then 503), a refusal (400) or a hang (no answer in time).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// One order the exchange placed.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub order_id: String,
    pub client_order_id: String,
    pub symbol: String,
    pub side: String,
    pub quantity: Decimal,
    /// Requests that carried this client order id (1 unless retried).
    pub requests: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// 503 without placing anything.
    Down,
    /// Places the order, then answers 503 (the answer is lost).
    LoseAnswers,
    /// 400 for every order.
    Refuse,
    /// Answers only after this long.
    Slow(Duration),
}

#[derive(Default)]
struct Book {
    placed: Vec<Placed>,
    requests: u32,
    /// When each request arrived.
    arrivals: Vec<std::time::SystemTime>,
    bad_requests: Vec<String>,
}

#[derive(Clone)]
struct Shared {
    book: Arc<Mutex<Book>>,
    mode: Arc<Mutex<Mode>>,
    api_key: Option<String>,
}

pub struct FakeExchange {
    pub url: String,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl FakeExchange {
    /// Starts it on a random port; with `api_key`, requests must carry it
    /// as a bearer token.
    pub async fn start(api_key: Option<&str>) -> Self {
        let shared = Shared {
            book: Arc::default(),
            mode: Arc::new(Mutex::new(Mode::Normal)),
            api_key: api_key.map(str::to_owned),
        };
        let app = Router::new()
            .route("/v1/orders", post(place))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, shared, task }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// Orders placed, in order.
    pub fn placed(&self) -> Vec<Placed> {
        self.shared.book.lock().unwrap().placed.clone()
    }

    /// Every request received, answered or not.
    pub fn requests(&self) -> u32 {
        self.shared.book.lock().unwrap().requests
    }

    /// When each request arrived, in order.
    pub fn arrivals(&self) -> Vec<std::time::SystemTime> {
        self.shared.book.lock().unwrap().arrivals.clone()
    }

    /// Requests that broke the protocol (missing header, bad body...).
    pub fn protocol_errors(&self) -> Vec<String> {
        self.shared.book.lock().unwrap().bad_requests.clone()
    }
}

impl Drop for FakeExchange {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(placed: &Placed) -> Value {
    json!({
        "order_id": placed.order_id,
        "client_order_id": placed.client_order_id,
        "status": "filled",
        "filled_quantity": placed.quantity.to_string(),
        "average_price": "100.5",
        "filled_at": "2026-11-23T12:00:00Z",
    })
}

async fn place(State(shared): State<Shared>, headers: HeaderMap, body: Json<Value>) -> Response {
    let mode = *shared.mode.lock().unwrap();
    let protocol_error = |message: String| {
        shared
            .book
            .lock()
            .unwrap()
            .bad_requests
            .push(message.clone());
        (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
    };
    {
        let mut book = shared.book.lock().unwrap();
        book.requests += 1;
        book.arrivals.push(std::time::SystemTime::now());
    }
    if let Some(key) = &shared.api_key {
        let sent = headers.get("authorization").and_then(|v| v.to_str().ok());
        if sent != Some(&format!("Bearer {key}")) {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "error": "bad key" })),
            )
                .into_response();
        }
    }
    let client_order_id = body["client_order_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if client_order_id.is_empty() || idempotency_key != client_order_id {
        return protocol_error(format!(
            "client_order_id {client_order_id:?} and Idempotency-Key {idempotency_key:?} must match"
        ));
    }
    let quantity: Option<Decimal> = body["quantity"].as_str().and_then(|q| q.parse().ok());
    let (Some(quantity), Some(symbol), Some(side), Some("market")) = (
        quantity,
        body["symbol"].as_str(),
        body["side"].as_str(),
        body["type"].as_str(),
    ) else {
        return protocol_error(format!("malformed order {body:?}", body = body.0));
    };
    match mode {
        Mode::Down => {
            return (StatusCode::SERVICE_UNAVAILABLE, "maintenance").into_response();
        }
        Mode::Refuse => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": "symbol halted" })),
            )
                .into_response();
        }
        Mode::Slow(delay) => tokio::time::sleep(delay).await,
        Mode::Normal | Mode::LoseAnswers => {}
    }
    let placed = {
        let mut book = shared.book.lock().unwrap();
        let next = book.placed.len() + 1;
        match book
            .placed
            .iter_mut()
            .find(|p| p.client_order_id == client_order_id)
        {
            Some(existing) => {
                existing.requests += 1;
                existing.clone()
            }
            None => {
                let placed = Placed {
                    order_id: format!("EX-{next:06}"),
                    client_order_id,
                    symbol: symbol.to_owned(),
                    side: side.to_owned(),
                    quantity,
                    requests: 1,
                };
                book.placed.push(placed.clone());
                placed
            }
        }
    };
    if mode == Mode::LoseAnswers {
        return (StatusCode::SERVICE_UNAVAILABLE, "lost").into_response();
    }
    (StatusCode::CREATED, Json(answer(&placed))).into_response()
}
