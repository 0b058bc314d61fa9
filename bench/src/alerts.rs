//! Scenario `alerts`: a million active alerts over every priced symbol.
//!
//! 1. An observation that crosses none of them: [`alerts::evaluate`] timed
//!    directly, repeatedly (the work when nothing is near a target).
//! 2. An observation that crosses exactly `crossed` of them, announced
//!    through the outbox as a refresh does and evaluated by worker
//!    processes: time from the observation to the last trigger (both
//!    stamped by PostgreSQL) and until every email job has left the
//!    outbox for Redis (measured here by polling).
//!
//! Afterwards: each crossed alert triggered once with one email, nothing
//! else triggered, and the workers' peak RSS.

use std::time::{Duration, Instant};

use anyhow::ensure;
use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use shared::{alerts, config::Config, jobs::PricesObserved, outbox};

use crate::support::{
    Count, finish_workers, percentile, scratch_database, spawn_workers, wait_until_emails_relayed,
};

const DATABASE: &str = "bourse_bench_alerts";
const USERS: i64 = 10_000;
/// The price of BTC before the crossing observation; the crossed alerts
/// sit in the cent steps just above it.
const BTC: i64 = 50_000;

pub struct AlertsRun<'a> {
    pub config: &'a Config,
    pub count: i64,
    pub crossed: i64,
    pub processes: usize,
    pub concurrency: usize,
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

#[derive(QueryableByName)]
struct Symbol {
    #[diesel(sql_type = sql_types::Text)]
    code: String,
}

#[derive(QueryableByName)]
struct Size {
    #[diesel(sql_type = sql_types::Text)]
    size: String,
}

