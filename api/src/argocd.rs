//! Argo CD `Application` helpers and the sync-operation builder.
//!
//! Applications are handled as open JSON (`serde_json::Value`), never through a struct that could
//! drop fields Argo CD knows and we do not. What an `argocd-update` writes is built here once, for
//! the plugin (no webhook installed) and the webhook's mutation alike:
//! the source updates (Kargo `argocd_updater.go` rules), the `operation` (who, why, which
//! revisions, syncOptions and retry from `spec.syncPolicy`) and one JSON merge patch carrying the
//! `resourceVersion` precondition, the hard-refresh annotation and `status.operationState: null`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::Error;
use crate::keys::{ARGOCD_REFRESH, PROJECT_INFO, PROMOTION_INFO};
use crate::urls::normalize_git;

/// `info` entry explaining the sync, as Kargo writes it.
pub const REASON: &str = "Promotion triggered a sync of this Application resource.";
/// `initiatedBy.username` for promotions without a human actor.
pub const AUTOMATED_USER: &str = "kargo-controller";

/// Name of an Application (for messages).
pub fn app_name(app: &Value) -> &str {
    app.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Namespace of an Application.
pub fn app_namespace(app: &Value) -> &str {
    app.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The Application's `status.health.status` and `status.sync.status` (`Unknown` when absent):
/// what a Stage's health is assessed from, by the plugin (`refresh`) and the webhook alike.
pub fn health_and_sync(app: &Value) -> (&str, &str) {
    let field = |p: &str| app.pointer(p).and_then(Value::as_str).unwrap_or("Unknown");
    (field("/status/health/status"), field("/status/sync/status"))
}

/// An annotation value of an Application.
pub fn annotation<'a>(app: &'a Value, key: &str) -> Option<&'a str> {
    app.pointer("/metadata/annotations")?.get(key)?.as_str()
}

/// Whether the Application is multi-source (`spec.sources` non-empty wins over `spec.source`).
pub fn is_multi_source(app: &Value) -> bool {
    app.pointer("/spec/sources")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty())
}

/// The Application's sources, in order: `spec.sources`, or `[spec.source]`.
pub fn sources(app: &Value) -> Vec<&Value> {
    if let Some(list) = app
        .pointer("/spec/sources")
        .and_then(Value::as_array)
        .filter(|s| !s.is_empty())
    {
        return list.iter().collect();
    }
    app.pointer("/spec/source").into_iter().collect()
}

/// The revisions an object holding `revision` (single source) or `revisions` (multi-source)
/// names: an operation's `sync`, a `syncResult`, `status.sync`. Index-aligned with [`sources`].
pub fn revisions(app: &Value, holder: Option<&Value>) -> Vec<String> {
    revisions_in(is_multi_source(app), holder)
}

