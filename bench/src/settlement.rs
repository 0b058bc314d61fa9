//! Scenario `settlement`: real bets falling due uniformly over a window,
//! settled by worker processes. Lateness = `settled_at` − `settles_at`,
//! both from the database; afterwards every bet must have exactly one
//! payout and the ledger check must be green.

use std::time::{Duration, Instant};

use anyhow::bail;
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use shared::{
    bets::{self, Direction, PlaceBet},
    config::Config,
    wallets,
};

use crate::support::{
    Count, CpuSnapshot, Scratch, finish_workers, percentile, scratch, spawn_worker, spawn_workers,
    worker_labels,
};

const DATABASE: &str = "bourse_bench_settlement";
const USERS: usize = 1_000;

pub struct SettlementRun<'a> {
    pub config: &'a Config,
    pub count: usize,
    pub processes: usize,
    pub concurrency: usize,
    pub lead: f64,
    pub spread: f64,
    /// `--queues` of the workers (all by default).
    pub queues: String,
    /// Extra worker processes serving only `email`, with this concurrency
    /// (0: none).
    pub email_workers: usize,
    pub email_concurrency: usize,
    /// DATABASE_POOL_SIZE of each worker process.
    pub pool_size: usize,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = sql_types::Uuid)]
    id: uuid::Uuid,
}

#[derive(QueryableByName)]
struct Late {
    #[diesel(sql_type = sql_types::Double)]
    ms: f64,
}

#[derive(QueryableByName)]
struct Wait {
    #[diesel(sql_type = sql_types::Nullable<sql_types::Double>)]
    secs: Option<f64>,
}

impl SettlementRun<'_> {
    pub async fn measure(&self) -> anyhow::Result<()> {
        let Scratch {
            database,
            prefix,
            config: bench,
            ..
        } = scratch(self.config, DATABASE).await?;
        let pool = shared::db::pool(&bench.database, "bourse-bench").map_err(anyhow::Error::msg)?;

        let mut conn = AsyncPgConnection::establish(&database).await?;
        place_bets(&pool, &bench, &mut conn, self.count, self.lead, self.spread).await?;

        let mail_dir = std::env::temp_dir().join(format!("{prefix}-mail"));
        let env = [
            ("DATABASE_URL", database.clone()),
            ("REDIS_PREFIX", prefix.clone()),
            ("DATABASE_POOL_SIZE", self.pool_size.to_string()),
            ("MAIL_TRANSPORT", "file".to_owned()),
            ("MAIL_OUTBOX_DIR", mail_dir.display().to_string()),
        ];
        let mut children = spawn_workers(
            &prefix,
            self.processes,
            self.concurrency,
            &self.queues,
            &env,
        )?;
        for i in 0..self.email_workers {
            let name = format!("{prefix}-mail{i}");
            let concurrency = self.email_concurrency.to_string();
            children.push(spawn_worker(
                &[
                    "--concurrency",
                    &concurrency,
                    "--name",
                    &name,
                    "--queues",
                    "email",
                ],
                &env,
            )?);
        }
        eprintln!(
            "[bench] bets fall due from {}s to {}s from now",
            self.lead,
            self.lead + self.spread
        );

        let deadline = Instant::now() + Duration::from_secs_f64(self.lead + self.spread + 120.0);
        // CPU is counted from the first bet falling due to the last
        // settlement.
        let first_due: Wait = diesel::sql_query(
            "SELECT greatest(extract(epoch FROM min(settles_at) - now()), 0)::float8 AS secs
             FROM bets WHERE status = 'open'",
        )
        .get_result(&mut conn)
        .await?;
        tokio::time::sleep(Duration::from_secs_f64(first_due.secs.unwrap_or(0.0))).await;
        let named = worker_labels(&children);
        let cpu_before = CpuSnapshot::take();
        wait_until_settled(&mut conn, deadline).await?;
        let settled_at = Instant::now();
        let cpu = cpu_before.shares(&CpuSnapshot::take(), &named);
        // Every settlement's email is sent too: by the workers when they
        // serve `email`, else by an email worker started now.
        let serves_email = self.email_workers > 0
            || self.queues == "all"
            || self.queues.split(',').any(|q| q.trim() == "email");
        if !serves_email {
            children.push(spawn_worker(
                &[
                    "--queues",
                    "email",
                    "--name",
                    &format!("{prefix}-mail-after"),
                ],
                &env,
            )?);
        }
        loop {
            let unsent: Count =
                diesel::sql_query("SELECT count(*) AS n FROM emails WHERE status <> 'sent'")
                    .get_result(&mut conn)
                    .await?;
            if unsent.n == 0 {
                break;
            }
            if Instant::now() > deadline + Duration::from_secs(300) {
                bail!("{} emails unsent", unsent.n);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mail_drain_s = settled_at.elapsed().as_secs_f64();
        // Let a duplicate, if any, surface before counting payouts.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_peak_mb = finish_workers(children, self.config, &prefix).await?;
        let _ = std::fs::remove_dir_all(&mail_dir);

        let mut lateness: Vec<f64> = diesel::sql_query(
            "SELECT (extract(epoch FROM settled_at - settles_at) * 1000)::float8 AS ms FROM bets",
        )
        .load::<Late>(&mut conn)
        .await?
        .into_iter()
        .map(|l| l.ms)
        .collect();
        lateness.sort_by(f64::total_cmp);
        let payouts: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM ledger_transactions WHERE kind = 'bet_payout'",
        )
        .get_result(&mut conn)
        .await?;
        let void: Count = diesel::sql_query("SELECT count(*) AS n FROM bets WHERE status = 'void'")
            .get_result(&mut conn)
            .await?;
        let report = shared::ledger::check(&mut conn).await?;
        println!(
            "scenario=settlement processes={} concurrency={} n={} lead_s={} spread_s={} settled={} void={} payouts={} emails_done_after_last_settlement_s={:.1} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} ledger_ok={} rss_peak_mb={:.1} {cpu}",
            self.processes,
            self.concurrency,
            self.count,
            self.lead,
            self.spread,
            lateness.len(),
            void.n,
            payouts.n,
            mail_drain_s,
            percentile(&lateness, 50.0),
            percentile(&lateness, 99.0),
            lateness.last().copied().unwrap_or(f64::NAN),
            report.ok,
            rss_peak_mb,
        );
        anyhow::ensure!(
            payouts.n == i64::try_from(self.count)?,
            "{} payouts for {} bets",
            payouts.n,
            self.count
        );
        anyhow::ensure!(report.ok, "the ledger check failed: {report:?}");
        Ok(())
    }
}

