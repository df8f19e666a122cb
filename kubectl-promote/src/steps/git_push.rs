//! `git-push`: push a checkout's commits to its branch, to `targetBranch`, or to a generated
//! `kargo/promotion/<promotion>` branch (forced, Kargo's `generateTargetBranch`), or push a `tag`.
//! A push rejected because the remote moved on is retried up to `maxAttempts` (default 10) with
//! jittered exponential backoff, after fetching the remote's new commits and replaying ours on
//! top (a three-way merge per changed file; a real conflict fails and names the file). Pushes of
//! one repository and branch from this machine are serialized with a file lock, as Kargo
//! serializes them in-process. Outputs: `commit`, `branch`, `commitURL` (known providers).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{PushedCommit, Runtime, StepError, StepResult, config, fail};
use crate::git::{GitError, PushOutcome, RemoteRef};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Config {
    pub(super) path: String,
    #[serde(default)]
    target_branch: String,
    #[serde(default)]
    generate_target_branch: bool,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    force: bool,
    max_attempts: Option<i64>,
    provider: Option<String>,
    #[serde(default, rename = "insecureSkipTLSVerify")]
    pub(super) insecure_skip_tls_verify: bool,
}

/// How one push attempt ended.
pub(super) enum Delivery {
    /// The branch now points at this commit.
    Pushed(String),
    /// The remote moved on (or refused a non-fast-forward): why.
    Rejected(String),
}

/// Default `maxAttempts`, as Kargo.
pub const DEFAULT_MAX_ATTEMPTS: i64 = 10;

/// Backoff before attempt `n` (1-based retries): 250 ms × 1.5ⁿ, capped at 10 s, ±50 % jitter.
fn backoff(n: u32) -> Duration {
    let base = 250.0 * 1.5f64.powi(n.saturating_sub(1) as i32);
    let capped = base.min(10_000.0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let mixed = (u64::from(nanos) ^ u64::from(std::process::id()).rotate_left(17))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let jitter = 0.5 + (mixed >> 11) as f64 / (1u64 << 53) as f64; // 0.5..1.5
    Duration::from_millis((capped * jitter) as u64)
}

/// A web URL for a commit on a well-known provider.
pub fn commit_url(repo_url: &str, commit: &str, provider: Option<&str>) -> Option<String> {
    let norm = promote_api::urls::normalize_git(repo_url);
    let web = if let Some(rest) = norm.strip_prefix("ssh://") {
        let rest = rest.split_once('@').map_or(rest, |(_, h)| h);
        format!("https://{rest}")
    } else {
        norm.clone()
    };
    let host = web
        .strip_prefix("https://")
        .or_else(|| web.strip_prefix("http://"))?
        .split('/')
        .next()?;
    let provider = provider.map(str::to_owned).or_else(|| {
        Some(
            match host {
                "github.com" => "github",
                "gitlab.com" => "gitlab",
                _ => return None,
            }
            .to_owned(),
        )
    })?;
    Some(match provider.as_str() {
        "github" | "gitea" => format!("{web}/commit/{commit}"),
        "gitlab" => format!("{web}/-/commit/{commit}"),
        "bitbucket" => format!("{web}/commits/{commit}"),
        _ => return None,
    })
}

pub(super) fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    push(config("git-push", cfg)?, rt, "git-push", None)
}

