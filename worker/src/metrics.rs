//! Prometheus metrics of a worker process, served at `/metrics`.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub queue: &'static str,
    pub job: String,
    /// `succeeded`, `retried` (failed, will run again) or `failed` (failed
    /// for good: moved to the dead set).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DepthLabels {
    pub queue: &'static str,
    /// `pending`, `delayed`, `running` or `dead`.
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScheduleLabels {
    pub schedule: &'static str,
    /// `claimed` (this process won the tick), `taken` (another did),
    /// `late` (skipped), `failed` (the claim failed: PostgreSQL unreachable).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    /// `ok` or `failed`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BacklogLabels {
    pub queue: String,
    /// `due` (waiting for the relay) or `scheduled` (not due yet).
    pub state: &'static str,
}

pub struct Metrics {
    pub registry: Registry,
    /// Webhook delivery attempts, by outcome (`ProviderLabels`: `ok` or
    /// `failed`).
    pub webhook_attempts: Family<ProviderLabels, Counter>,
    pub jobs_started: Family<QueueLabels, Counter>,
    pub jobs: Family<JobLabels, Counter>,
    pub job_duration: Family<QueueLabels, Histogram>,
    pub pickup_latency: Family<QueueLabels, Histogram>,
    pub outbox_dispatched: Family<QueueLabels, Counter>,
    pub outbox_coalesced: Family<QueueLabels, Counter>,
    pub outbox_errors: Counter,
    pub worker_restarts: Family<QueueLabels, Counter>,
    pub queue_depth: Family<DepthLabels, Gauge>,
    pub dead_dropped: Family<QueueLabels, Gauge>,
    pub queue_paused: Family<QueueLabels, Gauge>,
    pub schedule_ticks: Family<ScheduleLabels, Counter>,
    pub rate_refreshes: Family<ProviderLabels, Counter>,
    pub outbox_backlog: Family<BacklogLabels, Gauge>,
}

fn seconds_buckets() -> impl Iterator<Item = f64> {
    [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        60.0,
    ]
    .into_iter()
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("bourse");
        let jobs_started = Family::<QueueLabels, Counter>::default();
        registry.register(
            "jobs_started",
            "Job attempts started by this process",
            jobs_started.clone(),
        );
        let jobs = Family::<JobLabels, Counter>::default();
        registry.register("jobs", "Job attempts finished, by outcome", jobs.clone());
        let job_duration = Family::<QueueLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(seconds_buckets())
        });
        registry.register(
            "job_duration_seconds",
            "Time spent running one job attempt",
            job_duration.clone(),
        );
        let pickup_latency = Family::<QueueLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(seconds_buckets())
        });
        registry.register(
            "job_pickup_latency_seconds",
            "From the time a job was due to the start of its first attempt",
            pickup_latency.clone(),
        );
        let outbox_dispatched = Family::<QueueLabels, Counter>::default();
        registry.register(
            "outbox_dispatched",
            "Outbox rows relayed to Redis",
            outbox_dispatched.clone(),
        );
        let outbox_coalesced = Family::<QueueLabels, Counter>::default();
        registry.register(
            "outbox_coalesced",
            "Outbox rows not pushed because a job with the same uniqueness key was already waiting",
            outbox_coalesced.clone(),
        );
        let outbox_errors = Counter::default();
        registry.register(
            "outbox_relay_errors",
            "Relay cycles that failed (database or Redis unreachable)",
            outbox_errors.clone(),
        );
        let worker_restarts = Family::<QueueLabels, Counter>::default();
        registry.register(
            "worker_restarts",
            "Queue workers restarted after their backend failed",
            worker_restarts.clone(),
        );
        let queue_depth = Family::<DepthLabels, Gauge>::default();
        registry.register(
            "queue_jobs",
            "Jobs in each queue by state (cluster-wide, sampled)",
            queue_depth.clone(),
        );
        // A gauge, not a counter: it is the cluster's running total read
        // from Redis, the same in every process, not this process's count.
        let dead_dropped = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "dead_jobs_dropped",
            "Dead jobs dropped, oldest first, past DEAD_MAX_PER_QUEUE or DEAD_TTL_DAYS (cluster-wide running total, sampled)",
            dead_dropped.clone(),
        );
        let queue_paused = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "queue_paused",
            "1 while an operator has paused the queue (cluster-wide, sampled)",
            queue_paused.clone(),
        );
        let schedule_ticks = Family::<ScheduleLabels, Counter>::default();
        registry.register(
            "schedule_ticks",
            "Schedule ticks seen by this process, by outcome",
            schedule_ticks.clone(),
        );
        let rate_refreshes = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "rate_refreshes",
            "Price refreshes run by this process; failed means a provider failed",
            rate_refreshes.clone(),
        );
        let outbox_backlog = Family::<BacklogLabels, Gauge>::default();
        registry.register(
            "outbox_backlog",
            "Jobs committed in the outbox and not yet relayed (cluster-wide, sampled by relays)",
            outbox_backlog.clone(),
        );
        let webhook_attempts = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts made by this process: ok (a 2xx answer) or failed",
            webhook_attempts.clone(),
        );
        Self {
            registry,
            webhook_attempts,
            jobs_started,
            jobs,
            job_duration,
            pickup_latency,
            outbox_dispatched,
            outbox_coalesced,
            outbox_errors,
            worker_restarts,
            queue_depth,
            dead_dropped,
            queue_paused,
            schedule_ticks,
            rate_refreshes,
            outbox_backlog,
        }
    }

    /// Counts one webhook delivery attempt, `ok` or `failed`.
    pub fn webhook_attempt(&self, outcome: &'static str) {
        self.webhook_attempts
            .get_or_create(&ProviderLabels { outcome })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(%error, "cannot encode metrics");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
