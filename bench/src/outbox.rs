//! Scenario `outbox`: jobs through the outbox at full speed while a
//! million scheduled bet settlements wait in it (ISSUE 21, item 4).
//!
//! The scheduled rows are what open bets put in the outbox: one
//! `settle_bet` row each, due within the next day (they never fall due
//! here). One process runs the only relay (it serves no queue that gets
//! work); `--processes` others run the jobs with `--no-relay`. For
//! `--seconds` this process inserts no-op jobs due now, 500 per statement,
//! as fast as they run (at most 5,000 waiting), and beforehand `--sample`
//! recorded jobs due at random times inside that window. Measured: jobs relayed and run per
//! second (inserted / time until the last ran), the sampled jobs'
//! lateness (start − due), the relay process's CPU, and the outbox's size
//! and dead rows before and after.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use anyhow::bail;
use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use queue::JobQueues;
use shared::{config::Config, jobs::Queue};
use uuid::Uuid;

use crate::support::{
    Count, cpu_seconds, finish_workers, insert_recorded_probes, percentile, scratch_database,
    spawn_worker, wait_for_probe_runs,
};

const DATABASE: &str = "bourse_bench_outbox";
/// Rows per insert statement of the flow.
const CHUNK: usize = 500;
/// Flow jobs inserted and not yet run, at most.
const IN_FLIGHT: u64 = 5_000;

pub struct OutboxRun<'a> {
    pub config: &'a Config,
    pub scheduled: i64,
    pub seconds: u64,
    pub sample: usize,
    pub processes: usize,
    pub concurrency: usize,
}

#[derive(QueryableByName)]
struct Table {
    #[diesel(sql_type = sql_types::BigInt)]
    bytes: i64,
    #[diesel(sql_type = sql_types::BigInt)]
    dead: i64,
}

async fn table(conn: &mut AsyncPgConnection) -> anyhow::Result<Table> {
    Ok(diesel::sql_query(
        "SELECT pg_total_relation_size('outbox') AS bytes, n_dead_tup AS dead
         FROM pg_stat_user_tables WHERE relname = 'outbox'",
    )
    .get_result(conn)
    .await?)
}

