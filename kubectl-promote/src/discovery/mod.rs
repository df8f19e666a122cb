//! Warehouse discovery, as Kargo's Warehouse controller does it (`pkg/controller/warehouses`),
//! run on demand by `kubectl promote discover`: each subscription finds its newest artifacts
//! (`image`, `git`, `chart`), the newest of each make one Freight (Kargo's content-hash name, a
//! generated alias), and the Warehouse's status records what was found (`discoveredArtifacts`,
//! `lastFreightID`, conditions). The command (`commands/discover.rs`) decides where Freight and
//! status go: the cluster, or files with `--local`.

pub mod chart;
pub mod git;
pub mod image;
pub mod versions;

use std::sync::Arc;

use promote_api::types::{
    Chart, DiscoveredArtifacts, Freight, FreightOrigin, GitCommit, Image, Subscription, Warehouse,
};
use serde_json::{Value, json};

use crate::credentials::ProjectCredential;
use crate::git::{GitError, Mirror, MirrorOptions};

/// A username and password for a registry or chart repository. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Login({}, <redacted>)", self.username)
    }
}

/// Why a discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// A subscription could not be read or its artifacts not selected.
    #[error("{0}")]
    Failed(String),
    /// Git failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// A registry answered with an error, or could not be reached.
    #[error("registry of {repo:?}: {message}")]
    Registry {
        /// The subscription's repoURL.
        repo: String,
        /// What went wrong (no credentials in it).
        message: String,
        /// The registry said 404 (unknown repository, tag or manifest).
        not_found: bool,
    },
}

impl DiscoveryError {
    fn registry(repo: &str, e: oci_client::errors::OciDistributionError) -> Self {
        use oci_client::errors::OciDistributionError as E;
        let not_found = match &e {
            E::ServerError { code, .. } => *code == 404,
            E::RegistryError { envelope, .. } => envelope.errors.iter().any(|x| {
                matches!(
                    x.code,
                    oci_client::errors::OciErrorCode::ManifestUnknown
                        | oci_client::errors::OciErrorCode::NameUnknown
                        | oci_client::errors::OciErrorCode::BlobUnknown
                )
            }),
            E::ImageManifestNotFoundError(_) => true,
            _ => false,
        };
        let mut message = crate::git::redact::strip_userinfo(&e.to_string());
        if let E::AuthenticationFailure(_) | E::UnauthorizedError { .. } = e {
            message.push_str(
                "; hint: give the registry's credentials in a Kargo credential Secret (kargo.akuity.io/cred-type: image), in ~/.docker/config.json, or in PROMOTE_REGISTRY_USERNAME/PROMOTE_REGISTRY_PASSWORD with the registry listed in PROMOTE_TOKEN_HOSTS",
            );
        }
        Self::Registry {
            repo: repo.to_owned(),
            message,
            not_found,
        }
    }
}

/// Kargo's tag filters (`allowTagsRegexes`, `ignoreTagsRegexes`), shared by image and Git tag
/// discovery: an ignored tag never counts; without allow patterns every other tag does.
pub(crate) struct TagFilter {
    allow: Vec<regex::Regex>,
    ignore: Vec<regex::Regex>,
}

