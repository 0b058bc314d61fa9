//! `/admin`: operator views, administrators only: the ledger check
//! (`ledger`), and the job system as operators see it (PRODUCT.md §10):
//! queue and worker counts, pausing and resuming queues (`queues`), dead
//! jobs, filtered and acted on one at a time or in bulk (`jobs`),
//! scheduled and retrying jobs (`scheduled`), the throughput history
//! (`history`), cancelling a waiting job (`cancel`).
//!
//! Counts come from the queues' own bookkeeping in Redis (the apalis-redis
//! key layout, read through the `queue` crate) plus the outbox in PostgreSQL:
//! a job that is committed but not yet relayed (say a bet's settlement due
//! tomorrow) is already the system's promise, so it is counted as pending
//! or scheduled like one waiting in Redis.
//!
//! Dead jobs are listed, retried and discarded through our apalis-redis
//! copy's dead-set API (vendor/apalis-redis, `dead`): newest first, a page
//! at a time. The counts read the queues' keys through the `queue` crate:
//! apalis's active list, per-worker in-flight sets, worker heartbeats and
//! scheduled and dead sets, plus our outcome counters and worker process
//! registry (apalis's own `ListWorkers` has no concurrency per worker).

mod cancel;
mod history;
mod jobs;
mod ledger;
mod queues;
mod scheduled;

use std::collections::HashMap;

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use queue::{
    JobQueues, SeenProcess,
    browse::Filter,
    dead::{self, PageCursor},
};
use serde::{Deserialize, Serialize};
use shared::jobs::Queue;
use utoipa::{
    IntoParams, ToSchema,
    openapi::{ObjectBuilder, Schema, Type},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::pagination;
use crate::{
    auth::AdminUser,
    error::{ApiError, Problem},
    extract::ApiJson,
    routes::spec,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ledger::ledger_check))
        .routes(routes!(queues::job_overview))
        .routes(routes!(queues::pause_queue))
        .routes(routes!(queues::resume_queue))
        .routes(routes!(history::job_history))
        .routes(routes!(scheduled::list_scheduled))
        .routes(routes!(jobs::list_dead))
        .routes(routes!(jobs::retry_dead))
        .routes(routes!(jobs::discard_dead))
        .routes(routes!(jobs::retry_matching))
        .routes(routes!(jobs::discard_matching))
        .routes(routes!(cancel::cancel_job))
}

fn job_queues(state: &AppState) -> JobQueues {
    JobQueues::new(state.redis.clone(), state.config.redis.prefix.clone())
}

fn queue_names() -> Vec<&'static str> {
    Queue::ALL.iter().map(|q| q.as_str()).collect()
}

fn queue_name() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(queue_names()))
        .build()
        .into()
}

/// Every `died_at_ms/queue/id` with a known queue and a possible id is a
/// cursor.
fn dead_cursor() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!(
            "^[0-9]{{1,15}}/(?:{})/[A-Za-z0-9._-]{{1,{MAX_ID_LEN}}}$",
            queue_names().join("|")
        )))
        .build()
        .into()
}

fn job_name() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(shared::jobs::JOB_NAMES.to_vec()))
        .build()
        .into()
}

/// Text to find in a job's last error: 1 to 200 characters, no control
/// characters.
fn error_text() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_ERROR_TEXT))
        .pattern(Some("^[^\\x00-\\x1F\\x7F-\\x9F]*$"))
        .build()
        .into()
}

spec::schema_type!(QueueName => queue_name());
spec::schema_type!(JobName => job_name());
spec::schema_type!(ErrorText => error_text());

const MAX_ERROR_TEXT: usize = 200;

/// An operator's filter over jobs: a job name, text in the last error.
fn job_filter(job: Option<&str>, error: Option<&str>) -> Result<Filter, ApiError> {
    if let Some(job) = job
        && !shared::jobs::JOB_NAMES.contains(&job)
    {
        return Err(ApiError::field(
            "job",
            format!("must be one of {}", shared::jobs::JOB_NAMES.join(", ")),
        ));
    }
    if let Some(error) = error
        && (error.is_empty()
            || error.chars().count() > MAX_ERROR_TEXT
            || error.chars().any(char::is_control))
    {
        return Err(ApiError::field(
            "error",
            format!("must be 1 to {MAX_ERROR_TEXT} characters, none of them control characters"),
        ));
    }
    Ok(Filter::new(job, error))
}

fn parse_queue(raw: &str) -> Result<Queue, ApiError> {
    Queue::parse(raw).ok_or_else(|| {
        let names: Vec<&str> = Queue::ALL.iter().map(|q| q.as_str()).collect();
        ApiError::field("queue", format!("must be one of {}", names.join(", ")))
    })
}
spec::schema_type!(DeadCursor => dead_cursor());

/// Dead job ids are ours (UUIDs, with `.n` suffixes for retries) or
/// apalis's (ULIDs); anything longer is no id.
const MAX_ID_LEN: usize = 64;
