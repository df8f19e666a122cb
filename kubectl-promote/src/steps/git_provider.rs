//! The Git hosting providers the pull-request steps (`git-open-pr`, `git-wait-for-pr`,
//! `git-merge-pr`, `github-push`) speak: GitHub (and Enterprise), GitLab, Gitea, Azure DevOps and
//! Bitbucket Cloud, as Kargo's do. The provider is `provider:` or inferred from the host
//! (github.com, gitlab.com, dev.azure.com and *.visualstudio.com, bitbucket.org). The API address
//! follows the repository's host: `api.github.com` for github.com, `api.bitbucket.org/2.0` for
//! bitbucket.org, `dev.azure.com/<org>/<project>/_apis` for Azure; on any other host
//! `<scheme>://<host>/api/v3` (GitHub Enterprise), `/api/v4` (GitLab), `/api/v1` (Gitea),
//! `/<org>/<project>/_apis` (Azure DevOps Server's layout), `/2.0` (Bitbucket's), so a local
//! fake of a provider's REST API is reached by pointing `repoURL` at it. Tokens come from the
//! repoURL's userinfo, else the project's Kargo credential Secret, else `GITHUB_TOKEN`,
//! `GITLAB_TOKEN`, `GITEA_TOKEN`, `AZURE_DEVOPS_TOKEN`, `BITBUCKET_TOKEN`, else
//! `PROMOTE_GIT_PASSWORD`/`PROMOTE_GIT_TOKEN`. A token from the environment goes only to its
//! provider's public host or to a host listed in `PROMOTE_TOKEN_HOSTS`, never over plain http
//! except to loopback, and never appears in errors (SECURITY.md).

use serde_json::Value;

use super::{Runtime, StepError, fail};
use crate::credentials::split_userinfo;

/// The providers promote speaks, by Kargo's names.
pub(super) const PROVIDERS: &[&str] = &["github", "gitlab", "gitea", "azure", "bitbucket"];

pub(super) struct Repo {
    /// `http(s)://host[:port]`
    pub(super) base: String,
    pub(super) host: String,
    /// `owner/name` (a GitLab group path, Azure's `org/project/_git/repo`)
    pub(super) path: String,
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
        "azure" => &["dev.azure.com"],
        "bitbucket" => &["bitbucket.org", "api.bitbucket.org"],
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
        "azure" => "AZURE_DEVOPS_TOKEN",
        "bitbucket" => "BITBUCKET_TOKEN",
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
            "bitbucket.org" => "bitbucket".to_owned(),
            h if h == "dev.azure.com" || h.ends_with(".visualstudio.com") => "azure".to_owned(),
            h => {
                return Err(fail(format!(
                    "{step}: cannot tell which provider hosts {h:?}; set provider: one of {}",
                    PROVIDERS.join(", ")
                )));
            }
        },
    };
    if !PROVIDERS.contains(&provider.as_str()) {
        return Err(fail(format!(
            "{step}: provider {provider:?} is not supported; use one of {}",
            PROVIDERS.join(", ")
        )));
    }
    if provider == "azure" {
        azure_parts(&repo).map_err(|e| fail(format!("{step}: {e}")))?;
    }
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
        "gitlab" | "bitbucket" => format!("Bearer {t}"),
        // Azure DevOps takes a personal access token as a basic password.
        "azure" => format!(
            "Basic {}",
            crate::credentials::base64(format!(":{t}").as_bytes())
        ),
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

/// Azure DevOps' (organization, project, repository) of a repository: `dev.azure.com/<org>/
/// <project>/_git/<repo>`, or `<org>.visualstudio.com/<project>/_git/<repo>`, or on another
/// host the first form's path.
pub(super) fn azure_parts(repo: &Repo) -> Result<(String, String, String), String> {
    let parts: Vec<&str> = repo.path.split('/').collect();
    match (
        repo.host.strip_suffix(".visualstudio.com"),
        parts.as_slice(),
    ) {
        (Some(org), [project, "_git", name]) => {
            Ok(((*org).to_owned(), (*project).to_owned(), (*name).to_owned()))
        }
        (None, [org, project, "_git", name]) => {
            Ok(((*org).to_owned(), (*project).to_owned(), (*name).to_owned()))
        }
        _ => Err(format!(
            "cannot extract the organization, project and repository from {}/{}; Azure DevOps repository URLs look like https://dev.azure.com/<org>/<project>/_git/<repo>",
            repo.base, repo.path
        )),
    }
}

