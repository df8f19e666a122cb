//! `fail`: end the promotion as `Failed`, with Kargo's message (`failed`, or `failed: <message>`);
//! usually behind an `if`.

use serde::Deserialize;
use serde_json::Value;

use super::{Runtime, StepError, StepResult, config, fail};

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    message: String,
}

fn run(cfg: &Value, _: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("fail", cfg)?;
    Err(fail(if cfg.message.is_empty() {
        "failed".to_owned()
    } else {
        format!("failed: {}", cfg.message)
    }))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "fail",
    summary: "fail the promotion, with a message",
    shape: &promote_api::step_config::FAIL,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &[],
    verify_recorded: None,
};
