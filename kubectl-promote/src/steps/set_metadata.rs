//! `set-metadata`: set keys of Stages' and Freight's `status.metadata` in the project (`updates`:
//! `kind` Stage or Freight, `name`, `values`), which `stageMetadata()` and `freightMetadata()`
//! read back, as Kargo's step does. Kargo's controller makes this write; here the promoter does,
//! through the status subresource, and promote's webhook admits it only while the writer runs a
//! Promotion whose steps hold this `set-metadata` update (SECURITY.md). Each object is read, its
//! metadata merged key by key (other keys stay) and written with its resourceVersion as a
//! precondition, read again on a conflict. With `--local` the values hold for the rest of this
//! promotion only (there is no object to keep them). Run again on a resume (idempotent).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Runtime, StepError, StepResult, config, fail};
use crate::kube::kargo_path;

#[derive(Deserialize)]
struct Update {
    kind: String,
    name: String,
    values: Map<String, Value>,
}

#[derive(Deserialize)]
struct Config {
    updates: Vec<Update>,
}

/// How often a write that lost a race with another status write is tried again.
const CONFLICT_ATTEMPTS: usize = 5;

fn plural(kind: &str) -> &'static str {
    if kind == "Stage" {
        "stages"
    } else {
        "freights"
    }
}

/// The object's metadata with `values` set (a null value removes its key, as a merge patch does).
fn merged(obj: &Value, values: &Map<String, Value>) -> Map<String, Value> {
    let mut m = obj
        .pointer("/status/metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (k, v) in values {
        if v.is_null() {
            m.remove(k);
        } else {
            m.insert(k.clone(), v.clone());
        }
    }
    m
}

fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("set-metadata", cfg)?;
    if cfg.updates.is_empty() {
        return Err(fail("set-metadata: updates must hold at least one update"));
    }
    for u in &cfg.updates {
        if u.kind != "Stage" && u.kind != "Freight" {
            return Err(fail(format!(
                "set-metadata: unsupported kind {:?}; use Stage or Freight",
                u.kind
            )));
        }
        if u.name.is_empty() {
            return Err(fail(format!(
                "set-metadata: a {} update has no name",
                u.kind
            )));
        }
        if u.values.is_empty() {
            return Err(fail(format!(
                "set-metadata: the update of {} {:?} sets no values",
                u.kind, u.name
            )));
        }
        if u.values.keys().any(String::is_empty) {
            return Err(fail("set-metadata: a metadata key must not be empty"));
        }
    }
    let project = rt.ctx.project.clone();
    let summary = |u: &Update| {
        format!(
            "{} {} ({})",
            u.kind,
            if u.kind == "Freight" {
                promote_api::naming::short_name(&u.name).to_owned()
            } else {
                u.name.clone()
            },
            u.values.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    };
    let done: Vec<String> = cfg.updates.iter().map(summary).collect();
    let Some(cl) = &rt.cluster else {
        for u in &cfg.updates {
            let found = rt.local_objects.iter_mut().find(|o| {
                o.get("kind").and_then(Value::as_str) == Some(u.kind.as_str())
                    && o.pointer("/metadata/name").and_then(Value::as_str) == Some(u.name.as_str())
            });
            let Some(obj) = found else {
                return Err(fail(format!(
                    "set-metadata: {} {:?} not found in the manifests of project {project:?}",
                    u.kind, u.name
                )));
            };
            let m = merged(obj, &u.values);
            obj["status"]["metadata"] = Value::Object(m);
        }
        return Ok(StepResult::ok(
            json!({}),
            format!(
                "set metadata of {} for this run only (--local: no cluster keeps it)",
                done.join("; ")
            ),
        ));
    };
    for u in &cfg.updates {
        let path = kargo_path(plural(&u.kind), &project, &u.name);
        let kube_err = |action: String| {
            let project = project.clone();
            let kind = u.kind.clone();
            move |failure: crate::kube::ApiFailure| {
                if failure.code == 403 {
                    fail(format!(
                        "set-metadata: {action}: {failure}; hint: the step patches the {kind}'s status, which needs verb \"patch\" on resource \"{}/status\" (apiGroup kargo.akuity.io) in namespace {project:?}",
                        plural(&kind)
                    ))
                } else {
                    StepError::Kube { action, failure }
                }
            }
        };
        let mut attempt = 1;
        loop {
            let Some(obj) = cl
                .kube
                .get(&path)
                .map_err(kube_err(format!("reading {} {:?}", u.kind, u.name)))?
            else {
                return Err(fail(format!(
                    "set-metadata: {} {:?} not found in project {project:?}",
                    u.kind, u.name
                )));
            };
            let m = merged(&obj, &u.values);
            if obj.pointer("/status/metadata").and_then(Value::as_object) == Some(&m) {
                break;
            }
            if rt.dry_run {
                break;
            }
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(Value::Null);
            // Keys removed by a null value are sent as null: a merge patch removes them.
            let mut patch_meta = m.clone();
            for (k, v) in &u.values {
                if v.is_null() {
                    patch_meta.insert(k.clone(), Value::Null);
                }
            }
            let patch = json!({
                "metadata": { "resourceVersion": rv },
                "status": { "metadata": patch_meta },
            });
            match cl.kube.merge_patch(&format!("{path}/status"), &patch) {
                Ok(_) => break,
                Err(f) if f.code == 409 && attempt < CONFLICT_ATTEMPTS => attempt += 1,
                Err(f) => {
                    return Err(kube_err(format!(
                        "setting the metadata of {} {:?}",
                        u.kind, u.name
                    ))(f));
                }
            }
        }
    }
    Ok(StepResult::ok(
        json!({}),
        if rt.dry_run {
            format!("would set metadata of {} (dry run)", done.join("; "))
        } else {
            format!("set metadata of {}", done.join("; "))
        },
    ))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "set-metadata",
    summary: "set keys of Stages' and Freight's status.metadata (read by stageMetadata(), freightMetadata())",
    shape: &promote_api::step_config::SET_METADATA,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &[],
    verify_recorded: None,
};
