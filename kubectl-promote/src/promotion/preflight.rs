//! What a promotion can know before its first write: every Argo CD Application an
//! `argocd-update` step names (by a name its expressions give from `ctx` and `vars` alone) exists
//! and authorizes the Stage. Otherwise the promotion would push a commit and then fail to deliver
//! it; this way it fails with nothing written. Apps chosen by selector, or named from step
//! outputs, are checked by the step itself when it runs. Likewise a pull-request step
//! (`git-open-pr`, `git-wait-for-pr`, `git-merge-pr`) whose repoURL is known up front must name a
//! provider promote speaks (and, for `git-merge-pr`, a merge method it accepts), so no commit is
//! pushed for a pull request that cannot be opened or merged.

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
        let pr_step = matches!(
            step.uses.as_str(),
            "git-open-pr" | "git-wait-for-pr" | "git-merge-pr"
        );
        if !(step.uses == "argocd-update" || pr_step) || done.contains(&step.effective_alias(i)) {
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
        if pr_step {
            // The provider must be known before anything is pushed for it to review.
            let field = |k: &str| {
                step.config
                    .as_ref()
                    .and_then(|c| c.get(k))
                    .map(|v| eval(v, &env, ctx))
            };
            if let Some(Some(repo)) = field("repoURL") {
                let provider = field("provider").flatten().filter(|p| !p.is_empty());
                let method = field("mergeMethod").flatten();
                let unknown = field("provider").is_some_and(|p| p.is_none())
                    || field("mergeMethod").is_some_and(|m| m.is_none());
                if !unknown
                    && let Err(reason) = crate::steps::preflight_pr(
                        &step.uses,
                        &repo,
                        provider.as_deref(),
                        method.as_deref(),
                    )
                {
                    return Err(Error::Undeliverable {
                        step: format!("{} ({})", step.effective_alias(i), step.uses),
                        reason,
                    });
                }
            }
            continue;
        }
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
