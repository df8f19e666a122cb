//! `compose-output`: its (expression-evaluated) config is its output, key for key: names later
//! steps, or a PromotionTask's users, read as `outputs.<alias>.<key>`.

use serde_json::Value;

use super::{Runtime, StepError, StepResult, fail};

fn run(cfg: &Value, _: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    match cfg {
        Value::Object(m) => Ok(StepResult::ok(
            cfg.clone(),
            format!("composed {} output(s)", m.len()),
        )),
        Value::Null => Ok(StepResult::ok(
            Value::Object(Default::default()),
            "composed nothing",
        )),
        other => Err(fail(format!(
            "compose-output: config must be a map of output names to values, got {other}"
        ))),
    }
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "compose-output",
    summary: "compose outputs from expressions (its config, key for key)",
    shape: &promote_api::step_config::Shape::Any,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &["(its config's keys)"],
    verify_recorded: None,
};