impl TagFilter {
    /// Compile both lists; an invalid pattern names its field. The deprecated `allowTags` and
    /// `ignoreTags` are refused with Kargo v1.11's words.
    pub(crate) fn new(
        allow_tags: &str,
        ignore_tags: &[String],
        allow: &[String],
        ignore: &[String],
    ) -> Result<Self, String> {
        if !allow_tags.is_empty() {
            return Err("AllowTags is deprecated and unsupported as of v1.11.0; use AllowTagsRegexes instead".into());
        }
        if !ignore_tags.is_empty() {
            return Err("IgnoreTags is deprecated and unsupported as of v1.11.0; use IgnoreTagsRegexes instead".into());
        }
        let compile = |list: &[String], field: &str| {
            list.iter()
                .map(|r| {
                    regex::Regex::new(r).map_err(|e| {
                        format!("{field}: error compiling regular expression {r:?}: {e}")
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            allow: compile(allow, "allowTagsRegexes")?,
            ignore: compile(ignore, "ignoreTagsRegexes")?,
        })
    }

    /// Whether a tag passes.
    pub(crate) fn allows(&self, tag: &str) -> bool {
        !self.ignore.iter().any(|r| r.is_match(tag))
            && (self.allow.is_empty() || self.allow.iter().any(|r| r.is_match(tag)))
    }
}

/// Environment variables for registry credentials (sent only to hosts in `PROMOTE_TOKEN_HOSTS`).
pub const ENV_REGISTRY_USERNAME: &str = "PROMOTE_REGISTRY_USERNAME";
/// See [`ENV_REGISTRY_USERNAME`].
pub const ENV_REGISTRY_PASSWORD: &str = "PROMOTE_REGISTRY_PASSWORD";

/// Where credentials come from: the project's Kargo credential Secrets (by `cred-type`), the
/// user's Docker (and Helm registry) config, the environment.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// `kargo.akuity.io/cred-type: git` Secrets.
    pub git: Arc<Vec<ProjectCredential>>,
    /// `kargo.akuity.io/cred-type: image` Secrets.
    pub image: Vec<ProjectCredential>,
    /// `kargo.akuity.io/cred-type: helm` Secrets.
    pub helm: Vec<ProjectCredential>,
    /// `auths` of `~/.docker/config.json` and Helm's `registry/config.json`: registry → login.
    pub docker: Vec<(String, Login)>,
}

/// The `auths` of a Docker-style config file (`auth` = base64 `user:password`, or `username`
/// and `password`). Credential helpers (`credsStore`) are not run.
pub fn docker_auths(doc: &Value) -> Vec<(String, Login)> {
    let Some(auths) = doc.get("auths").and_then(Value::as_object) else {
        return Vec::new();
    };
    auths
        .iter()
        .filter_map(|(host, a)| {
            let host = host
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            let from_auth = a
                .get("auth")
                .and_then(Value::as_str)
                .and_then(crate::credentials::base64_decode)
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| {
                    s.split_once(':').map(|(u, p)| Login {
                        username: u.into(),
                        password: p.into(),
                    })
                });
            let direct = || {
                Some(Login {
                    username: a.get("username")?.as_str()?.into(),
                    password: a.get("password")?.as_str()?.into(),
                })
            };
            from_auth.or_else(direct).map(|l| (host, l))
        })
        .collect()
}

impl Credentials {
    /// The user's Docker and Helm registry configs (`$DOCKER_CONFIG/config.json` or
    /// `~/.docker/config.json`; `$HELM_REGISTRY_CONFIG` or `~/.config/helm/registry/config.json`).
    pub fn load_user(&mut self) {
        let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
        let docker = std::env::var_os("DOCKER_CONFIG")
            .map(|d| std::path::PathBuf::from(d).join("config.json"))
            .or_else(|| home.as_ref().map(|h| h.join(".docker/config.json")));
        let helm = std::env::var_os("HELM_REGISTRY_CONFIG")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                home.as_ref()
                    .map(|h| h.join(".config/helm/registry/config.json"))
            });
        for path in [docker, helm].into_iter().flatten() {
            if let Ok(text) = std::fs::read(&path)
                && let Ok(doc) = serde_json::from_slice::<Value>(&text)
            {
                self.docker.extend(docker_auths(&doc));
            }
        }
    }

    fn from_env(registry: &str) -> Option<Login> {
        let password = std::env::var(ENV_REGISTRY_PASSWORD).ok()?;
        if !crate::credentials::opted_in(registry) {
            return None;
        }
        Some(Login {
            username: std::env::var(ENV_REGISTRY_USERNAME).unwrap_or_else(|_| "promote".into()),
            password,
        })
    }

    fn secret(
        creds: &[ProjectCredential],
        url: &str,
        normalize: fn(&str) -> String,
    ) -> Option<Login> {
        let norm = normalize(url);
        creds
            .iter()
            .find(|c| !c.is_regex && normalize(&c.repo_url) == norm)
            .or_else(|| {
                creds.iter().find(|c| {
                    c.is_regex
                        && regex::Regex::new(&c.repo_url)
                            .is_ok_and(|re| re.is_match(&norm) || re.is_match(url))
                })
            })
            .filter(|c| !c.password.is_empty())
            .map(|c| Login {
                username: c.username.clone(),
                password: c.password.clone(),
            })
    }

    /// The login for an image repository: project Secret, Docker config, environment.
    pub fn for_image(&self, repo_url: &str) -> Option<Login> {
        let registry = image::repository(repo_url).ok()?.registry().to_owned();
        Self::secret(&self.image, repo_url, promote_api::urls::normalize_image)
            .or_else(|| self.docker_for(&registry))
            .or_else(|| Self::from_env(&registry))
    }

    /// The login for a chart repository: project Secret, then for `oci://` the registry
    /// configs and the environment.
    pub fn for_chart(&self, repo_url: &str) -> Option<Login> {
        let from_secret = Self::secret(&self.helm, repo_url, promote_api::urls::normalize_chart);
        let registry = repo_url
            .strip_prefix("oci://")
            .and_then(|r| r.split('/').next())
            .map(str::to_owned);
        from_secret.or_else(|| {
            let registry = registry?;
            self.docker_for(&registry)
                .or_else(|| Self::from_env(&registry))
        })
    }

    fn docker_for(&self, registry: &str) -> Option<Login> {
        let names: &[&str] = if registry == "docker.io" || registry == "index.docker.io" {
            &["index.docker.io", "docker.io", "registry-1.docker.io"]
        } else {
            &[registry]
        };
        self.docker
            .iter()
            .find(|(h, _)| names.contains(&h.as_str()))
            .map(|(_, l)| l.clone())
    }
}

