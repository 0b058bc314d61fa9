//! Scenario `fees`: a million fiat wallets due at once, 10% of them short
//! of funds, charged by worker processes; transfers run meanwhile. Then a
//! rerun of the same period, and the ledger check.

use std::time::{Duration, Instant};

use anyhow::ensure;
use chrono::Utc;
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use shared::{config::Config, fees, jobs::ChargeFees, outbox, wallets};

use crate::support::{Count, finish_workers, scratch_database, spawn_workers};

const DATABASE: &str = "bourse_bench_fees";
/// Each user holds one wallet in each of these.
const CURRENCIES: [&str; 3] = ["USD", "EUR", "KZT"];

pub struct FeesRun<'a> {
    pub config: &'a Config,
    pub count: i64,
    pub processes: usize,
    pub transfer_clients: usize,
    /// Transfers per second, all clients together.
    pub transfer_rate: u64,
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = sql_types::Bool)]
    flag: bool,
}

#[derive(QueryableByName)]
struct Pair {
    #[diesel(sql_type = sql_types::Uuid)]
    user_id: uuid::Uuid,
    #[diesel(sql_type = sql_types::Uuid)]
    id: uuid::Uuid,
}

impl FeesRun<'_> {
    pub async fn measure(&self) -> anyhow::Result<()> {
        let database = scratch_database(self.config, DATABASE).await?;
        let prefix = format!("bench-{:08x}", rand::random::<u32>());
        let mut conn = AsyncPgConnection::establish(&database).await?;
        let users = (self.count + 2) / 3;
        eprintln!(
            "[bench] {users} users, {} fiat wallets due now (10% short of the fee)",
            users * 3
        );
        let started = Instant::now();
        diesel::sql_query(
            "INSERT INTO users (id, username, email, password_hash, email_verified_at)
             SELECT gen_random_uuid(), 'payer_' || i, 'payer_' || i || '@example.com', 'x', now()
             FROM generate_series(1, $1) AS i",
        )
        .bind::<sql_types::BigInt, _>(users)
        .execute(&mut conn)
        .await?;
        for (k, currency) in CURRENCIES.iter().enumerate() {
            // Accounts and wallets (made due below); then one funding
            // deposit per currency (one ledger transaction, balanced
            // against the outside account): 1,000 each, 0.01 for every
            // tenth wallet.
            diesel::sql_query(
                "WITH u AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM users),
                      a AS (INSERT INTO ledger_accounts (id, kind, currency)
                            SELECT gen_random_uuid(), 'wallet', $1 FROM u
                            RETURNING id),
                      numbered AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM a)
                 INSERT INTO wallets (id, user_id, currency, wallet_number, name)
                 SELECT numbered.id, u.id, $1, (1000000000 + $2 * 1000000 + u.n)::text,
                        $1 || ' wallet'
                 FROM numbered JOIN u ON u.n = numbered.n",
            )
            .bind::<sql_types::Text, _>(currency)
            .bind::<sql_types::BigInt, _>(i64::try_from(k)?)
            .execute(&mut conn)
            .await?;
            diesel::sql_query(
                "WITH tx AS (INSERT INTO ledger_transactions (id, kind, to_currency)
                             VALUES (gen_random_uuid(), 'deposit', $1) RETURNING id),
                      amounts AS (SELECT w.id, CASE WHEN row_number() OVER (ORDER BY w.id) % 10 = 0
                                                    THEN 0.01 ELSE 1000 END AS amount
                                  FROM wallets w WHERE w.currency = $1)
                 INSERT INTO ledger_entries (transaction_id, account_id, currency, amount)
                 SELECT tx.id, amounts.id, $1, amounts.amount FROM tx, amounts
                 UNION ALL
                 SELECT tx.id, o.id, $1, -(SELECT sum(amount) FROM amounts)
                 FROM tx, ledger_accounts o WHERE o.kind = 'outside' AND o.currency = $1",
            )
            .bind::<sql_types::Text, _>(currency)
            .execute(&mut conn)
            .await?;
        }
        diesel::sql_query(
            "INSERT INTO price_history (symbol, price_usd, source, observed_at)
             VALUES ('KZT', 0.0021, 'bench', now() + interval '10 minutes'),
                    ('EUR', 1.08, 'bench', now() + interval '10 minutes')",
        )
        .execute(&mut conn)
        .await?;
        diesel::sql_query(
            "UPDATE wallet_fee_schedule SET next_fee_at = now() - interval '1 second'",
        )
        .execute(&mut conn)
        .await?;
        diesel::sql_query("VACUUM ANALYZE")
            .execute(&mut conn)
            .await?;
        let due: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM wallet_fee_schedule WHERE next_fee_at <= now()",
        )
        .get_result(&mut conn)
        .await?;
        eprintln!(
            "[bench] {} due wallets set up in {:.1} s",
            due.n,
            started.elapsed().as_secs_f64()
        );

        let bench = Config::from_map(
            [
                ("DATABASE_URL", database.clone()),
                ("REDIS_PREFIX", prefix.clone()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let env = [
            ("DATABASE_URL", database.clone()),
            ("REDIS_PREFIX", prefix.clone()),
            ("RATE_REFRESH_CRON", "0 0 * * * *".to_owned()),
            ("MONTHLY_FEE_CRON", "0 0 * * * *".to_owned()),
            ("MAIL_TRANSPORT", "file".to_owned()),
            (
                "MAIL_OUTBOX_DIR",
                std::env::temp_dir()
                    .join(format!("{prefix}-mail"))
                    .display()
                    .to_string(),
            ),
        ];
        // Two fee jobs run at a time at most (MONTHLY_FEE_PARALLELISM).
        let children = spawn_workers(&prefix, self.processes, 8, "monthly_fee", &env)?;
        tokio::time::sleep(Duration::from_secs(2)).await;

        // Transfers among funded USD wallets while the fees are charged.
        let pool = shared::db::pool(&bench.database, "bourse-bench").map_err(anyhow::Error::msg)?;
        let pairs: Vec<Pair> = diesel::sql_query(
            "SELECT user_id, id FROM wallets WHERE currency = 'USD' ORDER BY id LIMIT 2000",
        )
        .load(&mut conn)
        .await?;
        let stop_transfers = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut clients = Vec::new();
        for c in 0..self.transfer_clients {
            let pool = pool.clone();
            let rates = bench.rates.clone();
            let stop_flag = stop_transfers.clone();
            let mine: Vec<(uuid::Uuid, uuid::Uuid)> = pairs
                .iter()
                .skip(c)
                .step_by(self.transfer_clients)
                .map(|p| (p.user_id, p.id))
                .collect();
            let period = Duration::from_secs_f64(
                self.transfer_clients as f64 / self.transfer_rate.max(1) as f64,
            );
            clients.push(tokio::spawn(async move {
                let mut conn = pool.get().await?;
                let mut ticks = tokio::time::interval(period);
                let (mut ok, mut refused) = (0u64, 0u64);
                let mut i = 0usize;
                while !std::sync::atomic::AtomicBool::load(
                    &stop_flag,
                    std::sync::atomic::Ordering::Relaxed,
                ) {
                    ticks.tick().await;
                    let (user, from) = mine[i % mine.len()];
                    let (to_user, to) = mine[(i * 7 + 3) % mine.len()];
                    i += 1;
                    let (Some(from), Some(to)) = (
                        wallets::get(&mut conn, user, from).await?,
                        wallets::get(&mut conn, to_user, to).await?,
                    ) else {
                        continue;
                    };
                    match wallets::transfer(
                        &mut conn,
                        &rates,
                        user,
                        from,
                        to,
                        Decimal::new(1, 2),
                        Utc::now(),
                    )
                    .await
                    {
                        Ok(_) => ok += 1,
                        Err(_) => refused += 1,
                    }
                }
                Ok::<_, anyhow::Error>((ok, refused))
            }));
        }

        let started = Instant::now();
        let now = Utc::now();
        outbox::push(
            &mut conn,
            &ChargeFees {
                at: now,
                fan_out: 0,
            },
            None,
        )
        .await?;
        let deadline = started + Duration::from_secs(600);
        loop {
            // EXISTS walks the due index from its low end, where the wallets
            // still due are: cheap however many are done (a count would
            // take CPU from the run it measures).
            let left: Flag = diesel::sql_query(
                "SELECT EXISTS (SELECT 1 FROM wallet_fee_schedule WHERE next_fee_at <= $1) AS flag",
            )
            .bind::<sql_types::Timestamptz, _>(now)
            .get_result(&mut conn)
            .await?;
            if !left.flag {
                break;
            }
            ensure!(Instant::now() < deadline, "wallets still due after 600 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let charged_s = started.elapsed().as_secs_f64();
        stop_transfers.store(true, std::sync::atomic::Ordering::Relaxed);
        let (mut transfers, mut refused) = (0, 0);
        for client in clients {
            let (ok, no) = client.await??;
            transfers += ok;
            refused += no;
        }

        // The same period again, from this process.
        let rerun_started = Instant::now();
        let rerun = fees::charge_due(&mut conn, &bench.fees, &bench.rates, now).await?;
        let rerun_s = rerun_started.elapsed().as_secs_f64();

        let rss_peak_mb = finish_workers(children, self.config, &prefix).await?;
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("{prefix}-mail")));

        let charged: Count =
            diesel::sql_query("SELECT count(*) AS n FROM wallet_fees WHERE status = 'charged'")
                .get_result(&mut conn)
                .await?;
        let blocked: Count =
            diesel::sql_query("SELECT count(*) AS n FROM wallets WHERE status = 'blocked'")
                .get_result(&mut conn)
                .await?;
        let rows: Count = diesel::sql_query("SELECT count(*) AS n FROM wallet_fees")
            .get_result(&mut conn)
            .await?;
        let report = shared::ledger::check(&mut conn).await?;
        println!(
            "scenario=fees wallets={} processes={} transfer_rate={} charged={} blocked={} fee_rows={} all_done_s={:.1} rerun_charged={} rerun_s={:.2} transfers_during={} transfers_refused={} ledger_ok={} rss_peak_mb={:.1}",
            due.n,
            self.processes,
            self.transfer_rate,
            charged.n,
            blocked.n,
            rows.n,
            charged_s,
            rerun.charged + rerun.blocked,
            rerun_s,
            transfers,
            refused,
            report.ok,
            rss_peak_mb,
        );
        ensure!(rows.n == due.n, "{} fee rows for {} wallets", rows.n, due.n);
        ensure!(report.ok, "the ledger check failed: {report:?}");
        Ok(())
    }
}
