//! `git-clear`: remove every file from a checkout (its `.git` is not part of our checkouts), so
//! that the step rendering into it starts from nothing, as Kargo's does. Removals stay in memory
//! until `git-commit`; a file rendered again with the same content is no change at all.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Runtime, StepError, StepResult, config};

#[derive(Deserialize)]
struct Config {
    path: String,
}

fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("git-clear", cfg)?;
    let co = rt.checkout_at(&cfg.path)?;
    let files = co.checkout.files("")?;
    for f in &files {
        co.checkout.remove(f)?;
    }
    Ok(StepResult::ok(
        json!({}),
        format!("{}: removed {} file(s)", cfg.path, files.len()),
    ))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "git-clear",
    summary: "remove every file from a checkout, before rendering into it",
    shape: &promote_api::step_config::GIT_CLEAR,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &[],
    verify_recorded: None,
};
