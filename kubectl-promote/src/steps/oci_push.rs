//! `oci-push`: copy or retag an OCI artifact (image, multi-arch index, Helm chart) from `srcRef`
//! to `destRef`, as Kargo's step does: blobs are skipped when the destination has them, mounted
//! within one registry, else streamed from source to destination (never held whole in memory);
//! manifests are pushed byte for byte, so the digest stays the source's unless `annotations` are
//! given (`index:` keys on the index, `manifest:` or unprefixed keys on each image manifest;
//! existing annotations kept). A copy over 1 GiB of blobs is refused unless it stays within one
//! repository (no transfer). `oci://` prefixes are accepted (Helm's form). Credentials: the
//! user's Docker and Helm registry logins, or `PROMOTE_REGISTRY_USERNAME`/`_PASSWORD` for hosts in
//! `PROMOTE_TOKEN_HOSTS`, per registry. Outputs: `image` (the destination with its tag),
//! `digest`, `tag`. A remote step: recorded as done, it is checked (the destination tag still
//! names the recorded digest) and not run again on a resume.

use std::collections::BTreeMap;

use futures::StreamExt;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Runtime, StepError, StepResult, config, fail};
use crate::discovery::{Credentials, image};

/// Kargo's default cap on the bytes one copy moves.
const MAX_BYTES: i64 = 1 << 30;
pub(super) const ACCEPT: [&str; 4] = [
    oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
    oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE,
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    src_ref: String,
    dest_ref: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
}

pub(super) fn parse_ref(step: &str, field: &str, s: &str) -> Result<Reference, StepError> {
    let bare = s.strip_prefix("oci://").unwrap_or(s);
    bare.parse::<Reference>().map_err(|e| {
        fail(format!(
            "{step}: {field} {s:?} is not an OCI reference ({e}); expected registry/repository:tag or registry/repository@sha256:..."
        ))
    })
}

pub(super) fn registry_error(
    what: &str,
    r: &Reference,
    e: oci_client::errors::OciDistributionError,
) -> StepError {
    use oci_client::errors::OciDistributionError as E;
    let message = format!(
        "{what}: {}",
        crate::git::redact::strip_userinfo(&e.to_string())
    );
    // The network, 429 and 5xx are transient (retried with backoff); a refusal (401, 403, 404, a
    // bad manifest) fails at once, with a hint for credentials.
    match &e {
        E::RequestError(_) | E::IoError(_) => StepError::Http {
            url: r.whole(),
            message,
        },
        E::ServerError { code, .. } if *code == 429 || *code >= 500 => StepError::Http {
            url: r.whole(),
            message,
        },
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => fail(format!(
            "{}: {message}; hint: log in with docker login or helm registry login, or set PROMOTE_REGISTRY_USERNAME/PROMOTE_REGISTRY_PASSWORD with the registry listed in PROMOTE_TOKEN_HOSTS",
            r.whole()
        )),
        _ => fail(format!("{}: {message}", r.whole())),
    }
}

/// One side of the copy: its client and login.
pub(super) struct End {
    pub(super) client: Client,
    pub(super) auth: RegistryAuth,
}

/// The logins the oci steps may use: the project's Kargo credential Secrets (`cred-type: image`,
/// and `helm` for `oci://` references; read when the step runs, against a cluster, if the
/// promoter may list Secrets), then the user's own.
pub(super) fn credentials(rt: &Runtime<'_>) -> Credentials {
    let mut creds = Credentials::default();
    if let Some(cl) = &rt.cluster {
        let list = |kind: &str| {
            let selector = format!("{}={kind}", promote_api::keys::CRED_TYPE);
            cl.kube
                .list(
                    &format!("/api/v1/namespaces/{}/secrets", rt.ctx.project),
                    Some(&selector),
                )
                .map(|items| {
                    items
                        .iter()
                        .filter_map(crate::credentials::ProjectCredential::from_secret)
                        .collect()
                })
                // Promoters usually may not read Secrets: their own logins apply.
                .unwrap_or_default()
        };
        creds.image = list("image");
        creds.helm = list("helm");
    }
    creds.load_user();
    creds
}

