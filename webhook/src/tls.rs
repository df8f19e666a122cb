//! Hot reload of the mounted certificate pair; the certificates themselves come from
//! `promote-pki` (shared with the sandbox).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use promote_pki::{Pki, generate, server_config, service_names};

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
