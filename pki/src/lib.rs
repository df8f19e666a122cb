//! `promote-pki`: the certificates and TLS configurations the webhook and the sandbox share (a
//! self-signed CA and serving certificate, as `promote-webhook certs` and the sandbox issue them;
//! rustls server and webhook-client configurations from PEM), so that the sandbox does not build
//! the webhook's server to get them.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A CA and a serving certificate signed by it, all PEM.
#[derive(Clone, Debug)]
pub struct Pki {
    /// The CA certificate (a webhook configuration's `caBundle`).
    pub ca_pem: String,
    /// The serving certificate.
    pub cert_pem: String,
    /// The serving certificate's private key.
    pub key_pem: String,
}

/// Generate a fresh CA (named `ca_name`) and a serving certificate for `names` (DNS names or IP
/// addresses; the first is the subject's common name).
pub fn generate(ca_name: &str, names: &[String]) -> Result<Pki, String> {
    let err = |e: rcgen::Error| format!("cannot generate certificates: {e}");
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().map_err(err)?;
    let issuer = CertifiedIssuer::self_signed(ca, ca_key).map_err(err)?;
    let mut leaf = CertificateParams::new(names.to_vec()).map_err(err)?;
    leaf.distinguished_name.push(
        DnType::CommonName,
        names.first().map(String::as_str).unwrap_or("localhost"),
    );
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().map_err(err)?;
    let cert = leaf.signed_by(&key, &issuer).map_err(err)?;
    Ok(Pki {
        ca_pem: issuer.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The DNS names a webhook Service is reached by.
pub fn service_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
        service.to_owned(),
    ]
}

/// The rustls server configuration for a PEM chain and key: TLS 1.3 and 1.2 only, HTTP/1.1.
/// Fails when the key does not match the certificate.
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the certificate is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("the certificate file holds no PEM certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("the key file holds no PEM private key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and key do not form a usable pair: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The rustls client configuration trusting exactly the PEM certificates in `ca_pem`; HTTP/1.1
/// only, as kube-apiserver forces for webhooks.
pub fn client_config(ca_pem: &[u8]) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    if roots.is_empty() {
        return Err("caBundle holds no PEM certificate".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_serves_and_its_ca_is_trusted() {
        let pki = generate("test-ca", &["localhost".into(), "127.0.0.1".into()]).unwrap();
        assert!(server_config(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes()).is_ok());
        assert!(client_config(pki.ca_pem.as_bytes()).is_ok());
        let other = generate("other", &["localhost".into()]).unwrap();
        let mismatch = server_config(pki.cert_pem.as_bytes(), other.key_pem.as_bytes());
        assert!(mismatch.unwrap_err().contains("do not form a usable pair"));
        assert!(client_config(b"not pem").is_err());
        assert_eq!(service_names("w", "ns")[0], "w.ns.svc");
    }
}
