//! The sandbox's certificate authority and serving certificate (rcgen), and the TLS client
//! configuration it calls webhooks with.

use std::sync::Arc;

use crate::error::SandboxError;

pub use promote_pki::Pki;

/// Generate a fresh CA and a serving certificate for `names` (DNS names or IP addresses); the
/// webhook's own generator, so the sandbox and `promote-webhook certs` issue the same shape.
pub fn generate(ca_name: &str, names: &[String]) -> Result<Pki, SandboxError> {
    promote_pki::generate(ca_name, names).map_err(SandboxError::Tls)
}

/// The rustls server configuration for a PEM certificate chain and key (TLS 1.2 and 1.3, ring).
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, SandboxError> {
    promote_pki::server_config(cert_pem.as_bytes(), key_pem.as_bytes()).map_err(SandboxError::Tls)
}

/// The rustls client configuration trusting exactly the PEM certificates in `ca_pem`; HTTP/1.1
/// only, as kube-apiserver forces for webhooks.
pub fn client_config(ca_pem: &[u8]) -> Result<rustls::ClientConfig, SandboxError> {
    promote_pki::client_config(ca_pem).map_err(SandboxError::Tls)
}