impl AlertsRun<'_> {
    pub async fn measure(&self) -> anyhow::Result<()> {
        ensure!(self.crossed <= self.count, "--crossed is more than --count");
        let database = scratch_database(self.config, DATABASE).await?;
        let prefix = format!("bench-{:08x}", rand::random::<u32>());
        let mut conn = AsyncPgConnection::establish(&database).await?;
        let symbols: Vec<String> =
            diesel::sql_query("SELECT code FROM currencies WHERE code <> 'USD' ORDER BY code")
                .load::<Symbol>(&mut conn)
                .await?
                .into_iter()
                .map(|s| s.code)
                .collect();

        eprintln!(
            "[bench] {USERS} users, {} alerts over {} symbols ({})",
            self.count,
            symbols.len(),
            symbols.join(", ")
        );
        let started = Instant::now();
        diesel::sql_query(
            "INSERT INTO users (id, username, email, password_hash, email_verified_at)
             SELECT gen_random_uuid(), 'watcher_' || i, 'watcher_' || i || '@example.com', 'x', now()
             FROM generate_series(1, $1) AS i",
        )
        .bind::<sql_types::BigInt, _>(USERS)
        .execute(&mut conn)
        .await?;
        // `crossed` BTC alerts `above` targets one cent apart just over the
        // BTC price; every other alert, on any symbol, is far from its
        // price (at least twice it for `above`, at most half for `below`).
        diesel::sql_query(
            "WITH u AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM users),
                  s AS (SELECT array_agg(code ORDER BY code) AS codes FROM currencies WHERE code <> 'USD')
             INSERT INTO alerts (id, user_id, symbol, target_price, direction)
             SELECT gen_random_uuid(), u.id,
                    CASE WHEN i <= $2 THEN 'BTC' ELSE s.codes[1 + i % array_length(s.codes, 1)] END,
                    CASE WHEN i <= $2 THEN $3 + i * 0.01
                         WHEN i % 2 = 0 THEN $3 * 2 + (i % 1000)
                         ELSE 1 + (i % 1000) * 0.001 END,
                    CASE WHEN i <= $2 OR i % 2 = 0 THEN 'above' ELSE 'below' END
             FROM generate_series(1, $1) AS i, s, u
             WHERE u.n = i % $4",
        )
        .bind::<sql_types::BigInt, _>(self.count)
        .bind::<sql_types::BigInt, _>(self.crossed)
        .bind::<sql_types::BigInt, _>(BTC)
        .bind::<sql_types::BigInt, _>(USERS)
        .execute(&mut conn)
        .await?;
        diesel::sql_query("VACUUM ANALYZE alerts")
            .execute(&mut conn)
            .await?;
        let size: Size =
            diesel::sql_query("SELECT pg_size_pretty(pg_total_relation_size('alerts')) AS size")
                .get_result(&mut conn)
                .await?;
        eprintln!(
            "[bench] alerts stored in {:.1} s ({} with indexes)",
            started.elapsed().as_secs_f64(),
            size.size
        );

        // 1. Nothing crossed: evaluate directly, many times, with generic
        //    plans as the workers' sessions have them (`shared::db`).
        diesel::sql_query("SET plan_cache_mode = force_generic_plan")
            .execute(&mut conn)
            .await?;
        let mut quiet = Vec::new();
        for _ in 0..50 {
            let stamp = observe(&mut conn, &symbols, BTC.to_string()).await?;
            let t = Instant::now();
            let triggered = alerts::evaluate(&mut conn, stamp, &symbols, i64::MAX)
                .await?
                .triggered;
            quiet.push(t.elapsed().as_secs_f64() * 1000.0);
            ensure!(triggered.is_empty(), "{} triggered", triggered.len());
        }
        quiet.sort_by(f64::total_cmp);

        // 2. Crossing `crossed`: through the outbox and the workers.
        let env = [
            ("DATABASE_URL", database.clone()),
            ("REDIS_PREFIX", prefix.clone()),
            ("DATABASE_POOL_SIZE", "16".to_owned()),
            // Hourly: the workers' own refreshes do not add observations.
            ("RATE_REFRESH_CRON", "0 0 * * * *".to_owned()),
        ];
        // Not serving `email`: the emails stay queued, so what is measured
        // is triggering and queueing them.
        let children = spawn_workers(
            &prefix,
            self.processes,
            self.concurrency,
            "price_alert",
            &env,
        )?;
        // Let the workers connect and go idle.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let crossing = (BTC + self.crossed / 100).to_string();
        let batch_size = self.config.alerts.batch_size;
        let started = Instant::now();
        let stamp = conn
            .transaction::<_, anyhow::Error, _>(async |conn| {
                let stamp = observe(conn, &symbols, crossing.clone()).await?;
                let job = PricesObserved {
                    observed_at: stamp,
                    symbols: symbols.clone(),
                };
                outbox::push(conn, &job, None).await?;
                Ok(stamp)
            })
            .await?;
        // A minute, and a second more per 5,000 crossed alerts.
        let deadline = started
            + Duration::from_secs(60)
            + Duration::from_secs(u64::try_from(self.crossed / 5_000).unwrap_or(0));
        loop {
            // Through the partial index: cheap however many alerts exist.
            let left: Count = diesel::sql_query(
                "SELECT count(*) AS n FROM alerts WHERE symbol = 'BTC' AND status = 'created'
                 AND direction = 'above' AND target_price <= $1::numeric",
            )
            .bind::<sql_types::Text, _>(&crossing)
            .get_result(&mut conn)
            .await?;
            if left.n == 0 {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "{} crossed alerts not triggered",
                left.n
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        wait_until_emails_relayed(&mut conn, deadline).await?;
        let relayed_s = started.elapsed().as_secs_f64();
        let last: Ms = diesel::sql_query(
            "SELECT (extract(epoch FROM max(triggered_at) - $1) * 1000)::float8 AS ms FROM alerts",
        )
        .bind::<sql_types::Timestamptz, _>(stamp)
        .get_result(&mut conn)
        .await?;
        // A duplicate evaluation, if any, would show now.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss_peak_mb = finish_workers(children, self.config, &prefix).await?;

        let triggered: Count =
            diesel::sql_query("SELECT count(*) AS n FROM alerts WHERE status = 'triggered'")
                .get_result(&mut conn)
                .await?;
        let emails: Count =
            diesel::sql_query("SELECT count(*) AS n FROM emails WHERE template = 'price_alert'")
                .get_result(&mut conn)
                .await?;
        let wrong: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM alerts
             WHERE status = 'triggered' AND NOT (symbol = 'BTC' AND direction = 'above'
                   AND target_price <= triggered_price)",
        )
        .get_result(&mut conn)
        .await?;
        // Each batch is one transaction of ALERT_BATCH_SIZE alerts per
        // direction; every crossed alert here is `above`.
        let batches = (self.crossed + batch_size - 1) / batch_size;
        println!(
            "scenario=alerts n={} symbols={} crossed={} processes={} batch_size={} batches={} mean_batch_ms={:.1} quiet_eval_p50_ms={:.2} quiet_eval_p99_ms={:.2} quiet_eval_max_ms={:.2} triggered={} emails_queued={} last_trigger_after_ms={:.1} email_jobs_relayed_after_s={:.2} rss_peak_mb={:.1}",
            self.count,
            symbols.len(),
            self.crossed,
            self.processes,
            batch_size,
            batches,
            last.ms.unwrap_or(f64::NAN) / batches.max(1) as f64,
            percentile(&quiet, 50.0),
            percentile(&quiet, 99.0),
            quiet.last().copied().unwrap_or(f64::NAN),
            triggered.n,
            emails.n,
            last.ms.unwrap_or(f64::NAN),
            relayed_s,
            rss_peak_mb,
        );
        ensure!(
            triggered.n == self.crossed && emails.n == self.crossed && wrong.n == 0,
            "{} triggered ({} wrongly), {} emails, for {} crossed",
            triggered.n,
            wrong.n,
            emails.n,
            self.crossed
        );
        Ok(())
    }
}

/// Stores one observation of every symbol (BTC at `btc`, the others at
/// 1000) with one stamp, as a refresh does; returns the stamp.
async fn observe(
    conn: &mut AsyncPgConnection,
    symbols: &[String],
    btc: String,
) -> anyhow::Result<DateTime<Utc>> {
    let stamps: Vec<Stamp> = diesel::sql_query(
        "INSERT INTO price_history (symbol, price_usd, source, observed_at)
         SELECT code, CASE WHEN code = 'BTC' THEN $2::numeric ELSE 1000 END, 'bench', now()
         FROM unnest($1::text[]) AS code
         RETURNING observed_at AS at",
    )
    .bind::<sql_types::Array<sql_types::Text>, _>(symbols)
    .bind::<sql_types::Text, _>(btc)
    .load(conn)
    .await?;
    <[Stamp]>::first(&stamps)
        .map(|s| s.at)
        .ok_or_else(|| anyhow::anyhow!("no symbols to observe"))
}
