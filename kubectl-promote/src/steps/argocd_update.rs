//! `argocd-update`: for each Application the step names (by `name` or label `selector`), check the
//! Stage is authorized by the Application's `kargo.akuity.io/authorized-stage` annotation, and
//! build the one JSON merge patch that updates its sources, asks for a hard refresh, writes the
//! sync `operation` and clears the previous `operationState` (`promote_api::argocd`).
//!
//! Without a cluster (`--local`), Applications come from the manifests in the directory and the
//! step shows the patch it would send; sending it and waiting belong to cluster mode. Output:
//! `apps` (`[{name, namespace}]`).

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
struct Selector {
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
    let mut done = Vec::new();
    let mut missing = Vec::new();
    for app_cfg in &cfg.apps {
        check_app(app_cfg)?;
        let ns = if app_cfg.namespace.is_empty() {
            DEFAULT_NAMESPACE
        } else {
            &app_cfg.namespace
        };
        let in_ns = rt.applications.iter().filter(|a| {
            argocd::app_namespace(a) == ns
                || argocd::app_namespace(a).is_empty() && ns == DEFAULT_NAMESPACE
        });
        let selected: Vec<&Value> = match &app_cfg.selector {
            None => in_ns
                .filter(|a| argocd::app_name(a) == app_cfg.name)
                .collect(),
            Some(sel) => {
                let mut v = Vec::new();
                for a in in_ns {
                    if selects(sel, a)? {
                        v.push(a);
                    }
                }
                v
            }
        };
        if selected.is_empty() {
            missing.push(if app_cfg.name.is_empty() {
                format!("selector in {ns}")
            } else {
                format!("{ns}/{}", app_cfg.name)
            });
            continue;
        }
        let mut authorized = 0;
        for app in selected {
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
            let patch = argocd::build_sync_patch(app, &app_cfg.sources, &req)
                .map_err(|e| fail(e.to_string()))?;
            patches.push((format!("{ns}/{name}"), patch.merge_patch));
            done.push(json!({ "name": name, "namespace": ns }));
        }
        if authorized == 0 {
            return Err(fail(format!(
                "argocd-update: Applications matching the selector in namespace {ns:?} exist, but none is authorized for Stage {}:{}; hint: annotate them with {AUTHORIZED_STAGE}: \"{}:{}\"",
                rt.ctx.project, rt.ctx.stage, rt.ctx.project, rt.ctx.stage
            )));
        }
    }
    let n = patches.len();
    rt.argocd_patches.extend(patches);
    if n == 0 {
        return Ok(StepResult::skipped(format!(
            "no cluster: Application(s) {} are not among the local manifests, so no patch can be shown; add their manifests to the directory",
            missing.join(", ")
        )));
    }
    let mut msg = format!("would patch {n} Application(s) (no cluster)");
    if !missing.is_empty() {
        msg.push_str(&format!(
            "; not in the local manifests: {}",
            missing.join(", ")
        ));
    }
    Ok(StepResult::ok(json!({ "apps": done }), msg))
}
