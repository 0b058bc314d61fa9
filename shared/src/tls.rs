//! TLS, always rustls with the `ring` provider (the only crypto backend
//! built): outside calls (price providers over reqwest, SMTP over lettre),
//! and PostgreSQL and Redis when a managed service requires it.

use std::{path::Path, sync::Arc};

use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};

/// Installs `ring` as the process's rustls provider. Call once at start-up
/// (also safe to call again: later installs are refused and ignored).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The PEM certificates in `path`, as raw bytes and parsed.
pub fn read_ca_file(path: &Path) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok((pem, certificates))
}

/// How a TLS client checks the server it reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// The chain up to a trusted root, and the host name.
    Full,
    /// Nothing: the connection is encrypted but the server unproven
    /// (PostgreSQL's `sslmode=require` without a root certificate, as
    /// libpq does it).
    EncryptOnly,
}

/// A client configuration trusting the certificates of `ca_file`, or the
/// webpki roots when none is given.
pub fn client_config(ca_file: Option<&Path>, verify: Verify) -> Result<ClientConfig, String> {
    install_crypto_provider();
    if verify == Verify::EncryptOnly {
        return Ok(ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(
                rustls::crypto::ring::default_provider(),
            )))
            .with_no_client_auth());
    }
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let (_, certificates) = read_ca_file(path)?;
            for certificate in certificates {
                roots
                    .add(certificate)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Accepts any server certificate but still checks the handshake
/// signatures (so the session is encrypted to whoever answered).
#[derive(Debug)]
struct EncryptOnly(rustls::crypto::CryptoProvider);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