/// `count` bets among up to 1,000 users with funded USD wallets, placed
/// through the shared code (ledger escrow and outbox job included), then
/// due at now + `lead` + uniform(0, `spread`) seconds, their settlement
/// jobs moved with them. `conn` is a direct connection to the same
/// database as `pool`.
pub async fn place_bets(
    pool: &shared::db::DbPool,
    bench: &Config,
    conn: &mut AsyncPgConnection,
    count: usize,
    lead: f64,
    spread: f64,
) -> anyhow::Result<()> {
    let user_count = USERS.min(count.max(1));
    eprintln!(
        "[bench] {user_count} users with funded USD wallets, {} bets",
        count
    );
    let users: Vec<Id> = {
        let mut conn = pool.get().await?;
        diesel::sql_query(
            "INSERT INTO price_history (symbol, price_usd, source, observed_at)
             VALUES ('BTC', 43000, 'bench', clock_timestamp()), ('USD', 1, 'bench', clock_timestamp())",
        )
        .execute(&mut conn)
        .await?;
        diesel::sql_query(
            "INSERT INTO users (id, username, email, password_hash, email_verified_at)
             SELECT gen_random_uuid(), 'bettor_' || i, 'bettor_' || i || '@example.com', 'x', now()
             FROM generate_series(1, $1) AS i RETURNING id",
        )
        .bind::<sql_types::Integer, _>(i32::try_from(user_count)?)
        .load(&mut conn)
        .await?
    };
    // User g places count / users bets, one more if g < count % users:
    // exactly `count` in all.
    let (base, extra) = (count / user_count, count % user_count);
    let chunk_len = user_count.div_ceil(8);
    let mut tasks = Vec::new();
    for (c, chunk) in users.chunks(chunk_len).enumerate() {
        let ids: Vec<uuid::Uuid> = chunk.iter().map(|u| u.id).collect();
        let pool = pool.clone();
        let bench = bench.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = pool.get().await?;
            let mut placed = 0usize;
            for (n, user) in ids.into_iter().enumerate() {
                let wallet = wallets::create(&mut conn, user, "USD", None).await?;
                wallets::deposit(&mut conn, user, wallet, Decimal::from(1_000_000)).await?;
                let g = c * chunk_len + n;
                for k in 0..base + usize::from(g < extra) {
                    bets::place(
                        &mut conn,
                        &bench.rates,
                        &bench.bets,
                        PlaceBet {
                            user_id: user,
                            symbol: "BTC".into(),
                            direction: if (n + k) % 2 == 0 {
                                Direction::Up
                            } else {
                                Direction::Down
                            },
                            stake: Decimal::from(10),
                            leverage: 1 + u32::try_from((n + k) % 100).unwrap_or(0),
                            duration_seconds: 3600,
                        },
                    )
                    .await?;
                    placed += 1;
                }
            }
            Ok::<_, anyhow::Error>(placed)
        }));
    }
    let mut placed = 0;
    for task in tasks {
        placed += task.await??;
    }
    // Keep exactly `count`, then spread their due times: now + lead +
    // uniform(0, spread), settlement jobs moved with them.
    diesel::sql_query(
        "DELETE FROM outbox WHERE job = 'settle_bet' AND (payload->>'bet_id')::uuid IN (
             SELECT id FROM bets ORDER BY id OFFSET $1)",
    )
    .bind::<sql_types::BigInt, _>(i64::try_from(count)?)
    .execute(conn)
    .await?;
    let extra = placed.saturating_sub(count);
    if extra > 0 {
        bail!("placed {placed} bets for {}", count);
    }
    diesel::sql_query(
        "UPDATE bets SET settles_at = clock_timestamp()
             + make_interval(secs => $1 + random() * $2)",
    )
    .bind::<sql_types::Double, _>(lead)
    .bind::<sql_types::Double, _>(spread)
    .execute(conn)
    .await?;
    diesel::sql_query(
        "UPDATE outbox o SET run_at = b.settles_at FROM bets b
         WHERE o.job = 'settle_bet' AND (o.payload->>'bet_id')::uuid = b.id",
    )
    .execute(conn)
    .await?;

    Ok(())
}

/// Waits until no bet is open; fails after `deadline`.
pub async fn wait_until_settled(
    conn: &mut AsyncPgConnection,
    deadline: Instant,
) -> anyhow::Result<()> {
    loop {
        let open: Count = diesel::sql_query("SELECT count(*) AS n FROM bets WHERE status = 'open'")
            .get_result(conn)
            .await?;
        if open.n == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} bets still open", open.n);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
