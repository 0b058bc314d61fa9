//! Job payloads and queue names: the contract between the code that enqueues
//! (through the outbox) and the workers that run jobs.
//!
//! Payloads carry ids, not copies of data, and are versioned: a job's `NAME`
//! and `VERSION` travel with it, so a worker can refuse a payload it does not
//! understand instead of misreading it.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

/// The queues workers consume. Each has its own Redis keys and can be given
/// to a different set of worker processes (`bourse-worker --queues ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Queue {
    Email,
    BetSettlement,
    PriceAlert,
    MonthlyFee,
    RateRefresh,
    OrderClearing,
    /// Webhook deliveries to API clients' endpoints.
    Webhook,
    /// Diagnostics: probe jobs for operators, health checks and benchmarks.
    Probe,
}

impl Queue {
    pub const ALL: [Queue; 8] = [
        Queue::Email,
        Queue::BetSettlement,
        Queue::PriceAlert,
        Queue::MonthlyFee,
        Queue::RateRefresh,
        Queue::OrderClearing,
        Queue::Webhook,
        Queue::Probe,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Queue::Email => "email",
            Queue::BetSettlement => "bet_settlement",
            Queue::PriceAlert => "price_alert",
            Queue::MonthlyFee => "monthly_fee",
            Queue::RateRefresh => "rate_refresh",
            Queue::OrderClearing => "order_clearing",
            Queue::Webhook => "webhook",
            Queue::Probe => "probe",
        }
    }

    pub fn parse(raw: &str) -> Option<Queue> {
        Queue::ALL.into_iter().find(|q| q.as_str() == raw.trim())
    }

    /// Parses a comma-separated list such as `email,probe`; `all` means every
    /// queue. Duplicates are dropped.
    pub fn parse_list(raw: &str) -> Result<Vec<Queue>, String> {
        if raw.trim() == "all" {
            return Ok(Queue::ALL.to_vec());
        }
        let mut queues = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match Queue::parse(part) {
                Some(queue) if !queues.contains(&queue) => queues.push(queue),
                Some(_) => {}
                None => {
                    let known: Vec<&str> = Queue::ALL.iter().map(|q| q.as_str()).collect();
                    return Err(format!(
                        "unknown queue {part:?} (known: {}, or all)",
                        known.join(", ")
                    ));
                }
            }
        }
        if queues.is_empty() {
            return Err("no queue given".to_owned());
        }
        Ok(queues)
    }
}

impl fmt::Display for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an operator may cancel a waiting job of `queue` (PRODUCT.md
/// §10). Not where jobs carry money or prices: a bet's settlement, a
/// liquidation or an alert's evaluation (`price_alert`), a monthly fee, a
/// price refresh. Those must run; pause the queue to hold them. An email
/// cancelled is never sent; cancelled clearing work is queued again by the
/// clearing sweep (the house's hedge is owed), which pausing avoids.
pub const fn cancellable(queue: Queue) -> bool {
    matches!(queue, Queue::Email | Queue::OrderClearing | Queue::Probe)
}

/// Every job's name ([`JobSpec::NAME`]), for operators filtering jobs by
/// name.
pub const JOB_NAMES: [&str; 12] = [
    SendEmail::NAME,
    ReconcileEmails::NAME,
    RefreshRates::NAME,
    PricesObserved::NAME,
    ClearOrders::NAME,
    SubmitClearingBatch::NAME,
    SettleBet::NAME,
    ReconcileBets::NAME,
    ChargeFees::NAME,
    PurgeExpired::NAME,
    DeliverWebhook::NAME,
    Probe::NAME,
];

/// A job payload type.
pub trait JobSpec: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Persisted in the outbox and in Redis. Never rename once deployed.
    const NAME: &'static str;
    const QUEUE: Queue;
    /// Bump when the payload changes shape; handlers reject versions they do
    /// not know.
    const VERSION: u16 = 1;

    /// The job's uniqueness key, if one waiting copy is enough: while a job
    /// of this name and key waits in its queue, the relay drops another
    /// instead of pushing it (the queue crate's `waiting` module), and the
    /// key is free again once the waiting job starts. Only for jobs that
    /// read their work when they start, so the one that runs does what the
    /// dropped one would have.
    fn unique_key(&self) -> Option<String> {
        None
    }
}

