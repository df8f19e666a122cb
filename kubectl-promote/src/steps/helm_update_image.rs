//! `helm-update-image`: Kargo's legacy (≤ v1.2) step, kept for old Stages and done through
//! yaml-update. Each image sets `key` in the values file at `path` to the Freight's image as
//! `ImageAndTag` (`repo:tag`), `Tag`, `ImageAndDigest` (`repo@digest`) or `Digest`. Output:
//! `commitMessage`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Runtime, StepError, StepResult, config, fail};
use crate::expr::Functions;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Image {
    image: String,
    key: String,
    value: String,
    from_origin: Option<Value>,
}

#[derive(Deserialize)]
struct Config {
    path: String,
    images: Vec<Image>,
}

pub(super) fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("helm-update-image", cfg)?;
    let mut updates = Vec::new();
    for img in &cfg.images {
        let found = rt
            .ctx
            .image_from(&img.image, img.from_origin.as_ref())
            .map_err(fail)?;
        let (Some(repo), tag, digest) = (
            found.get("RepoURL").and_then(Value::as_str),
            found.get("Tag").and_then(Value::as_str).unwrap_or_default(),
            found
                .get("Digest")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        ) else {
            return Err(fail(format!(
                "helm-update-image: the Freight has no image {:?}",
                img.image
            )));
        };
        let need = |v: &str, what: &str| {
            if v.is_empty() {
                Err(fail(format!(
                    "helm-update-image: image {:?} in the Freight has no {what}",
                    img.image
                )))
            } else {
                Ok(())
            }
        };
        let value = match img.value.as_str() {
            "ImageAndTag" => need(tag, "tag").map(|_| format!("{repo}:{tag}"))?,
            "Tag" => need(tag, "tag").map(|_| tag.to_owned())?,
            "ImageAndDigest" => need(digest, "digest").map(|_| format!("{repo}@{digest}"))?,
            "Digest" => need(digest, "digest").map(|_| digest.to_owned())?,
            other => {
                return Err(fail(format!(
                    "helm-update-image: value {other:?} is not one of ImageAndTag, Tag, ImageAndDigest, Digest"
                )));
            }
        };
        updates.push((img.key.clone(), Value::String(value)));
    }
    super::yaml_update::apply(rt, &cfg.path, &updates)?;
    let mut msg = format!(
        "Updated {} to use new image{}\n",
        cfg.path,
        if updates.len() == 1 { "" } else { "s" }
    );
    for (k, v) in &updates {
        msg.push_str(&format!("\n- {k}: {}", super::yaml_update::show(v)));
    }
    Ok(StepResult::ok(
        json!({ "commitMessage": msg }),
        format!("{}: {} image(s)", cfg.path, updates.len()),
    ))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "helm-update-image",
    summary: "set image references in a Helm values file",
    shape: &promote_api::step_config::HELM_UPDATE_IMAGE,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &["commitMessage"],
    verify_recorded: None,
};
