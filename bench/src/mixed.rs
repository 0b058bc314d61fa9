//! Scenario `mixed`: a realistic mix of requests from this process against
//! one `bourse-api` and two `bourse-worker` processes (every queue, the
//! simulated price feed ticking every second, the simulated exchange) on a
//! scratch database.
//!
//! Load: keep-alive HTTP/1.1 connections send a weighted mix of
//! `GET /rates`, transfers (same currency and converted), buy and sell
//! orders, bets (10–20 s, so they settle during the run) and alerts (targets
//! near the price, so some trigger). Open loop at `--rate` requests/s by
//! default (latency counted from the planned send time, so a stalled server
//! cannot hide its queue), or closed loop with `--rate 0`.
//!
//! Reported: per route requests, throughput, status codes, p50/p99/max; the
//! job backlog sampled every second (Redis queues and the outbox); after the
//! load, the time until the backlog is gone, the settlement lateness of every
//! bet, the peak RSS of every process, and the ledger check. Fails on any
//! 5xx, transport error, unsettled bet or a red ledger check.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use queue::JobQueues;
use rust_decimal::Decimal;
use shared::{
    config::Config,
    jobs::Queue,
    ledger::{self, Movement, SystemAccount, TxKind},
    sessions::tokens,
    wallets,
};
use tokio::sync::{Mutex, mpsc, watch};
use uuid::Uuid;

use crate::http::{Connection, request_once};
use crate::support::{
    Count, CpuSnapshot, Scratch, cleanup, free_port, peak_rss_kb, percentile, scratch, spawn_api,
    spawn_workers, stop,
};

const DATABASE: &str = "bourse_bench_mixed";
/// Bets last 10 (the shortest allowed) to 20 s.
const BET_SECS: (u32, u32) = (10, 20);
/// Alert targets within ±0.2% of the current price (a simulated step is
/// up to ±0.25% a second).
const ALERT_SPREAD: f64 = 0.002;
const CRYPTO: [&str; 3] = ["BTC", "ETH", "SOL"];

/// The route weights of a run unless `--mix` says otherwise.
pub const DEFAULT_MIX: &str = "rates=50,transfers=20,orders=10,bets=10,alerts=10";

pub struct MixedRun<'a> {
    pub config: &'a Config,
    pub users: usize,
    pub secs: u64,
    /// Requests per second, all routes together (open loop); 0: closed loop.
    pub rate: u64,
    pub connections: usize,
    pub processes: usize,
    pub concurrency: usize,
    /// API processes on the same database and Redis; the connections are
    /// spread over them round-robin.
    pub apis: usize,
    /// `rates=50,transfers=20,orders=10,bets=10,alerts=10`.
    pub mix: String,
    /// Seconds per row of the printed backlog series.
    pub series_every: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Route {
    Rates,
    Transfer,
    TransferConverted,
    Buy,
    Sell,
    Bet,
    Alert,
}

impl Route {
    const ALL: [Route; 7] = [
        Route::Rates,
        Route::Transfer,
        Route::TransferConverted,
        Route::Buy,
        Route::Sell,
        Route::Bet,
        Route::Alert,
    ];

    fn label(self) -> &'static str {
        match self {
            Route::Rates => "GET /rates",
            Route::Transfer => "POST /wallets/{id}/transfer (USD→USD)",
            Route::TransferConverted => "POST /wallets/{id}/transfer (USD→BTC)",
            Route::Buy => "POST /orders/buy",
            Route::Sell => "POST /orders/sell",
            Route::Bet => "POST /bets",
            Route::Alert => "POST /alerts",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Route::Rates => "rates",
            Route::Transfer => "transfer",
            Route::TransferConverted => "transfer_conv",
            Route::Buy => "buy",
            Route::Sell => "sell",
            Route::Bet => "bet",
            Route::Alert => "alert",
        }
    }

    /// The status of success.
    fn expected(self) -> u16 {
        if self == Route::Rates { 200 } else { 201 }
    }
}

/// Cumulative weights per route, from `--mix`.
struct Mix {
    table: Vec<(u32, Route)>,
    total: u32,
}

impl Mix {
    fn parse(raw: &str) -> anyhow::Result<Self> {
        let mut table = Vec::new();
        let mut total = 0u32;
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .with_context(|| format!("--mix: {part:?} is not name=weight"))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .with_context(|| format!("--mix: bad weight in {part:?}"))?;
            // Transfers: three in four USD→USD, one converted to BTC;
            // orders: half buys, half sells.
            let split: Vec<(u32, Route)> = match name.trim() {
                "rates" => vec![(weight * 4, Route::Rates)],
                "transfers" => vec![
                    (weight * 3, Route::Transfer),
                    (weight, Route::TransferConverted),
                ],
                "orders" => vec![(weight * 2, Route::Buy), (weight * 2, Route::Sell)],
                "bets" => vec![(weight * 4, Route::Bet)],
                "alerts" => vec![(weight * 4, Route::Alert)],
                other => {
                    bail!("--mix: unknown route {other:?} (rates, transfers, orders, bets, alerts)")
                }
            };
            for (w, route) in split {
                if w > 0 {
                    total += w;
                    table.push((total, route));
                }
            }
        }
        ensure!(total > 0, "--mix has no weight");
        Ok(Self { table, total })
    }

    fn pick(&self) -> Route {
        let x = rand::random_range(0..self.total);
        self.table
            .iter()
            .find(|(upto, _)| x < *upto)
            .map_or(Route::Rates, |(_, r)| *r)
    }

    /// Share of each route, for the report.
    fn describe(&self) -> String {
        let mut prev = 0;
        let mut parts = Vec::new();
        for (upto, route) in &self.table {
            parts.push(format!(
                "{}={:.1}%",
                route.key(),
                f64::from(upto - prev) * 100.0 / f64::from(self.total)
            ));
            prev = *upto;
        }
        parts.join(",")
    }
}

