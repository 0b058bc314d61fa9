//! Bet jobs: settle one bet (due at its `settles_at`), and the
//! reconciler's tick.

use std::sync::Arc;

use shared::{
    bets::{self, BetError, Settled},
    jobs::{JobEnvelope, ReconcileBets, SettleBet},
};

use super::{JobContext, JobError};

/// Bets re-queued per reconciler tick, at most.
const RECONCILE_LIMIT: i64 = 10_000;

pub async fn settle(ctx: Arc<JobContext>, envelope: JobEnvelope) -> Result<(), JobError> {
    let job: SettleBet = envelope.decode()?;
    let mut conn = ctx.db.get().await.map_err(JobError::retry)?;
    match bets::settle(&mut conn, &ctx.config.rates, job.bet_id).await {
        Ok(Settled::Settled { result, payout }) => {
            tracing::debug!(bet = %job.bet_id, %result, %payout, "bet settled");
            Ok(())
        }
        Ok(Settled::Void) => {
            tracing::info!(bet = %job.bet_id, "bet void: no fresh price at settles_at");
            Ok(())
        }
        Ok(Settled::AlreadySettled) => Ok(()),
        Err(BetError::UnknownBet(id)) => Err(JobError::Permanent(format!("no bet {id}"))),
        Err(error) => Err(JobError::retry(error)),
    }
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
