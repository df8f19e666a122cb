//! Certificates: a self-signed CA and serving certificate (`promote-webhook certs`, the sandbox),
//! rustls server configuration from PEM, and hot reload of the mounted pair.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A CA and a serving certificate signed by it, all PEM.
#[derive(Clone, Debug)]
pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
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

/// The certificate and key files of a running server, and what was last loaded from them.
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    loaded: (Vec<u8>, Vec<u8>),
}

impl CertFiles {
    /// Load the pair once; fails when it is unusable.
    pub fn load(cert: &Path, key: &Path) -> Result<(CertFiles, Arc<rustls::ServerConfig>), String> {
        let (c, k) = read_pair(cert, key)?;
        let cfg = server_config(&c, &k)?;
        Ok((
            CertFiles {
                cert: cert.to_owned(),
                key: key.to_owned(),
                loaded: (c, k),
            },
            cfg,
        ))
    }

    /// Re-read the files. `Ok(Some(cfg))` when they changed into a usable pair, `Ok(None)` when
    /// unchanged, `Err` when they changed into something unusable (the old pair stays in use;
    /// a half-written rotation — new certificate, old key — is retried on the next poll).
    pub fn poll(&mut self) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
        let (c, k) = read_pair(&self.cert, &self.key)?;
        if (&c, &k) == (&self.loaded.0, &self.loaded.1) {
            return Ok(None);
        }
        let cfg = server_config(&c, &k)?;
        self.loaded = (c, k);
        Ok(Some(cfg))
    }
}

fn read_pair(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), String> {
    // Paths are re-resolved on every read, so the `..data` symlink swap of a mounted Secret is
    // seen as soon as it happens.
    let c = std::fs::read(cert).map_err(|e| format!("cannot read {}: {e}", cert.display()))?;
    let k = std::fs::read(key).map_err(|e| format!("cannot read {}: {e}", key.display()))?;
    Ok((c, k))
}

/// Default interval between certificate polls.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(10);