struct Account {
    username: String,
    usd_wallet: Uuid,
    usd_number: String,
    btc_number: String,
    token: String,
}

/// Builds the requests.
struct Generator {
    port: u16,
    accounts: Vec<Account>,
    mix: Mix,
    /// Latest USD prices seen on `GET /rates` (for alert targets).
    prices: RwLock<HashMap<String, f64>>,
}

impl Generator {
    fn price(&self, symbol: &str) -> f64 {
        self.prices
            .read()
            .ok()
            .and_then(|p| p.get(symbol).copied())
            .unwrap_or(match symbol {
                "BTC" => 95_000.0,
                "ETH" => 3_500.0,
                _ => 180.0,
            })
    }

    fn post(&self, path: &str, token: &str, body: &str, idempotent: bool) -> Vec<u8> {
        let key = if idempotent {
            format!("Idempotency-Key: {}\r\n", Uuid::new_v4())
        } else {
            String::new()
        };
        format!(
            "POST /api/v1{path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {token}\r\n{key}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .into_bytes()
    }

    fn next(&self) -> (Route, Vec<u8>) {
        let route = self.mix.pick();
        let n = self.accounts.len();
        let me = &self.accounts[rand::random_range(0..n)];
        let other = || {
            let mut i = rand::random_range(0..n - 1);
            if std::ptr::eq(&self.accounts[i], me) {
                i = n - 1;
            }
            &self.accounts[i]
        };
        let request = match route {
            Route::Rates => format!(
                "GET /api/v1/rates HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
                self.port
            )
            .into_bytes(),
            Route::Transfer | Route::TransferConverted => {
                // USD to another user's USD wallet, or to their BTC wallet
                // (converted at the latest price).
                let (cents, to) = if route == Route::Transfer {
                    (rand::random_range(1..=500), &other().usd_number)
                } else {
                    (rand::random_range(100..=2_000), &other().btc_number)
                };
                let body = format!(
                    r#"{{"to_wallet_number":"{to}","amount":"{}"}}"#,
                    Decimal::new(cents, 2)
                );
                self.post(
                    &format!("/wallets/{}/transfer", me.usd_wallet),
                    &me.token,
                    &body,
                    true,
                )
            }
            Route::Buy | Route::Sell => {
                // 0.00001–0.0002 BTC: about 1–19 USD, so some orders clear
                // alone (≥ 10 USD) and the others in batches.
                let amount = Decimal::new(rand::random_range(1_000..=20_000), 8);
                let (path, body) = if route == Route::Buy {
                    (
                        "/orders/buy",
                        format!(r#"{{"currency":"BTC","amount":"{amount}"}}"#),
                    )
                } else if rand::random_range(0..4) == 0 {
                    (
                        "/orders/sell",
                        format!(
                            r#"{{"currency":"BTC","amount":"{amount}","to_username":"{}"}}"#,
                            other().username
                        ),
                    )
                } else {
                    (
                        "/orders/sell",
                        format!(r#"{{"currency":"BTC","amount":"{amount}"}}"#),
                    )
                };
                self.post(path, &me.token, &body, true)
            }
            Route::Bet => {
                let symbol = CRYPTO[rand::random_range(0..CRYPTO.len())];
                let direction = if rand::random::<bool>() { "up" } else { "down" };
                let body = format!(
                    r#"{{"symbol":"{symbol}","direction":"{direction}","stake":"{}.00","leverage":{},"duration_seconds":{}}}"#,
                    rand::random_range(1..=10),
                    rand::random_range(1..=100),
                    rand::random_range(BET_SECS.0..=BET_SECS.1),
                );
                self.post("/bets", &me.token, &body, true)
            }
            Route::Alert => {
                let symbol = CRYPTO[rand::random_range(0..CRYPTO.len())];
                let factor = 1.0 + (rand::random::<f64>() * 2.0 - 1.0) * ALERT_SPREAD;
                let body = format!(
                    r#"{{"symbol":"{symbol}","target_price":"{:.2}"}}"#,
                    self.price(symbol) * factor
                );
                self.post("/alerts", &me.token, &body, false)
            }
        };
        (route, request)
    }
}

/// One request to send: when it was planned (open loop) or built (closed).
struct Planned {
    route: Route,
    bytes: Vec<u8>,
    at: Instant,
}

/// One answered (or failed) request.
#[derive(Clone, Copy)]
struct Done {
    route: Route,
    /// 0: transport error (connection closed or reset).
    status: u16,
    latency_us: u32,
    /// Send start − planned time, µs (open loop: client-side queueing).
    send_delay_us: u32,
    /// Completion, ms since the load started.
    at_ms: u32,
}

/// Runs one connection: takes planned requests from `jobs` (open loop) or
/// makes its own until `end` (closed loop).
async fn client(
    port: u16,
    started: Instant,
    end: Instant,
    jobs: Option<Arc<Mutex<mpsc::UnboundedReceiver<Planned>>>>,
    generator: Arc<Generator>,
) -> anyhow::Result<Vec<Done>> {
    let mut done = Vec::with_capacity(1 << 14);
    let mut conn = Connection::open(port).await?;
    loop {
        let planned = match &jobs {
            Some(jobs) => {
                let next = jobs.lock().await.recv().await;
                match next {
                    Some(p) => p,
                    None => break,
                }
            }
            None => {
                if Instant::now() >= end {
                    break;
                }
                let (route, bytes) = generator.next();
                Planned {
                    route,
                    bytes,
                    at: Instant::now(),
                }
            }
        };
        let sent = Instant::now();
        let status = match conn.exchange(&planned.bytes).await {
            Ok(status) => status,
            Err(_) => {
                conn = Connection::open(port).await?;
                0
            }
        };
        let finished = Instant::now();
        let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        done.push(Done {
            route: planned.route,
            status,
            latency_us: us(finished - planned.at),
            send_delay_us: us(sent.saturating_duration_since(planned.at)),
            at_ms: u32::try_from((finished - started).as_millis()).unwrap_or(u32::MAX),
        });
    }
    Ok(done)
}

/// Waits (up to 30 s) until the API is ready and serves fresh prices of
/// every crypto currency (the workers' first refreshes); returns them.
async fn wait_for_fresh_prices(port: u16) -> anyhow::Result<HashMap<String, f64>> {
    let ready =
        format!("GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let deadline = Instant::now() + Duration::from_secs(30);
    while request_once(port, ready.as_bytes()).await.map(|(s, _)| s) != Some(200) {
        ensure!(Instant::now() < deadline, "the API did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Ready when the API serves fresh prices of every crypto currency
    // (the workers' first refreshes).
    let rates_once = format!(
        "GET /api/v1/rates HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    );
    let prices = loop {
        let prices = fetch_prices(port, &rates_once).await.unwrap_or_default();
        if CRYPTO.iter().all(|s| prices.contains_key(*s)) {
            break prices;
        }
        ensure!(
            Instant::now() < deadline,
            "the workers did not publish fresh prices"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    Ok(prices)
}

/// Drain: until nothing due is waiting (outbox, queues, overdue bets,
/// unsent emails); then until every bet has settled. Returns both times,
/// in seconds after the load ended (`None`: not within the deadline).
async fn drain(
    conn: &mut AsyncPgConnection,
    queues: &JobQueues,
    load_end: Instant,
) -> anyhow::Result<(Option<f64>, Option<f64>)> {
    let drain_deadline = load_end + Duration::from_secs(u64::from(BET_SECS.1) + 180);
    let mut drained_after: Option<f64> = None;
    let mut all_settled_after: Option<f64> = None;
    loop {
        let db = db_backlog(conn).await?;
        let loads = queue_loads(queues).await?;
        let queued: u64 = loads.iter().map(|l| l.pending + l.delayed).sum();
        let now = load_end.elapsed().as_secs_f64();
        if drained_after.is_none()
            && db.outbox_due == 0
            && queued == 0
            && db.bets_overdue == 0
            && db.emails_unsent == 0
        {
            drained_after = Some(now);
        }
        if all_settled_after.is_none() && db.bets_open == 0 && db.emails_unsent == 0 {
            all_settled_after = Some(now);
        }
        if drained_after.is_some() && all_settled_after.is_some() {
            break;
        }
        if Instant::now() > drain_deadline {
            eprintln!(
                "[bench] gave up waiting: outbox due {}, queued {queued}, bets open {} (overdue {}), emails unsent {}",
                db.outbox_due, db.bets_open, db.bets_overdue, db.emails_unsent
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((drained_after, all_settled_after))
}

/// What the run left in the database.
struct Outcomes {
    /// Settlement lateness of every settled bet, ms, sorted.
    lateness: Vec<f64>,
    bets: BTreeMap<String, i64>,
    payouts: Count,
    orders: BTreeMap<String, i64>,
    batches: BTreeMap<String, i64>,
    alerts: BTreeMap<String, i64>,
    emails: BTreeMap<String, i64>,
    report: ledger::LedgerReport,
}

async fn outcomes(
    conn: &mut AsyncPgConnection,
    pool: &shared::db::DbPool,
) -> anyhow::Result<Outcomes> {
    let mut lateness: Vec<f64> = diesel::sql_query(
        "SELECT (extract(epoch FROM settled_at - settles_at) * 1000)::float8 AS ms
         FROM bets WHERE settled_at IS NOT NULL",
    )
    .load::<Late>(conn)
    .await?
    .into_iter()
    .map(|l| l.ms)
    .collect();
    lateness.sort_by(f64::total_cmp);
    let bets = tally(
        conn,
        "SELECT status AS what, count(*) AS n FROM bets GROUP BY status",
    )
    .await?;
    let payouts: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM ledger_transactions WHERE kind = 'bet_payout'",
    )
    .get_result(conn)
    .await?;
    let orders = tally(
        conn,
        "SELECT side || ' ' || status AS what, count(*) AS n FROM orders GROUP BY 1",
    )
    .await?;
    let batches = tally(
        conn,
        "SELECT status AS what, count(*) AS n FROM clearing_batches GROUP BY status",
    )
    .await?;
    let alerts = tally(
        conn,
        "SELECT status AS what, count(*) AS n FROM alerts GROUP BY status",
    )
    .await?;
    let emails = tally(
        conn,
        "SELECT template || ' ' || status AS what, count(*) AS n FROM emails GROUP BY 1",
    )
    .await?;
    let report = {
        let mut conn = pool.get().await?;
        ledger::check(&mut conn).await?
    };
    Ok(Outcomes {
        lateness,
        bets,
        payouts,
        orders,
        batches,
        alerts,
        emails,
        report,
    })
}

/// The per-route table (requests, rate, statuses, latency) and the
/// counts of answers that fail the run.
struct RouteTable {
    out: String,
    /// `key_n=… key_p99_ms=…` for the one-line summary.
    raw_routes: String,
    errors_5xx: u64,
    transport: u64,
    /// Answers with a status the route does not expect.
    unexpected: u64,
}

fn route_table(done: &[Done], measured_s: f64) -> RouteTable {
    let mut out = String::new();
    let mut errors_5xx = 0u64;
    let mut transport = 0u64;
    let mut unexpected = 0u64;
    let _ = writeln!(
        out,
        "\n| route | requests | per s | statuses | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|---|---|"
    );
    let mut raw_routes = String::new();
    let mut rows: Vec<(String, Vec<&Done>)> = Route::ALL
        .iter()
        .map(|r| {
            (
                r.label().to_owned(),
                done.iter().filter(|d| d.route == *r).collect(),
            )
        })
        .collect();
    rows.push(("all".to_owned(), done.iter().collect()));
    for (label, ds) in &rows {
        if ds.is_empty() {
            continue;
        }
        let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
        for d in ds {
            *statuses.entry(d.status).or_default() += 1;
        }
        let lat = sorted_ms(ds, |d| d.latency_us);
        let shown: Vec<String> = statuses
            .iter()
            .map(|(s, n)| {
                if *s == 0 {
                    format!("transport error: {n}")
                } else {
                    format!("{s}: {n}")
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "| {label} | {} | {:.1} | {} | {:.2} | {:.2} | {:.2} |",
            ds.len(),
            ds.len() as f64 / measured_s,
            shown.join(", "),
            percentile(&lat, 50.0),
            percentile(&lat, 99.0),
            lat.last().copied().unwrap_or(f64::NAN),
        );
        if label != "all" {
            let route = ds[0].route;
            for (s, n) in &statuses {
                match *s {
                    0 => transport += n,
                    500..=599 => errors_5xx += n,
                    s if s != route.expected() => unexpected += n,
                    _ => {}
                }
            }
            let _ = write!(
                raw_routes,
                " {k}_n={} {k}_p99_ms={:.2}",
                ds.len(),
                percentile(&lat, 99.0),
                k = route.key()
            );
        }
    }
    RouteTable {
        out,
        raw_routes,
        errors_5xx,
        transport,
        unexpected,
    }
}

/// Keeps `generator.prices` current from `GET /rates` (not counted).
async fn track_prices(port: u16, generator: Arc<Generator>, mut stop: watch::Receiver<bool>) {
    let request = format!(
        "GET /api/v1/rates HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    );
    loop {
        if let Some(prices) = fetch_prices(port, &request).await
            && let Ok(mut shared) = generator.prices.write()
        {
            shared.extend(prices);
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// The fresh prices on `GET /rates`.
async fn fetch_prices(port: u16, request: &str) -> Option<HashMap<String, f64>> {
    let (status, body) = request_once(port, request.as_bytes()).await?;
    if status != 200 {
        return None;
    }
    let list: serde_json::Value = serde_json::from_str(&body).ok()?;
    Some(
        list["items"]
            .as_array()?
            .iter()
            .filter(|i| i["fresh"].as_bool() == Some(true))
            .filter_map(|i| {
                Some((
                    i["symbol"].as_str()?.to_owned(),
                    i["price_usd"].as_str()?.parse().ok()?,
                ))
            })
            .collect(),
    )
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = sql_types::Uuid)]
    id: Uuid,
}

#[derive(QueryableByName)]
struct Late {
    #[diesel(sql_type = sql_types::Double)]
    ms: f64,
}

#[derive(QueryableByName)]
struct Tally {
    #[diesel(sql_type = sql_types::Text)]
    what: String,
    #[diesel(sql_type = sql_types::BigInt)]
    n: i64,
}

#[derive(QueryableByName, Default, Clone, Copy)]
struct DbBacklog {
    /// Outbox rows due and not yet relayed to Redis.
    #[diesel(sql_type = sql_types::BigInt)]
    outbox_due: i64,
    /// Outbox rows due later (bet settlements waiting).
    #[diesel(sql_type = sql_types::BigInt)]
    outbox_later: i64,
    /// Open bets past `settles_at`.
    #[diesel(sql_type = sql_types::BigInt)]
    bets_overdue: i64,
    #[diesel(sql_type = sql_types::BigInt)]
    bets_open: i64,
    /// Emails queued and not sent yet.
    #[diesel(sql_type = sql_types::BigInt)]
    emails_unsent: i64,
}

async fn db_backlog(conn: &mut AsyncPgConnection) -> anyhow::Result<DbBacklog> {
    Ok(diesel::sql_query(
        "SELECT (SELECT count(*) FROM outbox WHERE dispatched_at IS NULL AND run_at <= now()) AS outbox_due,
                (SELECT count(*) FROM outbox WHERE dispatched_at IS NULL AND run_at > now()) AS outbox_later,
                (SELECT count(*) FROM bets WHERE status = 'open' AND settles_at <= now()) AS bets_overdue,
                (SELECT count(*) FROM bets WHERE status = 'open') AS bets_open,
                (SELECT count(*) FROM emails WHERE status IN ('pending', 'sending')) AS emails_unsent",
    )
    .get_result(conn)
    .await?)
}

/// Pending, delayed (retries) and running jobs of one queue.
#[derive(Default, Clone, Copy)]
struct QueueLoad {
    pending: u64,
    delayed: u64,
    running: u64,
}

async fn queue_loads(queues: &JobQueues) -> anyhow::Result<Vec<QueueLoad>> {
    let mut loads = Vec::new();
    for queue in Queue::ALL {
        let c = queues.counts(queue).await?;
        loads.push(QueueLoad {
            pending: c.pending,
            delayed: c.delayed,
            running: c.running,
        });
    }
    Ok(loads)
}

/// One sample of the backlog.
#[derive(Clone)]
struct Sample {
    /// Seconds since the load started.
    t: f64,
    db: DbBacklog,
    queues: Vec<QueueLoad>,
    /// Current RSS (VmRSS) of every process, MB.
    rss_mb: Vec<f64>,
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn self_peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Samples the backlog every second until `stop`.
async fn sample_backlog(
    database: String,
    queues: JobQueues,
    pids: Vec<u32>,
    started: Instant,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<Sample>> {
    let mut conn = AsyncPgConnection::establish(&database).await?;
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(samples),
            _ = tick.tick() => {}
        }
        let t = started.elapsed().as_secs_f64();
        let db = db_backlog(&mut conn).await?;
        let queues = queue_loads(&queues).await?;
        let rss_mb = pids
            .iter()
            .map(|pid| rss_kb(*pid).unwrap_or(0) as f64 / 1024.0)
            .collect();
        samples.push(Sample {
            t,
            db,
            queues,
            rss_mb,
        });
    }
}

/// `status → count` rows of `sql` (columns `what`, `n`).
async fn tally(
    conn: &mut AsyncPgConnection,
    sql: &'static str,
) -> anyhow::Result<BTreeMap<String, i64>> {
    let rows: Vec<Tally> = diesel::sql_query(sql).load(conn).await?;
    Ok(rows.into_iter().map(|t| (t.what, t.n)).collect())
}

fn queue_index(queue: Queue) -> usize {
    Queue::ALL.iter().position(|q| *q == queue).unwrap_or(0)
}

/// Sorted latencies in ms.
fn sorted_ms(done: &[&Done], f: impl Fn(&Done) -> u32) -> Vec<f64> {
    let mut v: Vec<f64> = done.iter().map(|d| f64::from(f(d)) / 1000.0).collect();
    v.sort_by(f64::total_cmp);
    v
}

impl MixedRun<'_> {
    pub async fn measure(&self) -> anyhow::Result<()> {
        ensure!(self.users >= 2, "--users must be at least 2");
        ensure!(self.connections >= 1, "--connections must be at least 1");
        let mix = Mix::parse(&self.mix)?;
        let Scratch {
            database,
            secret,
            prefix,
            config: bench,
        } = scratch(self.config, DATABASE).await?;
        let pool = shared::db::pool(&bench.database, "bourse-bench").map_err(anyhow::Error::msg)?;

        // Users with a verified email, a USD wallet (1,000,000 USD) and a
        // BTC wallet (10 BTC, credited from the outside account: the API
        // has no crypto deposit, the ledger balances all the same).
        eprintln!(
            "[bench] creating {} users with funded USD and BTC wallets",
            self.users
        );
        let setup = Instant::now();
        let users: Vec<Id> = {
            let mut conn = pool.get().await?;
            diesel::sql_query(
                "INSERT INTO users (id, username, email, password_hash, email_verified_at)
                 SELECT gen_random_uuid(), 'mixed_' || i, 'mixed_' || i || '@example.com', 'x', now()
                 FROM generate_series(1, $1) AS i RETURNING id",
            )
            .bind::<sql_types::Integer, _>(i32::try_from(self.users)?)
            .load(&mut conn)
            .await?
        };
        let names: HashMap<Uuid, String> = {
            #[derive(QueryableByName)]
            struct Name {
                #[diesel(sql_type = sql_types::Uuid)]
                id: Uuid,
                #[diesel(sql_type = sql_types::Text)]
                username: String,
            }
            let mut conn = pool.get().await?;
            diesel::sql_query("SELECT id, username FROM users")
                .load::<Name>(&mut conn)
                .await?
                .into_iter()
                .map(|n| (n.id, n.username))
                .collect()
        };
        let mut tasks = Vec::new();
        for chunk in users.chunks(self.users.div_ceil(8)) {
            let ids: Vec<(Uuid, String)> = chunk
                .iter()
                .map(|u| (u.id, names.get(&u.id).cloned().unwrap_or_default()))
                .collect();
            let pool = pool.clone();
            let auth = bench.auth.clone();
            tasks.push(tokio::spawn(async move {
                let mut conn = pool.get().await?;
                let outside =
                    ledger::system_account(&mut conn, SystemAccount::Outside, "BTC").await?;
                let mut made = Vec::new();
                for (user, username) in ids {
                    let usd = wallets::create(&mut conn, user, "USD", None).await?;
                    let (usd_wallet, usd_number) = (usd.id, usd.wallet_number.clone());
                    wallets::deposit(&mut conn, user, usd, Decimal::from(1_000_000)).await?;
                    let btc = wallets::create(&mut conn, user, "BTC", None).await?;
                    let amount = Decimal::from(10);
                    let mut movement = Movement::new(TxKind::Deposit)
                        .posting(outside, "BTC", -amount)
                        .posting(btc.id, "BTC", amount);
                    movement.to_wallet = Some(btc.id);
                    movement.to_amount = Some(amount);
                    movement.to_currency = Some("BTC".to_owned());
                    movement.created_by = Some(user);
                    ledger::post(&mut conn, movement).await?;
                    let (token, _) = tokens::issue_access(&auth, user, Uuid::new_v4())?;
                    made.push(Account {
                        username,
                        usd_wallet,
                        usd_number,
                        btc_number: btc.wallet_number,
                        token,
                    });
                }
                Ok::<_, anyhow::Error>(made)
            }));
        }
        let mut accounts = Vec::new();
        for task in tasks {
            accounts.extend(task.await??);
        }
        eprintln!("[bench] setup took {:.1} s", setup.elapsed().as_secs_f64());

        // The APIs and the workers (every queue, prices every second).
        let mut ports = Vec::new();
        let mut apis = Vec::new();
        for _ in 0..self.apis.max(1) {
            let port = free_port()?;
            ports.push(port);
            apis.push(self.spawn_api(port, &database, &secret, &prefix)?);
        }
        let mail_dir = std::env::temp_dir().join(format!("{prefix}-mail"));
        let env = [
            ("DATABASE_URL", database.clone()),
            ("REDIS_PREFIX", prefix.clone()),
            ("DATABASE_POOL_SIZE", "16".to_owned()),
            ("MAIL_TRANSPORT", "file".to_owned()),
            ("MAIL_OUTBOX_DIR", mail_dir.display().to_string()),
            ("RATE_REFRESH_CRON", "* * * * * *".to_owned()),
        ];
        let workers = spawn_workers(&prefix, self.processes, self.concurrency, "all", &env)?;
        let result = self
            .load_and_report(
                &database, &prefix, &ports, &pool, &mut apis, workers, accounts, mix,
            )
            .await;
        for api in &mut apis {
            stop(api).await;
        }
        let _ = std::fs::remove_dir_all(&mail_dir);
        let (_, redis) = queue::connect(&self.config.redis, crate::support::REDIS_RETRIES)
            .map_err(anyhow::Error::msg)?;
        cleanup(&redis, &prefix).await?;
        result
    }

    /// One API process on `port`.
    fn spawn_api(
        &self,
        port: u16,
        database: &str,
        secret: &str,
        prefix: &str,
    ) -> anyhow::Result<tokio::process::Child> {
        spawn_api(
            port,
            &[
                ("DATABASE_URL", database.to_owned()),
                ("JWT_SECRET", secret.to_owned()),
                ("REDIS_PREFIX", prefix.to_owned()),
                // 32 connections in all, whatever the API count: the
                // server's max_connections (100) is shared with the
                // workers and this process.
                (
                    "DATABASE_POOL_SIZE",
                    (32 / self.apis.max(1)).max(8).to_string(),
                ),
                // The load is a few accounts creating alerts fast: measure
                // the path, not the per-account limit.
                (
                    "RATE_LIMIT_ALERT_CREATE_PER_ACCOUNT",
                    "1000000/60".to_owned(),
                ),
            ],
        )
    }

    /// The job backlog over time: one row per `--series-every` seconds,
    /// each value the largest sampled in that interval.
    fn backlog_table(&self, out: &mut String, samples: &[Sample], done: &[Done]) {
        // Backlog series: each row is the largest value over its interval.
        let every = self.series_every.max(1) as f64;
        let shown_queues = [
            Queue::Email,
            Queue::BetSettlement,
            Queue::PriceAlert,
            Queue::OrderClearing,
            Queue::RateRefresh,
        ];
        let _ = writeln!(
            out,
            "\nJob backlog (sampled every second; each row: the largest value in the {}s before it; until 2 s after every bet has settled. outbox due: rows due and not yet relayed to Redis (settlement emails wait for the relay's poll); outbox later: not yet due (bet settlements); bets overdue: open past settles_at; queues: pending/running; rss: current RSS in MB of api/{}):\n",
            self.series_every,
            (0..self.processes)
                .map(|i| format!("w{i}"))
                .collect::<Vec<_>>()
                .join("/")
        );
        let mut header =
            "| t s | req/s | outbox due | outbox later | bets overdue | emails unsent |".to_owned();
        let mut rule = "|---|---|---|---|---|---|".to_owned();
        for q in shown_queues {
            let _ = write!(header, " {} |", q.as_str());
            rule.push_str("---|");
        }
        header.push_str(" retries delayed | rss MB |");
        rule.push_str("---|---|");
        let _ = writeln!(out, "{header}\n{rule}");
        let mut bucket_end = every;
        let mut i = 0;
        while i < samples.len() {
            let group: Vec<&Sample> = samples[i..]
                .iter()
                .take_while(|s| s.t < bucket_end + 0.5)
                .collect();
            if group.is_empty() {
                bucket_end += every;
                continue;
            }
            i += group.len();
            let from_ms = ((bucket_end - every) * 1000.0) as u32;
            let to_ms = (bucket_end * 1000.0) as u32;
            let completed = done
                .iter()
                .filter(|d| d.at_ms >= from_ms && d.at_ms < to_ms)
                .count();
            let max_db =
                |f: fn(&DbBacklog) -> i64| group.iter().map(|s| f(&s.db)).max().unwrap_or(0);
            let mut row = format!(
                "| {:.0} | {:.0} | {} | {} | {} | {} |",
                bucket_end,
                completed as f64 / every,
                max_db(|d| d.outbox_due),
                max_db(|d| d.outbox_later),
                max_db(|d| d.bets_overdue),
                max_db(|d| d.emails_unsent),
            );
            for q in shown_queues {
                let k = queue_index(q);
                let pending = group.iter().map(|s| s.queues[k].pending).max().unwrap_or(0);
                let running = group.iter().map(|s| s.queues[k].running).max().unwrap_or(0);
                let _ = write!(row, " {pending}/{running} |");
            }
            let delayed = group
                .iter()
                .map(|s| s.queues.iter().map(|q| q.delayed).sum::<u64>())
                .max()
                .unwrap_or(0);
            let last = group.last().map(|s| s.rss_mb.clone()).unwrap_or_default();
            let rss: Vec<String> = last.iter().map(|m| format!("{m:.0}")).collect();
            let _ = writeln!(row, " {delayed} | {} |", rss.join("/"));
            out.push_str(&row);
            bucket_end += every;
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the run's processes and scratch names, made by the caller"
    )]
    async fn load_and_report(
        &self,
        database: &str,
        prefix: &str,
        ports: &[u16],
        pool: &shared::db::DbPool,
        apis: &mut [tokio::process::Child],
        mut workers: Vec<tokio::process::Child>,
        accounts: Vec<Account>,
        mix: Mix,
    ) -> anyhow::Result<()> {
        let api_pids: Vec<u32> = apis.iter().filter_map(|a| a.id()).collect();
        let worker_pids: Vec<u32> = workers.iter().filter_map(|w| w.id()).collect();
        let port = ports[0];
        for other in &ports[1..] {
            wait_for_fresh_prices(*other).await?;
        }
        let prices = wait_for_fresh_prices(port).await?;
        let generator = Arc::new(Generator {
            port,
            accounts,
            mix,
            prices: RwLock::new(prices),
        });
        let (_, redis) = queue::connect(&self.config.redis, crate::support::REDIS_RETRIES)
            .map_err(anyhow::Error::msg)?;
        let queues = JobQueues::new(redis, prefix.to_owned());
        let mode = if self.rate > 0 {
            format!("open loop, {} requests/s", self.rate)
        } else {
            "closed loop".to_owned()
        };
        eprintln!(
            "[bench] load for {} s, {mode}, {} connections, mix {}",
            self.secs,
            self.connections,
            generator.mix.describe()
        );

        let (stop_tx, stop_rx) = watch::channel(false);
        let started = Instant::now();
        let end = started + Duration::from_secs(self.secs);
        let mut pids = api_pids.clone();
        pids.extend(&worker_pids);
        let mut named: Vec<(String, u32)> = api_pids
            .iter()
            .enumerate()
            .map(|(i, pid)| (format!("api{i}"), *pid))
            .collect();
        named.extend(
            worker_pids
                .iter()
                .enumerate()
                .map(|(i, pid)| (format!("w{i}"), *pid)),
        );
        let cpu_before = CpuSnapshot::take();
        let sampler = tokio::spawn(sample_backlog(
            database.to_owned(),
            queues.clone(),
            pids,
            started,
            stop_rx.clone(),
        ));
        let tracker = tokio::spawn(track_prices(port, generator.clone(), stop_rx.clone()));

        let (jobs, feeder) = if self.rate > 0 {
            let (tx, rx) = mpsc::unbounded_channel::<Planned>();
            let generator = generator.clone();
            let rate = self.rate as f64;
            let feeder = tokio::spawn(async move {
                let mut planned = 0u64;
                loop {
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    let due = ((now - started).as_secs_f64() * rate) as u64;
                    while planned < due {
                        let (route, bytes) = generator.next();
                        let at = started + Duration::from_secs_f64(planned as f64 / rate);
                        if tx.send(Planned { route, bytes, at }).is_err() {
                            return;
                        }
                        planned += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            });
            (Some(Arc::new(Mutex::new(rx))), Some(feeder))
        } else {
            (None, None)
        };
        let mut clients = Vec::new();
        for i in 0..self.connections {
            clients.push(tokio::spawn(client(
                ports[i % ports.len()],
                started,
                end,
                jobs.clone(),
                generator.clone(),
            )));
        }
        drop(jobs);
        if let Some(feeder) = feeder {
            feeder.await?;
        }
        let mut done: Vec<Done> = Vec::new();
        for c in clients {
            done.extend(c.await??);
        }
        let load_end = Instant::now();
        let cpu = cpu_before.shares(&CpuSnapshot::take(), &named);
        let load_s = (load_end - started).as_secs_f64();
        eprintln!(
            "[bench] load done ({} requests in {load_s:.1} s); waiting for the backlog and the bets",
            done.len()
        );

        let mut conn = AsyncPgConnection::establish(database).await?;
        let (drained_after, all_settled_after) = drain(&mut conn, &queues, load_end).await?;
        // Let a duplicate settlement, if any, surface.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let _ = stop_tx.send(true);
        let samples = sampler.await??;
        let _ = tracker.await;

        let mut dead = 0u64;
        let mut retried = 0u64;
        for queue in Queue::ALL {
            let c = queues.counts(queue).await?;
            dead += c.dead;
            retried += c.retried;
        }
        let api_peak = api_pids
            .iter()
            .map(|pid| peak_rss_kb(*pid).unwrap_or(0))
            .max()
            .unwrap_or(0) as f64
            / 1024.0;
        let worker_peaks: Vec<f64> = worker_pids
            .iter()
            .map(|pid| peak_rss_kb(*pid).unwrap_or(0) as f64 / 1024.0)
            .collect();
        let bench_peak = self_peak_rss_kb().unwrap_or(0) as f64 / 1024.0;
        for w in &mut workers {
            stop(w).await;
        }
        for api in apis.iter_mut() {
            stop(api).await;
        }

        let Outcomes {
            lateness,
            bets,
            payouts,
            orders,
            batches,
            alerts,
            emails,
            report,
        } = outcomes(&mut conn, pool).await?;

        // Per route.
        let count = |m: &BTreeMap<String, i64>| -> String {
            m.iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let measured_s = self.secs as f64;
        let RouteTable {
            mut out,
            raw_routes,
            errors_5xx,
            transport,
            unexpected,
        } = route_table(&done, measured_s);
        let send_delay = sorted_ms(&done.iter().collect::<Vec<_>>(), |d| d.send_delay_us);

        self.backlog_table(&mut out, &samples, &done);
        let peak = |f: &dyn Fn(&Sample) -> u64| samples.iter().map(f).max().unwrap_or(0);
        let peak_outbox = peak(&|s| u64::try_from(s.db.outbox_due).unwrap_or(0));
        let peak_pending = peak(&|s| s.queues.iter().map(|q| q.pending).sum());
        let peak_overdue = peak(&|s| u64::try_from(s.db.bets_overdue).unwrap_or(0));

        let bets_total: i64 = bets.values().sum();
        let settled = bets.get("settled").copied().unwrap_or(0);
        let void = bets.get("void").copied().unwrap_or(0);
        let open = bets.get("open").copied().unwrap_or(0);
        let worker_rss: Vec<String> = worker_peaks.iter().map(|m| format!("{m:.1}")).collect();
        let mode = if self.rate > 0 { "open" } else { "closed" };
        println!(
            "scenario=mixed mode={mode} rate={} connections={} users={} secs={} apis={} processes={} concurrency={} requests={} throughput={:.0} send_delay_p99_ms={:.2} errors_5xx={errors_5xx} transport_errors={transport} refused={unexpected}{raw_routes} peak_outbox_due={peak_outbox} peak_queue_pending={peak_pending} peak_bets_overdue={peak_overdue} drain_s={} bets={bets_total} settled={settled} void={void} open={open} payouts={} settle_p50_ms={:.2} settle_p99_ms={:.2} settle_max_ms={:.2} all_settled_after_load_s={} retried={retried} dead={dead} ledger_ok={} api_rss_peak_mb={api_peak:.1} worker_rss_peak_mb={} bench_rss_peak_mb={bench_peak:.1} {cpu}",
            self.rate,
            self.connections,
            self.users,
            self.secs,
            self.apis,
            self.processes,
            self.concurrency,
            done.len(),
            done.len() as f64 / measured_s,
            percentile(&send_delay, 99.0),
            drained_after.map_or("timeout".to_owned(), |s| format!("{s:.1}")),
            payouts.n,
            percentile(&lateness, 50.0),
            percentile(&lateness, 99.0),
            lateness.last().copied().unwrap_or(f64::NAN),
            all_settled_after.map_or("timeout".to_owned(), |s| format!("{s:.1}")),
            report.ok,
            worker_rss.join("/"),
        );
        println!(
            "\nLoad: {} for {} s from {} keep-alive connections in this process (mix {}); latency from the planned send time{}; {} requests answered in {load_s:.1} s, client-side send delay p99 {:.2} ms.",
            if self.rate > 0 {
                format!("open loop at {} requests/s", self.rate)
            } else {
                "closed loop".to_owned()
            },
            self.secs,
            self.connections,
            generator.mix.describe(),
            if self.rate > 0 { "" } else { " (= send time)" },
            done.len(),
            percentile(&send_delay, 99.0),
        );
        print!("{out}");
        println!(
            "\nAfter the load: backlog gone after {}; every bet settled and every email sent {} after the load ended.",
            drained_after.map_or("(not within the deadline)".to_owned(), |s| format!(
                "{s:.1} s"
            )),
            all_settled_after.map_or("(not within the deadline)".to_owned(), |s| format!(
                "{s:.1} s"
            )),
        );
        println!(
            "Bets: {bets_total} ({}), {} payouts; settlement lateness (settled_at − settles_at) p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms.",
            count(&bets),
            payouts.n,
            percentile(&lateness, 50.0),
            percentile(&lateness, 99.0),
            lateness.last().copied().unwrap_or(f64::NAN),
        );
        println!(
            "Orders: {}; clearing batches: {}.",
            count(&orders),
            count(&batches)
        );
        println!("Alerts: {}.", count(&alerts));
        println!("Emails: {}.", count(&emails));
        println!("Jobs retried: {retried}; dead: {dead}.");
        println!(
            "Peak RSS (VmHWM): api {api_peak:.1} MB; workers {} MB; bench {bench_peak:.1} MB.",
            worker_rss.join(" / ")
        );
        println!("Ledger check: {}.", if report.ok { "green" } else { "RED" });

        ensure!(report.ok, "the ledger check failed: {report:?}");
        ensure!(
            errors_5xx == 0 && transport == 0,
            "{errors_5xx} answers 5xx, {transport} transport errors"
        );
        ensure!(
            open == 0 && payouts.n == settled + void,
            "{open} bets still open, {} payouts for {} settled or void",
            payouts.n,
            settled + void
        );
        Ok(())
    }
}