/// What discovery runs with.
pub struct Env {
    /// Git mirrors (cache root, TLS, redactor).
    pub mirror_opts: MirrorOptions,
    /// Credentials.
    pub creds: Credentials,
}

/// Discover every subscription of a Warehouse, in order. Generic subscriptions (Kargo's
/// extension point for external subscribers) are refused: nothing here can serve them.
pub fn discover(w: &Warehouse, env: &Env) -> Result<DiscoveredArtifacts, DiscoveryError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DiscoveryError::Failed(format!("cannot start the HTTP runtime: {e}")))?;
    let mut out = DiscoveredArtifacts::default();
    for (i, raw) in w.spec.subscriptions.iter().enumerate() {
        match Subscription::parse(raw) {
            Subscription::Image(sub) => {
                let login = env.creds.for_image(&sub.repo_url);
                out.images
                    .push(rt.block_on(image::discover(&sub, login.as_ref()))?);
            }
            Subscription::Chart(sub) => {
                let login = env.creds.for_chart(&sub.repo_url);
                out.charts
                    .push(rt.block_on(chart::discover(&sub, login.as_ref()))?);
            }
            Subscription::Git(sub) => {
                let (url, opts) =
                    crate::credentials::for_url(&sub.repo_url, &env.mirror_opts, &env.creds.git);
                let mut opts = opts;
                opts.insecure_skip_tls_verify |= sub.insecure_skip_tls_verify;
                let mirror = Mirror::open(&url, opts)?;
                out.git.push(git::discover(&mirror, &sub)?);
            }
            Subscription::Generic(_) | Subscription::Unknown(_) => {
                return Err(DiscoveryError::Failed(format!(
                    "subscription {i} of Warehouse {:?} is not a git, image or chart subscription; promote discovers only those (generic subscriptions need Kargo's external subscribers)",
                    w.metadata.name.as_deref().unwrap_or_default()
                )));
            }
        }
    }
    out.discovered_at = crate::kube::now();
    Ok(out)
}

