//! One-time conversions of queue layouts written by older versions, run at
//! start before any worker acknowledges a job into them.

use queue::JobQueues;
use shared::jobs::Queue;

pub async fn queue_layouts(queues: &JobQueues, served: &[Queue]) -> anyhow::Result<()> {
    for &queue in served {
        // Keys named before hash tags (`bourse:email:active`) move to
        // their tagged names first.
        let renamed = queues.rename_untagged_keys(queue).await?;
        if renamed > 0 {
            tracing::info!(queue = %queue, renamed, "renamed the queue's keys to hash-tagged names");
        }
        // Done and dead sets written by apalis-redis 1.0.0 are plain sets;
        // our copy keeps sorted sets.
        let converted = queues.upgrade_layout(queue).await?;
        if converted > 0 {
            tracing::info!(queue = %queue, converted, "converted the done, dead and scheduled sets to the current layout");
        }
        let retries = queues.retire_delayed_set(queue).await?;
        if retries > 0 {
            tracing::info!(queue = %queue, retries, "moved waiting retries to apalis-redis's scheduled set");
        }
    }
    Ok(())
}
