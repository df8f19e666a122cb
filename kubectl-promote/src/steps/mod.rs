//! Promotion steps, with Kargo's names, config fields and outputs: one file per step, and one
//! [`REGISTRY`] entry per step carrying its name, config shape, runner, outputs and whether it
//! writes outside this machine. Everything that lists steps (validation, the "promote runs: ..."
//! hint, `kubectl promote steps`, the README's step table, checked by a test) reads the registry,
//! so adding a step touches its file and its entry only.
//!
//! A step reads its (already expression-evaluated) config, works on the promotion's checkouts and
//! returns its outputs, which later steps reach as `outputs.<alias>`. Configs are checked twice:
//! their shape (required and unknown keys) for every step before anything runs, and their types
//! once expressions are evaluated, right before the step runs.

mod argocd_sync;
mod argocd_update;
mod argocd_wait;
mod compose_output;
mod copy;
mod delete;
mod fail;
mod file_write;
mod git_clear;
mod git_clone;
mod git_commit;
mod git_merge_pr;
mod git_open_pr;
mod git_provider;
mod git_push;
mod git_tag;
mod github_push;
mod helm_template;
mod helm_update_chart;
mod helm_update_image;
mod http;
mod http_download;
mod kustomize_build;
mod kustomize_set_image;
mod oci_download;
mod oci_push;
mod parse;
mod set_freight_alias;
mod set_metadata;
mod shape;
mod structured_update;
mod tar;
mod toml_stream;
mod untar;
mod yaml_merge;
mod yaml_update;

use std::collections::BTreeMap;
use std::sync::Arc;

use promote_api::types::{Freight, FreightCollection};
use serde_json::{Map, Value, json};

use crate::expr::Functions;
use crate::git::{Checkout, GitError, Mirror, MirrorOptions};

pub use shape::{Shape, validate_config};
pub use structured_update::{toml_update, toml_update_with};

/// Runs one step: its evaluated config, the promotion's runtime, the step's alias.
pub type RunFn = fn(&Value, &mut Runtime<'_>, &str) -> Result<StepResult, StepError>;

/// Checks, on a resume, that what an interrupted run recorded as done still holds: (evaluated
/// config, recorded outputs, runtime).
pub type VerifyFn = fn(&Value, &Value, &mut Runtime<'_>) -> Result<(), StepError>;

/// One step kind: everything promote knows about it.
pub struct Step {
    /// Kargo's name (`uses:`).
    pub name: &'static str,
    /// What it does, in one line (`kubectl promote steps`, the README).
    pub summary: &'static str,
    /// Its config's shape, checked before anything runs.
    pub shape: &'static Shape,
    /// Runs it.
    pub run: RunFn,
    /// Whether it writes outside this machine (`promote_api::trust::REMOTE_STEPS`): recorded as
    /// done, it is not run again on a resume.
    pub remote: bool,
    /// Its output keys (`outputs.<alias>.<key>`).
    pub outputs: &'static [&'static str],
    /// For a remote step, how a recorded success is checked before a resume trusts it.
    pub verify_recorded: Option<VerifyFn>,
}

/// Every step kind promote runs, in the order the README lists them.
pub const REGISTRY: &[&Step] = &[
    &git_clone::STEP,
    &git_clear::STEP,
    &copy::STEP,
    &delete::STEP,
    &file_write::STEP,
    &tar::STEP,
    &untar::STEP,
    &kustomize_set_image::STEP,
    &kustomize_build::STEP,
    &yaml_update::STEP,
    &yaml_merge::STEP,
    &helm_update_image::STEP,
    &helm_template::STEP,
    &helm_update_chart::STEP,
    &git_commit::STEP,
    &git_tag::STEP,
    &git_push::STEP,
    &github_push::STEP,
    &git_open_pr::STEP,
    &git_open_pr::WAIT,
    &git_merge_pr::STEP,
    &argocd_update::STEP,
    &argocd_wait::STEP,
    &set_freight_alias::STEP,
    &set_metadata::STEP,
    &http_download::STEP,
    &oci_push::STEP,
    &oci_download::STEP,
    &structured_update::JSON,
    &structured_update::TOML,
    &parse::JSON,
    &parse::YAML,
    &parse::TOML,
    &http::STEP,
    &compose_output::STEP,
    &fail::STEP,
];

/// The step kind named `uses`.
pub fn lookup(uses: &str) -> Option<&'static Step> {
    REGISTRY.iter().copied().find(|s| s.name == uses)
}

