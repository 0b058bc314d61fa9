//! Scenario `webhooks`: `--events` events (10,000) for the users of
//! `--endpoints` endpoints (10), one endpoint each, delivered by worker
//! processes to a receiver in this process.
//!
//! The events are emitted as the product emits them
//! (`shared::webhooks::events::emit`, in transactions of 500), with the
//! workers already idle; the clock runs from the first emit to the last
//! arrival. The receiver is a small keep-alive HTTP/1.1 server that checks
//! every signature and counts each event id, so duplicates and bad
//! signatures show. Afterwards every delivery must be `delivered`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::ensure;
use diesel::sql_types;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use shared::{
    config::Config,
    webhooks::{EventType, events, payloads::TransferReceived, signature},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use uuid::Uuid;

use crate::support::{Count, finish_workers, scratch, spawn_workers};

const SECRET: &str = "whsec_bench";
/// Events per emitting transaction.
const EMIT_BATCH: usize = 500;

pub struct WebhooksRun<'a> {
    pub config: &'a Config,
    pub events: usize,
    pub endpoints: usize,
    pub processes: usize,
    pub concurrency: usize,
}

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    /// Requests per event id.
    events: HashMap<String, u32>,
    requests: u64,
    bad_signatures: u64,
    last: Option<Instant>,
}

impl WebhooksRun<'_> {
    pub async fn measure(&self) -> anyhow::Result<()> {
        let scratch = scratch(self.config, "bourse_bench_webhooks").await?;
        let mut conn = AsyncPgConnection::establish(&scratch.database).await?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let server = tokio::spawn(serve(listener, seen.clone()));

        let users: Vec<Uuid> = (0..self.endpoints).map(|_| Uuid::now_v7()).collect();
        for (i, user) in users.iter().enumerate() {
            diesel::sql_query(
                "INSERT INTO users (id, username, email, password_hash, email_verified_at)
                 VALUES ($1, 'hook_' || $2, 'hook_' || $2 || '@example.com', 'x', now())",
            )
            .bind::<sql_types::Uuid, _>(user)
            .bind::<sql_types::Text, _>(i.to_string())
            .execute(&mut conn)
            .await?;
            diesel::sql_query(
                "INSERT INTO webhook_endpoints (id, user_id, url, events, secret)
                 VALUES ($1, $2, $3, ARRAY['transfer.received'], $4)",
            )
            .bind::<sql_types::Uuid, _>(Uuid::now_v7())
            .bind::<sql_types::Uuid, _>(user)
            .bind::<sql_types::Text, _>(format!("{url}/{i}"))
            .bind::<sql_types::Text, _>(SECRET)
            .execute(&mut conn)
            .await?;
        }

        let env = [
            ("DATABASE_URL", scratch.database.clone()),
            ("REDIS_PREFIX", scratch.prefix.clone()),
            ("JWT_SECRET", scratch.secret.clone()),
            ("DATABASE_POOL_SIZE", "16".to_owned()),
            ("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", "true".to_owned()),
        ];
        let children = spawn_workers(
            &scratch.prefix,
            self.processes,
            self.concurrency,
            "webhook",
            &env,
        )?;
        // Let the workers connect and go idle.
        tokio::time::sleep(Duration::from_secs(2)).await;

        let started = Instant::now();
        let mut emitted = 0;
        while emitted < self.events {
            let batch: Vec<(Uuid, TransferReceived)> = (emitted
                ..(emitted + EMIT_BATCH).min(self.events))
                .map(|i| {
                    let event = TransferReceived {
                        wallet_id: Uuid::nil(),
                        transaction_id: Uuid::now_v7(),
                        amount: format!("{i}.00"),
                        currency: "USD".to_owned(),
                        from_wallet_number: "4000000000000".to_owned(),
                    };
                    (users[i % users.len()], event)
                })
                .collect();
            emitted += batch.len();
            conn.transaction::<_, anyhow::Error, _>(async |conn| {
                events::emit(conn, EventType::TransferReceived, &batch).await?;
                Ok(())
            })
            .await?;
        }
        let emit_s = started.elapsed().as_secs_f64();
        let deadline = started + Duration::from_secs(120 + self.events as u64 / 100);
        loop {
            let done = seen.lock().map(|s| s.events.len()).unwrap_or(0);
            if done >= self.events {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "{done} of {} events arrived",
                self.events
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let last = seen
            .lock()
            .ok()
            .and_then(|s| s.last)
            .unwrap_or_else(Instant::now);
        let delivered_s = last.duration_since(started).as_secs_f64();
        // A duplicate would show now.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_peak_mb = finish_workers(children, self.config, &scratch.prefix).await?;
        server.abort();

        let delivered: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'delivered'",
        )
        .get_result(&mut conn)
        .await?;
        let attempts: Count = diesel::sql_query("SELECT count(*) AS n FROM webhook_attempts")
            .get_result(&mut conn)
            .await?;
        let (requests, duplicates, bad) = seen
            .lock()
            .map(|s| {
                let duplicates: u64 = s.events.values().map(|n| u64::from(n - 1)).sum();
                (s.requests, duplicates, s.bad_signatures)
            })
            .unwrap_or_default();
        println!(
            "scenario=webhooks events={} endpoints={} processes={} concurrency={} emit_s={:.2} delivered_s={:.2} deliveries_per_s={:.0} requests={} duplicates={} bad_signatures={} attempts={} delivered_rows={} rss_peak_mb={:.1}",
            self.events,
            self.endpoints,
            self.processes,
            self.concurrency,
            emit_s,
            delivered_s,
            self.events as f64 / delivered_s,
            requests,
            duplicates,
            bad,
            attempts.n,
            delivered.n,
            rss_peak_mb,
        );
        ensure!(
            bad == 0 && delivered.n == i64::try_from(self.events)?,
            "{bad} bad signatures, {} of {} delivered",
            delivered.n,
            self.events
        );
        Ok(())
    }
}

/// Accepts connections until aborted.
async fn serve(listener: TcpListener, seen: Arc<Mutex<Seen>>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(connection(stream, seen.clone()));
    }
}

/// One keep-alive connection: reads each request's head and body, checks
/// the signature, answers 200.
async fn connection(mut stream: TcpStream, seen: Arc<Mutex<Seen>>) {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    loop {
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let header = |name: &str| {
            head.lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_owned())
        };
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = &buf[head_end..head_end + length];
        let now = chrono::Utc::now().timestamp();
        let signed = header("bourse-signature")
            .is_some_and(|sig| signature::verify(SECRET, &sig, body, now, 300));
        if let Ok(mut seen) = seen.lock() {
            seen.requests += 1;
            if !signed {
                seen.bad_signatures += 1;
            }
            let id = header("bourse-event-id").unwrap_or_default();
            *seen.events.entry(id).or_default() += 1;
            seen.last = Some(Instant::now());
        }
        buf.drain(..head_end + length);
        if stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
    }
}
