use apalis_core::{backend::TaskResult, worker::context::WorkerContext};
use std::sync::LazyLock;

use redis::{Script, aio::ConnectionLike};
use serde_json::Value;

use crate::{Config, error::Error, queries::current_timestamp};

// One script object for the process: `Script::new` hashes the source with
// SHA-1 on every call, and this runs on every acknowledgement.
static HANDLE_RESULTS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../lua/handle_results.lua")));

pub(crate) async fn handle_results<C: ConnectionLike>(
    conn: &mut C,
    ack_payloads: &[&TaskResult<Value>],
    worker: &WorkerContext,
    config: &Config,
) -> Result<(), Error> {
    if ack_payloads.is_empty() {
        return Ok(());
    }

    let done_jobs_set = config.done_jobs_set();
    let dead_jobs_set = config.dead_jobs_set();
    let job_meta_hash = config.job_meta_hash();
    let scheduled_jobs_set = config.scheduled_jobs_set();
    let worker_inflight_set = config.inflight_set_for(worker);

    let script = &*HANDLE_RESULTS;
    let mut invocation = script.prepare_invoke();

    invocation
        .key(worker_inflight_set)
        .key(done_jobs_set)
        .key(dead_jobs_set)
        .key(scheduled_jobs_set)
        .key(job_meta_hash)
        .key(config.job_data_hash())
        .key(config.dead_dropped_counter())
        .arg(config.emit_events)
        .arg(config.max_dead_tasks.unwrap_or(0))
        .arg(
            config
                .dead_task_ttl
                .map_or(0, |ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
        );

    let timestamp = current_timestamp();

    for payload in ack_payloads {
        let status = payload.status().to_string();
        let result_data = serde_json::to_value(&payload.result).map_err(Error::Json)?;

        let task_id = payload.task_id.to_string();
        // Used only if the task failed and has attempts left.
        let retry_delay = config.retry_backoff.delay(&task_id, payload.attempt);
        invocation
            .arg(task_id)
            .arg(timestamp)
            .arg(result_data.to_string())
            .arg(status)
            .arg(payload.attempt)
            .arg(super::millis(retry_delay));
    }

    invocation.invoke_async::<u32>(conn).await?;

    Ok(())
}
