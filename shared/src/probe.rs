//! Records of diagnostic probe job runs (`probe_runs`), so the job pipeline
//! can be observed from outside: which worker ran which attempt, and whether
//! it finished.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::probe_runs;

/// Notes that `worker` started `attempt` of probe job `job_id` at
/// `started_at` (the worker's clock when the handler began, before this
/// insert); returns the run id for [`record_finish`].
pub async fn record_start(
    conn: &mut AsyncPgConnection,
    tag: &str,
    job_id: Uuid,
    attempt: i32,
    worker: &str,
    started_at: chrono::DateTime<Utc>,
) -> QueryResult<i64> {
    diesel::insert_into(probe_runs::table)
        .values((
            probe_runs::tag.eq(tag),
            probe_runs::job_id.eq(job_id),
            probe_runs::attempt.eq(attempt),
            probe_runs::worker.eq(worker),
            probe_runs::started_at.eq(started_at),
        ))
        .returning(probe_runs::id)
        .get_result(conn)
        .await
}

pub async fn record_finish(
    conn: &mut AsyncPgConnection,
    run_id: i64,
    failed: bool,
) -> QueryResult<()> {
    diesel::update(probe_runs::table.find(run_id))
        .set((
            probe_runs::finished_at.eq(Utc::now()),
            probe_runs::failed.eq(failed),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// One recorded run.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = probe_runs)]
pub struct ProbeRun {
    pub id: i64,
    pub tag: String,
    pub job_id: Uuid,
    pub attempt: i32,
    pub worker: String,
    pub started_at: chrono::DateTime<Utc>,
    pub finished_at: Option<chrono::DateTime<Utc>>,
    pub failed: bool,
}

pub async fn runs(conn: &mut AsyncPgConnection, tag: &str) -> QueryResult<Vec<ProbeRun>> {
    probe_runs::table
        .filter(probe_runs::tag.eq(tag))
        .order(probe_runs::id)
        .select(ProbeRun::as_select())
        .load(conn)
        .await
}