pub(super) async fn end(
    r: &Reference,
    oci: bool,
    creds: &Credentials,
    insecure: bool,
) -> Result<End, StepError> {
    let repo = format!("{}/{}", r.registry(), r.repository());
    let login = if oci {
        creds
            .for_chart(&format!("oci://{repo}"))
            .or_else(|| creds.for_image(&repo))
    } else {
        creds.for_image(&repo)
    };
    Ok(End {
        client: image::client(r.registry(), insecure, login.is_some())
            .await
            .map_err(|e| fail(format!("{}: {e}", r.whole())))?,
        auth: image::auth(login.as_ref()),
    })
}

fn media_type(doc: &Value, declared: &str) -> String {
    doc.get("mediaType")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            if doc.get("manifests").is_some() {
                oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE.to_owned()
            } else if declared.is_empty() {
                oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_owned()
            } else {
                declared.to_owned()
            }
        })
}

fn digest_of(data: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(data);
    format!(
        "sha256:{}",
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

struct Copy<'a> {
    src: &'a Reference,
    dst: &'a Reference,
    from: End,
    to: End,
    same_repo: bool,
    same_registry: bool,
    index_annotations: BTreeMap<String, String>,
    manifest_annotations: BTreeMap<String, String>,
    moved: i64,
}

impl Copy<'_> {
    fn at(&self, r: &Reference, digest: &str) -> Reference {
        Reference::with_digest(
            r.registry().to_owned(),
            r.repository().to_owned(),
            digest.to_owned(),
        )
    }

    async fn blob(&mut self, digest: &str, size: i64) -> Result<(), StepError> {
        if self.same_repo {
            return Ok(());
        }
        let target = self.at(self.dst, digest);
        let have = self
            .to
            .client
            .blob_exists(&target, digest)
            .await
            .map_err(|e| registry_error("checking a blob at the destination", self.dst, e))?;
        if have {
            return Ok(());
        }
        self.moved += size.max(0);
        if self.moved > MAX_BYTES {
            return Err(fail(format!(
                "oci-push: the artifact's blobs exceed {} bytes; copy it with a registry tool, or retag within its repository",
                MAX_BYTES
            )));
        }
        if self.same_registry
            && self
                .to
                .client
                .mount_blob(&target, self.src, digest)
                .await
                .is_ok()
            && self
                .to
                .client
                .blob_exists(&target, digest)
                .await
                .unwrap_or(false)
        {
            return Ok(());
        }
        let stream = self
            .from
            .client
            .pull_blob_stream(&self.at(self.src, digest), digest)
            .await
            .map_err(|e| registry_error("reading a blob at the source", self.src, e))?;
        let body =
            stream.map(|chunk| chunk.map_err(oci_client::errors::OciDistributionError::from));
        self.to
            .client
            .push_blob_stream(&target, body, digest, u64::try_from(size).ok())
            .await
            .map_err(|e| registry_error("writing a blob at the destination", self.dst, e))?;
        Ok(())
    }

    /// Copy one image manifest's blobs and push it (by digest unless `tag`); its pushed digest
    /// and size.
    async fn image(
        &mut self,
        bytes: Vec<u8>,
        declared: &str,
        tag: Option<&str>,
    ) -> Result<(String, usize, String), StepError> {
        let mut doc: Value = serde_json::from_slice(&bytes)
            .map_err(|e| fail(format!("oci-push: the source manifest is not JSON: {e}")))?;
        let mut blobs: Vec<(String, i64)> = Vec::new();
        if let Some(c) = doc.get("config") {
            blobs.push((
                c["digest"].as_str().unwrap_or_default().to_owned(),
                c["size"].as_i64().unwrap_or(0),
            ));
        }
        for l in doc
            .get("layers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            blobs.push((
                l["digest"].as_str().unwrap_or_default().to_owned(),
                l["size"].as_i64().unwrap_or(0),
            ));
        }
        for (d, size) in blobs.into_iter().filter(|(d, _)| !d.is_empty()) {
            self.blob(&d, size).await?;
        }
        let body = if self.manifest_annotations.is_empty() {
            bytes
        } else {
            annotate(&mut doc, &self.manifest_annotations);
            serde_json::to_vec(&doc).map_err(|e| fail(e.to_string()))?
        };
        let media = media_type(&doc, declared);
        let digest = digest_of(&body);
        let target = match tag {
            Some(t) => Reference::with_tag(
                self.dst.registry().to_owned(),
                self.dst.repository().to_owned(),
                t.to_owned(),
            ),
            None => self.at(self.dst, &digest),
        };
        let size = body.len();
        self.push_manifest(&target, body, &media).await?;
        Ok((digest, size, media))
    }

    async fn push_manifest(
        &self,
        target: &Reference,
        body: Vec<u8>,
        media: &str,
    ) -> Result<(), StepError> {
        let content_type = media.parse().map_err(|_| {
            fail(format!(
                "oci-push: media type {media:?} is not a header value"
            ))
        })?;
        self.to
            .client
            .push_manifest_raw(target, body, content_type)
            .await
            .map_err(|e| registry_error("pushing the manifest", self.dst, e))?;
        Ok(())
    }
}

