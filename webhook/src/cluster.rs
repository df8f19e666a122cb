//! What the decisions read from the cluster: Kargo objects and SubjectAccessReview answers.
//!
//! [`KubeCluster`] asks a Kubernetes API server (caching `promote` answers briefly, and keeping
//! Promotions in a watch-fed cache, as controller-runtime's cached client does for Kargo's
//! webhook: a cache miss, such as a Promotion created a moment ago, falls back to a GET);
//! [`StaticCluster`] serves objects loaded from YAML files, for `promote-webhook review` and tests.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use promote_api::types::{Freight, Promotion, PromotionTask, Stage, Warehouse};
use serde::de::DeserializeOwned;

use crate::review::UserInfo;

/// Whether a SubjectAccessReview allowed the user to `promote` a Stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    Allowed,
    /// Denied, with the authorizer's reason (may be empty).
    Denied(String),
    /// The review could not be made.
    Error(String),
}

/// Read access to what decisions need. Errors are messages (they end up in denials).
pub trait Cluster: Send + Sync {
    fn promotion(
        &self,
        ns: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Arc<Promotion>>, String>> + Send;
    fn stage(
        &self,
        ns: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Stage>, String>> + Send;
    fn stages(&self, ns: &str) -> impl Future<Output = Result<Vec<Stage>, String>> + Send;
    /// A Warehouse (the origin new Freight names).
    fn warehouse(
        &self,
        ns: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Warehouse>, String>> + Send;
    fn tasks(&self, ns: &str) -> impl Future<Output = Result<Vec<PromotionTask>, String>> + Send;
    /// Every ClusterPromotionTask, as a PromotionTask without a namespace.
    fn cluster_tasks(&self) -> impl Future<Output = Result<Vec<PromotionTask>, String>> + Send;
    fn freight(
        &self,
        ns: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Freight>, String>> + Send;
    /// Freight in `ns` labelled with `alias`.
    fn freight_by_alias(
        &self,
        ns: &str,
        alias: &str,
    ) -> impl Future<Output = Result<Vec<Freight>, String>> + Send;
    /// Whether `user` may `promote` Stage `stage` in `ns`.
    fn may_promote(
        &self,
        user: &UserInfo,
        ns: &str,
        stage: &str,
    ) -> impl Future<Output = Access> + Send {
        self.may(user, ns, Verb::Promote, stage)
    }
    /// Whether `user` holds `verb` on Stage `stage` in `ns`.
    fn may(
        &self,
        user: &UserInfo,
        ns: &str,
        verb: Verb,
        stage: &str,
    ) -> impl Future<Output = Access> + Send;
    /// A Promotion read from the API server, bypassing any cache (for state its runner wrote a
    /// moment ago).
    fn fresh_promotion(
        &self,
        ns: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Arc<Promotion>>, String>> + Send;
    /// The project's Promotions (from the watch cache when there is one, which may lag the API
    /// server by a moment).
    fn promotions(
        &self,
        ns: &str,
    ) -> impl Future<Output = Result<Vec<Arc<Promotion>>, String>> + Send;
    /// The project's Promotions listed from the API server, bypassing any cache: for a decision
    /// the cached list would refuse, since the state that allows it may have been written by
    /// its runner a moment ago (a Promotion's Succeeded phase just before the Freight status
    /// that it is the evidence for).
    fn fresh_promotions(
        &self,
        ns: &str,
    ) -> impl Future<Output = Result<Vec<Arc<Promotion>>, String>> + Send;
    /// An Argo CD Application, as open JSON.
    fn application(
        &self,
        ns: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, String>> + Send;
    /// A Namespace, as open JSON (a Project's).
    fn namespace(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, String>> + Send;
    /// Create Namespace `name` labelled as a project (the side effect of admitting a Project).
    fn create_project_namespace(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// The RBAC verbs on `stages` the webhook asks about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    /// `promote`: create and run Promotions of the Stage, approve Freight for it.
    Promote,
    /// `authorize`: add or remove the Stage in an Application's `authorized-stage` annotation.
    Authorize,
}

impl Verb {
    /// The verb as RBAC spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Promote => "promote",
            Verb::Authorize => promote_api::trust::AUTHORIZE_VERB,
        }
    }
}

/// How long a SubjectAccessReview answer is reused.
pub const ACCESS_TTL: Duration = Duration::from_secs(10);
const ACCESS_CACHE_MAX: usize = 10_000;

/// A cached SubjectAccessReview answer: who asked (the whole UserInfo, since authorizers may read
/// groups, uid and extra), about which Stage, the answer, and when it was given.
struct AccessEntry {
    user: UserInfo,
    verb: Verb,
    ns: String,
    stage: String,
    answer: Access,
    at: Instant,
}

/// SubjectAccessReview answers by a hash of the question; a hit allocates nothing. An entry
/// keeps its whole question and is used only when that matches, so two questions with the same
/// hash just take turns in one slot.
#[derive(Default)]
struct AccessCache {
    hasher: std::hash::RandomState,
    entries: HashMap<u64, AccessEntry>,
}

impl AccessCache {
    fn key(&self, user: &UserInfo, verb: Verb, ns: &str, stage: &str) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one((user, verb, ns, stage))
    }

    fn get(
        &self,
        user: &UserInfo,
        verb: Verb,
        ns: &str,
        stage: &str,
        ttl: Duration,
    ) -> Option<&Access> {
        self.entries
            .get(&self.key(user, verb, ns, stage))
            .filter(|e| {
                e.at.elapsed() < ttl
                    && &e.user == user
                    && e.verb == verb
                    && e.ns == ns
                    && e.stage == stage
            })
            .map(|e| &e.answer)
    }

    #[allow(clippy::too_many_arguments)]
    fn insert(
        &mut self,
        user: &UserInfo,
        verb: Verb,
        ns: &str,
        stage: &str,
        answer: Access,
        ttl: Duration,
    ) {
        if self.entries.len() >= ACCESS_CACHE_MAX {
            self.entries.retain(|_, e| e.at.elapsed() < ttl);
            if self.entries.len() >= ACCESS_CACHE_MAX {
                self.entries.clear();
            }
        }
        let entry = AccessEntry {
            user: user.clone(),
            verb,
            ns: ns.to_owned(),
            stage: stage.to_owned(),
            answer,
            at: Instant::now(),
        };
        self.entries.insert(self.key(user, verb, ns, stage), entry);
    }
}

/// The cluster behind a kube client.
pub struct KubeCluster {
    client: Client,
    access: Mutex<AccessCache>,
    ttl: Duration,
    promotions: Option<(kube::runtime::reflector::Store<Promotion>, Arc<AtomicBool>)>,
}

fn kube_err(what: &str, e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("cannot read {what}: {} ({})", s.message, s.code),
        other => format!("cannot read {what}: {other}"),
    }
}

impl KubeCluster {
    /// A cluster reached through `client`, caching access answers for `ttl`.
    pub fn new(client: Client, ttl: Duration) -> Self {
        KubeCluster {
            client,
            access: Mutex::new(AccessCache::default()),
            ttl,
            promotions: None,
        }
    }

    /// Keep every Promotion in a watch-fed cache. Returns the future that feeds it (spawn it);
    /// until its first list completes, and whenever a Promotion is not in it, reads go to the API.
    pub fn with_promotion_cache(mut self) -> (Self, impl Future<Output = ()> + Send + 'static) {
        use futures::StreamExt;
        use kube::runtime::{WatchStreamExt, reflector, watcher};
        let (store, writer) = reflector::store();
        let ready = Arc::new(AtomicBool::new(false));
        let api: Api<Promotion> = Api::all(self.client.clone());
        let feed = reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff()
            .applied_objects();
        let (reader, flag) = (store.clone(), ready.clone());
        let task = async move {
            let waiter = async move {
                if reader.wait_until_ready().await.is_ok() {
                    flag.store(true, Ordering::SeqCst);
                }
            };
            let drain = feed.for_each(|_| std::future::ready(()));
            futures::future::join(waiter, drain).await;
        };
        self.promotions = Some((store, ready));
        (self, task)
    }

    async fn get<K>(&self, ns: &str, name: &str, what: &str) -> Result<Option<K>, String>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), ns);
        api.get_opt(name)
            .await
            .map_err(|e| kube_err(&format!("{what} \"{name}\" in namespace \"{ns}\""), e))
    }

    async fn list<K>(&self, ns: &str, lp: &ListParams, what: &str) -> Result<Vec<K>, String>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), ns);
        api.list(lp)
            .await
            .map(|l| l.items)
            .map_err(|e| kube_err(&format!("{what} in namespace \"{ns}\""), e))
    }

    async fn review_access(&self, user: &UserInfo, ns: &str, verb: Verb, stage: &str) -> Access {
        let sar = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.username.clone()),
                uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
                groups: Some(user.groups.clone()),
                extra: (!user.extra.is_empty()).then(|| user.extra.clone().into_iter().collect()),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(promote_api::GROUP.into()),
                    resource: Some("stages".into()),
                    name: Some(stage.into()),
                    namespace: Some(ns.into()),
                    verb: Some(verb.as_str().into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        match api.create(&PostParams::default(), &sar).await {
            Ok(r) => match r.status {
                Some(s) if s.allowed => Access::Allowed,
                Some(s) => Access::Denied(s.reason.unwrap_or_default()),
                None => Access::Error("the SubjectAccessReview came back without status".into()),
            },
            Err(e) => Access::Error(match e {
                kube::Error::Api(s) => s.message,
                other => other.to_string(),
            }),
        }
    }
}

