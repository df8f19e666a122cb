//! `git-merge-pr`: merge an open pull request (GitHub, Gitea) or merge request (GitLab) with the
//! provider's merge API, as Kargo's step does: one already merged succeeds with its merge commit,
//! one closed unmerged or in conflict fails, one not ready yet (checks pending, a draft, a rule
//! not satisfied) fails unless `wait: true`, which asks again every `pollInterval` (default 10s)
//! within `--timeout`. Provider, token and client come from `git-open-pr`. Output: `commit`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::git_open_pr::{Api, Repo, api_base, api_for, provider_of};
use super::{Runtime, StepError, StepResult, config, fail};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(rename = "repoURL")]
    repo_url: String,
    pr_number: i64,
    provider: Option<String>,
    #[serde(default, rename = "insecureSkipTLSVerify")]
    insecure_skip_tls_verify: bool,
    #[serde(default)]
    wait: bool,
    #[serde(default)]
    poll_interval: String,
    #[serde(default)]
    merge_method: String,
}

/// The merge methods each provider accepts (Kargo's table; GitLab's empty method defers to the
/// merge request's and project's squash settings).
fn methods(provider: &str) -> &'static [&'static str] {
    match provider {
        "github" => &["merge", "rebase", "squash"],
        "gitlab" => &["merge", "squash"],
        _ => &[
            "fast-forward-only",
            "manually-merged",
            "merge",
            "rebase",
            "rebase-merge",
            "squash",
        ],
    }
}

/// Whether `provider` accepts merge method `method`.
pub(super) fn check_method(provider: &str, method: &str) -> Result<(), String> {
    if methods(provider).contains(&method) {
        return Ok(());
    }
    Err(format!(
        "git-merge-pr: unsupported merge method {method:?} for {provider}; use one of {}",
        methods(provider).join(", ")
    ))
}

/// What one look at the pull request decided.
enum Look {
    /// Merged, with its merge commit.
    Merged(String),
    /// Open and not mergeable yet; may clear on its own.
    NotReady(String),
}

/// The substrings of GitHub's 405 answers from the merge endpoint (its one status for every
/// refusal): a method the repository does not allow never clears; a moved base or the generic
/// "not mergeable" may.
const GH_NOT_ALLOWED: &str = "not allowed";
const GH_BASE_MODIFIED: &str = "Base branch was modified";
const GH_NOT_MERGEABLE: &str = "Pull Request is not mergeable";

fn pr_url(repo: &Repo, provider: &str, n: i64) -> String {
    match provider {
        "gitlab" => format!("{}/merge_requests/{n}", api_base(repo, provider)),
        _ => format!("{}/pulls/{n}", api_base(repo, provider)),
    }
}

fn sha(pr: &Value) -> String {
    ["merge_commit_sha", "squash_commit_sha"]
        .iter()
        .find_map(|k| pr.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()))
        .unwrap_or_default()
        .to_owned()
}

