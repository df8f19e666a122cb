//! `argocd-update`: for each Application the step names (by `name` or label `selector`), check the
//! Stage is authorized by the Application's `kargo.akuity.io/authorized-stage` annotation, and
//! build the one JSON merge patch that updates its sources, asks for a hard refresh, writes the
//! sync `operation` and clears the previous `operationState` (`promote_api::argocd`).
//!
//! Without a cluster (`--local`), Applications come from the manifests in the directory and the
//! step shows the patch it would send. Against a cluster it sends the patch and waits for an
//! honest result (`argocd_sync`); with `--dry-run` it reads the live Applications and shows the
//! patch. Output: `apps` (`[{name, namespace}]`).

use serde::Deserialize;
use serde_json::{Value, json};

use promote_api::argocd::{self, SourceUpdate, SyncRequest};
use promote_api::authorized_stage;
use promote_api::keys::AUTHORIZED_STAGE;

use super::{Runtime, StepError, StepResult, config, fail};

/// Argo CD's namespace when an app does not name one.
pub const DEFAULT_NAMESPACE: &str = "argocd";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Selector {
    #[serde(default)]
    match_labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    match_expressions: Vec<Expression>,
}

#[derive(Deserialize)]
struct Expression {
    key: String,
    operator: String,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Deserialize)]
struct App {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    selector: Option<Selector>,
    #[serde(default)]
    sources: Vec<SourceUpdate>,
}

#[derive(Deserialize)]
struct Config {
    apps: Vec<App>,
}

/// The namespace an app entry names, Argo CD's when it names none.
pub(super) fn app_namespace(ns: &str) -> &str {
    if ns.is_empty() { DEFAULT_NAMESPACE } else { ns }
}

