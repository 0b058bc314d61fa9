//! Password hashing with bcrypt, always on the blocking thread pool: one hash
//! at cost 12 takes ~250 ms of CPU, which would stall every request sharing
//! an async runtime thread.

use std::sync::{Arc, LazyLock};

use tokio::sync::Semaphore;

/// Longest password bcrypt can take in full: it silently ignores bytes past
/// 72, so we refuse longer ones instead of pretending they count.
pub const MAX_PASSWORD_BYTES: usize = 72;
pub const MIN_PASSWORD_CHARS: usize = 8;

/// At most one hash per core at a time: a burst of registrations queues here
/// instead of filling the blocking pool with hundreds of threads.
static HASHING_SLOTS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    Arc::new(Semaphore::new(cores))
});

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(#[from] bcrypt::BcryptError),
    #[error("password hashing task failed: {0}")]
    Task(String),
}

async fn on_blocking_pool<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, bcrypt::BcryptError> + Send + 'static,
) -> Result<T, PasswordError> {
    let _slot = HASHING_SLOTS
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| PasswordError::Task(e.to_string()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| PasswordError::Task(e.to_string()))?
        .map_err(PasswordError::from)
}

/// Hashes `password` with a fresh salt at `cost`.
pub async fn hash(password: String, cost: u32) -> Result<String, PasswordError> {
    on_blocking_pool(move || bcrypt::hash(password.as_bytes(), cost)).await
}

/// Checks `password` against a stored hash. A malformed stored hash counts as
/// a mismatch (and is logged), never as a match.
pub async fn verify(password: String, stored_hash: String) -> Result<bool, PasswordError> {
    let result = on_blocking_pool(move || bcrypt::verify(password.as_bytes(), &stored_hash)).await;
    match result {
        Ok(matches) => Ok(matches),
        Err(PasswordError::Hash(error)) => {
            tracing::error!(%error, "stored password hash is unreadable");
            Ok(false)
        }
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ_by_salt() {
        let a = hash("correct horse".into(), 4).await.unwrap();
        let b = hash("correct horse".into(), 4).await.unwrap();
        assert_ne!(a, b);
        assert!(verify("correct horse".into(), a.clone()).await.unwrap());
        assert!(!verify("wrong horse".into(), a).await.unwrap());
        assert!(!verify("x".into(), "not a hash".into()).await.unwrap());
    }
}