impl Cluster for KubeCluster {
    async fn promotion(&self, ns: &str, name: &str) -> Result<Option<Arc<Promotion>>, String> {
        if let Some((store, ready)) = &self.promotions
            && ready.load(Ordering::SeqCst)
            && let Some(p) = store.get(&kube::runtime::reflector::ObjectRef::new(name).within(ns))
        {
            return Ok(Some(p));
        }
        Ok(self.get(ns, name, "Promotion").await?.map(Arc::new))
    }
    async fn stage(&self, ns: &str, name: &str) -> Result<Option<Stage>, String> {
        self.get(ns, name, "Stage").await
    }
    async fn stages(&self, ns: &str) -> Result<Vec<Stage>, String> {
        self.list(ns, &ListParams::default(), "Stages").await
    }
    async fn warehouse(&self, ns: &str, name: &str) -> Result<Option<Warehouse>, String> {
        self.get(ns, name, "Warehouse").await
    }
    async fn tasks(&self, ns: &str) -> Result<Vec<PromotionTask>, String> {
        self.list(ns, &ListParams::default(), "PromotionTasks")
            .await
    }
    async fn cluster_tasks(&self) -> Result<Vec<PromotionTask>, String> {
        let api: Api<promote_api::types::ClusterPromotionTask> = Api::all(self.client.clone());
        match api.list(&ListParams::default()).await {
            Ok(l) => Ok(l.items.into_iter().map(Into::into).collect()),
            // No ClusterPromotionTask CRD (an older install): there are none.
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
            Err(e) => Err(kube_err("ClusterPromotionTasks", e)),
        }
    }
    async fn freight(&self, ns: &str, name: &str) -> Result<Option<Freight>, String> {
        self.get(ns, name, "Freight").await
    }
    async fn freight_by_alias(&self, ns: &str, alias: &str) -> Result<Vec<Freight>, String> {
        if !promote_api::validation::is_label_value(alias) {
            return Ok(Vec::new());
        }
        let lp = ListParams::default().labels(&format!("{}={alias}", promote_api::keys::ALIAS));
        self.list(ns, &lp, "Freight").await
    }
    async fn may(&self, user: &UserInfo, ns: &str, verb: Verb, stage: &str) -> Access {
        if let Ok(cache) = self.access.lock()
            && let Some(answer) = cache.get(user, verb, ns, stage, self.ttl)
        {
            return answer.clone();
        }
        let answer = self.review_access(user, ns, verb, stage).await;
        // Errors are not cached: the next review asks again.
        if !matches!(answer, Access::Error(_))
            && let Ok(mut cache) = self.access.lock()
        {
            cache.insert(user, verb, ns, stage, answer.clone(), self.ttl);
        }
        answer
    }
    async fn fresh_promotion(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<Arc<Promotion>>, String> {
        Ok(self.get(ns, name, "Promotion").await?.map(Arc::new))
    }
    async fn promotions(&self, ns: &str) -> Result<Vec<Arc<Promotion>>, String> {
        if let Some((store, ready)) = &self.promotions
            && ready.load(Ordering::SeqCst)
        {
            return Ok(store
                .state()
                .into_iter()
                .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
                .collect());
        }
        self.fresh_promotions(ns).await
    }
    async fn fresh_promotions(&self, ns: &str) -> Result<Vec<Arc<Promotion>>, String> {
        let list: Vec<Promotion> = self.list(ns, &ListParams::default(), "Promotions").await?;
        Ok(list.into_iter().map(Arc::new).collect())
    }
    async fn application(&self, ns: &str, name: &str) -> Result<Option<serde_json::Value>, String> {
        use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application"),
            "applications",
        );
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &ar);
        let app = api.get_opt(name).await.map_err(|e| {
            kube_err(
                &format!("Argo CD Application \"{name}\" in namespace \"{ns}\""),
                e,
            )
        })?;
        app.map(|a| serde_json::to_value(a).map_err(|e| e.to_string()))
            .transpose()
    }
    async fn namespace(&self, name: &str) -> Result<Option<serde_json::Value>, String> {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        let ns = api
            .get_opt(name)
            .await
            .map_err(|e| kube_err(&format!("Namespace \"{name}\""), e))?;
        ns.map(|n| serde_json::to_value(n).map_err(|e| e.to_string()))
            .transpose()
    }
    async fn create_project_namespace(&self, name: &str) -> Result<(), String> {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        let ns: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(project_namespace(name)).map_err(|e| e.to_string())?;
        match api.create(&kube::api::PostParams::default(), &ns).await {
            Ok(_) => Ok(()),
            // Created meanwhile (a retried review): the label check already passed.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(
                kube_err(&format!("creating Namespace \"{name}\""), e).replacen(
                    "cannot read ",
                    "cannot ",
                    1,
                ),
            ),
        }
    }
}

