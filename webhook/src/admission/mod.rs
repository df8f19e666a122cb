//! Admission decisions, one module per kind.
//!
//! Every review goes through two phases: [`gather`] reads what the decision needs from the
//! cluster (the Promotion an Application write names, the Stage of a Promotion, a
//! SubjectAccessReview answer, ...) into [`Facts`], then the kind's pure `decide` function turns
//! the request and the facts into a [`Verdict`]. Decisions do no I/O and read no clock they were
//! not handed, so every rule is table-tested without a server.

pub mod application;
pub mod freight;
mod metadata;
pub mod project;
pub mod promotion;
pub mod stage;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use base64::Engine;
use promote_api::types::{Freight, Promotion, PromotionTask, Stage};
use serde_json::Value;

pub use crate::cluster::Access;
use crate::cluster::Cluster;
pub use crate::review::{
    Gvk, Operation, Request, Review, ReviewError, UserInfo, parse_review, read_review, view,
};

/// The webhooks this server answers, one per path (controller-runtime's naming convention).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hook {
    MutateApplication,
    ValidateApplication,
    MutatePromotion,
    ValidatePromotion,
    MutateFreight,
    ValidateFreight,
    ValidateStage,
    /// PromotionTasks and ClusterPromotionTasks: their steps are checked when applied.
    ValidateTask,
    /// Kargo objects created in a namespace that is not a project (the webhook configuration's
    /// `namespaceSelector` sends only those here, so no lookup is needed).
    ValidateProjectNamespace,
    /// Projects: a Project creates its namespace (see `project`).
    ValidateProject,
}

/// The namespaced Kargo kinds, which live in project namespaces only.
pub const PROJECT_KINDS: &[&str] = &[
    "Stage",
    "Promotion",
    "Freight",
    "Warehouse",
    "PromotionTask",
];

impl Hook {
    /// Every hook.
    pub const ALL: [Hook; 10] = [
        Hook::MutateApplication,
        Hook::ValidateApplication,
        Hook::MutatePromotion,
        Hook::ValidatePromotion,
        Hook::MutateFreight,
        Hook::ValidateFreight,
        Hook::ValidateStage,
        Hook::ValidateTask,
        Hook::ValidateProjectNamespace,
        Hook::ValidateProject,
    ];

    /// The URL path of the hook.
    pub fn path(self) -> &'static str {
        match self {
            Hook::MutateApplication => "/mutate-argoproj-io-v1alpha1-application",
            Hook::ValidateApplication => "/validate-argoproj-io-v1alpha1-application",
            Hook::MutatePromotion => "/mutate-kargo-akuity-io-v1alpha1-promotion",
            Hook::ValidatePromotion => "/validate-kargo-akuity-io-v1alpha1-promotion",
            Hook::MutateFreight => "/mutate-kargo-akuity-io-v1alpha1-freight",
            Hook::ValidateFreight => "/validate-kargo-akuity-io-v1alpha1-freight",
            Hook::ValidateStage => "/validate-kargo-akuity-io-v1alpha1-stage",
            Hook::ValidateTask => "/validate-kargo-akuity-io-v1alpha1-promotiontask",
            Hook::ValidateProjectNamespace => {
                "/validate-kargo-akuity-io-v1alpha1-project-namespace"
            }
            Hook::ValidateProject => "/validate-kargo-akuity-io-v1alpha1-project",
        }
    }

    /// Whether the hook's decisions read [`Policy::now`] or [`Policy::ulid`] (Promotions and
    /// Freight); the server sets them per review only for these.
    pub fn reads_clock(self) -> bool {
        matches!(
            self,
            Hook::MutatePromotion
                | Hook::ValidatePromotion
                | Hook::MutateFreight
                | Hook::ValidateFreight
        )
    }

    /// Whether the hook may return a patch.
    pub fn is_mutating(self) -> bool {
        matches!(
            self,
            Hook::MutateApplication | Hook::MutatePromotion | Hook::MutateFreight
        )
    }

    /// The kind the hook handles (the request's `kind.kind` must match).
    pub fn kind(self) -> &'static str {
        match self {
            Hook::MutateApplication | Hook::ValidateApplication => "Application",
            Hook::MutatePromotion | Hook::ValidatePromotion => "Promotion",
            Hook::MutateFreight | Hook::ValidateFreight => "Freight",
            Hook::ValidateStage => "Stage",
            Hook::ValidateTask => "PromotionTask",
            Hook::ValidateProjectNamespace => "a Kargo kind",
            Hook::ValidateProject => "Project",
        }
    }

    /// Whether the hook handles requests for `kind`.
    pub fn accepts(self, kind: &str) -> bool {
        match self {
            Hook::ValidateProjectNamespace => PROJECT_KINDS.contains(&kind),
            Hook::ValidateTask => kind == "PromotionTask" || kind == "ClusterPromotionTask",
            _ => kind == self.kind(),
        }
    }

    /// The hook for a kind: mutating or validating.
    pub fn for_kind(kind: &str, mutate: bool) -> Option<Hook> {
        Hook::ALL.into_iter().find(|h| {
            (h.kind() == kind || *h == Hook::ValidateTask && h.accepts(kind))
                && h.is_mutating() == mutate
        })
    }
}