/// Push a checkout's commits, over Git or (`github-push`) replayed through GitHub's API.
pub(super) fn push(
    cfg: Config,
    rt: &mut Runtime<'_>,
    step: &str,
    via: Option<&super::github_push::Replay>,
) -> Result<StepResult, StepError> {
    let modes = [
        !cfg.target_branch.is_empty(),
        cfg.generate_target_branch,
        !cfg.tag.is_empty(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if modes > 1 {
        return Err(fail(format!(
            "{step}: set at most one of targetBranch, generateTargetBranch and tag"
        )));
    }
    if cfg.force && !cfg.tag.is_empty() {
        return Err(fail(format!("{step}: force cannot be used with tag")));
    }
    let attempts = cfg.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    if attempts < 1 {
        return Err(fail(format!(
            "{step}: maxAttempts must be at least 1, got {attempts}"
        )));
    }
    let promotion = rt.ctx.promotion.clone();
    let dry_run = rt.dry_run;
    let co = rt.checkout_at(&cfg.path)?;
    let (branch, force) = if cfg.generate_target_branch {
        (format!("kargo/promotion/{promotion}"), true)
    } else if !cfg.target_branch.is_empty() {
        (cfg.target_branch.clone(), cfg.force)
    } else if !cfg.tag.is_empty() {
        (String::new(), false)
    } else {
        match co.checkout.branch.clone() {
            Some(b) => (b, cfg.force),
            None => {
                return Err(fail(format!(
                    "{step}: the checkout at \"./{}\" is not on a branch (it checked out a commit or tag); set targetBranch",
                    co.path
                )));
            }
        }
    };
    let mirror = co.checkout.mirror().clone();
    let head = co.checkout.head().to_owned();
    let url = commit_url(&co.repo_url, &head, cfg.provider.as_deref());
    let files = co.checkout.touched();
    if dry_run {
        let target = if cfg.tag.is_empty() {
            format!("branch {branch:?}")
        } else {
            format!("tag {:?}", cfg.tag)
        };
        let mut out = json!({ "commit": head });
        if !branch.is_empty() {
            out["branch"] = json!(branch);
        }
        return Ok(StepResult::ok(
            out,
            format!(
                "dry run: would push {} to {target}",
                &head[..12.min(head.len())]
            ),
        ));
    }
    if !cfg.tag.is_empty() {
        // An annotated tag git-tag made is pushed as it is; otherwise the commit is tagged
        // lightweight, as Kargo does without git-tag.
        let (object, forced) = co
            .checkout
            .tags
            .get(&cfg.tag)
            .cloned()
            .unwrap_or_else(|| (head.clone(), false));
        mirror.push_ref(&object, &format!("refs/tags/{}", cfg.tag), forced)?;
        co.checkout.tags.remove(&cfg.tag);
        return Ok(StepResult::ok(
            json!({ "commit": head }),
            format!("tagged {} as {:?}", &head[..12.min(head.len())], cfg.tag),
        ));
    }
    let same_branch = co.checkout.branch.as_deref() == Some(branch.as_str());
    if same_branch && !co.checkout.has_unpushed() && co.checkout.upstream() == head && !force {
        let mut out = json!({ "commit": head, "branch": branch });
        if let Some(u) = url {
            out["commitURL"] = json!(u);
        }
        return Ok(StepResult::ok(out, "up to date: nothing to push"));
    }
    let idx = rt.checkout_index(&cfg.path)?;
    let _lock = mirror.lock(&format!("push-{branch}"))?;
    let mut attempt = 1;
    loop {
        let co = &mut rt.checkouts[idx];
        let local_head = co.checkout.head().to_owned();
        let outcome = match via {
            None => match mirror.push(&local_head, &branch, force)? {
                PushOutcome::Pushed => Delivery::Pushed(local_head.clone()),
                PushOutcome::Rejected(reason) => Delivery::Rejected(reason),
            },
            Some(replay) => replay.push(
                &mirror,
                &co.checkout,
                &branch,
                force,
                co.signing_key.is_some(),
            )?,
        };
        match outcome {
            Delivery::Pushed(head) => {
                if head == local_head {
                    co.checkout.mark_pushed(&branch);
                } else {
                    // Replayed through an API: the remote's commits carry the same trees under
                    // new ids; the checkout continues from them.
                    let tip = mirror.fetch(&RemoteRef::Branch(branch.clone()))?;
                    co.checkout.adopt(&branch, &tip);
                }
                let provider = if via.is_some() {
                    Some("github")
                } else {
                    cfg.provider.as_deref()
                };
                let url = commit_url(&co.repo_url, &head, provider);
                let mut out = json!({ "commit": head, "branch": branch });
                if let Some(u) = &url {
                    out["commitURL"] = json!(u);
                }
                let retries = if attempt > 1 {
                    format!(
                        " after {} retr{}",
                        attempt - 1,
                        if attempt == 2 { "y" } else { "ies" }
                    )
                } else {
                    String::new()
                };
                let msg = format!(
                    "pushed {} to {branch}{retries}",
                    &head[..12.min(head.len())]
                );
                let repo_url = co.repo_url.clone();
                rt.pushed.push(PushedCommit {
                    repo_url,
                    branch: branch.clone(),
                    commit: head,
                    files,
                });
                return Ok(StepResult::ok(out, msg));
            }
            Delivery::Rejected(reason) => {
                if attempt >= attempts {
                    return Err(StepError::Git(GitError::Command {
                        command: "push".into(),
                        repo: mirror.display_url(),
                        stderr: format!(
                            "rejected {attempt} time(s) ({reason}); hint: raise maxAttempts or retry the promotion"
                        ),
                    }));
                }
                std::thread::sleep(backoff(attempt as u32));
                let tip = mirror.fetch(&RemoteRef::Branch(branch.clone()))?;
                let key = co.signing_key.clone();
                co.checkout.rebase_onto(&tip, &branch, key.as_deref())?;
                attempt += 1;
            }
        }
    }
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "git-push",
    summary: "push a checkout's commits (rebase and retry on a non-fast-forward)",
    shape: &promote_api::step_config::GIT_PUSH,
    run: |cfg, rt, _| run(cfg, rt),
    remote: true,
    outputs: &["branch", "commit", "commitURL"],
    verify_recorded: Some(super::verify_recorded_push),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_urls() {
        assert_eq!(
            commit_url("https://github.com/o/r.git", "abc", None).as_deref(),
            Some("https://github.com/o/r/commit/abc")
        );
        assert_eq!(
            commit_url("git@gitlab.com:o/r.git", "abc", None).as_deref(),
            Some("https://gitlab.com/o/r/-/commit/abc")
        );
        assert_eq!(commit_url("https://git.example.com/o/r", "abc", None), None);
        assert_eq!(
            commit_url("https://git.example.com/o/r", "abc", Some("gitea")).as_deref(),
            Some("https://git.example.com/o/r/commit/abc")
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_millis(375));
        assert!(backoff(30) <= Duration::from_millis(15_000));
        assert!(backoff(30) >= Duration::from_millis(5_000));
    }
}