/// The Namespace a Project makes: its name, labelled `kargo.akuity.io/project: "true"`.
pub fn project_namespace(name: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {promote_api::keys::PROJECT_LABEL: "true"}},
    })
}

/// Objects held in memory, for offline reviews and tests.
#[derive(Clone, Debug, Default)]
pub struct StaticCluster {
    pub promotions: Vec<Promotion>,
    pub stages: Vec<Stage>,
    pub tasks: Vec<PromotionTask>,
    pub freight: Vec<Freight>,
    pub warehouses: Vec<Warehouse>,
    /// `(user, namespace, stage)` triples allowed to promote, `*` matching anything; `None`
    /// answers every access question with an error explaining that offline reviews cannot check
    /// RBAC.
    pub promoters: Option<Vec<(String, String, String)>>,
    /// The same for the `authorize` verb.
    pub authorizers: Option<Vec<(String, String, String)>>,
    /// Argo CD Applications (open JSON).
    pub applications: Vec<serde_json::Value>,
    /// Namespaces (open JSON); Projects add theirs.
    pub namespaces: Arc<Mutex<Vec<serde_json::Value>>>,
    /// What a lagging watch cache shows instead of `promotions` (tests of the fallback to the
    /// API server): `promotion` and `promotions` answer from it when set, the `fresh_` reads
    /// from `promotions`.
    pub cached_promotions: Option<Vec<Promotion>>,
}

