//! `delete`: delete files or directories of checkouts, by literal path (`path`, `paths`) or by
//! glob (`pathsAreGlobs`: Kargo's doublestar syntax, `*` within a name, `**` across directories,
//! `?`, `[...]`, `{a,b}`; a matched directory goes whole). With `strict`, a path that does not
//! exist or a pattern that matches nothing fails the step, as in Kargo.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Runtime, StepError, StepResult, config, fail};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(default)]
    path: String,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    paths_are_globs: bool,
    #[serde(default)]
    strict: bool,
}

/// The literal directory a pattern starts with (`./out/a/*.yaml` → `out/a`).
fn literal_base(pattern: &str) -> String {
    let clean = pattern.trim_start_matches("./");
    let mut base = Vec::new();
    for part in clean.split('/') {
        if part.contains(['*', '?', '[', '{']) {
            break;
        }
        base.push(part);
    }
    if base.len() == clean.split('/').count() {
        base.pop();
    }
    base.join("/")
}

/// Files and directories under `base` (work-directory paths).
fn candidates(
    rt: &mut Runtime<'_>,
    base: &str,
) -> Result<(Vec<String>, BTreeSet<String>), StepError> {
    let mut files = Vec::new();
    let mut roots: Vec<(usize, String)> = Vec::new();
    if base.is_empty() {
        roots.extend(
            rt.checkouts
                .iter()
                .enumerate()
                .map(|(i, _)| (i, String::new())),
        );
    } else if let Ok((root, rel)) = rt.resolve(base).map(|(co, rel)| (co.path.clone(), rel)) {
        let i = rt.checkout_index(&root)?;
        roots.push((i, rel));
    }
    for (i, rel) in roots {
        let co = &rt.checkouts[i];
        for f in co.checkout.files(&rel)? {
            files.push(super::join(&co.path, &f));
        }
    }
    let mut dirs = BTreeSet::new();
    for f in &files {
        let mut d = f.as_str();
        while let Some((parent, _)) = d.rsplit_once('/') {
            dirs.insert(parent.to_owned());
            d = parent;
        }
    }
    Ok((files, dirs))
}

fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("delete", cfg)?;
    let mut patterns = cfg.paths.clone();
    if !cfg.path.is_empty() {
        patterns.insert(0, cfg.path.clone());
    }
    if patterns.is_empty() {
        return Err(fail("delete: set path or paths"));
    }
    // Work-directory paths of the files to delete.
    let mut doomed = BTreeSet::new();
    for p in &patterns {
        let before = doomed.len();
        if cfg.paths_are_globs {
            let glob = globset::GlobBuilder::new(p.trim_start_matches("./"))
                .literal_separator(true)
                .build()
                .map_err(|e| fail(format!("delete: invalid glob pattern {p:?}: {e}")))?
                .compile_matcher();
            let (files, dirs) = candidates(rt, &literal_base(p))?;
            for d in dirs.iter().filter(|d| glob.is_match(d.as_str())) {
                let prefix = format!("{d}/");
                doomed.extend(files.iter().filter(|f| f.starts_with(&prefix)).cloned());
            }
            doomed.extend(files.into_iter().filter(|f| glob.is_match(f.as_str())));
            if cfg.strict && doomed.len() == before {
                return Err(fail(format!("delete: no paths matched pattern {p:?}")));
            }
        } else {
            let (co, rel) = rt.resolve(p)?;
            let found: Vec<String> = co
                .checkout
                .files(&rel)?
                .into_iter()
                .map(|f| super::join(&co.path, &f))
                .collect();
            if found.is_empty() && cfg.strict {
                return Err(fail(format!("delete: path {p:?} does not exist")));
            }
            doomed.extend(found);
        }
    }
    for path in &doomed {
        let (co, rel) = rt.resolve(path)?;
        co.checkout.remove(&rel)?;
    }
    Ok(StepResult::ok(
        json!({}),
        format!("deleted {} file(s)", doomed.len()),
    ))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "delete",
    summary: "delete files or directories of checkouts, by path or glob (`strict` to require a match)",
    shape: &promote_api::step_config::DELETE,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &[],
    verify_recorded: None,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_is_searched_from_its_literal_directory() {
        assert_eq!(literal_base("./out/a/*.yaml"), "out/a");
        assert_eq!(literal_base("out/**/x"), "out");
        assert_eq!(literal_base("*.yaml"), "");
        assert_eq!(literal_base("./out/file.yaml"), "out");
    }
}
