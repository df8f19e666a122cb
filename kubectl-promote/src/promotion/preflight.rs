//! What a promotion can know before its first write: every Argo CD Application an
//! `argocd-update` step names (by a name its expressions give from `ctx` and `vars` alone) exists
//! and authorizes the Stage. Otherwise the promotion would push a commit and then fail to deliver
//! it; this way it fails with nothing written. Apps chosen by selector, or named from step
//! outputs, are checked by the step itself when it runs.

use promote_api::authorized_stage;
use promote_api::keys::AUTHORIZED_STAGE;
use serde_json::{Map, Value};

use super::plan::Plan;
use super::source::Source;
use crate::error::Error;
use crate::steps::PromotionContext;

/// Evaluate `template` with `env`; `None` when it needs more than `ctx` and `vars` (outputs).
fn eval(template: &Value, env: &Map<String, Value>, ctx: &PromotionContext) -> Option<String> {
    match template {
        Value::String(s) => match crate::expr::eval_template(s, env, ctx).ok()? {
            Value::String(v) => Some(v),
            other => Some(other.to_string()),
        },
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// Check the plan's `argocd-update` targets (see the module documentation).
pub fn check(source: &dyn Source, plan: &Plan, ctx: &PromotionContext) -> Result<(), Error> {
    let mut vars = Map::new();
    for v in &plan.vars {
        let mut env = Map::new();
        env.insert("ctx".into(), ctx.ctx_value());
        env.insert("vars".into(), Value::Object(vars.clone()));
        if let Ok(value) = crate::expr::eval_template(&v.value, &env, ctx) {
            vars.insert(v.name.clone(), value);
        }
    }
    // On a resume, what the interrupted run delivered is not checked again.
    let done: Vec<String> = plan
        .resumed
        .as_ref()
        .and_then(|p| p.status.as_ref())
        .map(|s| {
            s.step_execution_metadata
                .iter()
                .filter(|m| m.status == Some(promote_api::types::PromotionStepStatus::Succeeded))
                .map(|m| m.alias.clone())
                .collect()
        })
        .unwrap_or_default();
    for (i, step) in plan.steps.iter().enumerate() {
        if step.uses != "argocd-update" || done.contains(&step.effective_alias(i)) {
            continue;
        }
        let mut step_vars = vars.clone();
        for v in &step.vars {
            let mut env = Map::new();
            env.insert("ctx".into(), ctx.ctx_value());
            env.insert("vars".into(), Value::Object(step_vars.clone()));
            if let Ok(value) = crate::expr::eval_template(&v.value, &env, ctx) {
                step_vars.insert(v.name.clone(), value);
            }
        }
        let mut env = Map::new();
        env.insert("ctx".into(), ctx.ctx_value());
        env.insert("vars".into(), Value::Object(step_vars));
        let apps = step
            .config
            .as_ref()
            .and_then(|c| c.get("apps"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let alias = step.effective_alias(i);
        for app in apps {
            if app.get("selector").is_some() {
                continue;
            }
            let (Some(name), Some(ns)) = (
                eval(app.get("name").unwrap_or(&Value::Null), &env, ctx),
                eval(app.get("namespace").unwrap_or(&Value::Null), &env, ctx),
            ) else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            let ns = if ns.is_empty() {
                "argocd".to_owned()
            } else {
                ns
            };
            let undeliverable = |reason: String| Error::Undeliverable {
                step: format!("{alias} (argocd-update)"),
                reason,
            };
            match source.application(&ns, &name)? {
                Some(live) => {
                    let annotation = live
                        .pointer("/metadata/annotations")
                        .and_then(|a| a.get(AUTHORIZED_STAGE))
                        .and_then(Value::as_str);
                    authorized_stage::authorize(
                        annotation,
                        &name,
                        &ns,
                        &plan.project,
                        plan.stage.name(),
                    )
                    .map_err(|e| undeliverable(e.to_string()))?;
                }
                None if source.has_cluster() => {
                    return Err(undeliverable(format!(
                        "Argo CD Application {ns}/{name} does not exist"
                    )));
                }
                None => {}
            }
        }
    }
    Ok(())
}
