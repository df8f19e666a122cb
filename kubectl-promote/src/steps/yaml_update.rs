//! `yaml-update`: set values in a YAML file by dot-path key (Kargo's key syntax: `\.` escapes a
//! dot, numeric parts index sequences, `-1` appends, a leading `:` forces a map key). Missing keys
//! and maps are created. Only the edited scalars change in the file (see `yaml_edit`). Output:
//! `commitMessage`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Runtime, StepError, StepResult, config, fail, utf8};
use crate::yaml_edit::{YamlDoc, split_key};

#[derive(Deserialize)]
struct Update {
    key: String,
    value: Value,
}

#[derive(Deserialize)]
struct Config {
    path: String,
    updates: Vec<Update>,
}

/// Kargo's `yaml.QuoteIfNecessary` for commit messages: strings that would read as something
/// else are quoted.
pub(super) fn show(v: &Value) -> String {
    match v {
        Value::String(s)
            if s.parse::<f64>().is_ok() || matches!(s.as_str(), "true" | "false" | "null" | "") =>
        {
            format!("{s:?}")
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Apply `updates` to the YAML file at `path` (checkout-relative) and write it back.
pub(super) fn apply(
    rt: &mut Runtime<'_>,
    path: &str,
    updates: &[(String, Value)],
) -> Result<(), StepError> {
    let (co, rel) = rt.resolve(path)?;
    let Some(data) = co.checkout.read(&rel)? else {
        return Err(fail(format!(
            "{path}: no such file in the checkout of {}",
            co.repo_url
        )));
    };
    // The file is held once: read, edited in place and handed to the checkout (large generated
    // values files are the case bench/memory.py measures).
    let mut doc =
        YamlDoc::from_text(utf8(path, data)?).map_err(|e| fail(format!("{path}: {e}")))?;
    for (key, value) in updates {
        doc.set(&split_key(key), value)
            .map_err(|e| fail(format!("{path}: {e}")))?;
    }
    if doc.changed() {
        co.checkout.write(&rel, doc.into_text().into_bytes())?;
    }
    Ok(())
}

pub(super) fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("yaml-update", cfg)?;
    if cfg.updates.is_empty() {
        return Err(fail("yaml-update: updates must list at least one key"));
    }
    let updates: Vec<(String, Value)> = cfg.updates.into_iter().map(|u| (u.key, u.value)).collect();
    apply(rt, &cfg.path, &updates)?;
    let mut msg = format!("Updated {}\n", cfg.path);
    for (k, v) in &updates {
        msg.push_str(&format!("\n- {k}: {}", show(v)));
    }
    let summary = updates
        .iter()
        .map(|(k, v)| format!("{k}={}", show(v)))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(StepResult::ok(
        json!({ "commitMessage": msg }),
        format!("{}: {summary}", cfg.path),
    ))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "yaml-update",
    summary: "set values in a YAML file, keeping its formatting",
    shape: &promote_api::step_config::YAML_UPDATE,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &["commitMessage"],
    verify_recorded: None,
};