/// The verdict of a review that needs no decision: an Application write that no Application
/// hook can refuse or change. Its new object has no sync operation (a status write, or Argo CD
/// clearing a finished operation), it leaves the `authorized-stage` annotation as it was, and it
/// is Argo CD's own (a `policy.lockdown_allow` user) or the Application is neither locked down
/// nor authorizing any Stage; the fast reader noted all of that while skipping the objects, so
/// neither object is built and nothing is read from the cluster. A test checks every such write
/// against both full decisions. This is the bulk of the traffic when `matchConditions` are
/// unavailable.
pub fn settled(review: &Review<'_>, hook: Hook, policy: &Policy) -> Option<Verdict> {
    if !matches!(hook, Hook::MutateApplication | Hook::ValidateApplication) {
        return None;
    }
    let w = review.app_write()?;
    if w.authorized_after != w.authorized_before {
        return None;
    }
    if policy.lockdown_allow.iter().any(|u| u == w.user) {
        return Some(Verdict::allow());
    }
    let controlled = w.lockdown.as_deref() == Some("true")
        || w.authorized_before
            .as_deref()
            .is_some_and(|v| !v.trim().is_empty());
    (!controlled).then(Verdict::allow)
}

/// The outcome of one review.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub allowed: bool,
    /// HTTP-style status code of a denial (403, 409, 422, 500).
    pub code: u16,
    /// Kubernetes `Status.reason` of a denial (`Forbidden`, `Invalid`, `Conflict`, ...).
    pub reason: &'static str,
    pub message: String,
    /// JSON Patch for mutating hooks (empty: no patch).
    pub patch: Vec<json_patch::PatchOperation>,
    pub warnings: Vec<String>,
}

