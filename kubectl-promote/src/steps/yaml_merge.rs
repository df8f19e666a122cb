//! `yaml-merge`: merge YAML files in order into `outFile`, with Kargo's rules (kyaml's `merge2`):
//! a later file's scalar replaces, mappings merge key by key, a sequence replaces the earlier one
//! whole, keys of one side are kept, and `null` removes a key. The result is the first file's text
//! edited in place by the format-preserving editor: its comments, order and quoting stay, and only
//! what a later file changes moves (kyaml re-serializes the whole file; we do not). Missing files
//! fail the step unless `ignoreMissingFiles` (all missing: an empty file). Output:
//! `commitMessage`, as Kargo words it.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Runtime, StepError, StepResult, config, fail, utf8};
use crate::yaml_edit::{PathPart, YamlDoc};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    in_files: Vec<String>,
    out_file: String,
    #[serde(default)]
    ignore_missing_files: bool,
}

fn apply(
    doc: &mut YamlDoc,
    base: &Value,
    over: &Value,
    path: &mut Vec<PathPart>,
) -> Result<(), String> {
    let Some(over) = over.as_object() else {
        return Ok(());
    };
    for (k, v) in over {
        path.push(PathPart::Key(k.clone()));
        let here = base.get(k);
        match (here, v) {
            (_, Value::Null) => {
                doc.remove(path).map_err(|e| e.to_string())?;
            }
            (Some(b @ Value::Object(_)), Value::Object(_)) => apply(doc, b, v, path)?,
            _ => doc.set(path, v).map_err(|e| e.to_string())?,
        }
        path.pop();
    }
    Ok(())
}

/// Merge texts in order; the result's text.
pub(super) fn merge(texts: &[(String, String)]) -> Result<String, String> {
    let mut out: Option<YamlDoc> = None;
    for (name, text) in texts {
        let value: Value = if text.trim().is_empty() {
            continue;
        } else {
            serde_yaml::from_str(text)
                .map_err(|e| format!("error reading input file {name}: {e}"))?
        };
        match out.as_mut() {
            None => {
                out = Some(
                    YamlDoc::parse(text)
                        .map_err(|e| format!("error reading input file {name}: {e}"))?,
                );
            }
            Some(doc) => {
                if !value.is_object() {
                    return Err(format!(
                        "error merging in file {name}: only mappings merge (its document is not one)"
                    ));
                }
                let base: Value = serde_yaml::from_str(doc.text()).map_err(|e| e.to_string())?;
                if !base.is_object() {
                    return Err(format!(
                        "error merging in file {name}: the files before it are not a mapping"
                    ));
                }
                apply(doc, &base, &value, &mut Vec::new())
                    .map_err(|e| format!("error merging in file {name}: {e}"))?;
            }
        }
    }
    Ok(out.map(|d| d.text().to_owned()).unwrap_or_default())
}

fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("yaml-merge", cfg)?;
    if cfg.in_files.is_empty() {
        return Err(fail("yaml-merge: inFiles names no file"));
    }
    let mut texts = Vec::new();
    for f in &cfg.in_files {
        let (co, rel) = rt.resolve(f)?;
        match co.checkout.read(&rel)? {
            Some(data) => texts.push((f.clone(), utf8(f, data)?)),
            None if cfg.ignore_missing_files => {}
            None => {
                return Err(fail(format!(
                    "yaml-merge: input file {f:?} not found; set ignoreMissingFiles to skip missing ones"
                )));
            }
        }
    }
    let merged = merge(&texts).map_err(|e| fail(format!("yaml-merge: {e}")))?;
    let (co, rel) = rt.resolve(&cfg.out_file)?;
    co.checkout.write(&rel, merged.into_bytes())?;
    let names: Vec<&str> = texts.iter().map(|(n, _)| n.as_str()).collect();
    let message = match names.as_slice() {
        [] => String::new(),
        [one] => format!("Wrote {one} to {}", cfg.out_file),
        many => {
            let mut m = format!("Merged {} YAML files to {}", many.len(), cfg.out_file);
            for n in many {
                m.push_str(&format!("\n- {n}"));
            }
            m
        }
    };
    let output = if message.is_empty() {
        json!({})
    } else {
        json!({ "commitMessage": message })
    };
    Ok(StepResult::ok(
        output,
        format!("{} file(s) merged into {}", names.len(), cfg.out_file),
    ))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "yaml-merge",
    summary: "merge YAML files in order into one (later values win, sequences replace, null removes)",
    shape: &promote_api::step_config::YAML_MERGE,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &["commitMessage"],
    verify_recorded: None,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, text: &str) -> (String, String) {
        (name.to_owned(), text.to_owned())
    }

    #[test]
    fn files_merge_with_kargos_rules_and_the_first_files_format() {
        let base = "# base values\nimage:\n  repository: nginx # upstream\n  tag: \"1.0\"\nreplicas: 1\nports: [80, 443]\nextra:\n  a: 1\n  b: 2\n";
        let env = "image:\n  tag: \"2.0\"\nports:\n  - 8080\nextra:\n  b: null\n  c: 3\nnew: yes\n";
        let out = merge(&[t("base", base), t("env", env)]).unwrap();
        let v: Value = serde_yaml::from_str(&out).unwrap();
        assert_eq!(v["image"]["repository"], "nginx");
        assert_eq!(v["image"]["tag"], "2.0");
        assert_eq!(v["replicas"], 1);
        assert_eq!(v["ports"], json!([8080]), "sequences replace");
        assert_eq!(
            v["extra"],
            json!({"a": 1, "c": 3}),
            "null removes, new keys join"
        );
        assert_eq!(v["new"], "yes");
        assert!(
            out.starts_with(
                "# base values\nimage:\n  repository: nginx # upstream\n  tag: \"2.0\"\n"
            ),
            "{out}"
        );
        assert_eq!(merge(&[t("one", base)]).unwrap(), base);
        assert_eq!(merge(&[]).unwrap(), "");
        assert!(
            merge(&[t("a", base), t("b", "- 1\n")])
                .unwrap_err()
                .contains("only mappings merge")
        );
    }
}