/// Azure DevOps' API version, as a query parameter every call carries.
pub(super) const AZURE_API: &str = "api-version=7.1";

/// The provider's REST base for repository-level calls.
pub(super) fn api_base(repo: &Repo, provider: &str) -> String {
    match provider {
        "azure" => {
            let (org, project, name) = azure_parts(repo).unwrap_or_default();
            let base = if repo.host == "dev.azure.com" || repo.host.ends_with(".visualstudio.com") {
                "https://dev.azure.com".to_owned()
            } else {
                repo.base.clone()
            };
            format!("{base}/{org}/{project}/_apis/git/repositories/{name}")
        }
        "bitbucket" if repo.host == "bitbucket.org" => {
            format!("https://api.bitbucket.org/2.0/repositories/{}", repo.path)
        }
        "bitbucket" => format!("{}/2.0/repositories/{}", repo.base, repo.path),
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

/// The API address of pull request `n`.
pub(super) fn pr_url(repo: &Repo, provider: &str, n: i64) -> String {
    let base = api_base(repo, provider);
    match provider {
        "gitlab" => format!("{base}/merge_requests/{n}"),
        "azure" => format!("{base}/pullrequests/{n}?{AZURE_API}"),
        "bitbucket" => format!("{base}/pullrequests/{n}"),
        _ => format!("{base}/pulls/{n}"),
    }
}

/// Where a pull request stands.
#[derive(Debug, PartialEq)]
pub(super) enum PrState {
    /// Open (or a draft).
    Open,
    /// Merged, with its merge (or squash) commit.
    Merged(String),
    /// Closed (declined, abandoned, superseded) without being merged.
    Closed,
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The state of a pull request as its provider's API gave it (`pr`). Bitbucket names merge
/// commits by a 12-character prefix; the full id is asked for, as Kargo does.
pub(super) fn pr_state(
    api: &Api,
    repo: &Repo,
    provider: &str,
    pr: &Value,
) -> Result<PrState, StepError> {
    let merge_sha = || {
        ["/merge_commit_sha", "/squash_commit_sha"]
            .iter()
            .map(|p| str_at(pr, p))
            .find(|s| !s.is_empty())
            .unwrap_or_default()
            .to_owned()
    };
    Ok(match provider {
        "gitlab" => match str_at(pr, "/state") {
            "merged" => PrState::Merged(merge_sha()),
            "closed" | "locked" => PrState::Closed,
            _ => PrState::Open,
        },
        "azure" => match str_at(pr, "/status") {
            "completed" => PrState::Merged(str_at(pr, "/lastMergeCommit/commitId").to_owned()),
            "abandoned" => PrState::Closed,
            _ => PrState::Open,
        },
        "bitbucket" => match str_at(pr, "/state") {
            "MERGED" => {
                let short = str_at(pr, "/merge_commit/hash");
                let full = if short.is_empty() || short.len() >= 40 {
                    short.to_owned()
                } else {
                    let c = api.call(
                        "GET",
                        &format!("{}/commit/{short}", api_base(repo, provider)),
                        None,
                    )?;
                    str_at(&c, "/hash").to_owned()
                };
                PrState::Merged(full)
            }
            "DECLINED" | "SUPERSEDED" => PrState::Closed,
            _ => PrState::Open,
        },
        _ => {
            let merged = pr.get("merged").and_then(Value::as_bool).unwrap_or(false)
                || !str_at(pr, "/merged_at").is_empty();
            if merged {
                PrState::Merged(merge_sha())
            } else if str_at(pr, "/state") == "closed" {
                PrState::Closed
            } else {
                PrState::Open
            }
        }
    })
}

/// What `git-open-pr` asks for.
pub(super) struct NewPr<'a> {
    pub(super) source: &'a str,
    pub(super) target: &'a str,
    pub(super) title: &'a str,
    pub(super) description: &'a str,
    pub(super) labels: &'a [String],
}

/// The open pull request from `source` to `target`, else a new one: (number, web URL, reused).
pub(super) fn find_or_open(
    api: &Api,
    repo: &Repo,
    provider: &str,
    want: &NewPr<'_>,
) -> Result<(Value, Value, bool), StepError> {
    let base = api_base(repo, provider);
    let enc = crate::kube::percent_encode;
    match provider {
        "gitlab" => {
            let list = api.call(
                "GET",
                &format!(
                    "{base}/merge_requests?state=opened&source_branch={}&target_branch={}",
                    enc(want.source),
                    enc(want.target)
                ),
                None,
            )?;
            if let Some(mr) = list.as_array().and_then(|a| a.first()) {
                return Ok((mr["iid"].clone(), mr["web_url"].clone(), true));
            }
            let mr = api.call(
                "POST",
                &format!("{base}/merge_requests"),
                Some(&serde_json::json!({ "title": want.title, "source_branch": want.source, "target_branch": want.target, "description": want.description, "labels": want.labels.join(",") })),
            )?;
            Ok((mr["iid"].clone(), mr["web_url"].clone(), false))
        }
        "azure" => {
            let (src, dst) = (
                format!("refs/heads/{}", want.source),
                format!("refs/heads/{}", want.target),
            );
            let list = api.call(
                "GET",
                &format!(
                    "{base}/pullrequests?searchCriteria.status=active&searchCriteria.sourceRefName={}&searchCriteria.targetRefName={}&{AZURE_API}",
                    enc(&src),
                    enc(&dst)
                ),
                None,
            )?;
            let web = |pr: &Value| {
                Value::String(format!(
                    "{}/pullrequest/{}",
                    str_at(pr, "/repository/webUrl"),
                    pr["pullRequestId"]
                ))
            };
            if let Some(pr) = list
                .get("value")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
            {
                return Ok((pr["pullRequestId"].clone(), web(pr), true));
            }
            let labels: Vec<Value> = want
                .labels
                .iter()
                .map(|l| serde_json::json!({ "name": l }))
                .collect();
            let pr = api.call(
                "POST",
                &format!("{base}/pullrequests?{AZURE_API}"),
                Some(&serde_json::json!({ "sourceRefName": src, "targetRefName": dst, "title": want.title, "description": want.description, "labels": labels })),
            )?;
            Ok((pr["pullRequestId"].clone(), web(&pr), false))
        }
        "bitbucket" => {
            let list = api.call("GET", &format!("{base}/pullrequests?state=OPEN"), None)?;
            let found = list
                .get("values")
                .and_then(Value::as_array)
                .and_then(|a| {
                    a.iter().find(|p| {
                        str_at(p, "/source/branch/name") == want.source
                            && str_at(p, "/destination/branch/name") == want.target
                    })
                })
                .cloned();
            let (pr, reused) = match found {
                Some(p) => (p, true),
                None => (
                    api.call(
                        "POST",
                        &format!("{base}/pullrequests"),
                        Some(&serde_json::json!({ "title": want.title, "description": want.description, "source": { "branch": { "name": want.source } }, "destination": { "branch": { "name": want.target } } })),
                    )?,
                    false,
                ),
            };
            Ok((
                pr["id"].clone(),
                pr.pointer("/links/html/href")
                    .cloned()
                    .unwrap_or(Value::Null),
                reused,
            ))
        }
        _ => {
            let owner = repo.path.split('/').next().unwrap_or_default();
            let list = api.call(
                "GET",
                &format!(
                    "{base}/pulls?state=open&head={}&base={}",
                    enc(&format!("{owner}:{}", want.source)),
                    enc(want.target)
                ),
                None,
            )?;
            let existing = list.as_array().and_then(|a| {
                a.iter().find(|p| {
                    str_at(p, "/head/ref") == want.source && str_at(p, "/base/ref") == want.target
                })
            });
            if let Some(p) = existing {
                return Ok((p["number"].clone(), p["html_url"].clone(), true));
            }
            let pr = api.call(
                "POST",
                &format!("{base}/pulls"),
                Some(&serde_json::json!({ "title": want.title, "head": want.source, "base": want.target, "body": want.description })),
            )?;
            if !want.labels.is_empty() && provider == "github" {
                api.call(
                    "POST",
                    &format!("{base}/issues/{}/labels", pr["number"]),
                    Some(&serde_json::json!({ "labels": want.labels })),
                )?;
            }
            Ok((pr["number"].clone(), pr["html_url"].clone(), false))
        }
    }
}