/// One attempt: read the pull request, merge it when the provider says it can be.
fn attempt(api: &Api, url: &str, provider: &str, n: i64, method: &str) -> Result<Look, StepError> {
    let pr = api.call("GET", url, None)?;
    let str_of = |k: &str| pr.get(k).and_then(Value::as_str).unwrap_or_default();
    let bool_of = |k: &str| pr.get(k).and_then(Value::as_bool).unwrap_or(false);
    match provider {
        "gitlab" => {
            match str_of("state") {
                "merged" => return Ok(Look::Merged(sha(&pr))),
                "opened" => {}
                _ => {
                    return Err(fail(format!(
                        "git-merge-pr: pull request {n} is closed but not merged"
                    )));
                }
            }
            let status = str_of("detailed_merge_status");
            if bool_of("draft") || status != "mergeable" {
                return Ok(Look::NotReady(format!(
                    "merge status {:?}",
                    if bool_of("draft") { "draft" } else { status }
                )));
            }
            let body = if method == "squash" {
                json!({ "squash": true })
            } else {
                json!({})
            };
            let merged = api.call("PUT", &format!("{url}/merge"), Some(&body))?;
            Ok(Look::Merged(sha(&merged)))
        }
        "github" => {
            if !str_of("merged_at").is_empty() || bool_of("merged") {
                return Ok(Look::Merged(sha(&pr)));
            }
            if str_of("state") != "open" {
                return Err(fail(format!(
                    "git-merge-pr: pull request {n} is closed but not merged"
                )));
            }
            let state = str_of("mergeable_state");
            let policy_blocked = match state {
                "clean" | "unstable" | "has_hooks" => false,
                "dirty" => {
                    return Err(fail(format!(
                        "git-merge-pr: pull request {n} has conflicts and cannot be merged"
                    )));
                }
                "blocked" | "behind" => true,
                "draft" | "unknown" => {
                    return Ok(Look::NotReady(format!("mergeable_state {state:?}")));
                }
                _ => {
                    if bool_of("draft") || !bool_of("mergeable") {
                        return Ok(Look::NotReady("not mergeable".into()));
                    }
                    false
                }
            };
            let body = if method.is_empty() {
                json!({})
            } else {
                json!({ "merge_method": method })
            };
            let (status, answer, text) = api.send("PUT", &format!("{url}/merge"), Some(&body))?;
            if status == 405 {
                let msg = answer
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or(&text)
                    .to_owned();
                let transient = if msg.contains(GH_NOT_ALLOWED) {
                    false
                } else {
                    msg.contains(GH_BASE_MODIFIED)
                        || msg.contains(GH_NOT_MERGEABLE)
                        || policy_blocked
                };
                if transient {
                    return Ok(Look::NotReady(msg));
                }
                return Err(fail(format!(
                    "git-merge-pr: GitHub refused to merge pull request {n}: {}",
                    msg.chars().take(300).collect::<String>()
                )));
            }
            if !(200..300).contains(&status) {
                return Err(api.refused("PUT", &format!("{url}/merge"), status, &text));
            }
            if answer.get("merged").and_then(Value::as_bool) != Some(true) {
                return Err(fail(format!(
                    "git-merge-pr: merge rejected for pull request {n}"
                )));
            }
            let after = api.call("GET", url, None)?;
            let commit = match sha(&after) {
                s if s.is_empty() => answer
                    .get("sha")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                s => s,
            };
            Ok(Look::Merged(commit))
        }
        _ => {
            if bool_of("merged") {
                return Ok(Look::Merged(sha(&pr)));
            }
            if str_of("state") != "open" {
                return Err(fail(format!(
                    "git-merge-pr: pull request {n} is closed but not merged"
                )));
            }
            if bool_of("draft") || !bool_of("mergeable") {
                return Ok(Look::NotReady("not mergeable".into()));
            }
            let method = if method.is_empty() { "merge" } else { method };
            let (status, _, text) = api.send(
                "POST",
                &format!("{url}/merge"),
                Some(&json!({ "Do": method })),
            )?;
            if !(200..300).contains(&status) {
                return Err(api.refused("POST", &format!("{url}/merge"), status, &text));
            }
            Ok(Look::Merged(sha(&api.call("GET", url, None)?)))
        }
    }
}

fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("git-merge-pr", cfg)?;
    let (repo, provider) = provider_of("git-merge-pr", &cfg.repo_url, cfg.provider.as_deref())?;
    if !["github", "gitlab", "gitea"].contains(&provider.as_str()) {
        return Err(fail(format!(
            "git-merge-pr: provider {provider:?} is not supported; use github, gitlab or gitea"
        )));
    }
    if cfg.pr_number < 1 {
        return Err(fail(format!(
            "git-merge-pr: prNumber must be at least 1, got {}",
            cfg.pr_number
        )));
    }
    if !cfg.merge_method.is_empty() {
        check_method(&provider, &cfg.merge_method).map_err(fail)?;
    }
    let poll = match cfg.poll_interval.as_str() {
        "" => std::time::Duration::from_secs(10),
        p => promote_api::duration::parse(p).map_err(|e| {
            fail(format!(
                "git-merge-pr: pollInterval {p:?} is not a duration: {e}"
            ))
        })?,
    };
    let n = cfg.pr_number;
    if rt.dry_run {
        return Ok(StepResult::skipped(format!(
            "dry run: would merge {provider} pull request #{n}"
        )));
    }
    let api = api_for(
        "git-merge-pr",
        &cfg.repo_url,
        &repo,
        &provider,
        cfg.insecure_skip_tls_verify,
        rt,
    )?;
    let url = pr_url(&repo, &provider, n);
    loop {
        let why = match attempt(&api, &url, &provider, n, &cfg.merge_method)? {
            Look::Merged(commit) => {
                return Ok(StepResult::ok(
                    json!({ "commit": commit }),
                    format!("pull request #{n} merged as {commit}"),
                ));
            }
            Look::NotReady(why) => why,
        };
        if !cfg.wait {
            return Err(fail(format!(
                "git-merge-pr: pull request {n} is not ready to merge ({why}) and wait is disabled; hint: set wait: true to wait for it"
            )));
        }
        if rt
            .deadline
            .is_none_or(|d| std::time::Instant::now() + poll >= d)
        {
            return Err(StepError::Timeout(format!(
                "git-merge-pr: pull request #{n} was still not ready to merge ({why}) at the timeout"
            )));
        }
        if crate::interrupt::requested().is_some() {
            return Err(StepError::Stopped(format!(
                "waiting to merge pull request #{n}"
            )));
        }
        rt.note(&format!(
            "pull request #{n} is not ready to merge ({why}); trying again in {:.0}s",
            poll.as_secs_f64()
        ));
        std::thread::sleep(poll);
    }
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "git-merge-pr",
    summary: "merge a pull request (its merge commit), or wait until it can be merged",
    shape: &promote_api::step_config::GIT_MERGE_PR,
    run: |cfg, rt, _| run(cfg, rt),
    remote: true,
    outputs: &["commit"],
    verify_recorded: None,
};