/// [`revisions`] for an Application whose multi-sourcedness is known.
pub fn revisions_in(multi_source: bool, holder: Option<&Value>) -> Vec<String> {
    let Some(h) = holder else {
        return Vec::new();
    };
    if multi_source {
        h.get("revisions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|r| r.as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        h.get("revision")
            .and_then(Value::as_str)
            .map(|r| vec![r.to_owned()])
            .unwrap_or_default()
    }
}

/// The Promotion named in an operation's `info`, if any.
pub fn operation_promotion(operation: Option<&Value>) -> Option<&str> {
    promotion_in_info(operation?.get("info")?)
}

/// The Promotion named in an operation's `info` list: the value of its first entry named
/// `kargo.akuity.io/promotion`, if that is a string.
pub fn promotion_in_info(info: &Value) -> Option<&str> {
    info.as_array()?
        .iter()
        .find(|i| i.get("name").and_then(Value::as_str) == Some(PROMOTION_INFO))?
        .get("value")?
        .as_str()
}

/// The project named in an operation's `info`, if any.
pub fn operation_project(operation: Option<&Value>) -> Option<&str> {
    operation?
        .get("info")?
        .as_array()?
        .iter()
        .find(|i| i.get("name").and_then(Value::as_str) == Some(PROJECT_INFO))?
        .get("value")?
        .as_str()
}

/// Whether a write from `old` to `new` is a promotion write: the new `operation` names a
/// Promotion and the old object's `operation` did not name the same one.
pub fn is_promotion_write(old: Option<&Value>, new: &Value) -> bool {
    let Some(promo) = operation_promotion(new.get("operation")) else {
        return false;
    };
    operation_promotion(old.and_then(|o| o.get("operation"))) != Some(promo)
}

/// Phase of `status.operationState`, if any.
pub fn operation_phase(app: &Value) -> Option<&str> {
    app.pointer("/status/operationState/phase")
        .and_then(Value::as_str)
}

/// Whether an operation is in progress (`Running` or `Terminating`), Argo CD's own rule.
pub fn operation_in_progress(app: &Value) -> bool {
    matches!(operation_phase(app), Some("Running" | "Terminating"))
}

/// One source update of an `argocd-update` app (Kargo's `sources[]` config).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceUpdate {
    /// Repository URL the update applies to (git: compared normalized; chart: exact).
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    /// Chart name, for Helm chart sources (exact match).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub chart: String,
    /// The revision the source should be synced to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub desired_revision: String,
    /// Also write `desiredRevision` into the source's `targetRevision`.
    #[serde(default, skip_serializing_if = "crate::types::is_false")]
    pub update_target_revision: bool,
    /// Kustomize image overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<KustomizeUpdate>,
    /// Helm image parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmUpdate>,
}

/// Kustomize image overrides of a source update.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KustomizeUpdate {
    /// Images to set; replaces the source's `kustomize.images` list.
    #[serde(default)]
    pub images: Vec<KustomizeImage>,
}

/// One Kustomize image override.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KustomizeImage {
    /// Image repository.
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    /// New image name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub new_name: String,
    /// Tag (exclusive with digest).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    /// Digest (exclusive with tag).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
}

/// Helm parameters of a source update.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelmUpdate {
    /// Parameters to upsert by key.
    #[serde(default)]
    pub images: Vec<HelmParameter>,
}

/// One Helm parameter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelmParameter {
    /// Parameter name.
    pub key: String,
    /// Parameter value.
    pub value: String,
}

fn source_matches(source: &Value, update: &SourceUpdate) -> bool {
    let repo = source
        .get("repoURL")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let chart = source
        .get("chart")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !chart.is_empty() || !update.chart.is_empty() {
        return repo == update.repo_url && chart == update.chart;
    }
    normalize_git(repo) == normalize_git(&update.repo_url)
}

/// The desired revision of each source, index-aligned with [`sources`]: the `desiredRevision` of
/// the update matching that source exactly by repo URL and chart (Kargo applies no normalization
/// here), else `""`.
pub fn desired_revisions(app: &Value, updates: &[SourceUpdate]) -> Vec<String> {
    sources(app)
        .iter()
        .map(|s| {
            let repo = s.get("repoURL").and_then(Value::as_str).unwrap_or_default();
            let chart = s.get("chart").and_then(Value::as_str).unwrap_or_default();
            updates
                .iter()
                .find(|u| u.repo_url == repo && u.chart == chart)
                .map(|u| u.desired_revision.clone())
                .unwrap_or_default()
        })
        .collect()
}