/// What travels through Redis: the payload plus what a worker needs to route,
/// trace and measure it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobEnvelope {
    /// The outbox row this job came from: the job's identity across retries
    /// and redeliveries.
    pub id: Uuid,
    pub job: String,
    pub v: u16,
    pub args: serde_json::Value,
    /// When the job became due (outbox `run_at`); pick-up latency is measured
    /// from here.
    pub due_at: DateTime<Utc>,
    /// Its uniqueness key ([`JobSpec::unique_key`]): the worker frees it
    /// when the job starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    /// The W3C trace context the job continues (`crate::trace`): what queued
    /// it, or the relay's push when traces are exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The API request behind the job, for its logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl JobEnvelope {
    /// Decodes the payload, checking the name and version first.
    pub fn decode<J: JobSpec>(&self) -> Result<J, PayloadError> {
        if self.job != J::NAME {
            return Err(PayloadError::WrongJob {
                expected: J::NAME,
                found: self.job.clone(),
            });
        }
        if self.v != J::VERSION {
            return Err(PayloadError::UnknownVersion {
                job: J::NAME,
                version: self.v,
            });
        }
        serde_json::from_value(self.args.clone()).map_err(|e| PayloadError::Malformed {
            job: J::NAME,
            reason: e.to_string(),
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("payload is for job {found:?}, expected {expected:?}")]
    WrongJob {
        expected: &'static str,
        found: String,
    },
    #[error("job {job} has unknown payload version {version}")]
    UnknownVersion { job: &'static str, version: u16 },
    #[error("job {job} has a malformed payload: {reason}")]
    Malformed { job: &'static str, reason: String },
}

/// Send one stored email (see [`crate::email`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SendEmail {
    pub email_id: Uuid,
}

impl JobSpec for SendEmail {
    const NAME: &'static str = "send_email";
    const QUEUE: Queue = Queue::Email;

    /// The reconciler's re-queue of an email whose job is only slow, not
    /// lost, is dropped while that job waits.
    fn unique_key(&self) -> Option<String> {
        Some(self.email_id.to_string())
    }
}

/// Find emails whose job was lost and queue them again: the job the
/// email reconciler's cluster-wide schedule emits once per tick.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReconcileEmails {
    pub tick: DateTime<Utc>,
}

impl JobSpec for ReconcileEmails {
    const NAME: &'static str = "reconcile_emails";
    const QUEUE: Queue = Queue::Email;
}

/// Ask for one price refresh: the job the cluster-wide schedule emits once
/// per tick (see the worker's scheduler).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RefreshRates {
    pub tick: DateTime<Utc>,
}

impl JobSpec for RefreshRates {
    const NAME: &'static str = "refresh_rates";
    const QUEUE: Queue = Queue::RateRefresh;
}

/// New prices were stored: the hook for everything that reacts to a price
/// (alert evaluation, bets waiting for a price).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PricesObserved {
    pub observed_at: DateTime<Utc>,
    pub symbols: Vec<String>,
}

impl JobSpec for PricesObserved {
    const NAME: &'static str = "prices_observed";
    const QUEUE: Queue = Queue::PriceAlert;
}

/// Form clearing batches from the orders of one currency and side that are
/// not in a batch yet (see [`crate::trading::clearing`]). Queued with every
/// order; running it again, or for an order already batched, does nothing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClearOrders {
    pub currency: String,
    pub side: crate::trading::Side,
}

impl JobSpec for ClearOrders {
    const NAME: &'static str = "clear_orders";
    const QUEUE: Queue = Queue::OrderClearing;

    /// It batches every order of its currency and side not yet in a batch
    /// when it starts, so under a burst of orders one job per currency and
    /// side waits, not one per order.
    fn unique_key(&self) -> Option<String> {
        Some(format!("{}:{}", self.currency, self.side.as_str()))
    }
}

/// Place one clearing batch at the exchange and mark its orders cleared.
/// The batch id is the exchange call's idempotency reference.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SubmitClearingBatch {
    pub batch_id: Uuid,
}

impl JobSpec for SubmitClearingBatch {
    const NAME: &'static str = "submit_clearing_batch";
    const QUEUE: Queue = Queue::OrderClearing;

    /// The clearing sweep's re-queue of a batch whose job still waits (a
    /// paused queue, an exchange over its rate limit) is dropped.
    fn unique_key(&self) -> Option<String> {
        Some(self.batch_id.to_string())
    }
}

/// Settle one bet at the price in force at its `settles_at` (see
/// [`crate::bets`]). Queued with the bet, due at `settles_at`; settling
/// twice is impossible (the bet row is locked and must still be open).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SettleBet {
    pub bet_id: Uuid,
}

impl JobSpec for SettleBet {
    const NAME: &'static str = "settle_bet";
    const QUEUE: Queue = Queue::BetSettlement;

    /// As for emails: one waiting settlement per bet is enough.
    fn unique_key(&self) -> Option<String> {
        Some(self.bet_id.to_string())
    }
}

