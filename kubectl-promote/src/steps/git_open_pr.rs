//! `git-open-pr`: open a pull request (GitHub, Gitea) or merge request (GitLab) from
//! `sourceBranch` to `targetBranch`, reusing an open one for the same branches (idempotent).
//! The API address follows the repository's host: `api.github.com` for github.com, else
//! `<scheme>://<host>/api/v3` (GitHub Enterprise), `/api/v4` (GitLab), `/api/v1` (Gitea), so a
//! local fake of a provider's REST API is reached by pointing `repoURL` at it. Tokens come from
//! the repoURL's userinfo, else `GITHUB_TOKEN`, `GITLAB_TOKEN`, `GITEA_TOKEN`, else
//! `PROMOTE_GIT_PASSWORD`/`PROMOTE_GIT_TOKEN`. A token from the environment goes only to its
//! provider's public host (github.com, gitlab.com) or to a host listed in `PROMOTE_TOKEN_HOSTS`,
//! never over plain http except to loopback, and never appears in errors (SECURITY.md).
//! Output: `pr` (`{id, url}`).

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Runtime, StepError, StepResult, config, fail};
use crate::credentials::split_userinfo;

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

pub(super) struct Repo {
    /// `http(s)://host[:port]`
    base: String,
    host: String,
    /// `owner/name` (or a GitLab group path)
    path: String,
}

pub(super) fn parse_repo(url: &str) -> Result<Repo, String> {
    let norm = promote_api::urls::normalize_git(url);
    let (scheme, rest) = if let Some(r) = norm.strip_prefix("https://") {
        ("https", r)
    } else if let Some(r) = norm.strip_prefix("http://") {
        ("http", r)
    } else if let Some(r) = norm.strip_prefix("ssh://") {
        ("https", r.split_once('@').map_or(r, |(_, h)| h))
    } else {
        return Err(format!("cannot tell the host of {url:?}"));
    };
    let (host, path) = rest
        .split_once('/')
        .ok_or_else(|| format!("{url:?} has no owner/repository path"))?;
    let host = if norm.starts_with("ssh://") {
        host.split(':').next().unwrap_or(host)
    } else {
        host
    };
    Ok(Repo {
        base: format!("{scheme}://{host}"),
        host: host.to_owned(),
        path: path.to_owned(),
    })
}

/// The public hosts a provider's token from the environment belongs to.
fn provider_hosts(provider: &str) -> &'static [&'static str] {
    match provider {
        "github" => &["github.com", "api.github.com"],
        "gitlab" => &["gitlab.com"],
        _ => &[],
    }
}

/// The token for the provider at `repo`, or why none may be sent there (`Ok(None)`: none given).
fn token(provider: &str, url: &str, repo: &Repo) -> Result<Option<String>, String> {
    if let Some((_, pass)) = split_userinfo(url).1.filter(|(_, p)| !p.is_empty()) {
        return Ok(Some(pass));
    }
    let var = match provider {
        "github" => "GITHUB_TOKEN",
        "gitlab" => "GITLAB_TOKEN",
        _ => "GITEA_TOKEN",
    };
    let Some((name, tok)) = [
        var,
        crate::credentials::ENV_PASSWORD,
        crate::credentials::ENV_TOKEN,
    ]
    .into_iter()
    .find_map(|v| {
        std::env::var(v)
            .ok()
            .filter(|t| !t.is_empty())
            .map(|t| (v, t))
    }) else {
        return Ok(None);
    };
    let authority = repo.base.split_once("://").map_or("", |(_, a)| a);
    if !provider_hosts(provider).contains(&repo.host.as_str())
        && !crate::credentials::opted_in(authority)
    {
        return Err(format!(
            "{name} is not sent to {authority}, which is not {provider}'s public host; hint: if {authority} is your {provider} server, list it in {}={authority}",
            crate::credentials::ENV_TOKEN_HOSTS
        ));
    }
    Ok(Some(tok))
}

pub(super) struct Api {
    agent: ureq::Agent,
    auth: Option<String>,
    redactor: crate::git::Redactor,
    /// The step's name, for messages.
    step: &'static str,
}