fn ns_name(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (&str, &str) {
    (
        m.namespace.as_deref().unwrap_or_default(),
        m.name.as_deref().unwrap_or_default(),
    )
}

impl StaticCluster {
    /// Load every Kargo object from the `.yaml`/`.yml`/`.json` files under `dir` (recursively,
    /// multi-document). Other kinds are ignored.
    pub fn load(dir: &Path) -> Result<StaticCluster, String> {
        let mut out = StaticCluster::default();
        let mut files = Vec::new();
        collect_files(dir, &mut files)?;
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let value: serde_json::Value = serde::Deserialize::deserialize(doc)
                    .map_err(|e| format!("{}: not YAML: {e}", file.display()))?;
                out.add(value)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
            }
        }
        Ok(out)
    }

    /// Add one object (ignored unless it is a Kargo Promotion, Stage, PromotionTask or Freight).
    pub fn add(&mut self, value: serde_json::Value) -> Result<(), String> {
        let api_version = value.get("apiVersion").and_then(serde_json::Value::as_str);
        if api_version == Some("argoproj.io/v1alpha1")
            && value.get("kind").and_then(serde_json::Value::as_str) == Some("Application")
        {
            self.applications.push(value);
            return Ok(());
        }
        if api_version != Some(promote_api::API_VERSION) {
            return Ok(());
        }
        fn parse<T: DeserializeOwned>(v: serde_json::Value, kind: &str) -> Result<T, String> {
            serde_json::from_value(v).map_err(|e| format!("not a valid {kind}: {e}"))
        }
        match value.get("kind").and_then(serde_json::Value::as_str) {
            Some("Promotion") => self.promotions.push(parse(value, "Promotion")?),
            Some("Stage") => self.stages.push(parse(value, "Stage")?),
            Some("Warehouse") => self.warehouses.push(parse(value, "Warehouse")?),
            Some("PromotionTask") => self.tasks.push(parse(value, "PromotionTask")?),
            Some("ClusterPromotionTask") => self.tasks.push(
                parse::<promote_api::types::ClusterPromotionTask>(value, "ClusterPromotionTask")?
                    .into(),
            ),
            Some("Freight") => {
                let mut f: Freight = parse(value, "Freight")?;
                if f.metadata.name.as_deref().unwrap_or_default().is_empty() {
                    f.metadata.name = Some(promote_api::freight_id::freight_id(&f));
                }
                self.freight.push(f)
            }
            _ => {}
        }
        Ok(())
    }
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(path);
        }
    }
    Ok(())
}

