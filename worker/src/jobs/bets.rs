//! Bet jobs: settle one bet (due at its `settles_at`), and the
//! reconciler's tick.
//!
//! Settlement jobs hand their bet to this process's [`Settler`], which
//! settles the bets waiting at that moment together in one transaction
//! (`shared::bets::settle_many`) and answers each job when it commits. A
//! job is acknowledged only after its bet's transaction committed, so
//! delivery stays at least once and effects exactly once. There is no
//! gathering delay: a lone bet is settled at once; under load, the bets
//! that arrive while earlier groups are being written form the next group.

use std::{collections::HashMap, sync::Arc, time::Duration};

use shared::{
    bets::{self, Settled},
    config::RatesConfig,
    db::DbPool,
    jobs::{JobEnvelope, ReconcileBets, SettleBet},
};
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

use super::{JobContext, JobError};

/// Bets re-queued per reconciler tick, at most.
const RECONCILE_LIMIT: i64 = 10_000;
/// Bets settled in one transaction, at most.
const MAX_GROUP: usize = 256;
/// How long a job that arrives early waits in place before trying again.
const MAX_EARLY_WAIT: Duration = Duration::from_secs(5);

type Reply = oneshot::Sender<Result<Settled, String>>;

/// Groups this process's settlement jobs into shared transactions.
pub struct Settler {
    requests: mpsc::UnboundedSender<(Uuid, Reply)>,
}

impl Settler {
    /// `in_flight`: settlement transactions at once (`BET_SETTLE_IN_FLIGHT`).
    pub fn start(db: DbPool, rates: RatesConfig, in_flight: usize) -> Self {
        let (requests, incoming) = mpsc::unbounded_channel();
        tokio::spawn(group(incoming, db, Arc::new(rates), in_flight));
        Self { requests }
    }

    async fn settle(&self, id: Uuid) -> Result<Settled, JobError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((id, reply))
            .map_err(|_| JobError::retry("the settler has stopped"))?;
        answer
            .await
            .map_err(|_| JobError::retry("the settler dropped the request"))?
            .map_err(JobError::Retry)
    }
}

async fn group(
    mut incoming: mpsc::UnboundedReceiver<(Uuid, Reply)>,
    db: DbPool,
    rates: Arc<RatesConfig>,
    in_flight: usize,
) {
    let slots = Arc::new(Semaphore::new(in_flight.max(1)));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = incoming.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP {
            match incoming.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let (db, rates) = (db.clone(), rates.clone());
        tokio::spawn(async move {
            settle_group(&db, &rates, batch).await;
            drop(slot);
        });
    }
}

async fn settle_group(db: &DbPool, rates: &RatesConfig, batch: Vec<(Uuid, Reply)>) {
    let mut ids: Vec<Uuid> = batch.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    let outcome = match db.get().await {
        Ok(mut conn) => match bets::settle_many(&mut conn, rates, &ids).await {
            Ok(results) => Ok(results),
            // One bad bet must not fail the others: settle each alone.
            Err(_) if ids.len() > 1 => {
                let mut results = HashMap::new();
                for id in &ids {
                    if let Ok(mut one) = bets::settle_many(&mut conn, rates, &[*id]).await {
                        results.extend(one.drain());
                    }
                }
                Ok(results)
            }
            Err(error) => Err(error.to_string()),
        },
        Err(error) => Err(error.to_string()),
    };
    for (id, reply) in batch {
        let answer = match &outcome {
            Ok(results) => results
                .get(&id)
                .cloned()
                .ok_or_else(|| format!("settling bet {id} failed")),
            Err(error) => Err(error.clone()),
        };
        let _ = reply.send(answer);
    }
}

pub async fn settle(ctx: Arc<JobContext>, envelope: JobEnvelope) -> Result<(), JobError> {
    let job: SettleBet = envelope.decode()?;
    for _ in 0..3 {
        match ctx.settler.settle(job.bet_id).await? {
            Settled::Settled { result, payout } => {
                tracing::debug!(bet = %job.bet_id, %result, %payout, "bet settled");
                return Ok(());
            }
            Settled::Void => {
                tracing::info!(bet = %job.bet_id, "bet void: no fresh price at settles_at");
                return Ok(());
            }
            Settled::AlreadySettled => return Ok(()),
            Settled::Unknown => {
                return Err(JobError::Permanent(format!("no bet {}", job.bet_id)));
            }
            Settled::Busy => {
                return Err(JobError::retry(format!(
                    "bet {} is being settled by another job",
                    job.bet_id
                )));
            }
            // This machine's clock is ahead of the database's.
            Settled::Early(wait) if wait <= MAX_EARLY_WAIT => tokio::time::sleep(wait).await,
            Settled::Early(wait) => {
                return Err(JobError::retry(format!(
                    "bet {} is not due for {}s",
                    job.bet_id,
                    wait.as_secs()
                )));
            }
        }
    }
    Err(JobError::retry(format!(
        "bet {} never fell due",
        job.bet_id
    )))
}

pub async fn reconcile(ctx: Arc<JobContext>, envelope: JobEnvelope) -> Result<(), JobError> {
    let _tick: ReconcileBets = envelope.decode()?;
    let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
    let queued = bets::reconcile(&mut conn, ctx.config.bets.reconcile_after, RECONCILE_LIMIT)
        .await
        .map_err(JobError::retry)?;
    if queued > 0 {
        tracing::warn!(queued, "open bets past due had no settlement: queued again");
    }
    Ok(())
}