/// Apply source updates to deep copies of the Application's sources (unknown fields kept).
/// Every update must match a source, else the error names it.
pub fn updated_sources(app: &Value, updates: &[SourceUpdate]) -> Result<Vec<Value>, Error> {
    let mut out: Vec<Value> = sources(app).into_iter().cloned().collect();
    for u in updates {
        let Some(source) = out.iter_mut().find(|s| source_matches(s, u)) else {
            let chart = if u.chart.is_empty() {
                String::new()
            } else {
                format!(" and chart \"{}\"", u.chart)
            };
            return Err(Error::Application {
                app: app_name(app).to_owned(),
                reason: format!(
                    "no source of Argo CD Application \"{}\" in namespace \"{}\" matched update for source with repoURL \"{}\"{chart}",
                    app_name(app),
                    app_namespace(app),
                    u.repo_url
                ),
            });
        };
        let Some(obj) = source.as_object_mut() else {
            continue;
        };
        if u.update_target_revision && !u.desired_revision.is_empty() {
            obj.insert("targetRevision".into(), json!(u.desired_revision));
        }
        if let Some(k) = &u.kustomize {
            let images: Vec<Value> = k
                .images
                .iter()
                .map(|i| {
                    let mut s = i.repo_url.clone();
                    if !i.new_name.is_empty() {
                        s = format!("{s}={}", i.new_name);
                    }
                    if !i.digest.is_empty() {
                        format!("{s}@{}", i.digest)
                    } else {
                        format!("{s}:{}", i.tag)
                    }
                })
                .map(Value::String)
                .collect();
            let kz = obj.entry("kustomize").or_insert_with(|| json!({}));
            if let Some(kz) = kz.as_object_mut() {
                kz.insert("images".into(), Value::Array(images));
            }
        }
        if let Some(h) = &u.helm {
            let helm = obj.entry("helm").or_insert_with(|| json!({}));
            if let Some(helm) = helm.as_object_mut() {
                let params = helm.entry("parameters").or_insert_with(|| json!([]));
                if let Some(params) = params.as_array_mut() {
                    for p in &h.images {
                        match params
                            .iter_mut()
                            .find(|x| x.get("name").and_then(Value::as_str) == Some(&p.key))
                        {
                            Some(existing) => {
                                if let Some(e) = existing.as_object_mut() {
                                    e.insert("value".into(), json!(p.value));
                                }
                            }
                            None => params.push(json!({ "name": p.key, "value": p.value })),
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Who asked for the sync and for which Promotion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRequest<'a> {
    /// Promotion name (`operation.info` `kargo.akuity.io/promotion`).
    pub promotion: &'a str,
    /// Project of the Promotion (`operation.info` `kargo.akuity.io/project`).
    pub project: &'a str,
    /// The human behind the Promotion (its create-actor, prefix stripped), or `None` when none.
    pub actor: Option<&'a str>,
}

/// What of an Application its sync operation is built from (besides its sources).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OperationBasis<'a> {
    /// Whether the Application is multi-source ([`is_multi_source`]).
    pub multi_source: bool,
    /// `spec.syncPolicy.syncOptions`, when present.
    pub sync_options: Option<&'a Value>,
    /// `spec.syncPolicy.retry`, when present (copied as is, `null` included).
    pub retry: Option<&'a Value>,
}

impl<'a> OperationBasis<'a> {
    /// The basis of an Application object.
    pub fn of(app: &'a Value) -> OperationBasis<'a> {
        OperationBasis {
            multi_source: is_multi_source(app),
            sync_options: app.pointer("/spec/syncPolicy/syncOptions"),
            retry: app.pointer("/spec/syncPolicy/retry"),
        }
    }
}

/// The `operation` promote writes for a promotion sync: the fields of Argo CD's `Operation`
/// that promote sets. Fields are declared in sorted key order at every level, so
/// [`SyncOperation::to_api_json`] writes the bytes the Kubernetes API server writes for the
/// same value (Go's `encoding/json`: compact, keys sorted, `<`, `>` and `&` escaped).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SyncOperation<'a> {
    /// Reason, Promotion and project.
    pub info: [InfoItem<'a>; 3],
    /// Who asked for the sync.
    #[serde(rename = "initiatedBy")]
    pub initiated_by: Initiator<'a>,
    /// `spec.syncPolicy.retry`, copied as is (`null` included) when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<&'a Value>,
    /// Revisions and sync options.
    pub sync: SyncSpec<'a>,
}

/// One `operation.info` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct InfoItem<'a> {
    /// Entry name.
    pub name: &'a str,
    /// Entry value.
    pub value: &'a str,
}

/// `operation.initiatedBy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Initiator<'a> {
    /// `true` for promotions without a human actor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automated: Option<bool>,
    /// The actor, or [`AUTOMATED_USER`].
    pub username: &'a str,
}

/// `operation.sync`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SyncSpec<'a> {
    /// The revision of a single-source Application.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<&'a str>,
    /// One revision per source of a multi-source Application.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revisions: Option<Vec<&'a str>>,
    /// `spec.syncPolicy.syncOptions`, when a non-empty list.
    #[serde(rename = "syncOptions", skip_serializing_if = "Option::is_none")]
    pub sync_options: Option<&'a Value>,
}

impl SyncOperation<'_> {
    /// The operation as JSON.
    pub fn to_value(&self) -> Value {
        let mut initiated_by = Map::new();
        if let Some(a) = self.initiated_by.automated {
            initiated_by.insert("automated".into(), Value::Bool(a));
        }
        initiated_by.insert("username".into(), json!(self.initiated_by.username));
        let mut sync = Map::new();
        if let Some(r) = self.sync.revision {
            sync.insert("revision".into(), json!(r));
        }
        if let Some(r) = &self.sync.revisions {
            sync.insert("revisions".into(), json!(r));
        }
        if let Some(o) = self.sync.sync_options {
            sync.insert("syncOptions".into(), o.clone());
        }
        let mut op = Map::new();
        op.insert(
            "info".into(),
            Value::Array(
                self.info
                    .iter()
                    .map(|i| json!({ "name": i.name, "value": i.value }))
                    .collect(),
            ),
        );
        op.insert("initiatedBy".into(), Value::Object(initiated_by));
        if let Some(r) = self.retry {
            op.insert("retry".into(), r.clone());
        }
        op.insert("sync".into(), Value::Object(sync));
        Value::Object(op)
    }

    /// The operation as the API server serializes it (see the type's documentation). Values
    /// copied from the Application (`retry`, `syncOptions`) keep their own key order, which is
    /// sorted when they were read from the API server.
    pub fn to_api_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        let mut ser = serde_json::Serializer::with_formatter(&mut out, GoJson);
        // Serializing these types into memory cannot fail (no maps with non-string keys).
        if self.serialize(&mut ser).is_err() {
            out.clear();
        }
        out
    }

    /// Whether `text` is [`SyncOperation::to_api_json`], compared as it is written (nothing is
    /// allocated).
    pub fn is_api_json(&self, text: &[u8]) -> bool {
        let mut cmp = Compare {
            rest: text,
            same: true,
        };
        let written = self.serialize(&mut serde_json::Serializer::with_formatter(
            &mut cmp, GoJson,
        ));
        written.is_ok() && cmp.same && cmp.rest.is_empty()
    }
}

/// A writer that only compares what is written with `expected`.
struct Compare<'a> {
    rest: &'a [u8],
    same: bool,
}