impl Verdict {
    /// Allowed, unchanged.
    pub fn allow() -> Verdict {
        Verdict {
            allowed: true,
            code: 200,
            reason: "",
            message: String::new(),
            patch: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Allowed with a patch.
    pub fn patch(patch: Vec<json_patch::PatchOperation>) -> Verdict {
        Verdict {
            patch,
            ..Verdict::allow()
        }
    }

    fn deny(code: u16, reason: &'static str, message: impl Into<String>) -> Verdict {
        Verdict {
            allowed: false,
            code,
            reason,
            message: message.into(),
            patch: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// 403 Forbidden: the user or the object is not authorized.
    pub fn forbidden(message: impl Into<String>) -> Verdict {
        Verdict::deny(403, "Forbidden", message)
    }

    /// 422 Invalid: the object is wrong.
    pub fn invalid(message: impl Into<String>) -> Verdict {
        Verdict::deny(422, "Invalid", message)
    }

    /// 409 Conflict: the object is right but the moment is wrong (an operation is running, an
    /// alias is taken); retrying later may succeed.
    pub fn conflict(message: impl Into<String>) -> Verdict {
        Verdict::deny(409, "Conflict", message)
    }

    /// 500: the decision could not be made (the API server could not be read).
    pub fn internal(message: impl Into<String>) -> Verdict {
        Verdict::deny(500, "InternalError", message)
    }

    /// The AdmissionReview v1 response for request `uid`, as JSON text (what the server sends).
    pub fn to_review_bytes(&self, uid: &str) -> Vec<u8> {
        serde_json::to_vec(&self.response(uid)).unwrap_or_default()
    }

    /// The AdmissionReview v1 response for request `uid`. The patch is base64, as Kubernetes
    /// documents it.
    pub fn to_review(&self, uid: &str) -> Value {
        serde_json::to_value(self.response(uid)).unwrap_or_default()
    }

    fn response<'a>(&'a self, uid: &'a str) -> ReviewOut<'a> {
        let patch = (!self.patch.is_empty()).then(|| {
            let bytes = serde_json::to_vec(&self.patch).unwrap_or_default();
            base64::engine::general_purpose::STANDARD.encode(bytes)
        });
        ReviewOut {
            api_version: "admission.k8s.io/v1",
            kind: "AdmissionReview",
            response: ResponseOut {
                uid,
                allowed: self.allowed,
                status: (!self.allowed).then_some(StatusOut {
                    code: self.code,
                    reason: self.reason,
                    message: &self.message,
                }),
                patch_type: patch.as_ref().map(|_| "JSONPatch"),
                patch,
                warnings: (!self.warnings.is_empty()).then_some(&self.warnings),
            },
        }
    }
}

/// An AdmissionReview response, serialized without building a JSON value.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: ResponseOut<'a>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<&'a Vec<String>>,
}

#[derive(serde::Serialize)]
struct StatusOut<'a> {
    code: u16,
    reason: &'static str,
    message: &'a str,
}

/// The JSON Patch turning `from` into `to` (empty when equal).
pub fn diff(from: &Value, to: &Value) -> Vec<json_patch::PatchOperation> {
    json_patch::diff(from, to).0
}

/// What a decision needs from the cluster, read by [`gather`].
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// The Promotion an Application write names (Application hooks).
    pub promotion: Option<std::sync::Arc<Promotion>>,
    /// The Stage of a Promotion (Promotion hooks). Boxed, as is the Freight: facts live in every
    /// review's future, which is moved whole.
    pub stage: Option<Box<Stage>>,
    /// The project's Stages (legacy upstream origins, Freight in use).
    pub stages: Vec<Stage>,
    /// The project's PromotionTasks (task steps inflated into Promotions).
    pub tasks: Vec<PromotionTask>,
    /// The Freight a Promotion names.
    pub freight: Option<Box<Freight>>,
    /// The origin Warehouse of new Freight (`Some(None)`: it does not exist).
    pub warehouse: Option<Option<Box<promote_api::types::Warehouse>>>,
    /// Freight carrying the same alias as the reviewed Freight.
    pub same_alias: Vec<Freight>,
    /// An alias free in the project, for new Freight that has none.
    pub free_alias: Option<String>,
    /// The SubjectAccessReview answer for `promote` on the Stage involved.
    pub access: Option<Access>,
    /// SubjectAccessReview answers for other Stages a write touches (the Stages an
    /// `authorized-stage` annotation change adds or removes, the Stages a Freight status write
    /// touches).
    pub grants: Vec<Grant>,
    /// The sync plan the Promotion of an Application promotion write recorded for it.
    pub plan: Option<promote_api::trust::SyncPlan>,
    /// Per Stage, the evidence behind a Freight status write that records the Freight as
    /// verified in or current in it: `Ok(promotion)` names the Succeeded Promotion Argo CD
    /// confirmed, `Err(why)` says what is missing.
    pub evidence: BTreeMap<String, Result<String, String>>,
    /// Stages a Freight status write records it as verified in that ask for verification
    /// (`spec.verification`), which no promotion satisfies: Stage → why.
    pub unverifiable: BTreeMap<String, String>,
    /// Promotions a Stage status write references (by name; absent: not found).
    pub referenced: BTreeMap<String, std::sync::Arc<Promotion>>,
    /// For a Stage status write that records its health as Healthy outside a promotion (a
    /// refresh): `Ok(())` when every Application it lists is Healthy and Synced now, `Err(why)`.
    pub live_health: Option<Result<(), String>>,
    /// A lookup that failed; the decision fails closed with it.
    pub error: Option<String>,
    /// The Namespace a Project names, as read (Project hook).
    pub namespace: Option<serde_json::Value>,
    /// For a status write that changes `status.metadata` of a Stage or Freight: `Ok(promotion)`,
    /// the running Promotion whose `set-metadata` step accounts for it, or `Err(why)`.
    pub metadata_writer: Option<Result<String, String>>,
}

/// One SubjectAccessReview answer: `verb` on `stages/<stage>` in namespace `project`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub verb: crate::cluster::Verb,
    pub project: String,
    pub stage: String,
    pub access: Access,
}

impl Facts {
    /// The answer for `verb` on `project:stage`, if it was asked.
    pub fn grant(&self, verb: crate::cluster::Verb, project: &str, stage: &str) -> Option<&Access> {
        self.grants
            .iter()
            .find(|g| g.verb == verb && g.project == project && g.stage == stage)
            .map(|g| &g.access)
    }
}

