//! Scenario `liquidation`: `bets` open bets on BTC (half `up`, half `down`,
//! leverage 1–100, placed through the shared code as the API places them),
//! then one observation, announced through the outbox as a refresh
//! announces it, that reaches the liquidation price of about `liquidated`
//! of the `up` bets: the highest ones, so the price is the
//! `liquidated`-th highest liquidation price (whole leverage steps share a
//! price, so the count is what lies at or above it, printed as
//! `liquidated`). Worker processes serving `price_alert` liquidate them in
//! batches of `BET_LIQUIDATION_BATCH_SIZE`.
//!
//! Measured: from the observation's stamp to the last liquidated bet's
//! `settled_at` (both PostgreSQL's clock), and until every email job has
//! left the outbox for Redis (polled here). Afterwards: exactly the bets
//! reached are liquidated, one email each, the house's open notional agrees
//! with the open bets, and the ledger check is green.

use std::time::{Duration, Instant};

use anyhow::ensure;
use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;
use shared::{config::Config, jobs::PricesObserved, outbox};

use crate::{
    settlement::place_bets,
    support::{Count, Scratch, finish_workers, scratch, spawn_workers, wait_until_emails_relayed},
};

const DATABASE: &str = "bourse_bench_liquidation";

pub struct LiquidationRun<'a> {
    pub config: &'a Config,
    pub bets: usize,
    pub liquidated: i64,
    pub processes: usize,
    pub concurrency: usize,
}

#[derive(QueryableByName)]
struct Price {
    #[diesel(sql_type = sql_types::Nullable<sql_types::Numeric>)]
    price: Option<Decimal>,
}

#[derive(QueryableByName)]
struct Stamp {
    #[diesel(sql_type = sql_types::Timestamptz)]
    at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct Ms {
    #[diesel(sql_type = sql_types::Nullable<sql_types::Double>)]
    ms: Option<f64>,
}

impl LiquidationRun<'_> {
    pub async fn measure(&self) -> anyhow::Result<()> {
        let Scratch {
            database,
            prefix,
            config: mut bench,
            ..
        } = scratch(self.config, DATABASE).await?;
        // The placements here are the bench's, not a user's: no limit
        // refuses them, and the one price stored before them stays in force
        // however long they take (the workers keep their defaults).
        bench.rates.max_age = Duration::from_secs(3600);
        bench.bets.max_open_bets = i64::MAX;
        bench.bets.max_open_stake = Decimal::MAX;
        bench.bets.max_house_notional = Decimal::MAX;
        let pool = shared::db::pool(&bench.database, "bourse-bench").map_err(anyhow::Error::msg)?;
        let mut conn = AsyncPgConnection::establish(&database).await?;
        let started = Instant::now();
        // Due in an hour: only the observation closes any of them here.
        place_bets(&pool, &bench, &mut conn, self.bets, 3600.0, 0.0).await?;
        diesel::sql_query("VACUUM ANALYZE bets")
            .execute(&mut conn)
            .await?;
        eprintln!(
            "[bench] {} bets placed in {:.1} s",
            self.bets,
            started.elapsed().as_secs_f64()
        );
        let price: Price = diesel::sql_query(
            "SELECT liquidation_price AS price FROM bets
             WHERE status = 'open' AND direction = 'up' AND symbol = 'BTC'
             ORDER BY liquidation_price DESC OFFSET $1 - 1 LIMIT 1",
        )
        .bind::<sql_types::BigInt, _>(self.liquidated.max(1))
        .get_result(&mut conn)
        .await?;
        let crossing = price
            .price
            .ok_or_else(|| anyhow::anyhow!("fewer than {} up bets", self.liquidated))?;
        let reached: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM bets
             WHERE status = 'open' AND direction = 'up' AND liquidation_price >= $1",
        )
        .bind::<sql_types::Numeric, _>(crossing)
        .get_result(&mut conn)
        .await?;