/// The step kinds, comma-separated (for messages).
pub fn known() -> String {
    REGISTRY
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a promotion can check of a pull-request step before its first write (`uses`, its
/// repoURL, provider and merge method as evaluated from `ctx` and `vars`): the provider is known
/// and supported, the merge method is one it accepts.
pub fn preflight_pr(
    uses: &str,
    repo_url: &str,
    provider: Option<&str>,
    merge_method: Option<&str>,
) -> Result<(), String> {
    let (_, provider) =
        git_provider::provider_of(uses, repo_url, provider).map_err(|e| e.to_string())?;
    if let Some(m) = merge_method.filter(|m| !m.is_empty()) {
        git_merge_pr::check_method(&provider, m)?;
    }
    Ok(())
}

/// Whether `uses` writes outside this machine.
pub fn is_remote(uses: &str) -> bool {
    lookup(uses).is_some_and(|s| s.remote)
}

/// What an earlier (interrupted) run of the same Promotion recorded for a step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recorded {
    /// Step status as recorded.
    pub status: Option<promote_api::types::PromotionStepStatus>,
    /// The step's outputs (`status.state[alias]`).
    pub outputs: Option<Value>,
}

/// How a step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum StepStatus {
    /// It did its work.
    Succeeded,
    /// There was nothing to do (e.g. nothing to commit), or it does not apply here.
    Skipped,
}

/// What a step produced.
#[derive(Clone, Debug, PartialEq)]
pub struct StepResult {
    /// Status.
    pub status: StepStatus,
    /// Outputs (`outputs.<alias>.<key>`).
    pub output: Map<String, Value>,
    /// A line for the user.
    pub message: String,
}

impl StepResult {
    fn ok(output: Value, message: impl Into<String>) -> Self {
        Self {
            status: StepStatus::Succeeded,
            output: output.as_object().cloned().unwrap_or_default(),
            message: message.into(),
        }
    }
    fn skipped(message: impl Into<String>) -> Self {
        Self {
            status: StepStatus::Skipped,
            output: Map::new(),
            message: message.into(),
        }
    }
}

