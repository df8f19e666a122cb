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
    let Some(h) = holder else {
        return Vec::new();
    };
    if is_multi_source(app) {
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
    operation?
        .get("info")?
        .as_array()?
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

/// Build the authoritative `operation` for a promotion sync.
///
/// `sources` are the sources the Application will have after the update and `desired` the desired
/// revisions index-aligned with them. Single-source Applications get `sync.revision` (when a
/// revision is desired); multi-source ones get `sync.revisions` with one entry per source, empty
/// slots filled from that source's `targetRevision` (Argo CD needs every position).
pub fn build_operation(
    app: &Value,
    sources: &[Value],
    desired: &[String],
    req: &SyncRequest<'_>,
) -> Value {
    let initiated_by = match req.actor {
        Some(user) => json!({ "username": user }),
        None => json!({ "username": AUTOMATED_USER, "automated": true }),
    };
    let mut sync = Map::new();
    if is_multi_source(app) {
        let revisions: Vec<Value> = sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let d = desired.get(i).map(String::as_str).unwrap_or_default();
                if d.is_empty() {
                    json!(
                        s.get("targetRevision")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                    )
                } else {
                    json!(d)
                }
            })
            .collect();
        if desired.iter().any(|d| !d.is_empty()) {
            sync.insert("revisions".into(), Value::Array(revisions));
        }
    } else if let Some(d) = desired.first().filter(|d| !d.is_empty()) {
        sync.insert("revision".into(), json!(d));
    }
    if let Some(opts) = app
        .pointer("/spec/syncPolicy/syncOptions")
        .filter(|o| o.as_array().is_some_and(|a| !a.is_empty()))
    {
        sync.insert("syncOptions".into(), opts.clone());
    }
    let mut op = json!({
        "initiatedBy": initiated_by,
        "info": [
            { "name": "Reason", "value": REASON },
            { "name": PROMOTION_INFO, "value": req.promotion },
            { "name": PROJECT_INFO, "value": req.project },
        ],
        "sync": Value::Object(sync),
    });
    if let Some(retry) = app.pointer("/spec/syncPolicy/retry") {
        op["retry"] = retry.clone();
    }
    op
}

/// What an `argocd-update` sends for one Application.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncPatch {
    /// The operation written.
    pub operation: Value,
    /// The desired revisions, index-aligned with the sources.
    pub desired_revisions: Vec<String>,
    /// The JSON merge patch to send (`application/merge-patch+json`).
    pub merge_patch: Value,
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
    let operation = build_operation(app, &new_sources, &desired, req);
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
        } else if let Some(s) = new_sources.into_iter().next() {
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
        new["operation"] = build_operation(&new, &[], &[], &req());
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
