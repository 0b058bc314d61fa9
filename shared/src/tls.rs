//! TLS for outside calls (price providers over reqwest, SMTP over lettre)
//! uses rustls with the `ring` provider, the only crypto backend built.

/// Installs `ring` as the process's rustls provider. Call once at start-up
/// (also safe to call again: later installs are refused and ignored).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