/// Why a step failed. `Failed` is the user's to fix (bad config, conflict); `Errored` is technical.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The config is wrong or the repository content does not fit it.
    #[error("{0}")]
    Failed(String),
    /// Something outside failed (network, git).
    #[error(transparent)]
    Git(#[from] GitError),
    /// An expression in the config failed.
    #[error(transparent)]
    Expr(#[from] crate::expr::ExprError),
    /// The API server refused or failed a request.
    #[error("{action}: {failure}")]
    Kube {
        action: String,
        failure: crate::kube::ApiFailure,
    },
    /// An HTTP request could not be sent or its answer read.
    #[error("HTTP request to {url} failed: {message}")]
    Http { url: String, message: String },
    /// A program a step runs (kustomize, helm) failed or is missing.
    #[error("{tool}: {message}")]
    Tool { tool: String, message: String },
    /// A wait ran out of time.
    #[error("{0}")]
    Timeout(String),
    /// Ctrl-C or `kubectl promote abort` stopped the step.
    #[error("stopped: {0}")]
    Stopped(String),
    /// The step errored on every attempt its retry policy allowed.
    #[error("{last} (after {attempts} attempts)")]
    Retried { attempts: u32, last: Box<StepError> },
}

impl StepError {
    /// Whether trying again may succeed: the network, a server's 429 or 5xx, an API server that
    /// did not answer. Never a refusal, a conflict or a wrong config.
    pub fn is_transient(&self) -> bool {
        const NETWORK: &[&str] = &[
            "could not resolve host",
            "connection refused",
            "connection reset",
            "connection timed out",
            "operation timed out",
            "timed out",
            "the remote end hung up unexpectedly",
            "early eof",
            "rpc failed",
            "temporary failure",
            "the requested url returned error: 429",
            "the requested url returned error: 5",
            "http/2 stream",
            "gnutls_handshake",
        ];
        match self {
            Self::Git(GitError::Command { stderr, .. }) => {
                let e = stderr.to_lowercase();
                NETWORK.iter().any(|n| e.contains(n))
            }
            Self::Kube { failure, .. } => {
                failure.code == 0 || failure.code == 429 || failure.code >= 500
            }
            Self::Retried { last, .. } => last.is_transient(),
            Self::Http { .. } => true,
            _ => false,
        }
    }

    /// Whether this is a (non-technical) failure rather than an error.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Self::Failed(_)
                | Self::Expr(_)
                | Self::Git(
                    GitError::Conflict { .. } | GitError::Path { .. } | GitError::NotFound { .. }
                )
        )
    }
}

fn fail(msg: impl Into<String>) -> StepError {
    StepError::Failed(msg.into())
}

/// Deserialize an evaluated config into a step's typed config.
fn config<T: serde::de::DeserializeOwned>(uses: &str, v: &Value) -> Result<T, StepError> {
    serde_json::from_value(v.clone()).map_err(|e| fail(format!("invalid {uses} config: {e}")))
}

/// The cluster steps talk to (cluster mode only).
pub struct ClusterAccess<'a> {
    /// The API.
    pub kube: &'a dyn crate::kube::Api,
    /// When waiting must give up.
    pub deadline: std::time::Instant,
    /// The whole budget (for messages).
    pub timeout: std::time::Duration,
}

/// Who the promotion is for: what `ctx` holds in expressions.
#[derive(Clone, Debug)]
pub struct PromotionContext {
    /// Project (namespace).
    pub project: String,
    /// Stage name.
    pub stage: String,
    /// Promotion name.
    pub promotion: String,
    /// The Freight being promoted.
    pub target_freight: Freight,
    /// All Freight the Stage will use (the target plus other origins' current Freight).
    pub collection: FreightCollection,
    /// The human behind the promotion.
    pub actor: Option<String>,
}

impl PromotionContext {
    /// The `ctx` object of expressions.
    pub fn ctx_value(&self) -> Value {
        json!({
            "project": self.project,
            "stage": self.stage,
            "promotion": self.promotion,
            "targetFreight": {
                "name": self.target_freight.name(),
                "alias": self.target_freight.alias().unwrap_or_default(),
                "origin": { "kind": self.target_freight.origin.kind, "name": self.target_freight.origin.name },
            },
            "meta": { "promotion": { "actor": self.actor.clone().unwrap_or_default() } },
        })
    }