impl OutboxRun<'_> {
    pub async fn measure(&self) -> anyhow::Result<()> {
        let database = scratch_database(self.config, DATABASE).await?;
        let prefix = format!("bench-{:08x}", rand::random::<u32>());
        let mut conn = AsyncPgConnection::establish(&database).await?;

        let started = Instant::now();
        let mut left = self.scheduled;
        while left > 0 {
            let n = left.min(100_000);
            diesel::sql_query(
                "INSERT INTO outbox (id, queue, job, version, payload, run_at)
                 SELECT gen_random_uuid(), 'bet_settlement', 'settle_bet', 1,
                        jsonb_build_object('bet_id', gen_random_uuid()),
                        now() + interval '1 hour' + random() * interval '23 hours'
                 FROM generate_series(1, $1)",
            )
            .bind::<sql_types::BigInt, _>(n)
            .execute(&mut conn)
            .await?;
            left -= n;
        }
        diesel::sql_query("VACUUM ANALYZE outbox")
            .execute(&mut conn)
            .await?;
        let before = table(&mut conn).await?;
        eprintln!(
            "[bench] {} scheduled rows in {:.1} s, outbox {:.1} MB",
            self.scheduled,
            started.elapsed().as_secs_f64(),
            before.bytes as f64 / 1e6
        );

        let env = [
            ("DATABASE_URL", database.clone()),
            ("REDIS_PREFIX", prefix.clone()),
            ("RATE_REFRESH_CRON", "0 0 0 1 1 *".to_owned()),
            ("BET_RECONCILE_CRON", "0 0 0 1 1 *".to_owned()),
            ("EMAIL_RECONCILE_CRON", "0 0 0 1 1 *".to_owned()),
            // Counted every 5 s, as by default the due rows are; the
            // scheduled count stays at its default (300 s).
            ("OUTBOX_SCHEDULED_SAMPLE_SECS", "300".to_owned()),
        ];
        let relay_name = format!("{prefix}-relay");
        let relay = spawn_worker(
            &[
                "--name",
                &relay_name,
                "--queues",
                "price_alert",
                "--concurrency",
                "1",
            ],
            &env,
        )?;
        let relay_pid = relay.id().unwrap_or(0);
        let concurrency = self.concurrency.to_string();
        let mut children = (0..self.processes)
            .map(|i| {
                spawn_worker(
                    &[
                        "--no-relay",
                        "--queues",
                        "probe",
                        "--concurrency",
                        &concurrency,
                        "--name",
                        &format!("{prefix}-w{i}"),
                    ],
                    &env,
                )
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        children.push(relay);

        let ready = format!("ready-{}", Uuid::new_v4());
        insert_recorded_probes(&mut conn, &ready, &[(Uuid::now_v7(), Utc::now())]).await?;
        wait_for_probe_runs(&mut conn, &ready, 1, Duration::from_secs(60)).await?;

        // The sampled jobs, due inside the window.
        let window_start = Utc::now() + chrono::Duration::seconds(1);
        let sample: Vec<(Uuid, DateTime<Utc>)> = (0..self.sample)
            .map(|_| {
                let offset = rand::random::<f64>() * (self.seconds.saturating_sub(2)) as f64;
                (
                    Uuid::now_v7(),
                    window_start + chrono::Duration::microseconds((offset * 1e6) as i64),
                )
            })
            .collect();
        for chunk in sample.chunks(CHUNK) {
            insert_recorded_probes(&mut conn, "sample", chunk).await?;
        }
        let due: HashMap<Uuid, DateTime<Utc>> = sample.iter().copied().collect();

        let (_, redis) = queue::connect(&self.config.redis, crate::support::REDIS_RETRIES)
            .map_err(anyhow::Error::msg)?;
        let queues = JobQueues::new(redis, prefix.clone());
        let base = queues.counts(Queue::Probe).await?.succeeded;
        let cpu_before = cpu_seconds(relay_pid).unwrap_or(f64::NAN);
        let flow_started = Instant::now();
        let flow_end = flow_started + Duration::from_secs(self.seconds);
        let mut pushed = 0usize;
        while Instant::now() < flow_end {
            // Full speed, not faster: a chunk goes in only while fewer than
            // IN_FLIGHT flow jobs are inserted and not yet run, so the
            // rate is the pipeline's (relay, Redis, workers), not this
            // inserting connection's.
            let ran = queues.counts(Queue::Probe).await?.succeeded - base;
            if pushed as u64 > ran + IN_FLIGHT {
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            diesel::sql_query(
                "INSERT INTO outbox (id, queue, job, version, payload, run_at)
                 SELECT gen_random_uuid(), 'probe', 'probe', 1,
                        jsonb_build_object('tag', 'flow'), now()
                 FROM generate_series(1, $1)",
            )
            .bind::<sql_types::Integer, _>(i32::try_from(CHUNK)?)
            .execute(&mut conn)
            .await?;
            pushed += CHUNK;
        }
        let inserted_s = flow_started.elapsed().as_secs_f64();
        let expected = base + (pushed + self.sample) as u64;
        let deadline = Instant::now() + Duration::from_secs(600);
        let drained_s = loop {
            let counts = queues.counts(Queue::Probe).await?;
            if counts.succeeded >= expected {
                break flow_started.elapsed().as_secs_f64();
            }
            if Instant::now() > deadline {
                bail!("{} of {expected} jobs ran", counts.succeeded);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let relay_cpu_s = cpu_seconds(relay_pid).unwrap_or(f64::NAN) - cpu_before;
        let all_runs =
            wait_for_probe_runs(&mut conn, "sample", self.sample, Duration::from_secs(60)).await?;
        let mut runs: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
        for (id, at) in all_runs {
            let first = runs.entry(id).or_insert(at);
            *first = (*first).min(at);
        }
        let left = diesel::sql_query("SELECT count(*) AS n FROM outbox WHERE job = 'settle_bet'")
            .get_result::<Count>(&mut conn)
            .await?
            .n;
        // Autovacuum's view after the flow, and again a little later.
        let after = table(&mut conn).await?;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let settled = table(&mut conn).await?;
        let rss_peak_mb = finish_workers(children, self.config, &prefix).await?;

        let mut lateness: Vec<f64> = runs
            .iter()
            .filter_map(|(id, started)| {
                due.get(id)
                    .map(|at| (*started - *at).num_microseconds().unwrap_or(0) as f64 / 1000.0)
            })
            .collect();
        lateness.sort_by(f64::total_cmp);
        let mb = |t: &Table| t.bytes as f64 / 1e6;
        println!(
            "scenario=outbox scheduled={} processes={} concurrency={} seconds={} pushed={} insert_rate={:.0} completion_rate={:.0} sample={} late_p50_ms={:.2} late_p99_ms={:.2} late_max_ms={:.2} relay_cpu_pct={:.1} outbox_mb_before={:.1} outbox_mb_after={:.1} outbox_mb_10s_later={:.1} dead_rows_after={} dead_rows_10s_later={} scheduled_left={} rss_peak_mb={:.1}",
            self.scheduled,
            self.processes,
            self.concurrency,
            self.seconds,
            pushed,
            pushed as f64 / inserted_s,
            (pushed + self.sample) as f64 / drained_s,
            self.sample,
            percentile(&lateness, 50.0),
            percentile(&lateness, 99.0),
            lateness.last().copied().unwrap_or(f64::NAN),
            100.0 * relay_cpu_s / drained_s,
            mb(&before),
            mb(&after),
            mb(&settled),
            after.dead,
            settled.dead,
            left,
            rss_peak_mb,
        );
        if left != self.scheduled {
            bail!("{left} of {} scheduled rows left", self.scheduled);
        }
        if lateness.len() != self.sample {
            bail!("{} of {} sampled jobs ran", lateness.len(), self.sample);
        }
        Ok(())
    }
}