/// The reconciler's tick: find open bets well past due and queue their
/// settlement again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReconcileBets {
    pub tick: DateTime<Utc>,
}

impl JobSpec for ReconcileBets {
    const NAME: &'static str = "reconcile_bets";
    const QUEUE: Queue = Queue::BetSettlement;
}

/// Charge the monthly fee of every wallet due (see [`crate::fees`]). The
/// scheduled tick has `fan_out` 0: it queues `MONTHLY_FEE_PARALLELISM` − 1
/// copies with `fan_out` 1, so several workers charge batches at once; each
/// copy works until no due wallet is left. Copies and duplicates are
/// harmless: a wallet's period is charged at most once.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChargeFees {
    pub at: DateTime<Utc>,
    pub fan_out: u32,
}

impl JobSpec for ChargeFees {
    const NAME: &'static str = "charge_fees";
    const QUEUE: Queue = Queue::MonthlyFee;
}

/// Housekeeping (see [`crate::hygiene`]): delete expired idempotency keys,
/// codes, refresh tokens and cool-downs. Scheduled by `PURGE_CRON`; runs on
/// the `monthly_fee` queue, the home of slow periodic upkeep. Repeating it
/// is harmless.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PurgeExpired {
    pub tick: DateTime<Utc>,
}

impl JobSpec for PurgeExpired {
    const NAME: &'static str = "purge_expired";
    const QUEUE: Queue = Queue::MonthlyFee;
}

/// Deliver webhook events to one endpoint (see
/// [`crate::webhooks::deliveries`]): queued for each delivery in the
/// transaction of its event, then by each failed attempt for the next,
/// after its backoff, and by a resend. Carries its endpoint, so a job whose
/// endpoint is busy with another ends without reading the database: the
/// one holding the endpoint's turn sends every due delivery to it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeliverWebhook {
    pub delivery_id: Uuid,
    pub endpoint_id: Uuid,
}

impl JobSpec for DeliverWebhook {
    const NAME: &'static str = "deliver_webhook";
    const QUEUE: Queue = Queue::Webhook;

    /// A resend while the delivery's attempt still waits is that attempt.
    fn unique_key(&self) -> Option<String> {
        Some(self.delivery_id.to_string())
    }
}

/// A diagnostic job: optionally sleeps, fails its first attempts, and records
/// each run in `probe_runs`. Operators use it to check the pipeline end to
/// end; the benchmark uses it as the no-op job.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    pub tag: String,
    #[serde(default)]
    pub sleep_ms: u64,
    /// Attempts up to and including this number fail; `u32::MAX` always fails.
    #[serde(default)]
    pub fail_attempts: u32,
    /// Record start and finish of every run in PostgreSQL.
    #[serde(default)]
    pub record: bool,
    /// A failing attempt fails for good (straight to the dead set) instead
    /// of being retried.
    #[serde(default)]
    pub fail_permanently: bool,
}

impl JobSpec for Probe {
    const NAME: &'static str = "probe";
    const QUEUE: Queue = Queue::Probe;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_lists_parse_and_reject_unknown_names() {
        assert_eq!(
            Queue::parse_list("email, probe,email").unwrap(),
            vec![Queue::Email, Queue::Probe]
        );
        assert_eq!(Queue::parse_list("all").unwrap().len(), Queue::ALL.len());
        assert!(Queue::parse_list("emails").unwrap_err().contains("emails"));
        assert!(Queue::parse_list(" , ").is_err());
    }

    #[test]
    fn envelopes_check_name_and_version() {
        let envelope = JobEnvelope {
            id: Uuid::nil(),
            job: "send_email".into(),
            v: 1,
            args: serde_json::json!({ "email_id": Uuid::nil() }),
            due_at: Utc::now(),
            unique_key: None,
            traceparent: None,
            request_id: None,
        };
        assert_eq!(
            envelope.decode::<SendEmail>().unwrap(),
            SendEmail {
                email_id: Uuid::nil()
            }
        );
        assert!(matches!(
            envelope.decode::<Probe>(),
            Err(PayloadError::WrongJob { .. })
        ));
        let future = JobEnvelope {
            v: 2,
            ..envelope.clone()
        };
        assert!(matches!(
            future.decode::<SendEmail>(),
            Err(PayloadError::UnknownVersion { version: 2, .. })
        ));
        let garbage = JobEnvelope {
            args: serde_json::json!({ "email_id": 5 }),
            ..envelope
        };
        assert!(matches!(
            garbage.decode::<SendEmail>(),
            Err(PayloadError::Malformed { .. })
        ));
    }
}
