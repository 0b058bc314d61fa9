//! Webhooks (PRODUCT.md §11). Reads `WEBHOOK_ALLOW_PRIVATE_ADDRESSES`,
//! `WEBHOOK_MAX_PER_USER`.

use super::env::EnvReader;

#[derive(Debug, Clone)]
pub struct WebhooksConfig {
    /// Admit `http` URLs and loopback and private addresses (tests, local
    /// runs). Link-local and cloud metadata addresses stay refused.
    pub allow_private_addresses: bool,
    /// Most endpoints one user may register.
    pub max_per_user: i64,
}

impl WebhooksConfig {
    pub(super) fn read(env: &mut EnvReader) -> Self {
        Self {
            allow_private_addresses: env.parse_or(
                "WEBHOOK_ALLOW_PRIVATE_ADDRESSES",
                false,
                "true or false",
            ),
            max_per_user: env.range_or("WEBHOOK_MAX_PER_USER", 10, 1, 1000),
        }
    }
}
