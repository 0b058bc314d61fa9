//! Job handlers: thin adapters that decode a payload, call `shared` and say
//! whether a failure is worth retrying.

pub mod bets;
mod clearing;
mod fees;
mod prices_observed;
mod probe;
pub mod refresh_rates;
mod send_email;
pub mod turn;
mod webhook;

use std::{sync::Arc, time::Duration};

use futures::future::BoxFuture;

use shared::{
    config::Config,
    db::DbPool,
    email::Mailer,
    jobs::{
        ChargeFees, ClearOrders, DeliverWebhook, JobEnvelope, JobSpec, PayloadError,
        PricesObserved, Probe, PurgeExpired, ReconcileBets, ReconcileEmails, RefreshRates,
        SendEmail, SettleBet, SubmitClearingBatch,
    },
    rates::Providers,
    trading::exchange::Exchange,
};

use crate::metrics::Metrics;

/// What a handler needs. One per process, shared by every job.
pub struct JobContext {
    pub config: Arc<Config>,
    pub db: DbPool,
    pub mailer: Mailer,
    /// This process's worker name, as recorded by probes.
    pub worker_name: String,
    pub providers: Providers,
    /// For the latest-price cache.
    pub redis: queue::Conn,
    pub metrics: Arc<Metrics>,
    /// Where clearing batches are placed.
    pub exchange: Arc<dyn Exchange>,
    /// Posts webhook deliveries.
    pub webhooks: shared::webhooks::send::Sender,
    /// Groups bet settlements into shared transactions.
    pub settler: bets::Settler,
    /// "Now" for the monthly fee.
    pub clock: Arc<dyn shared::clock::Clock>,
    /// Wakes the outbox relays after an attempt that queued a job due now.
    pub relays: queue::wake::RelayWaker,
    /// Cluster-wide limits on SMTP sends and exchange orders.
    pub limits: crate::limits::Limits,
}

impl JobContext {
    /// How long an email claimed by a delivery that never finished stays in
    /// doubt before it is marked failed: comfortably past the SMTP timeout.
    pub fn email_stale_after(&self) -> Duration {
        (self.config.mail.smtp_timeout * 3).max(Duration::from_secs(60))
    }
}

/// A failed attempt.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt after a backoff (network, database, SMTP 4xx).
    #[error("{0}")]
    Retry(String),
    /// No attempt can succeed (bad payload, unknown record): dead at once.
    #[error("{0}")]
    Permanent(String),
}

impl JobError {
    pub fn retry(error: impl std::fmt::Display) -> Self {
        Self::Retry(error.to_string())
    }
}

impl From<PayloadError> for JobError {
    fn from(error: PayloadError) -> Self {
        Self::Permanent(error.to_string())
    }
}

/// One run of one job: the context, the envelope and the attempt number
/// (1 for the first run).
pub type Handler =
    fn(Arc<JobContext>, JobEnvelope, u32) -> BoxFuture<'static, Result<(), JobError>>;

/// The handler for a job name, if this build knows it.
pub fn handler_for(job: &str) -> Option<Handler> {
    match job {
        SendEmail::NAME => Some(|ctx, envelope, _| Box::pin(send_email::run(ctx, envelope))),
        ReconcileEmails::NAME => {
            Some(|ctx, envelope, _| Box::pin(send_email::reconcile(ctx, envelope)))
        }
        Probe::NAME => Some(|ctx, envelope, attempt| Box::pin(probe::run(ctx, envelope, attempt))),
        RefreshRates::NAME => Some(|ctx, envelope, _| Box::pin(refresh_rates::run(ctx, envelope))),
        PricesObserved::NAME => {
            Some(|ctx, envelope, _| Box::pin(prices_observed::run(ctx, envelope)))
        }
        SettleBet::NAME => Some(|ctx, envelope, _| Box::pin(bets::settle(ctx, envelope))),
        ReconcileBets::NAME => Some(|ctx, envelope, _| Box::pin(bets::reconcile(ctx, envelope))),
        ChargeFees::NAME => Some(|ctx, envelope, _| Box::pin(fees::charge(ctx, envelope))),
        PurgeExpired::NAME => Some(|ctx, envelope, _| Box::pin(fees::purge(ctx, envelope))),
        ClearOrders::NAME => Some(|ctx, envelope, _| Box::pin(clearing::form(ctx, envelope))),
        SubmitClearingBatch::NAME => {
            Some(|ctx, envelope, _| Box::pin(clearing::submit(ctx, envelope)))
        }
        DeliverWebhook::NAME => Some(|ctx, envelope, _| Box::pin(webhook::deliver(ctx, envelope))),
        _ => None,
    }
}