fn annotate(doc: &mut Value, annotations: &BTreeMap<String, String>) {
    if !doc.get("annotations").is_some_and(Value::is_object) {
        doc["annotations"] = json!({});
    }
    for (k, v) in annotations {
        doc["annotations"][k] = json!(v);
    }
}

async fn copy(
    cfg: &Config,
    creds: &Credentials,
    src: &Reference,
    dst: &Reference,
    tag: &str,
) -> Result<String, StepError> {
    let from = end(
        src,
        cfg.src_ref.starts_with("oci://"),
        creds,
        cfg.insecure_skip_tls_verify,
    )
    .await?;
    let to = end(
        dst,
        cfg.dest_ref.starts_with("oci://"),
        creds,
        cfg.insecure_skip_tls_verify,
    )
    .await?;
    from.client
        .auth(src, &from.auth, RegistryOperation::Pull)
        .await
        .map_err(|e| registry_error("logging in to the source", src, e))?;
    to.client
        .auth(dst, &to.auth, RegistryOperation::Push)
        .await
        .map_err(|e| registry_error("logging in to the destination", dst, e))?;
    let (index_annotations, manifest_annotations): (BTreeMap<_, _>, BTreeMap<_, _>) = {
        let mut i = BTreeMap::new();
        let mut m = BTreeMap::new();
        for (k, v) in &cfg.annotations {
            if let Some(rest) = k.strip_prefix("index:") {
                i.insert(rest.to_owned(), v.clone());
            } else {
                m.insert(
                    k.strip_prefix("manifest:").unwrap_or(k).to_owned(),
                    v.clone(),
                );
            }
        }
        (i, m)
    };
    let mut c = Copy {
        src,
        dst,
        same_repo: src.resolve_registry() == dst.resolve_registry()
            && src.repository() == dst.repository(),
        same_registry: src.resolve_registry() == dst.resolve_registry(),
        from,
        to,
        index_annotations,
        manifest_annotations,
        moved: 0,
    };
    let (bytes, _) = c
        .from
        .client
        .pull_manifest_raw(src, &c.from.auth, &ACCEPT)
        .await
        .map_err(|e| registry_error("reading the source manifest", src, e))?;
    let top: Value = serde_json::from_slice(&bytes)
        .map_err(|e| fail(format!("oci-push: the source manifest is not JSON: {e}")))?;
    if !top.get("manifests").is_some_and(Value::is_array) {
        return Ok(c.image(bytes.to_vec(), "", Some(tag)).await?.0);
    }
    let mut index = top.clone();
    let entries = top["manifests"].as_array().cloned().unwrap_or_default();
    let mut changed = !c.index_annotations.is_empty();
    for (i, entry) in entries.iter().enumerate() {
        let Some(d) = entry.get("digest").and_then(Value::as_str) else {
            continue;
        };
        let declared = entry
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let (child, _) = c
            .from
            .client
            .pull_manifest_raw(&c.at(src, d), &c.from.auth, &ACCEPT)
            .await
            .map_err(|e| registry_error("reading a manifest of the index", src, e))?;
        let child_doc: Value = serde_json::from_slice(&child).unwrap_or(Value::Null);
        if child_doc.get("manifests").is_some() {
            return Err(fail("oci-push: nested indexes are not supported"));
        }
        let (new_digest, size, _) = c.image(child.to_vec(), &declared, None).await?;
        if new_digest != d {
            index["manifests"][i]["digest"] = json!(new_digest);
            index["manifests"][i]["size"] = json!(size);
            changed = true;
        }
    }
    let body = if changed {
        let ann = c.index_annotations.clone();
        if !ann.is_empty() {
            annotate(&mut index, &ann);
        }
        serde_json::to_vec(&index).map_err(|e| fail(e.to_string()))?
    } else {
        bytes.to_vec()
    };
    let media = media_type(&index, "");
    let digest = digest_of(&body);
    let target = Reference::with_tag(
        dst.registry().to_owned(),
        dst.repository().to_owned(),
        tag.to_owned(),
    );
    c.push_manifest(&target, body, &media).await?;
    Ok(digest)
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, StepError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("cannot start the HTTP runtime: {e}")))
}

fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("oci-push", cfg)?;
    let src = parse_ref("oci-push", "srcRef", &cfg.src_ref)?;
    let dst = parse_ref("oci-push", "destRef", &cfg.dest_ref)?;
    let Some(tag) = dst
        .tag()
        .map(str::to_owned)
        .filter(|_| dst.digest().is_none())
    else {
        return Err(fail(format!(
            "oci-push: destRef {:?} must name a tag (registry/repository:tag)",
            cfg.dest_ref
        )));
    };
    let image = cfg
        .dest_ref
        .strip_prefix("oci://")
        .unwrap_or(&cfg.dest_ref)
        .to_owned();
    if rt.dry_run {
        return Ok(StepResult::ok(
            json!({"image": image, "tag": tag, "digest": ""}),
            format!("would copy {} to {image} (dry run)", cfg.src_ref),
        ));
    }
    let creds = credentials(rt);
    let digest = runtime()?.block_on(copy(&cfg, &creds, &src, &dst, &tag))?;
    Ok(StepResult::ok(
        json!({"image": image, "digest": digest, "tag": tag}),
        format!("{} pushed as {image} ({digest})", cfg.src_ref),
    ))
}

/// On a resume: the destination tag must still name the recorded digest.
fn verify_recorded(cfg: &Value, outputs: &Value, rt: &mut Runtime<'_>) -> Result<(), StepError> {
    let cfg: Config = config("oci-push", cfg)?;
    let recorded = outputs
        .get("digest")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if recorded.is_empty() {
        return Ok(());
    }
    let dst = parse_ref("oci-push", "destRef", &cfg.dest_ref)?;
    let creds = credentials(rt);
    let now = runtime()?.block_on(async {
        let e = end(
            &dst,
            cfg.dest_ref.starts_with("oci://"),
            &creds,
            cfg.insecure_skip_tls_verify,
        )
        .await?;
        e.client
            .fetch_manifest_digest(&dst, &e.auth)
            .await
            .map_err(|err| registry_error("reading the destination tag", &dst, err))
    })?;
    if now == recorded {
        return Ok(());
    }
    Err(fail(format!(
        "the push recorded on the Promotion ({recorded} as {}) is not what the tag names now ({now}): the tag moved; hint: start a new promotion",
        cfg.dest_ref
    )))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "oci-push",
    summary: "copy or retag an OCI artifact (image, index, chart) between registries, digest kept",
    shape: &promote_api::step_config::OCI_PUSH,
    run: |cfg, rt, _| run(cfg, rt),
    remote: true,
    outputs: &["image", "digest", "tag"],
    verify_recorded: Some(verify_recorded),
};