impl std::io::Write for Compare<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.rest.strip_prefix(buf) {
            Some(rest) if self.same => self.rest = rest,
            _ => self.same = false,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A compact `serde_json` formatter writing strings as Go's `encoding/json` does (Go 1.22 and
/// later, which write `\b` and `\f` like serde_json): `<`, `>`, `&`, U+2028 and U+2029 as `\u`
/// escapes.
struct GoJson;

impl serde_json::ser::Formatter for GoJson {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        // Most fragments hold none of these (U+2028 and U+2029 start with byte 0xE2).
        if !fragment
            .bytes()
            .any(|b| matches!(b, b'<' | b'>' | b'&' | 0xE2))
        {
            return writer.write_all(fragment.as_bytes());
        }
        let mut rest = fragment;
        while let Some(at) = rest.find(['<', '>', '&', '\u{2028}', '\u{2029}']) {
            writer.write_all(&rest.as_bytes()[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            write!(writer, "\\u{:04x}", u32::from(c))?;
            rest = &rest[at + c.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }
}

/// Build the authoritative `operation` for a promotion sync.
///
/// `sources` are the sources the Application will have after the update and `desired` the desired
/// revisions index-aligned with them. Single-source Applications get `sync.revision` (when a
/// revision is desired); multi-source ones get `sync.revisions` with one entry per source, empty
/// slots filled from that source's `targetRevision` (Argo CD needs every position).
pub fn sync_operation<'a>(
    basis: OperationBasis<'a>,
    sources: &'a [Value],
    desired: &'a [String],
    req: &SyncRequest<'a>,
) -> SyncOperation<'a> {
    let initiated_by = match req.actor {
        Some(user) => Initiator {
            automated: None,
            username: user,
        },
        None => Initiator {
            automated: Some(true),
            username: AUTOMATED_USER,
        },
    };
    let mut sync = SyncSpec {
        revision: None,
        revisions: None,
        sync_options: basis
            .sync_options
            .filter(|o| o.as_array().is_some_and(|a| !a.is_empty())),
    };
    if basis.multi_source {
        if desired.iter().any(|d| !d.is_empty()) {
            sync.revisions = Some(
                sources
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let d = desired.get(i).map(String::as_str).unwrap_or_default();
                        if d.is_empty() {
                            s.get("targetRevision")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                        } else {
                            d
                        }
                    })
                    .collect(),
            );
        }
    } else if let Some(d) = desired.first().filter(|d| !d.is_empty()) {
        sync.revision = Some(d);
    }
    SyncOperation {
        info: [
            InfoItem {
                name: "Reason",
                value: REASON,
            },
            InfoItem {
                name: PROMOTION_INFO,
                value: req.promotion,
            },
            InfoItem {
                name: PROJECT_INFO,
                value: req.project,
            },
        ],
        initiated_by,
        retry: basis.retry,
        sync,
    }
}

