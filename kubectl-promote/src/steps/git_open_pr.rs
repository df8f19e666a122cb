//! `git-open-pr`: open a pull request (GitHub, Gitea, Azure DevOps, Bitbucket) or merge request
//! (GitLab) from `sourceBranch` to `targetBranch`, reusing an open one for the same branches
//! (idempotent); and `git-wait-for-pr`: wait for one to be merged. The providers, their API
//! addresses and tokens are `git_provider`'s. Output: `pr` (`{id, url}`), `commit`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::git_provider::{NewPr, PrState, api_for, find_or_open, pr_state, pr_url, provider_of};
use super::{Runtime, StepError, StepResult, config, fail};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(rename = "repoURL")]
    repo_url: String,
    source_branch: String,
    target_branch: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    labels: Vec<String>,
    provider: Option<String>,
    #[serde(default, rename = "insecureSkipTLSVerify")]
    insecure_skip_tls_verify: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WaitConfig {
    #[serde(rename = "repoURL")]
    repo_url: String,
    pr_number: i64,
    provider: Option<String>,
    #[serde(default)]
    poll_interval: String,
    #[serde(default, rename = "insecureSkipTLSVerify")]
    insecure_skip_tls_verify: bool,
}

/// `git-wait-for-pr`: wait until the pull request is merged (output `commit`: the merge commit)
/// or closed without merging (the step fails), asking every `pollInterval` (default 10s) within
/// `--timeout`, as Kargo's controller re-runs the step.
fn wait(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: WaitConfig = config("git-wait-for-pr", cfg)?;
    let (repo, provider) = provider_of("git-wait-for-pr", &cfg.repo_url, cfg.provider.as_deref())?;
    let poll = match cfg.poll_interval.as_str() {
        "" => std::time::Duration::from_secs(10),
        p => promote_api::duration::parse(p).map_err(|e| {
            fail(format!(
                "git-wait-for-pr: pollInterval {p:?} is not a duration: {e}"
            ))
        })?,
    };
    if rt.dry_run {
        return Ok(StepResult::skipped(format!(
            "dry run: would wait for {provider} pull request #{}",
            cfg.pr_number
        )));
    }
    let api = api_for(
        "git-wait-for-pr",
        &cfg.repo_url,
        &repo,
        &provider,
        cfg.insecure_skip_tls_verify,
        rt,
    )?;
    let url = pr_url(&repo, &provider, cfg.pr_number);
    loop {
        let pr = api.call("GET", &url, None)?;
        match pr_state(&api, &repo, &provider, &pr)? {
            PrState::Merged(commit) => {
                return Ok(StepResult::ok(
                    json!({ "commit": commit }),
                    format!("pull request #{} merged as {commit}", cfg.pr_number),
                ));
            }
            PrState::Closed => {
                return Err(fail(format!(
                    "git-wait-for-pr: pull request #{} was closed without being merged",
                    cfg.pr_number
                )));
            }
            PrState::Open => {}
        }
        if rt
            .deadline
            .is_none_or(|d| std::time::Instant::now() + poll >= d)
        {
            return Err(StepError::Timeout(format!(
                "git-wait-for-pr: pull request #{} was still open at the timeout",
                cfg.pr_number
            )));
        }
        if crate::interrupt::requested().is_some() {
            return Err(StepError::Stopped(format!(
                "waiting for pull request #{}",
                cfg.pr_number
            )));
        }
        rt.note(&format!(
            "pull request #{} is open; asking again in {:.0}s",
            cfg.pr_number,
            poll.as_secs_f64()
        ));
        std::thread::sleep(poll);
    }
}

pub(super) fn run(
    cfg: &Value,
    rt: &mut Runtime<'_>,
    _alias: &str,
) -> Result<StepResult, StepError> {
    let cfg: Config = config("git-open-pr", cfg)?;
    let (repo, provider) = provider_of("git-open-pr", &cfg.repo_url, cfg.provider.as_deref())?;
    if rt.dry_run {
        return Ok(StepResult::skipped(format!(
            "dry run: would open a {provider} pull request from {} to {}",
            cfg.source_branch, cfg.target_branch
        )));
    }
    let title = if cfg.title.is_empty() {
        format!(
            "Promote {} to {}",
            rt.ctx.target_freight.alias().unwrap_or(
                &rt.ctx.target_freight.name()[..7.min(rt.ctx.target_freight.name().len())]
            ),
            rt.ctx.stage
        )
    } else {
        cfg.title.clone()
    };
    let api = api_for(
        "git-open-pr",
        &cfg.repo_url,
        &repo,
        &provider,
        cfg.insecure_skip_tls_verify,
        rt,
    )?;
    let (id, url, reused) = find_or_open(
        &api,
        &repo,
        &provider,
        &NewPr {
            source: &cfg.source_branch,
            target: &cfg.target_branch,
            title: &title,
            description: &cfg.description,
            labels: &cfg.labels,
        },
    )?;
    if id.is_null() {
        return Err(fail(
            "git-open-pr: the provider's answer has no pull request number",
        ));
    }
    let msg = format!(
        "{} pull request #{id} {}",
        if reused { "reused open" } else { "opened" },
        url.as_str().unwrap_or_default()
    );
    Ok(StepResult::ok(
        json!({ "pr": { "id": id, "url": url } }),
        msg,
    ))
}

/// The registry entry of `git-wait-for-pr` (`steps::REGISTRY`).
pub(super) const WAIT: super::Step = super::Step {
    name: "git-wait-for-pr",
    summary: "wait until a pull request is merged (its merge commit) or closed (fails)",
    shape: &promote_api::step_config::GIT_WAIT_FOR_PR,
    run: |cfg, rt, _| wait(cfg, rt),
    remote: false,
    outputs: &["commit"],
    verify_recorded: None,
};

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "git-open-pr",
    summary: "open a pull request (GitHub, GitLab, Gitea, Azure DevOps, Bitbucket)",
    shape: &promote_api::step_config::GIT_OPEN_PR,
    run: |cfg, rt, alias| run(cfg, rt, alias),
    remote: true,
    outputs: &["pr"],
    verify_recorded: None,
};
