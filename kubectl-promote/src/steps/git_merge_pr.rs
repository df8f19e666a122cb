//! `git-merge-pr`: merge an open pull request (GitHub, Gitea, Azure DevOps, Bitbucket) or merge
//! request (GitLab) with the provider's merge API, as Kargo's step does: one already merged
//! succeeds with its merge commit, one closed unmerged or in conflict fails, one not ready yet
//! (checks pending, a draft, a rule not satisfied) fails unless `wait: true`, which asks again
//! every `pollInterval` (default 10s) within `--timeout`. Bitbucket's API cannot say whether a
//! pull request may be merged, so the merge is tried and its refusal fails the step (Kargo warns
//! the same). Providers, tokens and clients are `git_provider`'s. Output: `commit`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::git_provider::{Api, PrState, Repo, api_for, pr_state, pr_url, provider_of};
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
        "azure" => &["noFastForward", "rebase", "rebaseMerge", "squash"],
        "bitbucket" => &["fast_forward", "merge_commit", "squash"],
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

/// One attempt: read the pull request, merge it when the provider says it can be.
fn attempt(
    api: &Api,
    repo: &Repo,
    provider: &str,
    n: i64,
    method: &str,
) -> Result<Look, StepError> {
    let url = pr_url(repo, provider, n);
    let pr = api.call("GET", &url, None)?;
    let str_of = |k: &str| pr.get(k).and_then(Value::as_str).unwrap_or_default();
    let bool_of = |k: &str| pr.get(k).and_then(Value::as_bool).unwrap_or(false);
    match pr_state(api, repo, provider, &pr)? {
        PrState::Merged(commit) => return Ok(Look::Merged(commit)),
        PrState::Closed => {
            return Err(fail(format!(
                "git-merge-pr: pull request {n} is closed but not merged"
            )));
        }
        PrState::Open => {}
    }
    let merged = |api: &Api| -> Result<Look, StepError> {
        match pr_state(api, repo, provider, &api.call("GET", &url, None)?)? {
            PrState::Merged(commit) => Ok(Look::Merged(commit)),
            _ => Ok(Look::NotReady("the merge has not completed yet".into())),
        }
    };
    // Azure DevOps completes a pull request by updating it; the others have a merge endpoint.
    let merge_url = if provider == "azure" {
        url.clone()
    } else {
        format!("{url}/merge")
    };
    match provider {
        "gitlab" => {
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
            let done = api.call("PUT", &merge_url, Some(&body))?;
            match pr_state(api, repo, provider, &done)? {
                PrState::Merged(commit) => Ok(Look::Merged(commit)),
                _ => merged(api),
            }
        }
        "github" => {
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
            let (status, answer, text) = api.send("PUT", &merge_url, Some(&body))?;
            if status == 405 {
                let msg = answer
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or(&text)
                    .to_owned();
                let transient = !msg.contains(GH_NOT_ALLOWED)
                    && (msg.contains(GH_BASE_MODIFIED)
                        || msg.contains(GH_NOT_MERGEABLE)
                        || policy_blocked);
                if transient {
                    return Ok(Look::NotReady(msg));
                }
                return Err(fail(format!(
                    "git-merge-pr: GitHub refused to merge pull request {n}: {}",
                    msg.chars().take(300).collect::<String>()
                )));
            }
            if !(200..300).contains(&status) {
                return Err(api.refused("PUT", &merge_url, status, &text));
            }
            if answer.get("merged").and_then(Value::as_bool) != Some(true) {
                return Err(fail(format!(
                    "git-merge-pr: merge rejected for pull request {n}"
                )));
            }
            match merged(api)? {
                Look::Merged(c) if !c.is_empty() => Ok(Look::Merged(c)),
                _ => Ok(Look::Merged(
                    answer
                        .get("sha")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                )),
            }
        }
        "azure" => {
            let status = str_of("mergeStatus");
            if bool_of("isDraft") || status != "succeeded" {
                return Ok(Look::NotReady(format!(
                    "merge status {:?}",
                    if bool_of("isDraft") { "draft" } else { status }
                )));
            }
            let mut body = json!({
                "status": "completed",
                "lastMergeSourceCommit": pr.get("lastMergeSourceCommit").cloned().unwrap_or(Value::Null),
            });
            if !method.is_empty() {
                body["completionOptions"] = json!({ "mergeStrategy": method });
            }
            api.call("PATCH", &merge_url, Some(&body))?;
            // Azure DevOps completes a pull request asynchronously: read it again for a while.
            for _ in 0..10 {
                if let Look::Merged(c) = merged(api)? {
                    return Ok(Look::Merged(c));
                }
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            Ok(Look::NotReady("the completion has not finished yet".into()))
        }
        "bitbucket" => {
            if bool_of("draft") {
                return Ok(Look::NotReady("draft".into()));
            }
            let mut body = json!({ "type": "pullrequestMergeParameters" });
            if !method.is_empty() {
                body["merge_strategy"] = json!(method);
            }
            let (status, answer, text) = api.send("POST", &merge_url, Some(&body))?;
            if status == 202 {
                return Err(fail(format!(
                    "git-merge-pr: pull request {n} merge was accepted asynchronously and cannot be awaited"
                )));
            }
            if !(200..300).contains(&status) {
                return Err(api.refused("POST", &merge_url, status, &text));
            }
            match pr_state(api, repo, provider, &answer)? {
                PrState::Merged(commit) => Ok(Look::Merged(commit)),
                _ => Err(fail(format!(
                    "git-merge-pr: pull request {n} is not merged after the merge call"
                ))),
            }
        }
        _ => {
            if bool_of("draft") || !bool_of("mergeable") {
                return Ok(Look::NotReady("not mergeable".into()));
            }
            let method = if method.is_empty() { "merge" } else { method };
            let (status, _, text) = api.send("POST", &merge_url, Some(&json!({ "Do": method })))?;
            if !(200..300).contains(&status) {
                return Err(api.refused("POST", &merge_url, status, &text));
            }
            merged(api)
        }
    }
}

fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("git-merge-pr", cfg)?;
    let (repo, provider) = provider_of("git-merge-pr", &cfg.repo_url, cfg.provider.as_deref())?;
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
    loop {
        let why = match attempt(&api, &repo, &provider, n, &cfg.merge_method)? {
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
