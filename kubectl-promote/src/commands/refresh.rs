//! `kubectl promote refresh stage/<name>`: a Stage's health as its Argo CD Applications show it
//! now, written to `status.health` and the `Healthy` and `Ready` conditions. Kargo's controller
//! re-assesses health continuously; without a controller a Stage's health is what the last
//! promotion observed, so this command (and `get stages`, which reads the same live health
//! without writing it) is how it stays honest after a sync that degraded later, an abort, or an
//! interrupted promotion whose push already landed.

use serde_json::{Value, json};

use super::{Ctx, print_done, print_patch};
use crate::cli::{RefreshArgs, stage_name};
use crate::error::{Error, context};
use crate::kube::{Api, app_path, kargo_path, now};
use promote_api::types::Stage;

/// The Applications whose health is the Stage's: those its last promotion checked
/// (`status.lastPromotion.status.healthChecks`), else those of its recorded health, else those
/// its promotion template's `argocd-update` and `argocd-wait` steps name literally (a promotion
/// that failed before it reached them checked none).
pub(crate) fn stage_apps(stage: &Value) -> Vec<(String, String)> {
    let pair = |a: &Value| {
        let name = a.get("name").and_then(Value::as_str)?;
        let ns = a
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or("argocd");
        Some((ns.to_owned(), name.to_owned()))
    };
    let from_checks: Vec<(String, String)> = stage
        .pointer("/status/lastPromotion/status/healthChecks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.pointer("/config/apps").and_then(Value::as_array))
        .flatten()
        .filter_map(pair)
        .collect();
    if !from_checks.is_empty() {
        return from_checks;
    }
    let recorded: Vec<(String, String)> = stage
        .pointer("/status/health/output/applicationStatuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(pair)
        .collect();
    if !recorded.is_empty() {
        return recorded;
    }
    let mut named: Vec<(String, String)> = stage
        .pointer("/spec/promotionTemplate/spec/steps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|s| matches!(s["uses"].as_str(), Some("argocd-update" | "argocd-wait")))
        .filter_map(|s| s.pointer("/config/apps").and_then(Value::as_array))
        .flatten()
        .filter(|a| {
            !["name", "namespace"]
                .iter()
                .any(|k| a[*k].as_str().is_some_and(|v| v.contains("${{")))
        })
        .filter_map(pair)
        .collect();
    named.dedup();
    named
}

/// Live health of `stage` (Kargo's `Health`: `status` Healthy, Unhealthy, Progressing or
/// Unknown, `issues`, `output.applicationStatuses`), with `output.checkedAt`. `None` when the
/// Stage has no Application to check.
pub(crate) fn live_health(api: &dyn Api, stage: &Value) -> Result<Option<Value>, Error> {
    let apps = stage_apps(stage);
    if apps.is_empty() {
        return Ok(None);
    }
    let mut statuses = Vec::new();
    let mut issues = Vec::new();
    let (mut unhealthy, mut progressing, mut unknown) = (false, false, false);
    for (ns, name) in &apps {
        let app = api
            .get(&app_path(ns, name))
            .map_err(context(format!("reading Argo CD Application {ns}/{name}")))?;
        let Some(app) = app else {
            unhealthy = true;
            issues.push(format!("Argo CD Application {ns}/{name} not found"));
            continue;
        };
        let (health, sync) = promote_api::argocd::health_and_sync(&app);
        let operating = app
            .pointer("/status/operationState/phase")
            .and_then(Value::as_str)
            .is_some_and(|p| p == "Running" || p == "Terminating")
            || app.get("operation").is_some_and(|o| !o.is_null());
        match health {
            "Healthy" if sync == "Synced" && !operating => {}
            "Healthy" | "Progressing" | "Suspended" => {
                progressing = true;
                issues.push(format!(
                    "Argo CD Application {ns}/{name} is {health} and {sync}{}",
                    if operating {
                        ", with an operation in progress"
                    } else {
                        ""
                    }
                ));
            }
            "Degraded" | "Missing" => {
                unhealthy = true;
                let why = app
                    .pointer("/status/health/message")
                    .and_then(Value::as_str)
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                issues.push(format!("Argo CD Application {ns}/{name} is {health}{why}"));
            }
            other => {
                unknown = true;
                issues.push(format!(
                    "Argo CD Application {ns}/{name} has health {other:?}"
                ));
            }
        }
        statuses.push(json!({
            "name": name,
            "namespace": ns,
            "health": app.pointer("/status/health").cloned().unwrap_or(Value::Null),
            "sync": app.pointer("/status/sync").cloned().unwrap_or(Value::Null),
        }));
    }
    let status = if unhealthy {
        "Unhealthy"
    } else if progressing {
        "Progressing"
    } else if unknown {
        "Unknown"
    } else {
        "Healthy"
    };
    let mut health = json!({
        "status": status,
        "output": {"applicationStatuses": statuses, "checkedAt": now()},
    });
    if !issues.is_empty() {
        health["issues"] = json!(issues);
    }
    Ok(Some(health))
}

/// The status patch for `stage` with live `health`: `health` and the `Healthy` condition, and
/// `Ready` false while it is not healthy (a Ready that came from verification stays when it is).
pub(crate) fn refresh_patch(stage: &Value, health: &Value) -> Result<Value, Error> {
    let typed: Stage = serde_json::from_value(stage.clone())
        .map_err(|e| Error::Output(format!("the Stage does not read as a Stage: {e}")))?;
    let now = now();
    let status = health["status"].as_str().unwrap_or("Unknown");
    let n = health
        .pointer("/output/applicationStatuses")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let issues = health
        .get("issues")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let prev = promote_api::stage_status::as_values(
        &typed
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default(),
    );
    let g = typed.metadata.generation.unwrap_or_default();
    let (cond, reason, message) = match status {
        "Healthy" => (
            "True",
            "Healthy",
            format!("Stage is healthy (performed {n} health checks)"),
        ),
        "Unhealthy" => (
            "False",
            "Unhealthy",
            format!("Stage is unhealthy ({issues} issues in {n} health checks)"),
        ),
        other => (
            "Unknown",
            other,
            format!("Stage health is {other} ({issues} issues in {n} health checks)"),
        ),
    };
    let mut new = vec![promote_api::stage_status::condition(
        &prev, "Healthy", cond, reason, &message, g, &now,
    )];
    if status != "Healthy" {
        new.push(promote_api::stage_status::condition(
            &prev, "Ready", "False", reason, &message, g, &now,
        ));
    }
    Ok(json!({"status": {
        "health": health,
        "conditions": promote_api::stage_status::merged(&typed, new, &[]),
    }}))
}

/// Run `refresh`.
pub fn run(c: &Ctx<'_>, args: &RefreshArgs) -> Result<(), Error> {
    let (kube, ns) = (&c.kube, c.ns.as_str());
    let name = stage_name(&args.stage).map_err(Error::Usage)?;
    let Some(stage) = kube
        .get(&kargo_path("stages", ns, name))
        .map_err(context(format!("reading Stage {name}")))?
    else {
        return Err(Error::StageNotFound {
            stage: name.to_owned(),
            project: ns.to_owned(),
            available: vec![],
        });
    };
    if stage
        .pointer("/status/currentPromotion/name")
        .and_then(Value::as_str)
        .is_some_and(|p| !p.is_empty())
    {
        return Err(Error::Usage(format!(
            "Stage {name} has a Promotion in progress ({}); its result will be recorded when it ends. hint: kubectl promote get promotions",
            stage["status"]["currentPromotion"]["name"]
                .as_str()
                .unwrap_or_default()
        )));
    }
    let Some(health) = live_health(kube, &stage)? else {
        return Err(Error::Usage(format!(
            "Stage {name} has no Argo CD Application to check: its last promotion ran no argocd-update step (health stays {:?})",
            stage
                .pointer("/status/health/status")
                .and_then(Value::as_str)
                .unwrap_or("unrecorded")
        )));
    };
    let patch = refresh_patch(&stage, &health)?;
    let line = format!(
        "{} ({} Application(s) checked)",
        health["status"].as_str().unwrap_or("Unknown"),
        health["output"]["applicationStatuses"]
            .as_array()
            .map_or(0, Vec::len)
    );
    if args.dry_run {
        return print_patch(
            c.global,
            &patch,
            &format!("stage.kargo.akuity.io/{name} {line} (dry run)"),
        );
    }
    kube.merge_patch(
        &format!("{}/status", kargo_path("stages", ns, name)),
        &patch,
    )
    .map_err(context(format!("recording the health of Stage {name}")))?;
    print_done(c.global, &format!("stage.kargo.akuity.io/{name}"), &line)
}
