//! `copy`: copy a file, or a directory's contents (recursively, merged into `outPath`), between
//! or within checkouts. `ignore` takes `.gitignore` lines, matched from `inPath`'s directory, as
//! Kargo's; `.git` is never copied (it is not part of a checkout here anyway).

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Runtime, StepError, StepResult, config, fail};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    in_path: String,
    out_path: String,
    #[serde(default)]
    ignore: String,
}

/// The ignore rules, for paths relative to the copied directory.
fn ignore_rules(lines: &str) -> Result<ignore::gitignore::Gitignore, StepError> {
    let root = std::path::Path::new("/in");
    let mut b = ignore::gitignore::GitignoreBuilder::new(root);
    for line in std::iter::once(".git").chain(lines.lines()) {
        b.add_line(None, line)
            .map_err(|e| fail(format!("copy: invalid ignore pattern {line:?}: {e}")))?;
    }
    b.build()
        .map_err(|e| fail(format!("copy: invalid ignore patterns: {e}")))
}

fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("copy", cfg)?;
    let rules = ignore_rules(&cfg.ignore)?;
    let (co, rel) = rt.resolve(&cfg.in_path)?;
    let is_dir = co.checkout.is_dir(&rel)?;
    let mut copies: Vec<(String, Vec<u8>)> = Vec::new();
    if is_dir {
        for f in co.checkout.files(&rel)? {
            let inner = f
                .strip_prefix(&rel)
                .unwrap_or(&f)
                .trim_start_matches('/')
                .to_owned();
            let ignored = rules
                .matched_path_or_any_parents(std::path::Path::new("/in").join(&inner), false)
                .is_ignore();
            if ignored {
                continue;
            }
            if let Some(data) = co.checkout.read(&f)? {
                copies.push((
                    super::join(cfg.out_path.trim_end_matches('/'), &inner),
                    data,
                ));
            }
        }
    } else {
        match co.checkout.read(&rel)? {
            Some(data) => copies.push((cfg.out_path.clone(), data)),
            None => {
                return Err(fail(format!(
                    "copy: {:?} does not exist in the checkout of {}",
                    cfg.in_path, co.repo_url
                )));
            }
        }
    }
    let n = copies.len();
    for (to, data) in copies {
        let (out, rel) = rt.resolve(&to)?;
        out.checkout.write(&rel, data)?;
    }
    Ok(StepResult::ok(
        json!({}),
        format!(
            "copied {n} file(s) from {} to {}",
            cfg.in_path, cfg.out_path
        ),
    ))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "copy",
    summary: "copy a file or a directory's contents between checkouts (`ignore`: .gitignore lines)",
    shape: &promote_api::step_config::COPY,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &[],
    verify_recorded: None,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_lines_match_like_gitignore() {
        let r = ignore_rules("*.tmp\n# a comment\nsecret/\n").unwrap();
        let m = |p: &str| {
            r.matched_path_or_any_parents(std::path::Path::new("/in").join(p), false)
                .is_ignore()
        };
        assert!(m("a.tmp") && m("d/b.tmp") && m("secret/key") && m(".git/config"));
        assert!(!m("keep.yaml") && !m("d/keep.yaml"));
    }
}
