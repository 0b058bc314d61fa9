//! `/admin`: operator views, administrators only: the ledger check
//! (`ledger`), and the job system as operators see it (PRODUCT.md §10):
//! queue and worker counts, pausing and resuming queues (`queues`), dead
//! jobs (`jobs`), cancelling a waiting job (`cancel`).
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
mod jobs;
mod ledger;
mod queues;

use std::collections::HashMap;

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use queue::{
    JobQueues, SeenProcess,
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
    routes::spec,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ledger::ledger_check))
        .routes(routes!(queues::job_overview))
        .routes(routes!(queues::pause_queue))
        .routes(routes!(queues::resume_queue))
        .routes(routes!(jobs::list_dead))
        .routes(routes!(jobs::retry_dead))
        .routes(routes!(jobs::discard_dead))
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

spec::schema_type!(QueueName => queue_name());
spec::schema_type!(DeadCursor => dead_cursor());

/// Dead job ids are ours (UUIDs, with `.n` suffixes for retries) or
/// apalis's (ULIDs); anything longer is no id.
const MAX_ID_LEN: usize = 64;