impl Api {
    /// A call whose non-2xx answer fails the step (401 and 403 with a hint, never their body).
    pub(super) fn call(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, StepError> {
        let (status, value, text) = self.send(method, url, body)?;
        if !(200..300).contains(&status) {
            return Err(self.refused(method, url, status, &text));
        }
        Ok(value)
    }

    /// Why a call answered `status` (its body cut to 300 characters and redacted).
    pub(super) fn refused(&self, method: &str, url: &str, status: u16, text: &str) -> StepError {
        fail(self.redactor.clean(&format!(
            "{}: {method} {url} answered {status}: {}",
            self.step,
            text.chars().take(300).collect::<String>()
        )))
    }

    /// A call and its answer (status, JSON body or null, body text); 401 and 403 fail the step.
    pub(super) fn send(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value, String), StepError> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("Accept", "application/json")
            .header("User-Agent", "kubectl-promote");
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let result = match body {
            Some(b) => {
                let req = req
                    .header("Content-Type", "application/json")
                    .body(b.to_string())
                    .map_err(|e| fail(e.to_string()))?;
                self.agent.run(req)
            }
            None => {
                let req = req.body(()).map_err(|e| fail(e.to_string()))?;
                self.agent.run(req)
            }
        };
        let mut resp = result.map_err(|e| {
            fail(
                self.redactor
                    .clean(&format!("{}: {method} {url}: {e}", self.step)),
            )
        })?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        if status == 401 || status == 403 {
            // What a server answers to a refused credential may echo it (in any encoding): never
            // printed.
            return Err(fail(format!(
                "{}: {method} {} answered {status}; hint: check the token's scopes and that it belongs to this server",
                self.step,
                self.redactor.clean(url)
            )));
        }
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        ))
    }
}

/// The repository and its provider (`provider`, else github.com / gitlab.com by host).
pub(super) fn provider_of(
    step: &str,
    url: &str,
    given: Option<&str>,
) -> Result<(Repo, String), StepError> {
    let repo = parse_repo(url).map_err(|e| fail(format!("{step}: {e}")))?;
    let provider = match given {
        Some(p) => p.to_owned(),
        None => match repo.host.as_str() {
            "github.com" => "github".to_owned(),
            "gitlab.com" => "gitlab".to_owned(),
            h => {
                return Err(fail(format!(
                    "{step}: cannot tell which provider hosts {h:?}; set provider: github, gitlab or gitea"
                )));
            }
        },
    };
    Ok((repo, provider))
}

/// An API client for the provider, with its token (never printed).
pub(super) fn api_for(
    step: &'static str,
    url: &str,
    repo: &Repo,
    provider: &str,
    insecure_skip_tls_verify: bool,
    rt: &Runtime<'_>,
) -> Result<Api, StepError> {
    // The URL's own token first, then the project's Kargo credential Secret for the repository
    // (its password is the token, as Kargo reads it), then the environment's.
    let (clean, userinfo) = split_userinfo(url);
    let from_secret = userinfo
        .is_none()
        .then(|| crate::credentials::project_credential(&clean, &rt.project_credentials))
        .flatten()
        .filter(|c| !c.password.is_empty())
        .map(|c| c.password.clone());
    let tok = match from_secret {
        Some(t) => Some(t),
        None => token(provider, url, repo).map_err(|e| fail(format!("{step}: {e}")))?,
    };
    let mut redactor = rt.mirror_opts.redactor.clone();
    if let Some(t) = &tok {
        crate::credentials::redact_all(&mut redactor, "", t);
        if let Some(why) = crate::credentials::insecure_transport(&repo.base) {
            return Err(fail(format!("{step}: {why}")));
        }
    }
    let auth = tok.map(|t| match provider {
        "gitlab" => format!("Bearer {t}"),
        _ => format!("token {t}"),
    });
    let agent: ureq::Agent =
        crate::web::agent_config(std::time::Duration::from_secs(30), insecure_skip_tls_verify)
            .build()
            .into();
    Ok(Api {
        agent,
        auth,
        redactor,
        step,
    })
}

