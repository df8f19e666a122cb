//! `kustomize-set-image`: set images in the `kustomization.yaml` of a directory. With `images`,
//! each entry gives its tag or digest (Kargo v1.11's schema; `${{ imageFrom(...).Tag }}` for the
//! Freight's); without `images`, every image of the Freight is set. Entries are matched by
//! `name` and updated as Kargo replaces them (fields not given are dropped, `*` keeps the existing
//! value), but only the changed scalars are rewritten in the file: comments, order and formatting
//! stay. Output: `commitMessage`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Runtime, StepError, StepResult, config, fail, join, utf8};
use crate::yaml_edit::{PathPart, YamlDoc};

const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];
const PRESERVE: &str = "*";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageConfig {
    image: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    new_name: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    digest: String,
}

#[derive(Deserialize)]
struct Config {
    path: String,
    images: Option<Vec<ImageConfig>>,
}

/// One kustomize `images` entry to write.
#[derive(Clone, Debug, Default, PartialEq)]
struct Target {
    name: String,
    new_name: String,
    new_tag: String,
    digest: String,
}

fn targets(cfg: &Config, rt: &Runtime<'_>) -> Result<BTreeMap<String, Target>, StepError> {
    let mut out = BTreeMap::new();
    match &cfg.images {
        Some(images) if !images.is_empty() => {
            for img in images {
                let mut t = Target {
                    name: if img.name.is_empty() {
                        img.image.clone()
                    } else {
                        img.name.clone()
                    },
                    new_name: img.new_name.clone(),
                    ..Default::default()
                };
                // As Kargo: the digest when given, else the tag (the config check requires one).
                if !img.digest.is_empty() {
                    t.digest = img.digest.clone();
                } else {
                    t.new_tag = img.tag.clone();
                }
                out.insert(t.name.clone(), t);
            }
        }
        _ => {
            let mut seen: BTreeMap<String, String> = BTreeMap::new();
            for f in rt.ctx.collection.freight.values() {
                for i in &f.images {
                    if let Some(other) = seen.insert(i.repo_url.clone(), f.origin.to_string())
                        && other != f.origin.to_string()
                    {
                        return Err(fail(format!(
                            "kustomize-set-image: manual configuration required due to ambiguous result: image {:?} comes from both {other} and {}; list images explicitly",
                            i.repo_url, f.origin
                        )));
                    }
                    out.insert(
                        i.repo_url.clone(),
                        Target {
                            name: i.repo_url.clone(),
                            new_tag: i.tag.clone(),
                            digest: i.digest.clone(),
                            ..Default::default()
                        },
                    );
                }
            }
            if out.is_empty() {
                return Err(fail(
                    "kustomize-set-image: the Freight has no images; list images explicitly",
                ));
            }
        }
    }
    Ok(out)
}

fn key(parts: &[PathPart], k: &str) -> Vec<PathPart> {
    let mut p = parts.to_vec();
    p.push(PathPart::Key(k.to_owned()));
    p
}