/// The Freight made of the newest artifact of each subscription (Kargo's
/// `buildFreightFromLatestArtifacts`), named by its content hash; `None` when some subscription
/// found nothing (Kargo's `MissingArtifacts`), with the reason.
pub fn freight_from(
    ns: &str,
    warehouse: &str,
    found: &DiscoveredArtifacts,
) -> Result<Freight, String> {
    if found.git.len() + found.images.len() + found.charts.len() == 0 {
        return Err("No artifacts discovered".into());
    }
    let mut f = Freight::new(ns, FreightOrigin::warehouse(warehouse));
    for r in &found.git {
        let c = r
            .commits
            .first()
            .ok_or_else(|| format!("no commits discovered for repository {:?}", r.repo_url))?;
        f.commits.push(GitCommit {
            repo_url: r.repo_url.clone(),
            id: c.id.clone(),
            branch: c.branch.clone(),
            tag: c.tag.clone(),
            message: c.subject.clone(),
            author: c.author.clone(),
            committer: c.committer.clone(),
        });
    }
    for r in &found.images {
        let i = r
            .references
            .first()
            .ok_or_else(|| format!("no images discovered for repository {:?}", r.repo_url))?;
        f.images.push(Image {
            repo_url: r.repo_url.clone(),
            tag: i.tag.clone(),
            digest: i.digest.clone(),
            annotations: i.annotations.clone(),
        });
    }
    for r in &found.charts {
        let v = r.versions.first().ok_or_else(|| {
            format!(
                "no versions discovered for chart {:?} from repository {:?}",
                r.name, r.repo_url
            )
        })?;
        f.charts.push(Chart {
            repo_url: r.repo_url.clone(),
            name: r.name.clone(),
            version: v.clone(),
        });
    }
    let name = promote_api::freight_id::freight_id(&f);
    f.metadata.name = Some(name);
    f.discovered_at = Some(promote_api::types::Time(
        found
            .discovered_at
            .parse()
            .unwrap_or_else(|_| jiff::Timestamp::now()),
    ));
    Ok(f)
}

/// What happened to the Freight of a discovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// A new Freight was created.
    New(String),
    /// It existed already.
    Existing(String),
    /// The Warehouse's policy is Manual: nothing created.
    Manual,
    /// Its `freightCreationCriteria` expression was false: nothing created.
    CriteriaNotSatisfied,
}

/// Kargo's `conditions.Set` for this Warehouse: a condition whose status did not change keeps its
/// `lastTransitionTime`.
fn condition_maker<'a>(
    w: &Warehouse,
    now: &'a str,
) -> impl Fn(&str, &str, &str, &str) -> Value + 'a {
    let generation = w.metadata.generation.unwrap_or(0);
    let previous = w
        .status
        .as_ref()
        .map(|s| promote_api::stage_status::as_values(&s.conditions))
        .unwrap_or_default();
    move |kind, status, reason, message| {
        promote_api::stage_status::condition(
            &previous, kind, status, reason, message, generation, now,
        )
    }
}

/// The Warehouse status after a successful discovery (Kargo's conditions, reasons and messages).
pub fn status_after(
    w: &Warehouse,
    found: &DiscoveredArtifacts,
    created: &Result<Created, String>,
    now: &str,
) -> Value {
    let generation = w.metadata.generation.unwrap_or(0);
    let c = condition_maker(w, now);
    let n = w.spec.subscriptions.len();
    let mut conditions = Vec::new();
    let mut last = w
        .status
        .as_ref()
        .map(|s| s.last_freight_id.clone())
        .unwrap_or_default();
    match created {
        Err(message) if message == "No artifacts discovered" => {
            conditions.push(c("Healthy", "False", "MissingArtifacts", message));
            conditions.push(c("Ready", "False", "MissingArtifacts", message));
        }
        Err(message) => {
            let msg = format!("Error building Freight from latest artifacts: {message}");
            conditions.push(c("Healthy", "False", "FreightBuildFailure", &msg));
            conditions.push(c("Ready", "False", "FreightBuildFailure", &msg));
        }
        Ok(outcome) => {
            match outcome {
                Created::New(name) => {
                    conditions.push(c(
                        "FreightCreationCriteriaSatisfied",
                        "True",
                        "CriteriaSatisfied",
                        "Freight creation criteria satisfied",
                    ));
                    conditions.push(c(
                        "FreightCreated",
                        "True",
                        "NewFreight",
                        "No Freight composed of the newest artifacts already existed",
                    ));
                    last = name.clone();
                }
                Created::Existing(name) => {
                    conditions.push(c(
                        "FreightCreationCriteriaSatisfied",
                        "True",
                        "CriteriaSatisfied",
                        "Freight creation criteria satisfied",
                    ));
                    conditions.push(c(
                        "FreightCreated",
                        "False",
                        "AlreadyExists",
                        "Freight composed of the newest artifacts already exists",
                    ));
                    last = name.clone();
                }
                Created::Manual => {}
                Created::CriteriaNotSatisfied => {
                    conditions.push(c(
                        "FreightCreationCriteriaSatisfied",
                        "False",
                        "CriteriaNotSatisfied",
                        "Freight creation criteria were not satisfied",
                    ));
                }
            }
            conditions.push(c("Healthy", "True", "ReconciliationSucceeded", ""));
            conditions.push(c(
                "Ready",
                "True",
                "ArtifactsDiscovered",
                &format!("Successfully discovered artifacts from {n} subscriptions"),
            ));
        }
    }
    let mut status = json!({
        "conditions": conditions,
        "observedGeneration": generation,
        "discoveredArtifacts": found,
    });
    if !last.is_empty() {
        status["lastFreightID"] = json!(last);
    }
    status
}