/// [`sync_operation`] as JSON.
pub fn build_operation(
    basis: OperationBasis<'_>,
    sources: &[Value],
    desired: &[String],
    req: &SyncRequest<'_>,
) -> Value {
    sync_operation(basis, sources, desired, req).to_value()
}

/// What an `argocd-update` sends for one Application.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncPatch {
    /// The operation written.
    pub operation: Value,
    /// The desired revisions, index-aligned with the sources.
    pub desired_revisions: Vec<String>,
    /// The Application's sources after the patch.
    pub sources: Vec<Value>,
    /// The JSON merge patch to send (`application/merge-patch+json`).
    pub merge_patch: Value,
}

impl SyncPatch {
    /// The plan the runner records on its Promotion before sending the patch
    /// (`crate::trust::SYNC_PLAN`).
    pub fn plan(&self) -> crate::trust::SyncPlan {
        crate::trust::SyncPlan {
            sources: self.sources.clone(),
            revisions: self.desired_revisions.clone(),
        }
    }
}

/// Build the merge patch that updates sources, sets the refresh annotation, writes the operation
/// and clears `status.operationState`, guarded by the live object's `resourceVersion`.
pub fn build_sync_patch(
    app: &Value,
    updates: &[SourceUpdate],
    req: &SyncRequest<'_>,
) -> Result<SyncPatch, Error> {
    if !app.is_object() {
        return Err(Error::Application {
            app: String::new(),
            reason: "the Application is not a JSON object".into(),
        });
    }
    if sources(app).is_empty() {
        return Err(Error::Application {
            app: app_name(app).to_owned(),
            reason: "it has neither spec.source nor spec.sources".into(),
        });
    }
    let new_sources = updated_sources(app, updates)?;
    let desired = desired_revisions(app, updates);
    let operation = build_operation(OperationBasis::of(app), &new_sources, &desired, req);
    let mut patch = json!({
        "metadata": { "annotations": { ARGOCD_REFRESH: "hard" } },
        "operation": operation,
    });
    if let Some(rv) = app.pointer("/metadata/resourceVersion") {
        patch["metadata"]["resourceVersion"] = rv.clone();
    }
    let changed: Vec<&Value> = sources(app);
    if new_sources.iter().zip(changed).any(|(a, b)| a != b) {
        if is_multi_source(app) {
            patch["spec"] = json!({ "sources": new_sources });
        } else if let Some(s) = new_sources.first() {
            patch["spec"] = json!({ "source": s });
        }
    }
    // Argo CD keeps a finished operationState; null it so waiting never mistakes the previous
    // result for ours (Kargo's workaround for argo-cd#20875). Skipped when there is no status.
    if app.get("status").is_some_and(|s| !s.is_null()) {
        patch["status"] = json!({ "operationState": null });
    }
    Ok(SyncPatch {
        operation: patch["operation"].clone(),
        desired_revisions: desired,
        sources: new_sources,
        merge_patch: patch,
    })
}

