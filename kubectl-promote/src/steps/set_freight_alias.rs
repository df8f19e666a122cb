//! `set-freight-alias`: give a Freight of the project a new alias (`name`, `alias`), as Kargo's
//! step does: the `alias` field and its `kargo.akuity.io/alias` label, refused when another
//! Freight has the alias (promote's webhook checks it too). Kargo's controller makes this write;
//! here the promoter does, so it needs `patch` on freights in the project (no promote role grants
//! it; a refusal says so). With `--local` there is no Freight object to change: the step is
//! skipped and says why. Run again on a resume (it is idempotent).

use promote_api::keys::ALIAS;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Runtime, StepError, StepResult, config, fail};
use crate::kube::kargo_path;

#[derive(Deserialize)]
struct Config {
    name: String,
    alias: String,
}

fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("set-freight-alias", cfg)?;
    if cfg.name.is_empty() || cfg.alias.is_empty() {
        return Err(fail("set-freight-alias: name and alias must not be empty"));
    }
    let Some(cl) = &rt.cluster else {
        return Ok(StepResult::skipped(format!(
            "no cluster (--local): Freight {} keeps its alias; {} is not recorded",
            promote_api::naming::short_name(&cfg.name),
            cfg.alias
        )));
    };
    let project = rt.ctx.project.clone();
    let kube_err = |action: String| {
        let project = project.clone();
        move |failure: crate::kube::ApiFailure| {
            if failure.code == 403 {
                fail(format!(
                    "set-freight-alias: {action}: {failure}; hint: the step patches the Freight, which needs verb \"patch\" on resource \"freights\" (apiGroup kargo.akuity.io) in namespace {project:?}"
                ))
            } else {
                StepError::Kube { action, failure }
            }
        }
    };
    let all = cl
        .kube
        .list(&kargo_path("freights", &rt.ctx.project, ""), None)
        .map_err(kube_err("listing Freight".into()))?;
    if let Some(other) = all.iter().find(|f| {
        f.get("alias").and_then(Value::as_str) == Some(cfg.alias.as_str())
            && f.pointer("/metadata/name").and_then(Value::as_str) != Some(cfg.name.as_str())
    }) {
        return Err(fail(format!(
            "set-freight-alias: alias {:?} is already used by Freight {}; aliases are unique in the project",
            cfg.alias,
            other
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
        )));
    }
    let Some(current) = all
        .iter()
        .find(|f| f.pointer("/metadata/name").and_then(Value::as_str) == Some(cfg.name.as_str()))
    else {
        return Err(fail(format!(
            "set-freight-alias: Freight {:?} not found in project {:?}",
            cfg.name, rt.ctx.project
        )));
    };
    if current.get("alias").and_then(Value::as_str) == Some(cfg.alias.as_str()) {
        return Ok(StepResult::ok(
            json!({}),
            format!(
                "Freight {} is already {}",
                promote_api::naming::short_name(&cfg.name),
                cfg.alias
            ),
        ));
    }
    if rt.dry_run {
        return Ok(StepResult::ok(
            json!({}),
            format!(
                "would set Freight {}'s alias to {} (dry run)",
                promote_api::naming::short_name(&cfg.name),
                cfg.alias
            ),
        ));
    }
    cl.kube
        .merge_patch(
            &kargo_path("freights", &rt.ctx.project, &cfg.name),
            &json!({"alias": cfg.alias, "metadata": {"labels": {ALIAS: cfg.alias}}}),
        )
        .map_err(kube_err(format!("setting Freight {}'s alias", cfg.name)))?;
    Ok(StepResult::ok(
        json!({}),
        format!(
            "Freight {} is now {}",
            promote_api::naming::short_name(&cfg.name),
            cfg.alias
        ),
    ))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "set-freight-alias",
    summary: "give a Freight of the project a new alias (needs patch on freights)",
    shape: &promote_api::step_config::SET_FREIGHT_ALIAS,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &[],
    verify_recorded: None,
};
