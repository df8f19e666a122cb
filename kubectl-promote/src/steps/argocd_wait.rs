//! `argocd-wait`: wait for Argo CD Applications (by `name` or label `selector`, as
//! `argocd-update` selects them) to reach what `waitFor` names (health, sync, operation,
//! suspended, degraded; default health, sync, operation), writing nothing and checking no
//! authorization, as Kargo's.

use serde::Deserialize;
use serde_json::{Value, json};

use promote_api::argocd;

use super::argocd_update::{Selector, app_namespace, select_apps};
use super::{Runtime, StepError, StepResult, config, fail};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WaitApp {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    selector: Option<Selector>,
    #[serde(default)]
    wait_for: Vec<String>,
}

#[derive(Deserialize)]
struct WaitConfig {
    apps: Vec<WaitApp>,
}

const WAIT_FOR: &[&str] = &["health", "sync", "operation", "suspended", "degraded"];

fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: WaitConfig = config("argocd-wait", cfg)?;
    if cfg.apps.is_empty() {
        return Err(fail("argocd-wait: apps must list at least one Application"));
    }
    for a in &cfg.apps {
        if a.name.is_empty() == a.selector.is_none() {
            return Err(fail(
                "argocd-wait: each app needs exactly one of name and selector",
            ));
        }
        if let Some(w) = a.wait_for.iter().find(|w| !WAIT_FOR.contains(&w.as_str())) {
            return Err(fail(format!(
                "argocd-wait: waitFor {w:?} is not one of {}",
                WAIT_FOR.join(", ")
            )));
        }
    }
    if rt.cluster.is_none() {
        return Ok(StepResult::skipped("no cluster: nothing to wait for"));
    }
    if rt.dry_run {
        return Ok(StepResult::skipped("dry run: nothing to wait for"));
    }
    let mut done = Vec::new();
    let mut statuses = Vec::new();
    for a in &cfg.apps {
        let ns = app_namespace(&a.namespace);
        let apps = select_apps(rt, ns, &a.name, a.selector.as_ref())?;
        if apps.is_empty() {
            return Err(fail(if a.name.is_empty() {
                format!(
                    "argocd-wait: no Argo CD Applications found matching selector in namespace {ns:?}"
                )
            } else {
                format!(
                    "argocd-wait: unable to find Argo CD Application {:?} in namespace {ns:?}",
                    a.name
                )
            }));
        }
        let wait_for: Vec<String> = if a.wait_for.is_empty() {
            vec!["health".into(), "sync".into(), "operation".into()]
        } else {
            a.wait_for.clone()
        };
        let mut note = |m: String| rt.note(&m);
        if let Some(cl) = &rt.cluster {
            for app in apps {
                done.push(json!({"name": argocd::app_name(&app), "namespace": ns}));
                statuses.push(super::argocd_sync::wait_for(cl, app, &wait_for, &mut note)?);
            }
        }
    }
    let n = statuses.len();
    rt.app_health.extend(statuses);
    Ok(StepResult::ok(
        json!({ "apps": done }),
        format!("{n} Application(s) ready"),
    ))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "argocd-wait",
    summary: "wait for Argo CD Applications to be healthy, synced or done, writing nothing",
    shape: &promote_api::step_config::ARGOCD_WAIT,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &["apps"],
    verify_recorded: None,
};
