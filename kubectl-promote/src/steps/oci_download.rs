//! `oci-download`: write one layer of an OCI artifact (a Helm chart, a bundle of files) to a file
//! of a checkout, as Kargo's step does: `imageRef` by tag or digest (`oci://` accepted),
//! `mediaType` picks the first layer of that type (default: the first layer), `allowOverwrite`
//! to replace an existing file. At most 100 MB (Kargo's limit), checked against the manifest
//! before anything is downloaded; the blob's digest is verified. Credentials as `oci-push`'s.

use serde::Deserialize;
use serde_json::{Value, json};

use super::oci_push::{ACCEPT, end, parse_ref, registry_error, runtime};
use super::{Runtime, StepError, StepResult, config, fail};

/// Kargo's download limit.
const MAX_BYTES: i64 = 100 << 20;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    image_ref: String,
    out_path: String,
    #[serde(default)]
    allow_overwrite: bool,
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
}

fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("oci-download", cfg)?;
    let r = parse_ref("oci-download", "imageRef", &cfg.image_ref)?;
    let creds = super::oci_push::credentials(rt);
    let (co, rel) = rt.resolve(&cfg.out_path)?;
    if co.checkout.read(&rel)?.is_some() && !cfg.allow_overwrite {
        return Err(fail(format!(
            "oci-download: {} already exists; set allowOverwrite to true to replace it",
            cfg.out_path
        )));
    }
    let (data, digest) = runtime()?.block_on(async {
        let e = end(
            &r,
            cfg.image_ref.starts_with("oci://"),
            &creds,
            cfg.insecure_skip_tls_verify,
        )
        .await?;
        let (bytes, _) = e
            .client
            .pull_manifest_raw(&r, &e.auth, &ACCEPT)
            .await
            .map_err(|err| registry_error("reading the manifest", &r, err))?;
        let doc: Value = serde_json::from_slice(&bytes)
            .map_err(|err| fail(format!("oci-download: the manifest is not JSON: {err}")))?;
        if doc.get("manifests").is_some() {
            return Err(fail(format!(
                "oci-download: {} is an index of several manifests; name one of them by digest",
                cfg.image_ref
            )));
        }
        let layers = doc.get("layers").and_then(Value::as_array).cloned().unwrap_or_default();
        let layer = layers
            .iter()
            .find(|l| {
                cfg.media_type.is_empty()
                    || l.get("mediaType").and_then(Value::as_str) == Some(cfg.media_type.as_str())
            })
            .ok_or_else(|| {
                fail(if cfg.media_type.is_empty() {
                    format!("oci-download: {} has no layers", cfg.image_ref)
                } else {
                    format!(
                        "oci-download: {} has no layer of media type {:?} (it has: {})",
                        cfg.image_ref,
                        cfg.media_type,
                        layers
                            .iter()
                            .filter_map(|l| l.get("mediaType").and_then(Value::as_str))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
            })?;
        let digest = layer.get("digest").and_then(Value::as_str).unwrap_or_default().to_owned();
        let size = layer.get("size").and_then(Value::as_i64).unwrap_or(0);
        if size > MAX_BYTES {
            return Err(fail(format!(
                "oci-download: the layer is {size} bytes; downloads are limited to {MAX_BYTES} bytes"
            )));
        }
        let mut buf: Vec<u8> = Vec::new();
        let at = oci_client::Reference::with_digest(
            r.registry().to_owned(),
            r.repository().to_owned(),
            digest.clone(),
        );
        e.client
            .pull_blob(&at, digest.as_str(), &mut buf)
            .await
            .map_err(|err| registry_error("downloading the layer", &r, err))?;
        Ok::<_, StepError>((buf, digest))
    })?;
    let n = data.len();
    co.checkout.write(&rel, data)?;
    Ok(StepResult::ok(
        json!({}),
        format!(
            "{} ({digest}, {n} bytes) written to {}",
            cfg.image_ref, cfg.out_path
        ),
    ))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "oci-download",
    summary: "write one layer of an OCI artifact (a chart, a bundle) to a file of a checkout",
    shape: &promote_api::step_config::OCI_DOWNLOAD,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &[],
    verify_recorded: None,
};
