//! `github-push`: `git-push` for GitHub through its REST API, so that GitHub signs the commits
//! (verified) without a signing key tied to a user. As Kargo's step: the checkout's commits go to
//! a hidden staging ref `refs/kargo/staging/<promotion>` (over Git, which carries the objects),
//! are replayed one by one with `POST /git/commits` (at most 10), the branch is moved to the last
//! one (`PATCH /git/refs`, or `POST /git/refs` for a new branch), the staging ref is deleted, and
//! the checkout continues from the replayed commits. A commit signed by the git-clone step's key
//! is trusted: it is replayed without author and committer, so GitHub attributes and signs it (a
//! `Co-authored-by` trailer keeps an author who is not the committer); any other keeps its author
//! and committer exactly and is not verified. A branch that moved on is integrated and retried
//! as `git-push` does (`maxAttempts`). Outputs: `branch`, `commit`, `commitURL`.

use serde_json::{Value, json};

use super::git_provider::{Api, api_base, api_for, parse_repo};
use super::git_push::{Config, Delivery};
use super::{Runtime, StepError, StepResult, config, fail};
use crate::git::{Checkout, Mirror};

/// Kargo's default cap on the commits one push replays.
pub const MAX_REPLAYED: usize = 10;

/// The GitHub API side of one `github-push`.
pub(super) struct Replay {
    api: Api,
    /// `…/repos/<owner>/<repo>`.
    base: String,
    /// `refs/kargo/staging/<promotion>`.
    staging: String,
}

/// One commit as Git stores it.
struct RawCommit {
    tree: String,
    parents: Vec<String>,
    author: Option<Value>,
    committer: Option<Value>,
    author_id: (String, String),
    committer_id: (String, String),
    signed: bool,
    message: String,
}

/// `Name <email> <seconds> <±hhmm>` as GitHub's `{name, email, date}`.
fn identity(line: &str) -> Option<(Value, (String, String))> {
    let (name, rest) = line.split_once(" <")?;
    let (email, when) = rest.split_once("> ")?;
    let (secs, tz) = when.trim().split_once(' ')?;
    let secs: i64 = secs.parse().ok()?;
    let sign = if tz.starts_with('-') { -1 } else { 1 };
    let digits = tz.trim_start_matches(['+', '-']);
    let (h, m) = (
        digits.get(..2)?.parse::<i32>().ok()?,
        digits.get(2..4)?.parse::<i32>().ok()?,
    );
    let offset = jiff::tz::Offset::from_seconds(sign * (h * 3600 + m * 60)).ok()?;
    let date = jiff::Timestamp::from_second(secs)
        .ok()?
        .to_zoned(jiff::tz::TimeZone::fixed(offset))
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    Some((
        json!({ "name": name, "email": email, "date": date }),
        (name.to_owned(), email.to_owned()),
    ))
}

fn read_commit(mirror: &Mirror, sha: &str) -> Result<RawCommit, StepError> {
    let text = mirror.git(&["cat-file", "commit", sha])?;
    let (head, message) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut raw = RawCommit {
        tree: String::new(),
        parents: Vec::new(),
        author: None,
        committer: None,
        author_id: Default::default(),
        committer_id: Default::default(),
        signed: false,
        message: message.to_owned(),
    };
    for line in head.lines() {
        if let Some(t) = line.strip_prefix("tree ") {
            raw.tree = t.to_owned();
        } else if let Some(p) = line.strip_prefix("parent ") {
            raw.parents.push(p.to_owned());
        } else if let Some(a) = line.strip_prefix("author ") {
            if let Some((v, id)) = identity(a) {
                raw.author = Some(v);
                raw.author_id = id;
            }
        } else if let Some(c) = line.strip_prefix("committer ") {
            if let Some((v, id)) = identity(c) {
                raw.committer = Some(v);
                raw.committer_id = id;
            }
        } else if line.starts_with("gpgsig ") {
            raw.signed = true;
        }
    }
    if raw.tree.is_empty() {
        return Err(fail(format!(
            "github-push: commit {sha} could not be read (no tree)"
        )));
    }
    Ok(raw)
}

