//! Scenario `delayed`: no-op jobs due uniformly over a window, run by
//! worker processes; lateness = handler start − due time (the Celery
//! peer's lateness scenario, same shape). Jobs wait in the outbox of a
//! scratch database until due, with optional extra jobs waiting far in the
//! future to show that waiting jobs cost workers no memory.

use std::{collections::HashMap, time::Duration};

use anyhow::bail;
use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use shared::{config::Config, schema::probe_runs};
use uuid::Uuid;

use crate::support::{
    finish_workers, insert_recorded_probes, percentile, scratch_database, spawn_workers,
    wait_for_probe_runs,
};

const DATABASE: &str = "bourse_bench_delayed";

pub struct DelayedRun<'a> {
    pub config: &'a Config,
    pub count: usize,
    pub processes: usize,
    pub concurrency: usize,
    /// Seconds before the first job may fall due.
    pub lead: f64,
    /// Seconds over which jobs fall due.
    pub spread: f64,
    /// Worker lease (WORKER_LEASE_SECS): shorter than the delays shows no
    /// job runs twice.
    pub lease_secs: u64,
    /// Extra jobs waiting an hour, never run here.
    pub waiting: usize,
}

impl DelayedRun<'_> {
    pub async fn measure(&self) -> anyhow::Result<()> {
        let database = scratch_database(self.config, DATABASE).await?;
        let prefix = format!("bench-{:08x}", rand::random::<u32>());
        let mut conn = AsyncPgConnection::establish(&database).await?;
        let tag = "delayed";

        // Far-future jobs first (they only sit in PostgreSQL).
        if self.waiting > 0 {
            diesel::sql_query(
                "INSERT INTO outbox (id, queue, job, version, payload, run_at)
                 SELECT gen_random_uuid(), 'probe', 'probe', 1,
                        jsonb_build_object('tag', 'waiting'), now() + interval '1 hour'
                 FROM generate_series(1, $1)",
            )
            .bind::<sql_types::Integer, _>(i32::try_from(self.waiting)?)
            .execute(&mut conn)
            .await?;
        }

        // The workers start first and must be up before the clock starts
        // (as in the peer, which waits for one no-op).
        let env = [
            ("DATABASE_URL", database.clone()),
            ("REDIS_PREFIX", prefix.clone()),
            ("WORKER_LEASE_SECS", self.lease_secs.to_string()),
            (
                "WORKER_HEARTBEAT_SECS",
                (self.lease_secs / 2).max(1).to_string(),
            ),
            ("RATE_REFRESH_CRON", "0 0 0 1 1 *".to_owned()),
            ("BET_RECONCILE_CRON", "0 0 0 1 1 *".to_owned()),
        ];
        let children = spawn_workers(&prefix, self.processes, self.concurrency, "probe", &env)?;
        let ready_tag = format!("ready-{}", Uuid::new_v4());
        diesel::sql_query(
            "INSERT INTO outbox (id, queue, job, version, payload, run_at)
             VALUES (gen_random_uuid(), 'probe', 'probe', 1, jsonb_build_object('tag', $1, 'record', true), now())",
        )
        .bind::<sql_types::Text, _>(&ready_tag)
        .execute(&mut conn)
        .await?;
        wait_for_probe_runs(&mut conn, &ready_tag, 1, Duration::from_secs(60)).await?;

        // Due times: now + lead + uniform(0, spread), inserted in one
        // statement per 500 (as a bulk producer would).
        let now: DateTime<Utc> = Utc::now();
        let mut due: HashMap<Uuid, DateTime<Utc>> = HashMap::with_capacity(self.count);
        let rows: Vec<(Uuid, DateTime<Utc>)> = (0..self.count)
            .map(|_| {
                let offset = self.lead + rand::random::<f64>() * self.spread;
                (
                    Uuid::now_v7(),
                    now + chrono::Duration::microseconds((offset * 1e6) as i64),
                )
            })
            .collect();
        for chunk in rows.chunks(500) {
            insert_recorded_probes(&mut conn, tag, chunk).await?;
            due.extend(chunk.iter().copied());
        }

        let window = Duration::from_secs_f64(self.lead + self.spread);
        let runs =
            wait_for_probe_runs(&mut conn, tag, self.count, window + Duration::from_secs(60))
                .await?;
        // Let any duplicate surface before counting.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let runs: Vec<(Uuid, DateTime<Utc>)> = probe_runs::table
            .filter(probe_runs::tag.eq(tag))
            .select((probe_runs::job_id, probe_runs::started_at))
            .load(&mut conn)
            .await
            .unwrap_or(runs);
        let rss_peak_mb = finish_workers(children, self.config, &prefix).await?;

        let mut first: HashMap<Uuid, f64> = HashMap::new();
        let mut executions = 0usize;
        for (id, started) in &runs {
            executions += 1;
            if let Some(at) = due.get(id) {
                let late = (*started - *at).num_microseconds().unwrap_or(0) as f64 / 1000.0;
                let entry = first.entry(*id).or_insert(late);
                *entry = entry.min(late);
            }
        }
        let mut lateness: Vec<f64> = first.values().copied().collect();
        lateness.sort_by(f64::total_cmp);
        let early = lateness.iter().filter(|l| **l < 0.0).count();
        println!(
            "scenario=delayed processes={} concurrency={} n={} lead_s={} spread_s={} lease_s={} waiting={} ran={} extra_execs={} early={} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} rss_peak_mb={:.1}",
            self.processes,
            self.concurrency,
            self.count,
            self.lead,
            self.spread,
            self.lease_secs,
            self.waiting,
            first.len(),
            executions - first.len(),
            early,
            percentile(&lateness, 50.0),
            percentile(&lateness, 99.0),
            lateness.last().copied().unwrap_or(f64::NAN),
            rss_peak_mb,
        );
        if first.len() != self.count {
            bail!("only {} of {} jobs ran", first.len(), self.count);
        }
        Ok(())
    }
}