    fn matching<'a, T>(
        &'a self,
        origin: Option<&Value>,
        pick: impl Fn(&'a promote_api::types::FreightReference) -> Option<&'a T>,
        what: &str,
        repo: &str,
    ) -> Result<Option<&'a T>, String> {
        let wanted = origin.and_then(|o| o.get("name")).and_then(Value::as_str);
        let mut found = Vec::new();
        for f in self.collection.freight.values() {
            if wanted.is_some_and(|w| w != f.origin.name) {
                continue;
            }
            if let Some(x) = pick(f) {
                found.push((f.origin.to_string(), x));
            }
        }
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop().map(|(_, x)| x)),
            _ => Err(format!(
                "{what} {repo:?} is found in Freight from several origins ({}); please pass the origin, e.g. {what}({repo:?}, warehouse(\"name\"))",
                found
                    .iter()
                    .map(|(o, _)| o.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// The namespace of Kargo's shared resources (`sharedConfigMap()`, `sharedSecret()`): Kargo's
/// default, or `PROMOTE_SHARED_RESOURCES_NAMESPACE`.
pub fn shared_resources_namespace() -> String {
    std::env::var("PROMOTE_SHARED_RESOURCES_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "kargo-shared-resources".to_owned())
}

/// What expressions call during a promotion: the Freight's artifacts, earlier steps' statuses,
/// and the cluster's (or, with `--local`, the manifests') ConfigMaps, Secrets and metadata. Reads
/// go to the API server each time, with the promoter's own credentials (their RBAC applies).
pub struct StepFunctions<'a> {
    ctx: &'a PromotionContext,
    failed: bool,
    statuses: &'a BTreeMap<String, String>,
    kube: Option<&'a dyn crate::kube::Api>,
    local: &'a [Value],
    /// The task alias of the step being evaluated (`task::step` aliases), for `status()`.
    scope: Option<String>,
}

impl StepFunctions<'_> {
    /// For the step `alias`: `status("x")` inside a task means that task's step `x`, as in Kargo.
    pub fn for_step(mut self, alias: &str) -> Self {
        self.scope = alias.split_once("::").map(|(task, _)| task.to_owned());
        self
    }

    fn find_local(&self, kind: &str, ns: &str, name: &str) -> Option<&Value> {
        self.local.iter().find(|o| {
            o.get("kind").and_then(Value::as_str) == Some(kind)
                && o.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
                && o.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or(ns)
                    == ns
        })
    }
}

/// A Secret's `data` decoded (and `stringData` folded in), as Kargo's `secret()` returns it.
fn secret_data(secret: &Value) -> Value {
    let mut out = Map::new();
    if let Some(d) = secret.get("data").and_then(Value::as_object) {
        for (k, v) in d {
            let text = v
                .as_str()
                .and_then(crate::credentials::base64_decode)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            out.insert(k.clone(), Value::String(text));
        }
    }
    if let Some(d) = secret.get("stringData").and_then(Value::as_object) {
        for (k, v) in d {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

impl Functions for StepFunctions<'_> {
    fn commit_from(&self, repo: &str, origin: Option<&Value>) -> Result<Value, String> {
        self.ctx.commit_from(repo, origin)
    }
    fn image_from(&self, repo: &str, origin: Option<&Value>) -> Result<Value, String> {
        self.ctx.image_from(repo, origin)
    }
    fn chart_from(
        &self,
        repo: &str,
        name: Option<&str>,
        origin: Option<&Value>,
    ) -> Result<Value, String> {
        self.ctx.chart_from(repo, name, origin)
    }
    fn all_succeeded(&self) -> bool {
        !self.failed
    }
    fn step_status(&self, alias: &str) -> String {
        let key = match &self.scope {
            Some(task) => format!("{task}::{alias}"),
            None => alias.to_owned(),
        };
        self.statuses.get(&key).cloned().unwrap_or_default()
    }
    fn lookup(&self, what: crate::expr::Lookup, name: &str) -> Result<Value, String> {
        use crate::expr::Lookup;
        let project = self.ctx.project.as_str();
        let shared = shared_resources_namespace();
        let (kind, ns, path) = match what {
            Lookup::ConfigMap => (
                "ConfigMap",
                project,
                format!("/api/v1/namespaces/{project}/configmaps/{name}"),
            ),
            Lookup::Secret => (
                "Secret",
                project,
                format!("/api/v1/namespaces/{project}/secrets/{name}"),
            ),
            Lookup::SharedConfigMap => (
                "ConfigMap",
                shared.as_str(),
                format!("/api/v1/namespaces/{shared}/configmaps/{name}"),
            ),
            Lookup::SharedSecret => (
                "Secret",
                shared.as_str(),
                format!("/api/v1/namespaces/{shared}/secrets/{name}"),
            ),
            Lookup::StageMetadata => (
                "Stage",
                project,
                crate::kube::kargo_path("stages", project, name),
            ),
            Lookup::FreightMetadata | Lookup::FreightStatus => (
                "Freight",
                project,
                crate::kube::kargo_path("freights", project, name),
            ),
        };
        let obj = match self.kube {
            Some(kube) => kube
                .get(&path)
                .map_err(|e| format!("{}({name:?}): {e}", what.name()))?,
            None => self.find_local(kind, ns, name).cloned(),
        };
        Ok(match what {
            Lookup::ConfigMap | Lookup::SharedConfigMap => obj
                .and_then(|o| o.get("data").cloned())
                .unwrap_or_else(|| json!({})),
            Lookup::Secret => obj.map_or_else(|| json!({}), |o| secret_data(&o)),
            Lookup::SharedSecret => obj
                .filter(|o| {
                    o.pointer("/metadata/labels/kargo.akuity.io~1cred-type")
                        .and_then(Value::as_str)
                        == Some("generic")
                })
                .map_or_else(|| json!({}), |o| secret_data(&o)),
            Lookup::FreightStatus => obj
                .map(|o| o.get("status").cloned().unwrap_or_else(|| json!({})))
                .unwrap_or(Value::Null),
            Lookup::StageMetadata | Lookup::FreightMetadata => obj
                .and_then(|o| o.pointer("/status/metadata").cloned())
                .filter(|m| m.as_object().is_some_and(|m| !m.is_empty()))
                .unwrap_or(Value::Null),
        })
    }
}

impl Functions for PromotionContext {
    fn commit_from(&self, repo: &str, origin: Option<&Value>) -> Result<Value, String> {
        let norm = promote_api::urls::normalize_git(repo);
        let c = self.matching(
            origin,
            |f| {
                f.commits
                    .iter()
                    .find(|c| promote_api::urls::normalize_git(&c.repo_url) == norm)
            },
            "commitFrom",
            repo,
        )?;
        Ok(c.map_or(Value::Null, |c| {
            json!({ "RepoURL": c.repo_url, "ID": c.id, "Branch": c.branch, "Tag": c.tag, "Message": c.message, "Author": c.author, "Committer": c.committer })
        }))
    }

    fn image_from(&self, repo: &str, origin: Option<&Value>) -> Result<Value, String> {
        let i = self.matching(
            origin,
            |f| f.images.iter().find(|i| i.repo_url == repo),
            "imageFrom",
            repo,
        )?;
        Ok(i.map_or(Value::Null, |i| json!({ "RepoURL": i.repo_url, "Tag": i.tag, "Digest": i.digest, "Annotations": i.annotations })))
    }

    fn chart_from(
        &self,
        repo: &str,
        name: Option<&str>,
        origin: Option<&Value>,
    ) -> Result<Value, String> {
        let norm = promote_api::urls::normalize_chart(repo);
        let c = self.matching(
            origin,
            |f| {
                f.charts.iter().find(|c| {
                    promote_api::urls::normalize_chart(&c.repo_url) == norm
                        && name.is_none_or(|n| n == c.name)
                })
            },
            "chartFrom",
            repo,
        )?;
        Ok(c.map_or(
            Value::Null,
            |c| json!({ "RepoURL": c.repo_url, "Name": c.name, "Version": c.version }),
        ))
    }
}

/// A commit a step pushed (for the summary).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushedCommit {
    /// Repository URL (no credentials).
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    /// Branch pushed to.
    pub branch: String,
    /// Commit SHA.
    pub commit: String,
    /// Files changed since the checkout started.
    pub files: Vec<String>,
}

/// One checkout of the promotion's work directory.
pub struct WorkCheckout {
    /// Path in the work directory (cleaned, e.g. `src`).
    pub path: String,
    /// Repository URL as configured (no credentials).
    pub repo_url: String,
    /// The checkout.
    pub checkout: Checkout,
    /// Author configured on the git-clone step.
    pub author: Option<(String, String)>,
    /// Signing key configured on the git-clone step.
    pub signing_key: Option<String>,
}

/// Everything steps share while a promotion runs.
pub struct Runtime<'a> {
    /// The promotion.
    pub ctx: &'a PromotionContext,
    /// Options for mirrors (cache dir, TLS).
    pub mirror_opts: MirrorOptions,
    /// The project's Kargo Git credentials (Secrets labelled `kargo.akuity.io/cred-type: git`).
    pub project_credentials: Arc<Vec<crate::credentials::ProjectCredential>>,
    mirrors: BTreeMap<String, Arc<Mirror>>,
    /// The work directory's checkouts.
    pub checkouts: Vec<WorkCheckout>,
    /// Outputs of finished steps by alias.
    pub outputs: Map<String, Value>,
    /// Show what would happen; push nothing, write nothing remote.
    pub dry_run: bool,
    /// Argo CD Applications known locally (from `--local DIR`), as open JSON.
    pub applications: Vec<Value>,
    /// Application patches `argocd-update` produced: (namespace/name, patch).
    pub argocd_patches: Vec<(String, Value)>,
    /// Commits pushed so far.
    pub pushed: Vec<PushedCommit>,
    /// No progress notes on stderr.
    pub quiet: bool,
    /// The cluster, when promoting through one (`None` with `--local`).
    pub cluster: Option<ClusterAccess<'a>>,
    /// Argo CD Application statuses the argocd steps ended with (the Stage's health).
    pub app_health: Vec<Value>,
    /// What an interrupted earlier run of this Promotion recorded, by step alias (resume).
    pub recorded: BTreeMap<String, Recorded>,
    /// The first wait before a step is tried again (doubled each time).
    pub retry_backoff: std::time::Duration,
    /// When the promotion's `--timeout` ends (retries and waits stop there).
    pub deadline: Option<std::time::Instant>,
    /// Each step's status so far, by alias (`status()` in expressions).
    pub step_statuses: BTreeMap<String, String>,
    /// With `--local`: the manifests' ConfigMaps, Secrets, Stages and Freight, as open JSON, for
    /// `configMap()`, `secret()`, `stageMetadata()`, `freightMetadata()` and `set-metadata`.
    pub local_objects: Vec<Value>,
}

impl<'a> Runtime<'a> {
    /// A runtime for one promotion.
    pub fn new(ctx: &'a PromotionContext, mirror_opts: MirrorOptions, dry_run: bool) -> Self {
        Self {
            ctx,
            mirror_opts,
            project_credentials: Arc::default(),
            mirrors: BTreeMap::new(),
            checkouts: Vec::new(),
            outputs: Map::new(),
            dry_run,
            applications: Vec::new(),
            argocd_patches: Vec::new(),
            pushed: Vec::new(),
            quiet: false,
            cluster: None,
            app_health: Vec::new(),
            recorded: BTreeMap::new(),
            retry_backoff: std::time::Duration::from_secs(1),
            deadline: None,
            step_statuses: BTreeMap::new(),
            local_objects: Vec::new(),
        }
    }

    /// The functions expressions call in this promotion; `failed`: an earlier step failed.
    pub fn functions(&self, failed: bool) -> StepFunctions<'_> {
        StepFunctions {
            ctx: self.ctx,
            failed,
            statuses: &self.step_statuses,
            kube: self.cluster.as_ref().map(|c| c.kube),
            local: &self.local_objects,
            scope: None,
        }
    }

    /// A progress note on stderr (what a long step is waiting for).
    pub fn note(&self, msg: &str) {
        if !self.quiet {
            eprintln!("    {msg}");
        }
    }

    /// The mirror for a repository URL (opened once per promotion).
    pub fn mirror(&mut self, url: &str) -> Result<Arc<Mirror>, GitError> {
        let key = promote_api::urls::normalize_git(url);
        if let Some(m) = self.mirrors.get(&key) {
            return Ok(m.clone());
        }
        let (clean_url, opts) =
            crate::credentials::for_url(url, &self.mirror_opts, &self.project_credentials);
        if let Some(reason) = opts.refused.clone() {
            return Err(GitError::Credentials {
                repo: clean_url,
                reason,
            });
        }
        if let Some(note) = &opts.unsent {
            self.note(note);
        }
        let m = Arc::new(Mirror::open(&clean_url, opts)?);
        self.mirrors.insert(key, m.clone());
        Ok(m)
    }

    /// The checkout holding `path` (the longest checkout path that prefixes it), and the path
    /// relative to it.
    pub fn resolve(&mut self, path: &str) -> Result<(&mut WorkCheckout, String), StepError> {
        let clean = crate::git::tree::clean_path(path)?;
        let best = self
            .checkouts
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.path.is_empty() || clean == c.path || clean.starts_with(&format!("{}/", c.path))
            })
            .max_by_key(|(_, c)| c.path.len())
            .map(|(i, _)| i);
        let Some(i) = best else {
            let known: Vec<String> = self
                .checkouts
                .iter()
                .map(|c| format!("./{}", c.path))
                .collect();
            return Err(fail(format!(
                "path {path:?} is not inside a checkout; git-clone checked out {}",
                if known.is_empty() {
                    "nothing yet".to_owned()
                } else {
                    known.join(", ")
                }
            )));
        };
        let co = &mut self.checkouts[i];
        let rel = clean
            .strip_prefix(&co.path)
            .unwrap_or(&clean)
            .trim_start_matches('/')
            .to_owned();
        Ok((co, rel))
    }

    /// The checkout whose path is exactly `path`.
    pub fn checkout_at(&mut self, path: &str) -> Result<&mut WorkCheckout, StepError> {
        let i = self.checkout_index(path)?;
        Ok(&mut self.checkouts[i])
    }

    /// Index of the checkout whose path is exactly `path`.
    pub fn checkout_index(&mut self, path: &str) -> Result<usize, StepError> {
        let (co, rel) = self.resolve(path)?;
        if !rel.is_empty() {
            let root = co.path.clone();
            return Err(fail(format!(
                "path {path:?} is inside the checkout at \"./{root}\"; give the checkout's own path"
            )));
        }
        let root = co.path.clone();
        self.checkouts
            .iter()
            .position(|c| c.path == root)
            .ok_or_else(|| fail(format!("no checkout at {path:?}")))
    }
}