/// Settings of the decisions.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Users allowed to change `operation` and sources of locked-down Applications (Argo CD's own
    /// service accounts).
    pub lockdown_allow: std::sync::Arc<[String]>,
    /// Users whose DELETEs of Promotions and Freight pass unchecked (the garbage collector and
    /// the namespace controller clean up after deleted Stages and namespaces).
    pub trusted_deleters: std::sync::Arc<[String]>,
    /// Now, for Freight availability (soak times). Read only by the hooks whose
    /// [`Hook::reads_clock`] is true.
    pub now: jiff::Timestamp,
    /// A fresh ULID for Promotion names the mutating hook generates (same rule).
    pub ulid: ulid::Ulid,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            lockdown_allow: [
                "system:serviceaccount:argocd:argocd-application-controller".to_owned(),
                "system:serviceaccount:argocd:argocd-server".to_owned(),
            ]
            .into(),
            trusted_deleters: [
                "system:serviceaccount:kube-system:generic-garbage-collector".to_owned(),
                "system:serviceaccount:kube-system:namespace-controller".to_owned(),
            ]
            .into(),
            now: jiff::Timestamp::now(),
            ulid: ulid::Ulid::new(),
        }
    }
}

/// Read what `hook` needs to decide `req`.
pub async fn gather<C: Cluster>(hook: Hook, req: &Request, cluster: &C, policy: &Policy) -> Facts {
    // Deletes by the garbage collector or the namespace controller are not checked, so nothing
    // is read for them (no SubjectAccessReview, no Stage list).
    if req.operation == Operation::Delete
        && policy.trusted_deleters.contains(&req.user_info.username)
    {
        return Facts::default();
    }
    let result = match hook {
        Hook::MutateApplication | Hook::ValidateApplication => {
            application::gather(hook, req, cluster).await
        }
        Hook::MutatePromotion | Hook::ValidatePromotion => {
            promotion::gather(hook, req, cluster).await
        }
        Hook::MutateFreight | Hook::ValidateFreight => freight::gather(hook, req, cluster).await,
        Hook::ValidateStage => stage::gather(req, cluster).await,
        Hook::ValidateTask | Hook::ValidateProjectNamespace => Ok(Facts::default()),
        Hook::ValidateProject => project::gather(req, cluster).await,
    };
    result.unwrap_or_else(|e| Facts {
        error: Some(e),
        ..Facts::default()
    })
}

/// Decide `req` for `hook` from `facts` (pure).
pub fn decide(hook: Hook, req: &Request, facts: &Facts, policy: &Policy) -> Verdict {
    if !hook.accepts(&req.kind.kind) {
        return Verdict::invalid(
            ReviewError::WrongKind {
                expected: hook.kind(),
                got: req.kind.kind.clone(),
            }
            .to_string(),
        );
    }
    match hook {
        Hook::MutateApplication => application::mutate(req, facts),
        Hook::ValidateApplication => application::validate(req, facts, policy),
        Hook::MutatePromotion => promotion::mutate(req, facts, policy),
        Hook::ValidatePromotion => promotion::validate(req, facts, policy),
        Hook::MutateFreight => freight::mutate(req, facts),
        Hook::ValidateFreight => freight::validate(req, facts, policy),
        Hook::ValidateStage => stage::validate(req, facts),
        Hook::ValidateTask => stage::validate_task(req),
        Hook::ValidateProjectNamespace => not_a_project(req),
        Hook::ValidateProject => project::validate(req, facts),
    }
}

