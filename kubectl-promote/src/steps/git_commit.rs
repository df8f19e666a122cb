//! `git-commit`: commit the checkout's edits. Nothing changed → the step is `Skipped`, not an
//! error (Kargo's behaviour). Output: `commit` (the HEAD SHA).

use serde::Deserialize;
use serde_json::{Value, json};

use super::git_clone::Author;
use super::{Runtime, StepError, StepResult, config, fail};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    path: String,
    message: String,
    author: Option<Author>,
}

pub(super) fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("git-commit", cfg)?;
    if cfg.message.trim().is_empty() {
        return Err(fail("git-commit: message is empty"));
    }
    let co = rt.checkout_at(&cfg.path)?;
    let author = cfg
        .author
        .as_ref()
        .filter(|a| !a.name.is_empty() && !a.email.is_empty())
        .map(|a| (a.name.clone(), a.email.clone()))
        .or_else(|| co.author.clone());
    let signing_key = cfg
        .author
        .as_ref()
        .map(|a| a.signing_key.clone())
        .filter(|k| !k.is_empty())
        .or_else(|| co.signing_key.clone());
    let changed = co.checkout.pending_changes()?.len();
    // Freight fields reach messages through expressions; control characters never do.
    let message = promote_api::trust::sanitize(&cfg.message);
    match co.checkout.commit(
        &message,
        author.as_ref().map(|(n, e)| (n.as_str(), e.as_str())),
        signing_key.as_deref(),
    )? {
        Some(commit) => {
            let msg = format!(
                "{} ({changed} file{} changed)",
                &commit[..12.min(commit.len())],
                if changed == 1 { "" } else { "s" }
            );
            Ok(StepResult::ok(json!({ "commit": commit }), msg))
        }
        None => {
            let head = co.checkout.head().to_owned();
            let mut r = StepResult::skipped("nothing to commit");
            r.output.insert("commit".into(), json!(head));
            Ok(r)
        }
    }
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "git-commit",
    summary: "commit the changes of a checkout",
    shape: &promote_api::step_config::GIT_COMMIT,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &["commit"],
    verify_recorded: None,
};