/// Run one step (its config already evaluated).
pub fn run(
    uses: &str,
    alias: &str,
    cfg: &Value,
    rt: &mut Runtime<'_>,
) -> Result<StepResult, StepError> {
    match lookup(uses) {
        Some(step) => {
            let result = (step.run)(cfg, rt, alias);
            for m in rt.mirrors.values() {
                for note in m.take_notes() {
                    rt.note(&note);
                }
            }
            result
        }
        None => Err(fail(format!(
            "unknown step kind {uses:?}; promote runs: {}",
            known()
        ))),
    }
}

/// The documents of a YAML stream as kustomize and helm print one (split at `---` lines), each
/// as printed; whitespace-only documents dropped.
fn yaml_documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else if let Some(d) = docs.last_mut() {
            d.push_str(line);
        }
    }
    docs.retain(|d| !d.trim().is_empty());
    docs
}

/// Text as UTF-8 or a clear failure.
fn utf8(path: &str, data: Vec<u8>) -> Result<String, StepError> {
    String::from_utf8(data).map_err(|_| fail(format!("{path} is not UTF-8 text")))
}

/// Join a checkout-relative directory and a file name.
fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}
/// Check a push an earlier run recorded (`git-push` outputs `commit` and `branch`) against the
/// remote: the commit must be on the branch, else the record is not trusted.
fn verify_recorded_push(
    cfg: &Value,
    outputs: &Value,
    rt: &mut Runtime<'_>,
) -> Result<(), StepError> {
    let field = |k: &str| outputs.get(k).and_then(Value::as_str).unwrap_or_default();
    let (commit, branch) = (field("commit"), field("branch"));
    let path = cfg.get("path").and_then(Value::as_str).unwrap_or_default();
    if commit.is_empty() || branch.is_empty() {
        // A tag push records no branch; nothing to check it against.
        return Ok(());
    }
    let mirror = rt.checkout_at(path)?.checkout.mirror().clone();
    let tip = mirror.fetch(&crate::git::RemoteRef::Branch(branch.to_owned()))?;
    let on_branch = tip == commit
        || mirror
            .git(&["merge-base", "--is-ancestor", commit, &tip])
            .is_ok();
    if on_branch {
        return Ok(());
    }
    Err(fail(format!(
        "the push recorded on the Promotion (commit {commit} on branch {branch:?} of {}) is not on that branch: the record was rewritten, or the branch was; hint: start a new promotion",
        mirror.display_url()
    )))
}

