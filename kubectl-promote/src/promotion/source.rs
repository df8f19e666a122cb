//! Where a promotion's inputs come from: the Stage, the Freight, the project's Stages and
//! PromotionTasks, a Promotion to resume, and what the steps may reach (Argo CD Applications,
//! the project's Git credentials). [`Files`] reads a manifests directory (`--local`); [`Cluster`]
//! reads the API server, listing only what the Stage needs.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use promote_api::types::{Freight, Promotion, PromotionTask, Stage};
use serde_json::Value;

use crate::credentials::ProjectCredential;
use crate::error::{Error, context, decode};
use crate::kube::{Api, kargo_path};
use crate::manifests::Manifests;
use crate::steps::{ClusterAccess, Runtime};

/// The inputs of a promotion.
pub trait Source {
    /// The project (namespace).
    fn project(&self) -> &str;
    /// The Stage named `name`.
    fn stage(&self, name: &str) -> Result<Stage, Error>;
    /// Every Stage of the project.
    fn stages(&self) -> Result<Vec<Stage>, Error>;
    /// Freight that may be the one asked for (by full name, prefix or alias); resolution picks.
    fn freight(&self, name: Option<&str>, alias: Option<&str>) -> Result<Vec<Freight>, Error>;
    /// What the Stage's template needs: the project's Stages (for the legacy format's upstream
    /// origins) and PromotionTasks (for task references).
    fn template_inputs(&self, stage: &Stage) -> Result<(Vec<Stage>, Vec<PromotionTask>), Error>;
    /// The Promotion named `name`, to resume it.
    fn promotion(&self, name: &str) -> Result<Option<Promotion>, Error>;
    /// The Argo CD Application `ns/name`, when this source knows Applications (`None`: absent
    /// from the cluster, or not among the local manifests).
    fn application(&self, ns: &str, name: &str) -> Result<Option<Value>, Error>;
    /// Whether Applications come from a cluster (an absent one then really is absent).
    fn has_cluster(&self) -> bool;
    /// Give the steps what this source offers them: the cluster (with the deadline its waits
    /// honour) or the local Application manifests, and the project's Git credentials.
    fn equip<'a>(&'a self, rt: &mut Runtime<'a>, deadline: Instant, timeout: Duration);
}

/// A manifests directory: no cluster, no Promotion object.
pub struct Files {
    manifests: Manifests,
    project: String,
}

impl Files {
    /// The manifests of `project`.
    pub fn new(manifests: Manifests, project: String) -> Self {
        Self { manifests, project }
    }
}

impl Source for Files {
    fn project(&self) -> &str {
        &self.project
    }

    fn stage(&self, name: &str) -> Result<Stage, Error> {
        let in_project = || {
            self.manifests
                .stages
                .iter()
                .filter(|s| s.project() == self.project)
        };
        in_project()
            .find(|s| s.name() == name)
            .cloned()
            .ok_or_else(|| Error::StageNotFound {
                stage: name.to_owned(),
                project: self.project.clone(),
                available: in_project().map(|s| s.name().to_owned()).collect(),
            })
    }

    fn stages(&self) -> Result<Vec<Stage>, Error> {
        Ok(self.manifests.stages.clone())
    }

    fn freight(&self, _: Option<&str>, _: Option<&str>) -> Result<Vec<Freight>, Error> {
        Ok(self.manifests.freight.clone())
    }

    fn template_inputs(&self, _: &Stage) -> Result<(Vec<Stage>, Vec<PromotionTask>), Error> {
        Ok((self.manifests.stages.clone(), self.manifests.tasks.clone()))
    }

    fn promotion(&self, _: &str) -> Result<Option<Promotion>, Error> {
        Ok(None)
    }

    fn application(&self, ns: &str, name: &str) -> Result<Option<Value>, Error> {
        Ok(self
            .manifests
            .applications
            .iter()
            .find(|a| {
                let app_ns = promote_api::argocd::app_namespace(a);
                promote_api::argocd::app_name(a) == name
                    && (app_ns == ns || app_ns.is_empty() && ns == "argocd")
            })
            .cloned())
    }

    fn has_cluster(&self) -> bool {
        false
    }

    fn equip<'a>(&'a self, rt: &mut Runtime<'a>, _: Instant, _: Duration) {
        rt.applications = self.manifests.applications.clone();
        let typed = |v: serde_json::Result<serde_json::Value>| v.ok();
        rt.local_objects = self
            .manifests
            .data
            .iter()
            .cloned()
            .chain(self.manifests.stages.iter().filter_map(|s| {
                typed(serde_json::to_value(s)).map(|mut v| {
                    v["kind"] = "Stage".into();
                    v
                })
            }))
            .chain(self.manifests.freight.iter().filter_map(|f| {
                typed(serde_json::to_value(f)).map(|mut v| {
                    v["kind"] = "Freight".into();
                    v
                })
            }))
            .collect();
    }
}

/// The API server.
pub struct Cluster<'k> {
    api: &'k dyn Api,
    project: String,
    quiet: bool,
    /// Read once per command (`--downstream-from` runs several promotions).
    credentials: OnceLock<Arc<Vec<ProjectCredential>>>,
}

