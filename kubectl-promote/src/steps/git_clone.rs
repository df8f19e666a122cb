//! `git-clone`: check out branches, tags or commits of a repository into paths of the work
//! directory. No files are written to disk: a checkout is a view of the mirror's object database.
//! A missing branch with `create: true` is created as an orphan with an empty "Initial commit"
//! (Kargo's behaviour). Output: `commits` (checkout `as` or path → HEAD SHA).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Runtime, StepError, StepResult, WorkCheckout, config, fail};
use crate::git::tree::clean_path;
use crate::git::{Checkout, RemoteRef};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(rename = "repoURL")]
    repo_url: String,
    checkout: Vec<CheckoutConfig>,
    author: Option<Author>,
    #[serde(rename = "insecureSkipTLSVerify", default)]
    insecure_skip_tls_verify: bool,
    #[serde(default)]
    recurse_submodules: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CheckoutConfig {
    path: String,
    #[serde(default)]
    branch: String,
    #[serde(default)]
    commit: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    create: bool,
    #[serde(rename = "as", default)]
    alias: String,
}

/// The `author` of git-clone and git-commit.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Author {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub signing_key: String,
}

pub(super) fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("git-clone", cfg)?;
    if cfg.recurse_submodules {
        return Err(fail(
            "git-clone: recurseSubmodules is not supported by promote",
        ));
    }
    if cfg.checkout.is_empty() {
        return Err(fail("git-clone: checkout must list at least one path"));
    }
    if cfg.insecure_skip_tls_verify {
        rt.mirror_opts.insecure_skip_tls_verify = true;
    }
    let mirror = rt.mirror(&cfg.repo_url)?;
    let author = cfg
        .author
        .as_ref()
        .filter(|a| !a.name.is_empty() && !a.email.is_empty())
        .map(|a| (a.name.clone(), a.email.clone()));
    let signing_key = cfg
        .author
        .as_ref()
        .map(|a| a.signing_key.clone())
        .filter(|k| !k.is_empty());
    let mut commits = Map::new();
    let mut lines = Vec::new();
    for co in &cfg.checkout {
        let path = clean_path(&co.path)?;
        if let Some(other) = rt.checkouts.iter().find(|c| {
            c.path == path
                || c.path.starts_with(&format!("{path}/"))
                || path.starts_with(&format!("{}/", c.path))
                || c.path.is_empty()
                || path.is_empty()
        }) {
            return Err(fail(format!(
                "git-clone: path {:?} overlaps the checkout at \"./{}\"; give each checkout its own directory",
                co.path, other.path
            )));
        }
        let set = [
            !co.branch.is_empty(),
            !co.commit.is_empty(),
            !co.tag.is_empty(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if set > 1 {
            return Err(fail(format!(
                "git-clone: checkout {:?} sets more than one of branch, commit and tag",
                co.path
            )));
        }
        if co.create && co.branch.is_empty() {
            return Err(fail(format!(
                "git-clone: checkout {:?}: create needs a branch",
                co.path
            )));
        }
        let what = if !co.branch.is_empty() {
            RemoteRef::Branch(co.branch.clone())
        } else if !co.commit.is_empty() {
            RemoteRef::Commit(co.commit.clone())
        } else if !co.tag.is_empty() {
            RemoteRef::Tag(co.tag.clone())
        } else {
            RemoteRef::Default
        };
        let checkout = match Checkout::start(mirror.clone(), &what) {
            Ok(c) => c,
            Err(crate::git::GitError::NotFound { .. }) if co.create => {
                lines.push(format!("created branch {:?}", co.branch));
                Checkout::create_orphan(mirror.clone(), &co.branch, !rt.dry_run)?
            }
            Err(e) => return Err(e.into()),
        };
        let key = if co.alias.is_empty() {
            co.path.clone()
        } else {
            co.alias.clone()
        };
        lines.push(format!(
            "{} {} at {}",
            co.path,
            checkout.branch.as_deref().unwrap_or("(detached)"),
            &checkout.head()[..checkout.head().len().min(12)]
        ));
        commits.insert(key, json!(checkout.head()));
        rt.checkouts.push(WorkCheckout {
            path,
            repo_url: mirror.display_url(),
            checkout,
            author: author.clone(),
            signing_key: signing_key.clone(),
        });
    }
    Ok(StepResult::ok(
        json!({ "commits": commits }),
        lines.join("; "),
    ))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "git-clone",
    summary: "clone a repository and check out branches, tags or commits into the work directory",
    shape: &promote_api::step_config::GIT_CLONE,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &["commits"],
    verify_recorded: None,
};
