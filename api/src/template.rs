//! What a Promotion of a Stage runs: the Stage's template steps and vars (Kargo's legacy
//! `promotionMechanisms` translated, PromotionTask references inflated), and the Stage as
//! availability sees it (legacy `subscriptions` translated into `requestedFreight`).
//!
//! The plugin and the webhook's Promotion mutation both derive steps here, so a Promotion's
//! `spec.steps` are the same whoever writes them.

use crate::Error;
use crate::legacy;
use crate::types::{ExpressionVariable, FreightOrigin, PromotionStep, PromotionTask, Stage};

fn upstream_origin(stage: &Stage, stages: &[Stage], up: &str) -> Option<FreightOrigin> {
    stages
        .iter()
        .find(|s| s.name() == up && s.project() == stage.project())
        .and_then(|s| s.spec.requested_freight.first())
        .map(|r| r.origin.clone())
}

/// The Stage with legacy `subscriptions` translated into `requestedFreight` (unchanged for
/// modern Stages). `stages` are the project's Stages, used to find upstream origins.
pub fn effective_stage(stage: &Stage, stages: &[Stage]) -> Result<Stage, Error> {
    let mut effective = stage.clone();
    if legacy::is_legacy(stage) {
        let (requested, _) = legacy::translate(stage, |up| upstream_origin(stage, stages, up))?;
        effective.spec.requested_freight = requested;
    }
    Ok(effective)
}

/// The steps and vars a Promotion of `stage` runs: Stage vars then template vars, template steps
/// (or the translation of legacy mechanisms), each task step replaced by the task's steps with
/// alias `<step alias>::<task step alias>` and the task's vars resolved.
pub fn promotion_steps(
    stage: &Stage,
    stages: &[Stage],
    tasks: &[PromotionTask],
) -> Result<(Vec<PromotionStep>, Vec<ExpressionVariable>), Error> {
    let (steps, mut vars) = if legacy::is_legacy(stage) {
        let (_, steps) = legacy::translate(stage, |up| upstream_origin(stage, stages, up))?;
        (steps, Vec::new())
    } else {
        let t = stage.spec.promotion_template.as_ref();
        (
            t.map(|t| t.spec.steps.clone()).unwrap_or_default(),
            t.map(|t| t.spec.vars.clone()).unwrap_or_default(),
        )
    };
    let mut all_vars = stage.spec.vars.clone();
    all_vars.append(&mut vars);
    let fail = |problem: String| Error::Template {
        stage: stage.name().to_owned(),
        project: stage.project().to_owned(),
        problem,
    };
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let Some(task_ref) = &step.task else {
            out.push(step.clone());
            continue;
        };
        // A ClusterPromotionTask is among `tasks` without a namespace.
        let cluster_task = task_ref.kind == "ClusterPromotionTask";
        let task = tasks
            .iter()
            .find(|t| {
                let ns = t.metadata.namespace.as_deref().filter(|n| !n.is_empty());
                t.metadata.name.as_deref() == Some(task_ref.name.as_str())
                    && if cluster_task {
                        ns.is_none()
                    } else {
                        ns == Some(stage.project())
                    }
            })
            .ok_or_else(|| {
                fail(if cluster_task {
                    format!(
                        "steps[{i}]: ClusterPromotionTask \"{}\" not found",
                        task_ref.name
                    )
                } else {
                    format!(
                        "steps[{i}]: PromotionTask \"{}\" not found in project \"{}\"",
                        task_ref.name,
                        stage.project()
                    )
                })
            })?;
        let task_alias = step.effective_alias(i);
        let mut task_vars = Vec::new();
        for v in &task.spec.vars {
            match step.vars.iter().find(|sv| sv.name == v.name) {
                Some(g) => task_vars.push(g.clone()),
                None if v.value.is_empty() => {
                    return Err(fail(format!(
                        "steps[{i}] (task {}): missing value for variable \"{}\"",
                        task_ref.name, v.name
                    )));
                }
                None => task_vars.push(v.clone()),
            }
        }
        for sv in &step.vars {
            if !task_vars.iter().any(|v| v.name == sv.name) {
                task_vars.push(sv.clone());
            }
        }
        for (j, ts) in task.spec.steps.iter().enumerate() {
            let mut s = ts.clone();
            s.alias = format!("{task_alias}::{}", ts.effective_alias(j));
            let mut v = task_vars.clone();
            v.extend(ts.vars.iter().cloned());
            s.vars = v;
            out.push(s);
        }
    }
    if out.is_empty() {
        return Err(fail(format!(
            "Stage \"{}\" in project \"{}\" defines no promotion steps",
            stage.name(),
            stage.project()
        )));
    }
    Ok((out, all_vars))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_task_reference_finds_a_project_task_or_a_cluster_task_by_kind() {
        let stage: Stage = serde_json::from_value(json!({
            "metadata": {"name": "dev", "namespace": "p"},
            "spec": {"promotionTemplate": {"spec": {"steps": [
                {"task": {"name": "shared", "kind": "ClusterPromotionTask"}, "as": "c"},
                {"task": {"name": "shared"}, "as": "l"},
            ]}}},
        }))
        .unwrap();
        let task = |ns: Option<&str>, uses: &str| -> PromotionTask {
            serde_json::from_value(json!({
                "metadata": {"name": "shared", "namespace": ns},
                "spec": {"steps": [{"uses": uses, "config": {}}]},
            }))
            .unwrap()
        };
        let cluster: crate::types::ClusterPromotionTask = serde_json::from_value(json!({
            "metadata": {"name": "shared"},
            "spec": {"steps": [{"uses": "fail", "config": {}}]},
        }))
        .unwrap();
        let tasks = vec![task(Some("p"), "git-clear"), cluster.into()];
        let (steps, _) = promotion_steps(&stage, std::slice::from_ref(&stage), &tasks).unwrap();
        let uses: Vec<(&str, &str)> = steps
            .iter()
            .map(|s| (s.alias.as_str(), s.uses.as_str()))
            .collect();
        assert_eq!(uses, [("c::step-1", "fail"), ("l::step-1", "git-clear")]);
        let e = promotion_steps(
            &stage,
            std::slice::from_ref(&stage),
            &[task(Some("p"), "x")],
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("ClusterPromotionTask \"shared\" not found"),
            "{e}"
        );
    }
}