/// The provider's REST base for repository-level calls.
pub(super) fn api_base(repo: &Repo, provider: &str) -> String {
    match provider {
        "gitlab" => format!(
            "{}/api/v4/projects/{}",
            repo.base,
            crate::kube::percent_encode(&repo.path)
        ),
        _ if repo.host == "github.com" => format!("https://api.github.com/repos/{}", repo.path),
        "github" => format!("{}/api/v3/repos/{}", repo.base, repo.path),
        _ => format!("{}/api/v1/repos/{}", repo.base, repo.path),
    }
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
    let url = match provider.as_str() {
        "github" | "gitea" => format!("{}/pulls/{}", api_base(&repo, &provider), cfg.pr_number),
        "gitlab" => format!(
            "{}/merge_requests/{}",
            api_base(&repo, &provider),
            cfg.pr_number
        ),
        other => {
            return Err(fail(format!(
                "git-wait-for-pr: provider {other:?} is not supported; use github, gitlab or gitea"
            )));
        }
    };
    loop {
        let pr = api.call("GET", &url, None)?;
        let (merged, closed) = match provider.as_str() {
            "gitlab" => {
                let state = pr.get("state").and_then(Value::as_str).unwrap_or_default();
                (state == "merged", state == "closed")
            }
            _ => {
                let merged = pr.get("merged").and_then(Value::as_bool).unwrap_or(false);
                let state = pr.get("state").and_then(Value::as_str).unwrap_or_default();
                (merged, state == "closed" && !merged)
            }
        };
        if merged {
            let commit = ["merge_commit_sha", "squash_commit_sha"]
                .iter()
                .find_map(|k| pr.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()))
                .unwrap_or_default()
                .to_owned();
            return Ok(StepResult::ok(
                json!({ "commit": commit }),
                format!("pull request #{} merged as {commit}", cfg.pr_number),
            ));
        }
        if closed {
            return Err(fail(format!(
                "git-wait-for-pr: pull request #{} was closed without being merged",
                cfg.pr_number
            )));
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
    let (id, url, reused) = match provider.as_str() {
        "github" | "gitea" => {
            let base = if repo.host == "github.com" {
                "https://api.github.com".to_owned()
            } else if provider == "github" {
                format!("{}/api/v3", repo.base)
            } else {
                format!("{}/api/v1", repo.base)
            };
            let owner = repo.path.split('/').next().unwrap_or_default();
            let list = api.call(
                "GET",
                &format!(
                    "{base}/repos/{}/pulls?state=open&head={}&base={}",
                    repo.path,
                    crate::kube::percent_encode(&format!("{owner}:{}", cfg.source_branch)),
                    crate::kube::percent_encode(&cfg.target_branch)
                ),
                None,
            )?;
            let existing = list.as_array().and_then(|a| {
                a.iter().find(|p| {
                    p.pointer("/head/ref").and_then(Value::as_str) == Some(&cfg.source_branch)
                        && p.pointer("/base/ref").and_then(Value::as_str)
                            == Some(&cfg.target_branch)
                })
            });
            match existing {
                Some(p) => (p["number"].clone(), p["html_url"].clone(), true),
                None => {
                    let pr = api.call("POST", &format!("{base}/repos/{}/pulls", repo.path), Some(&json!({ "title": title, "head": cfg.source_branch, "base": cfg.target_branch, "body": cfg.description })))?;
                    if !cfg.labels.is_empty() && provider == "github" {
                        api.call(
                            "POST",
                            &format!("{base}/repos/{}/issues/{}/labels", repo.path, pr["number"]),
                            Some(&json!({ "labels": cfg.labels })),
                        )?;
                    }
                    (pr["number"].clone(), pr["html_url"].clone(), false)
                }
            }
        }
        "gitlab" => {
            let base = format!(
                "{}/api/v4/projects/{}",
                repo.base,
                crate::kube::percent_encode(&repo.path)
            );
            let list = api.call(
                "GET",
                &format!(
                    "{base}/merge_requests?state=opened&source_branch={}&target_branch={}",
                    crate::kube::percent_encode(&cfg.source_branch),
                    crate::kube::percent_encode(&cfg.target_branch)
                ),
                None,
            )?;
            match list.as_array().and_then(|a| a.first()) {
                Some(mr) => (mr["iid"].clone(), mr["web_url"].clone(), true),
                None => {
                    let mr = api.call(
                        "POST",
                        &format!("{base}/merge_requests"),
                        Some(&json!({ "title": title, "source_branch": cfg.source_branch, "target_branch": cfg.target_branch, "description": cfg.description, "labels": cfg.labels.join(",") })),
                    )?;
                    (mr["iid"].clone(), mr["web_url"].clone(), false)
                }
            }
        }
        other => {
            return Err(fail(format!(
                "git-open-pr: provider {other:?} is not supported; use github, gitlab or gitea"
            )));
        }
    };
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
    summary: "open a pull request (GitHub, GitLab, Gitea)",
    shape: &promote_api::step_config::GIT_OPEN_PR,
    run: |cfg, rt, alias| run(cfg, rt, alias),
    remote: true,
    outputs: &["pr"],
    verify_recorded: None,
};