impl<'k> Cluster<'k> {
    /// The objects of `project`.
    pub fn new(api: &'k dyn Api, project: String, quiet: bool) -> Self {
        Self {
            api,
            project,
            quiet,
            credentials: OnceLock::new(),
        }
    }

    /// The API.
    pub fn api(&self) -> &'k dyn Api {
        self.api
    }

    fn path(&self, plural: &str, name: &str) -> String {
        kargo_path(plural, &self.project, name)
    }

    fn list<T: serde::de::DeserializeOwned>(
        &self,
        plural: &str,
        what: &str,
        selector: Option<&str>,
    ) -> Result<Vec<T>, Error> {
        self.api
            .list(&self.path(plural, ""), selector)
            .map_err(context(format!("listing {what}")))?
            .into_iter()
            .map(|v| decode(v, what))
            .collect()
    }

    /// The project's Kargo Git credentials (Secrets labelled `kargo.akuity.io/cred-type: git`).
    /// Reading them needs `list` on Secrets in the project (`promote-credentials-reader`); without
    /// it the user's own credentials are used.
    fn project_credentials(&self) -> Vec<ProjectCredential> {
        let selector = format!("{}=git", promote_api::keys::CRED_TYPE);
        match self.api.list(
            &format!("/api/v1/namespaces/{}/secrets", self.project),
            Some(&selector),
        ) {
            Ok(items) => items
                .iter()
                .filter_map(ProjectCredential::from_secret)
                .collect(),
            // Promoters usually may not read Secrets (403): their own Git credentials apply.
            Err(e) if e.code == 403 || e.code == 404 => Vec::new(),
            Err(e) => {
                if !self.quiet {
                    eprintln!(
                        "warning: cannot read the project's Git credential Secrets ({e}); your own Git credentials apply"
                    );
                }
                Vec::new()
            }
        }
    }
}

impl Source for Cluster<'_> {
    fn project(&self) -> &str {
        &self.project
    }

    fn stage(&self, name: &str) -> Result<Stage, Error> {
        match self
            .api
            .get(&self.path("stages", name))
            .map_err(context(format!("reading Stage {name}")))?
        {
            Some(v) => decode(v, format!("Stage {name}")),
            None => Err(Error::StageNotFound {
                stage: name.to_owned(),
                project: self.project.clone(),
                available: self
                    .api
                    .list(&self.path("stages", ""), None)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|s| s.pointer("/metadata/name").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect(),
            }),
        }
    }

    fn stages(&self) -> Result<Vec<Stage>, Error> {
        self.list("stages", "Stages", None)
    }

    /// One GET for a full name, else a LIST (by alias label when asked).
    fn freight(&self, name: Option<&str>, alias: Option<&str>) -> Result<Vec<Freight>, Error> {
        if let Some(n) = name.filter(|n| n.len() == 40 && n.bytes().all(|b| b.is_ascii_hexdigit()))
            && let Some(v) = self
                .api
                .get(&self.path("freights", n))
                .map_err(context(format!("reading Freight {n}")))?
        {
            return Ok(vec![decode(v, format!("Freight {n}"))?]);
        }
        let selector = alias.map(|a| format!("{}={a}", promote_api::keys::ALIAS));
        self.list("freights", "Freight", selector.as_deref())
    }

    /// Each listed only when the Stage needs it.
    fn template_inputs(&self, stage: &Stage) -> Result<(Vec<Stage>, Vec<PromotionTask>), Error> {
        let stages = if promote_api::legacy::is_legacy(stage) {
            self.stages()?
        } else {
            vec![stage.clone()]
        };
        let mut tasks = if stage.references_task_kind("PromotionTask") {
            self.list("promotiontasks", "PromotionTasks", None)?
        } else {
            Vec::new()
        };
        if stage.references_task_kind("ClusterPromotionTask") {
            let cluster: Vec<promote_api::types::ClusterPromotionTask> = self
                .api
                .list(
                    &format!("{}/clusterpromotiontasks", crate::kube::KARGO),
                    None,
                )
                .map_err(context("listing ClusterPromotionTasks"))?
                .into_iter()
                .map(|v| decode(v, "ClusterPromotionTask"))
                .collect::<Result<_, _>>()?;
            tasks.extend(cluster.into_iter().map(Into::into));
        }
        Ok((stages, tasks))
    }

    fn promotion(&self, name: &str) -> Result<Option<Promotion>, Error> {
        self.api
            .get(&self.path("promotions", name))
            .map_err(context(format!("reading Promotion {name}")))?
            .map(|v| decode(v, format!("Promotion {name}")))
            .transpose()
    }

    fn application(&self, ns: &str, name: &str) -> Result<Option<Value>, Error> {
        self.api
            .get(&crate::kube::app_path(ns, name))
            .map_err(context(format!("reading Argo CD Application {ns}/{name}")))
    }

    fn has_cluster(&self) -> bool {
        true
    }

    fn equip<'a>(&'a self, rt: &mut Runtime<'a>, deadline: Instant, timeout: Duration) {
        rt.project_credentials = self
            .credentials
            .get_or_init(|| Arc::new(self.project_credentials()))
            .clone();
        rt.cluster = Some(ClusterAccess {
            kube: self.api,
            deadline,
            timeout,
        });
    }
}