#[cfg(test)]
mod registry_tests {
    use super::*;

    /// The README's step table, as the registry says it must read.
    fn readme_table() -> String {
        let mut t = String::from(
            "| step | what it does | config (`?`: optional) | outputs | on `kubectl promote resume` |\n|---|---|---|---|---|\n",
        );
        for s in REGISTRY {
            let outputs = s
                .outputs
                .iter()
                .map(|o| format!("`{o}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let resume = match (s.remote, s.verify_recorded.is_some()) {
                (true, true) => "not run again once recorded as done (the record is checked first)",
                (true, false) => "not run again once recorded as done",
                (false, _) => "run again",
            };
            t.push_str(&format!(
                "| `{}` | {} | {} | {} | {resume} |\n",
                s.name,
                s.summary,
                s.shape.fields(),
                outputs
            ));
        }
        t
    }

    #[test]
    fn the_readme_lists_exactly_the_registered_steps() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .unwrap_or_default();
        let want = readme_table();
        assert!(
            readme.contains(&want),
            "README.md's step table differs from steps::REGISTRY; it must read:\n{want}"
        );
    }

    #[test]
    fn the_registry_and_the_shared_shapes_agree() {
        let names: Vec<&str> = REGISTRY.iter().map(|s| s.name).collect();
        let shared: Vec<&str> = promote_api::step_config::STEPS
            .iter()
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(
            names, shared,
            "the webhook checks the steps the plugin runs"
        );
        for step in REGISTRY {
            let shape = promote_api::step_config::shape(step.name).unwrap();
            assert_eq!(
                format!("{:?}", step.shape),
                format!("{shape:?}"),
                "{}",
                step.name
            );
        }
    }

    #[test]
    fn the_registry_agrees_with_the_webhook_on_remote_steps() {
        let mut remote: Vec<&str> = REGISTRY
            .iter()
            .filter(|s| s.remote)
            .map(|s| s.name)
            .collect();
        let mut trusted = promote_api::trust::REMOTE_STEPS.to_vec();
        remote.sort_unstable();
        trusted.sort_unstable();
        assert_eq!(remote, trusted);
        let mut names: Vec<&str> = REGISTRY.iter().map(|s| s.name).collect();
        names.dedup();
        assert_eq!(names.len(), REGISTRY.len(), "a step is registered once");
        assert!(lookup("git-push").is_some_and(|s| s.verify_recorded.is_some()));
        assert!(lookup("git-unknown").is_none());
    }
}