fn find<K: kube::Resource + Clone>(list: &[K], ns: &str, name: &str) -> Option<K> {
    list.iter()
        .find(|o| ns_name(o.meta()) == (ns, name))
        .cloned()
}

fn in_namespace<K: kube::Resource + Clone>(list: &[K], ns: &str) -> Vec<K> {
    list.iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(ns))
        .cloned()
        .collect()
}

impl Cluster for StaticCluster {
    async fn promotion(&self, ns: &str, name: &str) -> Result<Option<Arc<Promotion>>, String> {
        let cached = self.cached_promotions.as_ref().unwrap_or(&self.promotions);
        Ok(find(cached, ns, name).map(Arc::new))
    }
    async fn stage(&self, ns: &str, name: &str) -> Result<Option<Stage>, String> {
        Ok(find(&self.stages, ns, name))
    }
    async fn stages(&self, ns: &str) -> Result<Vec<Stage>, String> {
        Ok(in_namespace(&self.stages, ns))
    }
    async fn warehouse(&self, ns: &str, name: &str) -> Result<Option<Warehouse>, String> {
        Ok(find(&self.warehouses, ns, name))
    }
    async fn tasks(&self, ns: &str) -> Result<Vec<PromotionTask>, String> {
        Ok(in_namespace(&self.tasks, ns))
    }
    async fn cluster_tasks(&self) -> Result<Vec<PromotionTask>, String> {
        Ok(self
            .tasks
            .iter()
            .filter(|t| {
                t.metadata
                    .namespace
                    .as_deref()
                    .unwrap_or_default()
                    .is_empty()
            })
            .cloned()
            .collect())
    }
    async fn freight(&self, ns: &str, name: &str) -> Result<Option<Freight>, String> {
        Ok(find(&self.freight, ns, name))
    }
    async fn freight_by_alias(&self, ns: &str, alias: &str) -> Result<Vec<Freight>, String> {
        let mut out = in_namespace(&self.freight, ns);
        out.retain(|f| f.alias() == Some(alias));
        Ok(out)
    }
    async fn fresh_promotion(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<Arc<Promotion>>, String> {
        Ok(find(&self.promotions, ns, name).map(Arc::new))
    }
    async fn promotions(&self, ns: &str) -> Result<Vec<Arc<Promotion>>, String> {
        let cached = self.cached_promotions.as_ref().unwrap_or(&self.promotions);
        Ok(in_namespace(cached, ns).into_iter().map(Arc::new).collect())
    }
    async fn fresh_promotions(&self, ns: &str) -> Result<Vec<Arc<Promotion>>, String> {
        Ok(in_namespace(&self.promotions, ns)
            .into_iter()
            .map(Arc::new)
            .collect())
    }
    async fn namespace(&self, name: &str) -> Result<Option<serde_json::Value>, String> {
        Ok(self
            .namespaces
            .lock()
            .map_err(|e| e.to_string())?
            .iter()
            .find(|n| {
                n.pointer("/metadata/name")
                    .and_then(serde_json::Value::as_str)
                    == Some(name)
            })
            .cloned())
    }
    async fn create_project_namespace(&self, name: &str) -> Result<(), String> {
        self.namespaces
            .lock()
            .map_err(|e| e.to_string())?
            .push(project_namespace(name));
        Ok(())
    }
    async fn application(&self, ns: &str, name: &str) -> Result<Option<serde_json::Value>, String> {
        Ok(self
            .applications
            .iter()
            .find(|a| {
                promote_api::argocd::app_namespace(a) == ns
                    && promote_api::argocd::app_name(a) == name
            })
            .cloned())
    }
    async fn may(&self, user: &UserInfo, ns: &str, verb: Verb, stage: &str) -> Access {
        let (granted, flag) = match verb {
            Verb::Promote => (&self.promoters, "--can-promote"),
            Verb::Authorize => (&self.authorizers, "--can-authorize"),
        };
        match granted {
            None => Access::Error(format!(
                "an offline review cannot evaluate RBAC; pass {flag} to assume the user holds the \"{}\" verb, or --kubeconfig to ask a cluster",
                verb.as_str()
            )),
            Some(list) => {
                if list.iter().any(|(u, n, s)| {
                    [(u, user.username.as_str()), (n, ns), (s, stage)]
                        .iter()
                        .all(|(pattern, value)| pattern.as_str() == "*" || pattern == value)
                }) {
                    Access::Allowed
                } else {
                    Access::Denied(String::new())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            username: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..UserInfo::default()
        }
    }

    #[test]
    fn access_answers_are_reused_only_for_the_same_question_within_the_ttl() {
        let ttl = Duration::from_secs(60);
        let mut c = AccessCache::default();
        let alice = user("alice", &["dev"]);
        c.insert(&alice, Verb::Promote, "p", "test", Access::Allowed, ttl);
        assert_eq!(
            c.get(&alice, Verb::Promote, "p", "test", ttl),
            Some(&Access::Allowed)
        );
        // Another Stage, project, group set or extra is another question.
        assert_eq!(c.get(&alice, Verb::Promote, "p", "prod", ttl), None);
        assert_eq!(c.get(&alice, Verb::Promote, "q", "test", ttl), None);
        assert_eq!(
            c.get(&user("alice", &["ops"]), Verb::Promote, "p", "test", ttl),
            None
        );
        let mut scoped = alice.clone();
        scoped.extra.insert("scopes".into(), vec!["read".into()]);
        assert_eq!(c.get(&scoped, Verb::Promote, "p", "test", ttl), None);
        // A new answer replaces the old one; an expired answer is not used.
        c.insert(
            &alice,
            Verb::Promote,
            "p",
            "test",
            Access::Denied("no".into()),
            ttl,
        );
        assert_eq!(
            c.get(&alice, Verb::Promote, "p", "test", ttl),
            Some(&Access::Denied("no".into()))
        );
        assert_eq!(c.entries.len(), 1);
        assert_eq!(
            c.get(&alice, Verb::Promote, "p", "test", Duration::ZERO),
            None
        );
        // The cache stays bounded.
        for i in 0..ACCESS_CACHE_MAX + 5 {
            c.insert(
                &user(&format!("u{i}"), &[]),
                Verb::Promote,
                "p",
                "s",
                Access::Allowed,
                ttl,
            );
        }
        assert!(c.entries.len() <= ACCESS_CACHE_MAX);
        // Another verb is another question.
        c.insert(&alice, Verb::Promote, "p", "x", Access::Allowed, ttl);
        assert_eq!(c.get(&alice, Verb::Authorize, "p", "x", ttl), None);
    }
}