impl Replay {
    /// One attempt: stage, replay, move the branch. `Rejected` when the branch moved on.
    pub(super) fn push(
        &self,
        mirror: &Mirror,
        checkout: &Checkout,
        branch: &str,
        force: bool,
        trusted_signer: bool,
    ) -> Result<Delivery, StepError> {
        let head = checkout.head();
        let upstream = checkout.upstream();
        let tip = mirror
            .git(&[
                "ls-remote",
                "--heads",
                "origin",
                &format!("refs/heads/{branch}"),
            ])?
            .split_whitespace()
            .next()
            .map(str::to_owned);
        if let Some(t) = &tip {
            if t == head {
                return Ok(Delivery::Pushed(head.to_owned()));
            }
            if !force && t != upstream {
                return Ok(Delivery::Rejected(format!(
                    "{branch} moved on to {}",
                    &t[..12.min(t.len())]
                )));
            }
        }
        mirror.push_ref(head, &self.staging, true)?;
        let range = if upstream.is_empty() {
            head.to_owned()
        } else {
            format!("{upstream}..{head}")
        };
        let commits: Vec<String> = mirror
            .git(&["rev-list", "--reverse", "--topo-order", &range])?
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if commits.len() > MAX_REPLAYED {
            return Err(fail(format!(
                "github-push: commit range {range} contains {} commits, which exceeds the maximum of {MAX_REPLAYED} replayed at once; hint: push fewer commits per promotion, or use git-push",
                commits.len()
            )));
        }
        let mut replayed: std::collections::BTreeMap<String, String> = Default::default();
        let mut prev = upstream.to_owned();
        for sha in &commits {
            let raw = read_commit(mirror, sha)?;
            let parents: Vec<String> = if raw.parents.len() <= 1 {
                if prev.is_empty() {
                    vec![]
                } else {
                    vec![prev.clone()]
                }
            } else {
                raw.parents
                    .iter()
                    .map(|p| replayed.get(p).cloned().unwrap_or_else(|| p.clone()))
                    .collect()
            };
            let mut body = json!({ "tree": raw.tree, "parents": parents });
            if raw.signed && trusted_signer {
                // Trusted: GitHub attributes the commit to the token's identity and signs it.
                let mut message = raw.message.clone();
                if !raw.author_id.0.is_empty() && raw.author_id != raw.committer_id {
                    let (n, e) = &raw.author_id;
                    message = format!("{}\n\nCo-authored-by: {n} <{e}>", message.trim_end());
                }
                body["message"] = json!(message);
            } else {
                body["message"] = json!(raw.message);
                if let Some(a) = &raw.author {
                    body["author"] = a.clone();
                }
                if let Some(c) = &raw.committer {
                    body["committer"] = c.clone();
                }
            }
            let made = self
                .api
                .call("POST", &format!("{}/git/commits", self.base), Some(&body))?;
            let Some(new) = made.get("sha").and_then(Value::as_str) else {
                return Err(fail(format!(
                    "github-push: GitHub's answer to replaying commit {sha} has no sha"
                )));
            };
            replayed.insert(sha.clone(), new.to_owned());
            prev = new.to_owned();
        }
        let (status, _, text) = match &tip {
            Some(_) => self.api.send(
                "PATCH",
                &format!("{}/git/refs/heads/{branch}", self.base),
                Some(&json!({ "sha": prev, "force": force })),
            )?,
            None => self.api.send(
                "POST",
                &format!("{}/git/refs", self.base),
                Some(&json!({ "ref": format!("refs/heads/{branch}"), "sha": prev })),
            )?,
        };
        if status == 422 {
            return Ok(Delivery::Rejected(format!(
                "GitHub refused to move {branch}: {}",
                text.chars().take(200).collect::<String>()
            )));
        }
        if !(200..300).contains(&status) {
            let method = if tip.is_some() { "PATCH" } else { "POST" };
            return Err(self.api.refused(
                method,
                &format!("{}/git/refs", self.base),
                status,
                &text,
            ));
        }
        Ok(Delivery::Pushed(prev))
    }

    /// Delete the staging ref (best effort: a leftover is hidden and overwritten next time).
    fn clean_up(&self) {
        let refname = self.staging.trim_start_matches("refs/");
        let _ = self
            .api
            .send("DELETE", &format!("{}/git/refs/{refname}", self.base), None);
    }
}

fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("github-push", cfg)?;
    let path = cfg.path.clone();
    let repo_url = rt.checkout_at(&path)?.repo_url.clone();
    let repo = parse_repo(&repo_url).map_err(|e| fail(format!("github-push: {e}")))?;
    if rt.dry_run {
        return super::git_push::push(cfg, rt, "github-push", None);
    }
    let api = api_for(
        "github-push",
        &repo_url,
        &repo,
        "github",
        cfg.insecure_skip_tls_verify,
        rt,
    )?;
    let replay = Replay {
        api,
        base: api_base(&repo, "github"),
        staging: format!("refs/kargo/staging/{}", rt.ctx.promotion),
    };
    let result = super::git_push::push(cfg, rt, "github-push", Some(&replay));
    replay.clean_up();
    result
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "github-push",
    summary: "push a checkout's commits through GitHub's API, so GitHub signs them",
    shape: &promote_api::step_config::GITHUB_PUSH,
    run: |cfg, rt, _| run(cfg, rt),
    remote: true,
    outputs: &["branch", "commit", "commitURL"],
    verify_recorded: Some(super::verify_recorded_push),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_become_githubs_dates() {
        let (v, id) = identity("Ada Lovelace <ada@example.com> 1700000000 +0130").unwrap();
        assert_eq!(id, ("Ada Lovelace".into(), "ada@example.com".into()));
        assert_eq!(v["date"], "2023-11-14T23:43:20+01:30");
        let (v, _) = identity("B <b@x> 0 -0800").unwrap();
        assert_eq!(v["date"], "1969-12-31T16:00:00-08:00");
        assert!(identity("no email here").is_none());
    }
}