/// The Warehouse status when its `freightCreationCriteria` could not be evaluated (Kargo's).
pub fn status_criteria_failed(w: &Warehouse, error: &str, now: &str) -> Value {
    let c = condition_maker(w, now);
    let msg = format!("Evaluation of Freight creation criteria failed: {error}");
    json!({
        "conditions": [
            c("Healthy", "False", "CriteriaEvaluationFailed", &msg),
            c("Ready", "False", "CriteriaEvaluationFailed", &msg),
        ],
    })
}

/// The Warehouse status after a failed discovery.
pub fn status_failed(w: &Warehouse, error: &str, now: &str) -> Value {
    let c = condition_maker(w, now);
    json!({
        "conditions": [
            c("Healthy", "False", "DiscoveryFailed", &format!("Unable to discover artifacts: {error}")),
            c("Ready", "False", "DiscoveryFailure", &format!("Artifact discovery failed: {error}")),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_subscriptions_are_refused_as_kargo_has_no_subscriber_for_them() {
        // Kargo v1.11.2 registers subscribers for git, image and chart only: a generic
        // `subscription:` fails there too ("error finding subscriber for subscription").
        let w: Warehouse = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "w", "namespace": "p"},
            "spec": {"subscriptions": [{"subscription": {"subscriptionType": "s3", "name": "b"}}]},
        }))
        .unwrap();
        let env = Env {
            mirror_opts: MirrorOptions::default(),
            creds: Credentials::default(),
        };
        let err = discover(&w, &env).unwrap_err().to_string();
        assert!(
            err.contains(
                "subscription 0 of Warehouse \"w\" is not a git, image or chart subscription"
            ),
            "{err}"
        );
    }
    use promote_api::types::{
        ChartDiscoveryResult, DiscoveredCommit, DiscoveredImageReference, GitDiscoveryResult,
        ImageDiscoveryResult,
    };

    fn warehouse() -> Warehouse {
        serde_json::from_value(json!({
            "metadata": {"name": "w", "namespace": "p", "generation": 4},
            "spec": {"subscriptions": [{"image": {"repoURL": "ghcr.io/acme/api"}}, {"git": {"repoURL": "https://git.example/r.git"}}]},
            "status": {"lastFreightID": "old", "conditions": [
                {"type": "Ready", "status": "True", "reason": "ArtifactsDiscovered", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}
            ]},
        }))
        .unwrap()
    }

    fn found() -> DiscoveredArtifacts {
        DiscoveredArtifacts {
            discovered_at: "2026-12-02T10:00:00Z".into(),
            images: vec![ImageDiscoveryResult {
                repo_url: "ghcr.io/acme/api".into(),
                references: vec![
                    DiscoveredImageReference {
                        tag: "1.2.0".into(),
                        digest: "sha256:b".into(),
                        ..Default::default()
                    },
                    DiscoveredImageReference {
                        tag: "1.1.0".into(),
                        digest: "sha256:a".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            git: vec![GitDiscoveryResult {
                repo_url: "https://git.example/r.git".into(),
                commits: vec![DiscoveredCommit {
                    id: "c0ffee".into(),
                    subject: "fix".into(),
                    ..Default::default()
                }],
            }],
            ..Default::default()
        }
    }

    #[test]
    fn the_newest_of_each_subscription_make_one_freight_named_by_its_content() {
        let f = freight_from("p", "w", &found()).unwrap();
        assert_eq!(f.images[0].tag, "1.2.0");
        assert_eq!(f.commits[0].message, "fix");
        assert_eq!(
            f.metadata.name.as_deref(),
            Some(promote_api::freight_id::freight_id(&f).as_str())
        );
        assert_eq!(f.metadata.namespace.as_deref(), Some("p"));
        let mut none = found();
        none.images[0].references.clear();
        assert_eq!(
            freight_from("p", "w", &none).unwrap_err(),
            "no images discovered for repository \"ghcr.io/acme/api\""
        );
        let mut chartless = DiscoveredArtifacts::default();
        chartless.charts.push(ChartDiscoveryResult {
            repo_url: "oci://r/c".into(),
            ..Default::default()
        });
        assert!(
            freight_from("p", "w", &chartless)
                .unwrap_err()
                .contains("no versions discovered")
        );
        assert_eq!(
            freight_from("p", "w", &DiscoveredArtifacts::default()).unwrap_err(),
            "No artifacts discovered"
        );
    }

    #[test]
    fn the_warehouse_status_says_what_kargos_controller_says() {
        let w = warehouse();
        let now = "2026-12-02T10:00:01Z";
        let s = status_after(&w, &found(), &Ok(Created::New("abc".into())), now);
        assert_eq!(s["lastFreightID"], "abc");
        assert_eq!(s["observedGeneration"], 4);
        let cond = |s: &Value, t: &str| {
            s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .cloned()
                .unwrap()
        };
        let ready = cond(&s, "Ready");
        assert_eq!(
            ready["message"],
            "Successfully discovered artifacts from 2 subscriptions"
        );
        assert_eq!(
            ready["lastTransitionTime"], "2026-01-01T00:00:00Z",
            "unchanged status keeps its time"
        );
        assert_eq!(cond(&s, "FreightCreated")["reason"], "NewFreight");
        let again = status_after(&w, &found(), &Ok(Created::Existing("abc".into())), now);
        assert_eq!(cond(&again, "FreightCreated")["reason"], "AlreadyExists");
        let manual = status_after(&w, &found(), &Ok(Created::Manual), now);
        assert_eq!(manual["lastFreightID"], "old");
        assert!(
            manual["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["type"] != "FreightCreated")
        );
        let missing = status_after(
            &w,
            &DiscoveredArtifacts::default(),
            &Err("No artifacts discovered".into()),
            now,
        );
        assert_eq!(cond(&missing, "Ready")["reason"], "MissingArtifacts");
        let failed = status_failed(&w, "boom", now);
        assert_eq!(cond(&failed, "Ready")["status"], "False");
        assert_eq!(cond(&failed, "Ready")["lastTransitionTime"], now);
        assert_eq!(
            cond(&failed, "Healthy")["message"],
            "Unable to discover artifacts: boom"
        );
    }

    #[test]
    fn credentials_come_from_secrets_then_docker_config_and_are_never_shown() {
        let docker = docker_auths(&json!({"auths": {
            "https://index.docker.io/v1/": {"auth": crate::credentials::base64(b"hub:hub-pass")},
            "registry.local:5000": {"username": "u", "password": "p"},
        }}));
        let mut creds = Credentials {
            docker,
            ..Default::default()
        };
        assert_eq!(creds.for_image("nginx").unwrap().username, "hub");
        assert_eq!(
            creds
                .for_image("registry.local:5000/team/app")
                .unwrap()
                .password,
            "p"
        );
        assert!(creds.for_image("ghcr.io/acme/api").is_none());
        creds.image.push(ProjectCredential {
            repo_url: "registry.local:5000/team/app".into(),
            username: "bot".into(),
            password: "s3cret".into(),
            ..Default::default()
        });
        creds.helm.push(ProjectCredential {
            repo_url: "^oci://charts\\.example/.*".into(),
            is_regex: true,
            username: "c".into(),
            password: "chart-pass".into(),
            ..Default::default()
        });
        let l = creds.for_image("Registry.local:5000/team/app").unwrap();
        assert_eq!(l.username, "bot", "the project's Secret comes first");
        assert!(!format!("{l:?}").contains("s3cret"));
        assert_eq!(
            creds
                .for_chart("oci://charts.example/x/podinfo")
                .unwrap()
                .password,
            "chart-pass"
        );
    }
}