/// The Applications in `ns` named `name` or matching `selector`: from the cluster when there is
/// one, else from the local manifests.
pub(super) fn select_apps(
    rt: &Runtime<'_>,
    ns: &str,
    name: &str,
    selector: Option<&Selector>,
) -> Result<Vec<Value>, StepError> {
    let candidates: Vec<Value> = match &rt.cluster {
        Some(cl) if selector.is_none() => cl
            .kube
            .get(&crate::kube::app_path(ns, name))
            .map_err(|failure| StepError::Kube {
                action: format!("reading Argo CD Application {ns}/{name}"),
                failure,
            })?
            .into_iter()
            .collect(),
        Some(cl) => {
            let labels = selector
                .map(|s| {
                    s.match_labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .filter(|l| !l.is_empty());
            cl.kube
                .list(&crate::kube::app_path(ns, ""), labels.as_deref())
                .map_err(|failure| StepError::Kube {
                    action: format!("listing Argo CD Applications in {ns}"),
                    failure,
                })?
        }
        None => rt
            .applications
            .iter()
            .filter(|a| {
                argocd::app_namespace(a) == ns
                    || argocd::app_namespace(a).is_empty() && ns == DEFAULT_NAMESPACE
            })
            .cloned()
            .collect(),
    };
    let mut out = Vec::new();
    for a in candidates {
        let keep = match selector {
            None => argocd::app_name(&a) == name,
            Some(sel) => selects(sel, &a)?,
        };
        if keep {
            out.push(a);
        }
    }
    Ok(out)
}

fn selects(sel: &Selector, app: &Value) -> Result<bool, StepError> {
    let labels = app.pointer("/metadata/labels").and_then(Value::as_object);
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    for (k, v) in &sel.match_labels {
        if label(k) != Some(v.as_str()) {
            return Ok(false);
        }
    }
    for e in &sel.match_expressions {
        let ok = match e.operator.as_str() {
            "In" => label(&e.key).is_some_and(|v| e.values.iter().any(|x| x == v)),
            "NotIn" => label(&e.key).is_none_or(|v| !e.values.iter().any(|x| x == v)),
            "Exists" => label(&e.key).is_some(),
            "DoesNotExist" => label(&e.key).is_none(),
            other => {
                return Err(fail(format!(
                    "argocd-update: selector operator {other:?} is not one of In, NotIn, Exists, DoesNotExist"
                )));
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Validate an app entry: exactly one of name and selector; updates consistent.
fn check_app(app: &App) -> Result<(), StepError> {
    match (app.name.is_empty(), &app.selector) {
        (true, None) => return Err(fail("argocd-update: each app needs a name or a selector")),
        (false, Some(_)) => {
            return Err(fail(format!(
                "argocd-update: app {:?} sets both name and selector",
                app.name
            )));
        }
        (true, Some(s)) if s.match_labels.is_empty() && s.match_expressions.is_empty() => {
            return Err(fail(
                "argocd-update: an empty selector would select every Application",
            ));
        }
        _ => {}
    }
    for s in &app.sources {
        if s.update_target_revision && s.desired_revision.is_empty() {
            return Err(fail(format!(
                "argocd-update: source {:?} sets updateTargetRevision without a desiredRevision",
                s.repo_url
            )));
        }
        if let Some(k) = &s.kustomize
            && let Some(i) = k
                .images
                .iter()
                .find(|i| !i.tag.is_empty() && !i.digest.is_empty())
        {
            return Err(fail(format!(
                "argocd-update: kustomize image {:?} sets both tag and digest",
                i.repo_url
            )));
        }
    }
    Ok(())
}

pub(super) fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("argocd-update", cfg)?;
    if cfg.apps.is_empty() {
        return Err(fail(
            "argocd-update: apps must list at least one Application",
        ));
    }
    let req = SyncRequest {
        promotion: &rt.ctx.promotion,
        project: &rt.ctx.project,
        actor: rt.ctx.actor.as_deref(),
    };
    let mut patches = Vec::new();
    let mut synced = Vec::new();
    let mut done = Vec::new();
    let mut missing = Vec::new();
    for app_cfg in &cfg.apps {
        check_app(app_cfg)?;
        let ns = app_namespace(&app_cfg.namespace);
        let selected = select_apps(rt, ns, &app_cfg.name, app_cfg.selector.as_ref())?;
        if selected.is_empty() {
            missing.push(if app_cfg.name.is_empty() {
                format!("selector in {ns}")
            } else {
                format!("{ns}/{}", app_cfg.name)
            });
            continue;
        }
        let mut authorized = 0;
        for app in &selected {
            let name = argocd::app_name(app).to_owned();
            if let Err(e) = authorized_stage::authorize(
                argocd::annotation(app, AUTHORIZED_STAGE),
                &name,
                ns,
                &rt.ctx.project,
                &rt.ctx.stage,
            ) {
                if app_cfg.selector.is_some() {
                    continue; // Kargo skips unauthorized apps a selector matched
                }
                return Err(fail(e.to_string()));
            }
            authorized += 1;
            if let (Some(cl), false) = (&rt.cluster, rt.dry_run) {
                let (project, stage) = (rt.ctx.project.clone(), rt.ctx.stage.clone());
                let authorize = |live: &Value| -> Result<(), StepError> {
                    authorized_stage::authorize(
                        argocd::annotation(live, AUTHORIZED_STAGE),
                        argocd::app_name(live),
                        ns,
                        &project,
                        &stage,
                    )
                    .map_err(|e| fail(e.to_string()))
                };
                let mut note = |m: String| rt.note(&m);
                let status = super::argocd_sync::sync_and_wait(
                    cl,
                    app.clone(),
                    &app_cfg.sources,
                    &req,
                    &authorize,
                    &mut note,
                )?;
                synced.push(status);
            } else {
                let patch = argocd::build_sync_patch(app, &app_cfg.sources, &req)
                    .map_err(|e| fail(e.to_string()))?;
                patches.push((format!("{ns}/{name}"), patch.merge_patch));
            }
            done.push(json!({ "name": name, "namespace": ns }));
        }
        if authorized == 0 {
            return Err(fail(format!(
                "argocd-update: Applications matching the selector in namespace {ns:?} exist, but none is authorized for Stage {}:{}; hint: annotate them with {AUTHORIZED_STAGE}: \"{}:{}\"",
                rt.ctx.project, rt.ctx.stage, rt.ctx.project, rt.ctx.stage
            )));
        }
    }
    if rt.cluster.is_some() && !rt.dry_run {
        if !missing.is_empty() {
            return Err(fail(format!(
                "argocd-update: unable to find Argo CD Application(s) {}",
                missing.join(", ")
            )));
        }
        let n = synced.len();
        rt.app_health.extend(synced);
        return Ok(StepResult::ok(
            json!({ "apps": done }),
            format!("{n} Application(s) synced and Healthy"),
        ));
    }
    let n = patches.len();
    let local = rt.cluster.is_none();
    rt.argocd_patches.extend(patches);
    if n == 0 {
        return Ok(StepResult::skipped(format!(
            "no cluster: Application(s) {} are not among the local manifests, so no patch can be shown; add their manifests to the directory",
            missing.join(", ")
        )));
    }
    let mut msg = if local {
        format!("would patch {n} Application(s) (no cluster)")
    } else {
        format!("dry run: would patch {n} Application(s)")
    };
    if !missing.is_empty() {
        msg.push_str(&format!("; not found: {}", missing.join(", ")));
    }
    Ok(StepResult::ok(json!({ "apps": done }), msg))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "argocd-update",
    summary: "update Argo CD Applications' sources, sync them and wait for an honest result",
    shape: &promote_api::step_config::ARGOCD_UPDATE,
    run: |cfg, rt, _| run(cfg, rt),
    remote: true,
    outputs: &["apps"],
    verify_recorded: None,
};
