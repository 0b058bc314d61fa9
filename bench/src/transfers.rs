//! Scenario `transfers`: authenticated transfers over HTTP from this
//! process among many wallets, against a `bourse-api` it starts on a
//! scratch database, then the ledger check.

use std::sync::Arc;

use diesel::{prelude::*, sql_types};
use diesel_async::RunQueryDsl;
use rust_decimal::Decimal;
use shared::{config::Config, sessions::tokens, wallets};
use uuid::Uuid;

use crate::http::request_once;
use crate::support::{Scratch, cleanup, free_port, load, peak_rss_kb, scratch, spawn_api, stop};

const DATABASE: &str = "bourse_bench";
const HOT: usize = 10;

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = sql_types::Uuid)]
    id: Uuid,
}

struct Account {
    wallet: Uuid,
    number: String,
    token: String,
}

pub async fn run(
    config: &Config,
    count: usize,
    clients: usize,
    seconds: u64,
    hot_spot: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(count > HOT, "--wallets must be more than {HOT}");
    let Scratch {
        database,
        secret,
        prefix,
        config: bench_config,
    } = scratch(config, DATABASE).await?;

    // Users with a verified email and a funded USD wallet each.
    eprintln!("[bench] creating {count} funded wallets");
    let pool =
        shared::db::pool(&bench_config.database, "bourse-bench").map_err(anyhow::Error::msg)?;
    let users: Vec<Id> = {
        let mut conn = pool.get().await?;
        diesel::sql_query(
            "INSERT INTO users (id, username, email, password_hash, email_verified_at)
             SELECT gen_random_uuid(), 'bench_' || i, 'bench_' || i || '@example.com', 'x', now()
             FROM generate_series(1, $1) AS i RETURNING id",
        )
        .bind::<sql_types::Integer, _>(i32::try_from(count)?)
        .load(&mut conn)
        .await?
    };
    let mut tasks = Vec::new();
    for chunk in users.chunks(count.div_ceil(8)) {
        let ids: Vec<Uuid> = chunk.iter().map(|u| u.id).collect();
        let pool = pool.clone();
        let auth = bench_config.auth.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = pool.get().await?;
            let mut made = Vec::new();
            for user in ids {
                let wallet = wallets::create(&mut conn, user, "USD", None).await?;
                let wallet_id = wallet.id;
                let number = wallet.wallet_number.clone();
                wallets::deposit(&mut conn, user, wallet, Decimal::from(1_000_000)).await?;
                let (token, _) = tokens::issue_access(&auth, user, Uuid::new_v4())?;
                made.push(Account {
                    wallet: wallet_id,
                    number,
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
    let accounts = Arc::new(accounts);

    let port = free_port()?;
    let mut child = spawn_api(
        port,
        &[
            ("DATABASE_URL", database),
            ("JWT_SECRET", secret),
            ("REDIS_PREFIX", prefix.clone()),
            ("DATABASE_POOL_SIZE", clients.to_string()),
        ],
    )?;
    let pid = child.id().unwrap_or_default();
    let ready =
        format!("GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while request_once(port, ready.as_bytes()).await.map(|(s, _)| s) != Some(200) {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the API did not become ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let generator = {
        let accounts = accounts.clone();
        Arc::new(move || {
            let n = accounts.len();
            let range = if hot_spot && rand::random::<bool>() {
                HOT
            } else {
                n
            };
            let from = rand::random_range(0..range);
            let mut to = rand::random_range(0..range - 1);
            if to >= from {
                to += 1;
            }
            let (payer, payee) = (&accounts[from], &accounts[to]);
            let body = format!(
                r#"{{"to_wallet_number":"{}","amount":"0.01"}}"#,
                payee.number
            );
            format!(
                "POST /api/v1/wallets/{}/transfer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                payer.wallet,
                payer.token,
                body.len()
            )
            .into_bytes()
        })
    };
    let result = load(port, clients, seconds, 201, generator).await?;
    let rss_kb = peak_rss_kb(pid).unwrap_or(0);
    stop(&mut child).await;

    let mut conn = pool.get().await?;
    let report = shared::ledger::check(&mut conn).await?;
    let (_, redis) =
        queue::connect(&config.redis, crate::support::REDIS_RETRIES).map_err(anyhow::Error::msg)?;
    cleanup(&redis, &prefix).await?;
    println!(
        "scenario=transfers wallets={count} clients={clients} hot_spot={hot_spot} seconds={seconds} transfers={} failures={} rate={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} ledger_ok={} api_rss_peak_mb={:.1}",
        result.latencies_us.len(),
        result.failures,
        result.latencies_us.len() as f64 / seconds as f64,
        result.ms(50.0),
        result.ms(99.0),
        result.max_ms(),
        report.ok,
        rss_kb as f64 / 1024.0,
    );
    anyhow::ensure!(report.ok, "the ledger check failed: {report:?}");
    Ok(())
}
