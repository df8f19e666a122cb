//! The sandbox's certificate authority and serving certificate (rcgen), and the TLS client
//! configuration it calls webhooks with.

use std::sync::Arc;

use crate::error::SandboxError;

pub use promote_webhook::tls::Pki;

fn tls_err(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Tls(e.to_string())
}

/// Generate a fresh CA and a serving certificate for `names` (DNS names or IP addresses); the
/// webhook's own generator, so the sandbox and `promote-webhook certs` issue the same shape.
pub fn generate(ca_name: &str, names: &[String]) -> Result<Pki, SandboxError> {
    promote_webhook::tls::generate(ca_name, names).map_err(SandboxError::Tls)
}

/// The rustls server configuration for a PEM certificate chain and key (TLS 1.2 and 1.3, ring).
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, SandboxError> {
    promote_webhook::tls::server_config(cert_pem.as_bytes(), key_pem.as_bytes())
        .map_err(SandboxError::Tls)
}

/// The rustls client configuration trusting exactly the PEM certificates in `ca_pem`; HTTP/1.1
/// only, as kube-apiserver forces for webhooks.
pub fn client_config(ca_pem: &[u8]) -> Result<rustls::ClientConfig, SandboxError> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.map_err(tls_err)?).map_err(tls_err)?;
    }
    if roots.is_empty() {
        return Err(SandboxError::Tls(
            "caBundle holds no PEM certificate".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(tls_err)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}