/// Kargo's project check: Kargo objects are created only in namespaces labelled
/// `kargo.akuity.io/project: "true"`.
fn not_a_project(req: &Request) -> Verdict {
    if req.operation != Operation::Create {
        return Verdict::allow();
    }
    let ns = &req.namespace;
    let name = req
        .object
        .as_ref()
        .and_then(|o| o.pointer("/metadata/name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or(&req.name);
    Verdict::forbidden(format!(
        "namespace \"{ns}\" is not a Kargo project, so {} \"{name}\" cannot be created in it; hint: make it a project with kubectl label namespace {ns} {}=true, or create the {} in a project namespace",
        req.kind.kind,
        promote_api::keys::PROJECT_LABEL,
        req.kind.kind
    ))
}

/// Whether a review is one of Argo CD's routine Application writes: allowed unchanged and not a
/// promotion write (status updates, refreshes, operation clean-up). The server logs these only
/// with `--log-reviews all`.
pub fn is_routine(hook: Hook, req: &Request, verdict: &Verdict) -> bool {
    matches!(hook, Hook::MutateApplication | Hook::ValidateApplication)
        && verdict.allowed
        && verdict.patch.is_empty()
        && req
            .app
            .as_ref()
            .is_none_or(|new| !view::is_promotion_write(req.old_app.as_deref(), new))
}

/// Gather then decide: one review, end to end.
pub async fn review<C: Cluster>(
    hook: Hook,
    req: &Request,
    cluster: &C,
    policy: &Policy,
) -> Verdict {
    if !hook.accepts(&req.kind.kind) {
        return decide(hook, req, &Facts::default(), policy);
    }
    let facts = gather(hook, req, cluster, policy).await;
    let verdict = decide(hook, req, &facts, policy);
    // The one side effect: an admitted Project creates its namespace (never on a dry run).
    if verdict.allowed
        && hook == Hook::ValidateProject
        && let Err(e) = project::effect(req, &facts, cluster).await
    {
        return Verdict::internal(e);
    }
    verdict
}

/// The object at `key` of `map`, created (or replacing a non-object) when needed; `None` only
/// if that somehow fails.
pub(crate) fn child<'a>(
    map: &'a mut serde_json::Map<String, Value>,
    key: &str,
) -> Option<&'a mut serde_json::Map<String, Value>> {
    let entry = map
        .entry(key.to_owned())
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(serde_json::Map::new());
    }
    entry.as_object_mut()
}

/// The object at `key` of a JSON object value (`None` when `v` is not an object).
pub(crate) fn child_of<'a>(
    v: &'a mut Value,
    key: &str,
) -> Option<&'a mut serde_json::Map<String, Value>> {
    child(v.as_object_mut()?, key)
}

/// Set `metadata.<field>.<name>` (`field` is `labels` or `annotations`) to `value`.
pub(crate) fn set_meta(obj: &mut Value, field: &str, name: &str, value: &str) {
    if let Some(map) = child_of(obj, "metadata").and_then(|meta| child(meta, field)) {
        map.insert(name.to_owned(), Value::String(value.to_owned()));
    }
}

/// Parse an open-JSON object into a Kargo type, as a 422 when it does not fit.
pub(crate) fn parse_object<T: serde::de::DeserializeOwned>(
    kind: &str,
    v: &Value,
) -> Result<T, Verdict> {
    serde_json::from_value(v.clone()).map_err(|e| {
        Verdict::invalid(format!(
            "{kind} \"{}\" cannot be read: {e}",
            v.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ))
    })
}

/// A user as messages name them.
pub(crate) fn user_label(u: &UserInfo) -> String {
    if u.username.is_empty() {
        "an anonymous user".to_owned()
    } else {
        format!("user \"{}\"", u.username)
    }
}

/// The 403 for a SubjectAccessReview that did not allow `promote`.
pub(crate) fn promote_denied(
    access: Option<&Access>,
    user: &UserInfo,
    what: impl FnOnce() -> String,
    project: &str,
    stage: &str,
) -> Option<Verdict> {
    if matches!(access, Some(Access::Allowed)) {
        return None;
    }
    let what = what();
    let grant = format!(
        "hint: bind a Role in namespace \"{project}\" granting verb \"promote\" on resource \"stages\" (apiGroup kargo.akuity.io) to {who}, e.g. kubectl create role promoter -n {project} --verb=promote --resource=stages.kargo.akuity.io --resource-name={stage}",
        who = user_label(user)
    );
    match access {
        Some(Access::Allowed) => None,
        Some(Access::Denied(reason)) => {
            let why = if reason.is_empty() {
                String::new()
            } else {
                format!(" ({reason})")
            };
            Some(Verdict::forbidden(format!(
                "{} is not permitted to {what} for Stage \"{stage}\" in project \"{project}\": the \"promote\" verb on stages/{stage} is not granted{why}; {grant}",
                user_label(user)
            )))
        }
        Some(Access::Error(e)) => Some(Verdict::forbidden(format!(
            "cannot check whether {} may promote Stage \"{stage}\" in project \"{project}\" (SubjectAccessReview failed: {e}); refusing to {what}",
            user_label(user)
        ))),
        None => Some(Verdict::forbidden(format!(
            "cannot check whether {} may promote Stage \"{stage}\" in project \"{project}\"; refusing to {what}",
            user_label(user)
        ))),
    }
}