/// Apply the targets to the kustomization text.
fn update(text: &str, targets: &BTreeMap<String, Target>) -> Result<String, String> {
    let mut doc = YamlDoc::parse(text).map_err(|e| e.to_string())?;
    let images = vec![PathPart::Key("images".into())];
    for t in targets.values() {
        let n = doc.seq_len(&images);
        let found = (0..n).find(|i| {
            doc.get_str(&key(
                &[images[0].clone(), PathPart::Index(*i as i64)],
                "name",
            ))
            .as_deref()
                == Some(t.name.as_str())
        });
        match found {
            Some(i) => {
                let entry = vec![images[0].clone(), PathPart::Index(i as i64)];
                for (field, value) in [
                    ("newName", &t.new_name),
                    ("newTag", &t.new_tag),
                    ("digest", &t.digest),
                ] {
                    let path = key(&entry, field);
                    if value == PRESERVE {
                        continue;
                    }
                    if value.is_empty() {
                        doc.remove(&path).map_err(|e| e.to_string())?;
                    } else if doc.get_str(&path).as_deref() != Some(value.as_str()) {
                        doc.set(&path, &json!(value)).map_err(|e| e.to_string())?;
                    }
                }
            }
            None => {
                let mut entry = serde_json::Map::new();
                entry.insert("name".into(), json!(t.name));
                for (field, value) in [
                    ("newName", &t.new_name),
                    ("newTag", &t.new_tag),
                    ("digest", &t.digest),
                ] {
                    if !value.is_empty() && value != PRESERVE {
                        entry.insert(field.into(), json!(value));
                    }
                }
                let path = if n == 0
                    && doc.get_str(&images).is_none()
                    && doc.seq_len(&images) == 0
                    && !text_has_images(doc.text())
                {
                    images.clone()
                } else {
                    vec![images[0].clone(), PathPart::Index(-1)]
                };
                let value = if path.len() == 1 {
                    Value::Array(vec![Value::Object(entry)])
                } else {
                    Value::Object(entry)
                };
                doc.set(&path, &value).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(doc.text().to_owned())
}

fn text_has_images(text: &str) -> bool {
    serde_yaml::from_str::<serde_yaml::Value>(text)
        .ok()
        .and_then(|v| v.get("images").cloned())
        .is_some_and(|v| !v.is_null())
}

pub(super) fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("kustomize-set-image", cfg)?;
    let targets = targets(&cfg, rt)?;
    let (co, dir) = rt.resolve(&cfg.path)?;
    let names: Vec<String> = co
        .checkout
        .list_dir(&dir)?
        .into_iter()
        .filter(|(n, is_dir)| !is_dir && KUSTOMIZATION_FILES.contains(&n.as_str()))
        .map(|(n, _)| n)
        .collect();
    let file = match names.as_slice() {
        [one] => join(&dir, one),
        [] => {
            return Err(fail(format!(
                "kustomize-set-image: could not find any Kustomization file in {:?} (looked for {})",
                cfg.path,
                KUSTOMIZATION_FILES.join(", ")
            )));
        }
        many => {
            return Err(fail(format!(
                "kustomize-set-image: ambiguous result: found {} in {:?}",
                many.join(" and "),
                cfg.path
            )));
        }
    };
    let text = utf8(&file, co.checkout.read(&file)?.unwrap_or_default())?;
    let new =
        update(&text, &targets).map_err(|e| fail(format!("kustomize-set-image: {file}: {e}")))?;
    if new != text {
        co.checkout.write(&file, new.into_bytes())?;
    }
    let mut msg = format!(
        "Updated {} to use new image{}\n",
        cfg.path,
        if targets.len() > 1 { "s" } else { "" }
    );
    let mut refs = Vec::new();
    for t in targets.values() {
        let mut r = if t.new_name.is_empty() || t.new_name == PRESERVE {
            t.name.clone()
        } else {
            t.new_name.clone()
        };
        if !t.new_tag.is_empty() && t.new_tag != PRESERVE {
            r = format!("{r}:{}", t.new_tag);
        }
        if !t.digest.is_empty() && t.digest != PRESERVE {
            r = format!("{r}@{}", t.digest);
        }
        msg.push_str(&format!("\n- {r}"));
        refs.push(r);
    }
    Ok(StepResult::ok(
        json!({ "commitMessage": msg }),
        format!("{}: {}", cfg.path, refs.join(", ")),
    ))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "kustomize-set-image",
    summary: "set images in a kustomization.yaml: every image of the Freight, or the listed ones, each with exactly one of `tag` and `digest` as in Kargo v1.11 (`tag: ${{ imageFrom(\"nginx\").Tag }}` for the Freight's; an entry with neither is refused when the Stage is applied, where Kargo fails the Promotion)",
    shape: &promote_api::step_config::KUSTOMIZE_SET_IMAGE,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &["commitMessage"],
    verify_recorded: None,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, tag: &str, digest: &str) -> BTreeMap<String, Target> {
        BTreeMap::from([(
            name.to_owned(),
            Target {
                name: name.into(),
                new_tag: tag.into(),
                digest: digest.into(),
                ..Default::default()
            },
        )])
    }

    #[test]
    fn updates_existing_entries_in_place() {
        let text = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../base # base\nimages:\n- name: nginx\n  newTag: \"1.24.0\" # keep me\n- name: redis\n  newTag: '7'\n";
        let out = update(text, &t("nginx", "1.25.0", "")).unwrap();
        assert_eq!(out, text.replace("\"1.24.0\"", "\"1.25.0\""));
        let out = update(text, &t("nginx", "", "sha256:abc")).unwrap();
        assert_eq!(
            out,
            text.replace("  newTag: \"1.24.0\" # keep me\n", "  digest: sha256:abc\n")
        );
    }

    #[test]
    fn adds_entries_and_the_images_key() {
        let text = "resources:\n- deploy.yaml\n";
        assert_eq!(
            update(text, &t("nginx", "1.25", "")).unwrap(),
            "resources:\n- deploy.yaml\nimages:\n- name: nginx\n  newTag: \"1.25\"\n"
        );
        let text = "images:\n- name: a\n  newTag: x\n";
        assert_eq!(
            update(text, &t("nginx", "1.25.0", "")).unwrap(),
            "images:\n- name: a\n  newTag: x\n- name: nginx\n  newTag: 1.25.0\n"
        );
    }

    #[test]
    fn preserve_marker_keeps_values() {
        let text = "images:\n- name: nginx\n  newName: my/nginx\n  newTag: old\n";
        let mut targets = t("nginx", "new", "");
        if let Some(x) = targets.get_mut("nginx") {
            x.new_name = "*".into();
        }
        assert_eq!(
            update(text, &targets).unwrap(),
            "images:\n- name: nginx\n  newName: my/nginx\n  newTag: new\n"
        );
    }
}
