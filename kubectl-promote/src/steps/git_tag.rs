//! `git-tag`: make an annotated tag `tag` (with `message`) of a checkout's current commit, for a
//! later `git-push` with `tag:` to publish, as Kargo's. A tag that already exists on the remote is
//! refused unless `force`. The tagger is the checkout's author (git-clone's `author`), else your
//! git identity. Output: `commit`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Runtime, StepError, StepResult, config, fail};

#[derive(Deserialize)]
struct Config {
    path: String,
    tag: String,
    message: String,
    #[serde(default)]
    force: bool,
}

fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("git-tag", cfg)?;
    if cfg.tag.is_empty() || cfg.message.trim().is_empty() {
        return Err(fail("git-tag: tag and message must not be empty"));
    }
    let co = rt.checkout_at(&cfg.path)?;
    let mirror = co.checkout.mirror().clone();
    // The ref name must be valid before anything is written.
    mirror
        .git(&["check-ref-format", &format!("refs/tags/{}", cfg.tag)])
        .map_err(|_| fail(format!("git-tag: {:?} is not a valid tag name", cfg.tag)))?;
    if !cfg.force && mirror.remote_tag_exists(&cfg.tag)? {
        return Err(fail(format!(
            "git-tag: tag {:?} already exists in {}; set force to move it",
            cfg.tag,
            mirror.display_url()
        )));
    }
    let head = co.checkout.head().to_owned();
    let tagger = co.author.clone();
    let message = promote_api::trust::sanitize(&cfg.message);
    let tag = mirror.make_tag(
        &head,
        &cfg.tag,
        &message,
        tagger.as_ref().map(|(n, e)| (n.as_str(), e.as_str())),
    )?;
    co.checkout.tags.insert(cfg.tag.clone(), (tag, cfg.force));
    Ok(StepResult::ok(
        json!({ "commit": head }),
        format!("tagged {} as {:?}", &head[..12.min(head.len())], cfg.tag),
    ))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "git-tag",
    summary: "make an annotated tag of a checkout's commit, for git-push to publish",
    shape: &promote_api::step_config::GIT_TAG,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &["commit"],
    verify_recorded: None,
};