        let env = [
            ("DATABASE_URL", database.clone()),
            ("REDIS_PREFIX", prefix.clone()),
            ("DATABASE_POOL_SIZE", "16".to_owned()),
            // Hourly: the workers' own refreshes add no observations.
            ("RATE_REFRESH_CRON", "0 0 * * * *".to_owned()),
        ];
        // Not serving `email`: the emails stay queued, so what is measured
        // is liquidating the bets and queueing their emails.
        let children = spawn_workers(
            &prefix,
            self.processes,
            self.concurrency,
            "price_alert",
            &env,
        )?;
        // Let the workers connect and go idle.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let started = Instant::now();
        let stamp = conn
            .transaction::<_, anyhow::Error, _>(async |conn| {
                let stamp: Stamp = diesel::sql_query(
                    "INSERT INTO price_history (symbol, price_usd, source, observed_at)
                     VALUES ('BTC', $1, 'bench', now()) RETURNING observed_at AS at",
                )
                .bind::<sql_types::Numeric, _>(crossing)
                .get_result(conn)
                .await?;
                let job = PricesObserved {
                    observed_at: stamp.at,
                    symbols: vec!["BTC".to_owned()],
                };
                outbox::push(conn, &job, None).await?;
                Ok(stamp.at)
            })
            .await?;
        // A minute, and a second more per 1,000 bets reached.
        let deadline = started
            + Duration::from_secs(60)
            + Duration::from_secs(u64::try_from(reached.n / 1_000).unwrap_or(0));
        loop {
            // Through the partial index: cheap however many bets are open.
            let left: Count = diesel::sql_query(
                "SELECT count(*) AS n FROM bets WHERE symbol = 'BTC' AND status = 'open'
                 AND direction = 'up' AND liquidation_price >= $1",
            )
            .bind::<sql_types::Numeric, _>(crossing)
            .get_result(&mut conn)
            .await?;
            if left.n == 0 {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "{} reached bets not liquidated",
                left.n
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        wait_until_emails_relayed(&mut conn, deadline).await?;
        let relayed_s = started.elapsed().as_secs_f64();
        let last: Ms = diesel::sql_query(
            "SELECT (extract(epoch FROM max(settled_at) - $1) * 1000)::float8 AS ms
             FROM bets WHERE liquidated",
        )
        .bind::<sql_types::Timestamptz, _>(stamp)
        .get_result(&mut conn)
        .await?;
        // A duplicate liquidation, if any, would show now.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss_peak_mb = finish_workers(children, self.config, &prefix).await?;

        let liquidated: Count =
            diesel::sql_query("SELECT count(*) AS n FROM bets WHERE liquidated")
                .get_result(&mut conn)
                .await?;
        // Nothing else settles here.
        let emails: Count =
            diesel::sql_query("SELECT count(*) AS n FROM emails WHERE template = 'bet_settled'")
                .get_result(&mut conn)
                .await?;
        let wrong: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM bets
             WHERE liquidated AND NOT (direction = 'up' AND liquidation_price >= $1
                   AND end_price = $1 AND payout = 0)",
        )
        .bind::<sql_types::Numeric, _>(crossing)
        .get_result(&mut conn)
        .await?;
        let exposure_off: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM bet_exposure e
             WHERE e.open_notional <> (SELECT coalesce(sum(stake * leverage), 0) FROM bets b
                   WHERE b.status = 'open' AND b.symbol = e.symbol AND b.direction = e.direction)",
        )
        .get_result(&mut conn)
        .await?;
        let ledger = shared::ledger::check(&mut conn).await?;
        let batch_size = self.config.bets.liquidation_batch_size;
        let batches = (reached.n + batch_size - 1) / batch_size;
        println!(
            "scenario=liquidation bets={} crossing_price={} liquidated={} processes={} batch_size={} batches={} mean_batch_ms={:.1} last_settled_after_ms={:.1} email_jobs_relayed_after_s={:.2} emails_queued={} rss_peak_mb={:.1} ledger_ok={}",
            self.bets,
            crossing,
            liquidated.n,
            self.processes,
            batch_size,
            batches,
            last.ms.unwrap_or(f64::NAN) / batches.max(1) as f64,
            last.ms.unwrap_or(f64::NAN),
            relayed_s,
            emails.n,
            rss_peak_mb,
            ledger.ok,
        );
        ensure!(
            liquidated.n == reached.n && emails.n == reached.n && wrong.n == 0,
            "{} liquidated ({} wrongly), {} emails, for {} reached",
            liquidated.n,
            wrong.n,
            emails.n,
            reached.n
        );
        ensure!(
            exposure_off.n == 0,
            "bet_exposure disagrees with the open bets"
        );
        ensure!(ledger.ok, "the ledger check failed: {ledger:?}");
        Ok(())
    }
}
