//! `file-write`: write `contents` to a file of a checkout. Without `overwrite`, an existing file
//! is a failure, as in Kargo. `permissions` (Kargo's default 0600) is checked as Kargo checks it;
//! a Git tree records only whether a file is executable, and promote writes regular files, so a
//! mode with an execute bit is refused rather than silently dropped.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Runtime, StepError, StepResult, config, fail};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    path: String,
    contents: String,
    #[serde(default)]
    permissions: String,
    #[serde(default)]
    overwrite: bool,
}

/// Kargo's permission rules: an octal mode of ordinary permission bits only.
fn check_permissions(p: &str) -> Result<(), StepError> {
    if p.is_empty() {
        return Ok(());
    }
    let valid =
        p.len() == 4 && p.starts_with('0') && p[1..].bytes().all(|b| (b'0'..=b'7').contains(&b));
    if !valid {
        return Err(fail(format!(
            "file-write: invalid permissions {p:?}: must be an octal file mode such as 0644"
        )));
    }
    if p[1..].bytes().any(|b| (b - b'0') & 1 == 1) {
        return Err(fail(format!(
            "file-write: permissions {p:?} make the file executable, which promote's Git engine does not record; use a mode without execute bits (e.g. 0644)"
        )));
    }
    Ok(())
}

fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("file-write", cfg)?;
    check_permissions(&cfg.permissions)?;
    let (co, rel) = rt.resolve(&cfg.path)?;
    if rel.is_empty() || co.checkout.is_dir(&rel)? {
        return Err(fail(format!("file-write: {} is a directory", cfg.path)));
    }
    if co.checkout.read(&rel)?.is_some() && !cfg.overwrite {
        return Err(fail(format!(
            "file {:?} already exists; set overwrite to true to replace it",
            cfg.path
        )));
    }
    co.checkout.write(&rel, cfg.contents.clone().into_bytes())?;
    Ok(StepResult::ok(
        json!({}),
        format!("{}: {} byte(s) written", cfg.path, cfg.contents.len()),
    ))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "file-write",
    summary: "write a file into a checkout (`overwrite` to replace one)",
    shape: &promote_api::step_config::FILE_WRITE,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &[],
    verify_recorded: None,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_follow_kargo_and_refuse_what_git_cannot_keep() {
        assert!(check_permissions("").is_ok());
        assert!(check_permissions("0644").is_ok());
        assert!(check_permissions("0600").is_ok());
        assert!(check_permissions("644").is_err());
        assert!(check_permissions("0999").is_err());
        let e = check_permissions("0755").unwrap_err().to_string();
        assert!(e.contains("executable"), "{e}");
    }
}