/// Apply an RFC 7386 JSON merge patch (used to preview and to test what a patch does).
pub fn apply_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                apply_merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single() -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {
                "name": "guestbook-test", "namespace": "argocd", "resourceVersion": "42",
                "annotations": { "kargo.akuity.io/authorized-stage": "demo:test", "team": "a" }
            },
            "spec": {
                "project": "default",
                "source": {
                    "repoURL": "https://github.com/example/gitops.git",
                    "targetRevision": "main",
                    "path": "env/test",
                    "kustomize": { "namePrefix": "t-", "images": ["old:1"] },
                    "futureArgoField": { "x": 1 }
                },
                "destination": { "server": "https://kubernetes.default.svc", "namespace": "test" },
                "syncPolicy": { "syncOptions": ["CreateNamespace=true"], "retry": { "limit": 2 } }
            },
            "status": { "operationState": { "phase": "Succeeded" }, "sync": { "status": "Synced" } }
        })
    }

    fn multi() -> Value {
        json!({
            "metadata": { "name": "m", "namespace": "argocd", "resourceVersion": "7" },
            "spec": { "sources": [
                { "repoURL": "https://charts.example.com", "chart": "redis", "targetRevision": "18.0.0",
                  "helm": { "parameters": [{ "name": "image.tag", "value": "1" }, { "name": "keep", "value": "me" }] } },
                { "repoURL": "git@github.com:example/gitops.git", "targetRevision": "main", "path": "values" }
            ]}
        })
    }

    fn req() -> SyncRequest<'static> {
        SyncRequest {
            promotion: "test.01h.abc1234",
            project: "demo",
            actor: Some("alice"),
        }
    }

    #[test]
    fn single_source_patch() {
        let app = single();
        let updates = vec![SourceUpdate {
            repo_url: "https://github.com/example/gitops".into(),
            desired_revision: "abc123".into(),
            update_target_revision: true,
            kustomize: Some(KustomizeUpdate {
                images: vec![KustomizeImage {
                    repo_url: "nginx".into(),
                    tag: "1.25.0".into(),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }];
        // desired revisions match exactly, not normalized: the update's URL lacks `.git`.
        let p = build_sync_patch(&app, &updates, &req()).unwrap();
        assert_eq!(p.desired_revisions, vec![String::new()]);
        assert_eq!(p.merge_patch["metadata"]["resourceVersion"], "42");
        assert_eq!(
            p.merge_patch["metadata"]["annotations"],
            json!({ "argocd.argoproj.io/refresh": "hard" })
        );
        assert_eq!(p.merge_patch["status"], json!({ "operationState": null }));
        let src = &p.merge_patch["spec"]["source"];
        assert_eq!(src["targetRevision"], "abc123");
        assert_eq!(
            src["kustomize"],
            json!({ "namePrefix": "t-", "images": ["nginx:1.25.0"] })
        );
        assert_eq!(src["futureArgoField"], json!({ "x": 1 }));
        assert_eq!(
            p.operation,
            json!({
                "initiatedBy": { "username": "alice" },
                "info": [
                    { "name": "Reason", "value": REASON },
                    { "name": "kargo.akuity.io/promotion", "value": "test.01h.abc1234" },
                    { "name": "kargo.akuity.io/project", "value": "demo" }
                ],
                "sync": { "syncOptions": ["CreateNamespace=true"] },
                "retry": { "limit": 2 }
            })
        );
        let mut patched = app.clone();
        apply_merge_patch(&mut patched, &p.merge_patch);
        assert_eq!(patched["metadata"]["annotations"]["team"], "a");
        assert!(patched["status"].get("operationState").is_none());
        assert_eq!(patched["status"]["sync"]["status"], "Synced");
        assert_eq!(patched["spec"]["destination"]["namespace"], "test");
    }

    #[test]
    fn sync_operations_serialize_as_the_api_server_does() {
        let multi = multi();
        let sources: Vec<Value> = sources(&multi).into_iter().cloned().collect();
        let odd = SyncRequest {
            promotion: "p<1>&\u{2028}",
            project: "demo",
            actor: Some("a\u{8}b\u{c}c\"d\\e\n\u{1}"),
        };
        let single = single();
        for (app, desired, req) in [
            (&single, vec!["abc".to_owned()], req()),
            (
                &single,
                vec![String::new()],
                SyncRequest {
                    actor: None,
                    ..req()
                },
            ),
            (&multi, vec!["1.3.0".to_owned(), String::new()], odd.clone()),
        ] {
            let op = sync_operation(OperationBasis::of(app), &sources, &desired, &req);
            let bytes = op.to_api_json();
            let text = String::from_utf8(bytes.clone()).unwrap();
            // Same value as to_value, compact, keys sorted at every level.
            let parsed: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(parsed, op.to_value(), "{text}");
            fn sorted(v: &Value) -> bool {
                match v {
                    Value::Object(m) => {
                        m.keys().zip(m.keys().skip(1)).all(|(a, b)| a < b) && m.values().all(sorted)
                    }
                    Value::Array(a) => a.iter().all(sorted),
                    _ => true,
                }
            }
            assert!(
                sorted(&parsed) && !text.contains(": ") && !text.contains(", "),
                "{text}"
            );
            // The comparison without allocation agrees, and refuses any other text.
            assert!(op.is_api_json(&bytes));
            assert!(!op.is_api_json(&bytes[..bytes.len() - 1]));
            assert!(!op.is_api_json(&[bytes.as_slice(), b" "].concat()));
            assert!(!op.is_api_json(b""));
            let mut changed = bytes.clone();
            changed[bytes.len() / 2] ^= 1;
            assert!(!op.is_api_json(&changed));
        }
        // Go's escaping of the characters it treats specially.
        let op = sync_operation(OperationBasis::default(), &[], &[], &odd);
        let text = String::from_utf8(op.to_api_json()).unwrap();
        assert!(
            text.contains(r#""value":"p\u003c1\u003e\u0026\u2028""#),
            "{text}"
        );
        assert!(
            text.contains(r#""username":"a\bb\fc\"d\\e\n\u0001""#),
            "{text}"
        );
        assert_eq!(
            text,
            r#"{"info":[{"name":"Reason","value":"Promotion triggered a sync of this Application resource."},{"name":"kargo.akuity.io/promotion","value":"p\u003c1\u003e\u0026\u2028"},{"name":"kargo.akuity.io/project","value":"demo"}],"initiatedBy":{"username":"a\bb\fc\"d\\e\n\u0001"},"sync":{}}"#
        );
    }

    #[test]
    fn single_source_revision_when_exact() {
        let app = single();
        let updates = vec![SourceUpdate {
            repo_url: "https://github.com/example/gitops.git".into(),
            desired_revision: "abc123".into(),
            ..Default::default()
        }];
        let p = build_sync_patch(
            &app,
            &updates,
            &SyncRequest {
                actor: None,
                ..req()
            },
        )
        .unwrap();
        assert_eq!(p.operation["sync"]["revision"], "abc123");
        assert_eq!(
            p.operation["initiatedBy"],
            json!({ "username": AUTOMATED_USER, "automated": true })
        );
        assert!(
            p.merge_patch.get("spec").is_none(),
            "nothing to change in the source"
        );
    }

    #[test]
    fn multi_source_revisions_are_index_aligned() {
        let app = multi();
        let updates = vec![
            SourceUpdate {
                repo_url: "git@github.com:example/gitops.git".into(),
                desired_revision: "deadbeef".into(),
                ..Default::default()
            },
            SourceUpdate {
                repo_url: "https://charts.example.com".into(),
                chart: "redis".into(),
                helm: Some(HelmUpdate {
                    images: vec![
                        HelmParameter {
                            key: "image.tag".into(),
                            value: "2".into(),
                        },
                        HelmParameter {
                            key: "new".into(),
                            value: "x".into(),
                        },
                    ],
                }),
                ..Default::default()
            },
        ];
        let p = build_sync_patch(&app, &updates, &req()).unwrap();
        assert_eq!(
            p.desired_revisions,
            vec!["".to_string(), "deadbeef".to_string()]
        );
        assert_eq!(
            p.operation["sync"]["revisions"],
            json!(["18.0.0", "deadbeef"])
        );
        assert!(p.operation["sync"].get("revision").is_none());
        assert_eq!(
            p.merge_patch["spec"]["sources"][0]["helm"]["parameters"],
            json!([{ "name": "image.tag", "value": "2" }, { "name": "keep", "value": "me" }, { "name": "new", "value": "x" }])
        );
        assert_eq!(p.merge_patch["spec"]["sources"][1]["path"], "values");
        assert!(p.merge_patch.get("status").is_none(), "no status to clear");
    }

    #[test]
    fn unmatched_update_is_an_error_naming_the_source() {
        let app = multi();
        let updates = vec![SourceUpdate {
            repo_url: "https://charts.example.com".into(),
            chart: "nginx".into(),
            ..Default::default()
        }];
        let e = build_sync_patch(&app, &updates, &req())
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"m\"") && e.contains("chart \"nginx\""), "{e}");
        assert!(build_sync_patch(&json!({"metadata": {"name": "x"}}), &[], &req()).is_err());
        assert!(build_sync_patch(&json!([]), &[], &req()).is_err());
    }

    #[test]
    fn promotion_write_detection() {
        let mut new = single();
        new["operation"] = build_operation(OperationBasis::of(&new), &[], &[], &req());
        assert!(is_promotion_write(Some(&single()), &new));
        assert!(is_promotion_write(None, &new));
        assert!(
            !is_promotion_write(Some(&new), &new),
            "same promotion already there"
        );
        let mut other = new.clone();
        other["operation"]["info"][1]["value"] = json!("other");
        assert!(is_promotion_write(Some(&other), &new));
        assert!(
            !is_promotion_write(Some(&new), &single()),
            "Argo CD clearing the operation"
        );
        assert_eq!(operation_project(new.get("operation")), Some("demo"));
    }

    #[test]
    fn operation_is_idempotent() {
        let app = single();
        let a = build_sync_patch(&app, &[], &req()).unwrap();
        let mut patched = app.clone();
        apply_merge_patch(&mut patched, &a.merge_patch);
        let mut twice = patched.clone();
        apply_merge_patch(&mut twice, &a.merge_patch);
        assert_eq!(patched, twice);
    }
}
