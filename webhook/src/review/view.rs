//! What the Application hooks read of an Argo CD `Application`.
//!
//! An Application review carries the object twice, and most of each is `status` and `spec` parts
//! no decision reads. The Application decisions read the handful of fields below, so requests for
//! Applications carry an [`AppView`] of each object instead of a JSON tree: the fast reader
//! (`scan::app_view`) takes it from the raw text, parsing only these fields and skipping the
//! rest; a body the fast reader refuses is parsed by serde_json and viewed with
//! [`AppView::from_value`], which is also the reference the fast reader is tested against.

use promote_api::argocd::{
    OperationBasis, is_multi_source, operation_project, operation_promotion,
};
use promote_api::keys::{ARGOCD_REFRESH, AUTHORIZED_STAGE, LOCKDOWN};
use serde_json::Value;

/// The fields of one Application that the Application hooks read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppView {
    /// `metadata.name` (empty when absent or not a string).
    pub name: String,
    /// `metadata.namespace` (empty when absent or not a string).
    pub namespace: String,
    /// `metadata.annotations`, as far as promote reads them.
    pub annotations: Annotations,
    /// The `promote.dev/lockdown` label, when it is a string.
    pub lockdown: Option<String>,
    /// `operation`, when present and not `null`.
    pub operation: Option<OperationView>,
    /// `spec.source`, when present and not `null`.
    pub source: Option<RawJson>,
    /// `spec.sources`, when present and not `null`.
    pub sources: Option<RawJson>,
    /// Whether `spec.sources` is a non-empty array (Argo CD's multi-source rule).
    pub multi_source: bool,
    /// `spec.syncPolicy.syncOptions`, when present (`null` included).
    pub sync_options: Option<Value>,
    /// `spec.syncPolicy.retry`, when present (`null` included).
    pub retry: Option<Value>,
    /// `status.operationState`, when `status` is an object with that key (`null` included).
    pub operation_state: Option<OperationState>,
    /// `spec` without `source` and `sources` (`None` when there is no `spec`): what lockdown and
    /// the promotion-write scope compare besides the sources.
    pub spec_rest: Option<RawJson>,
    /// The metadata lockdown covers ([`guarded_metadata`]), as JSON text.
    pub guarded_meta: RawJson,
}

/// Annotations that carry no configuration and that anyone may change: Argo CD's refresh
/// requests and kubectl's record of the last applied manifest.
pub const UNGUARDED_ANNOTATIONS: [&str; 3] = [
    ARGOCD_REFRESH,
    "argocd.argoproj.io/refresh-timestamp",
    "kubectl.kubernetes.io/last-applied-configuration",
];

/// The metadata of an Application that lockdown covers: labels (its own label included),
/// annotations other than [`UNGUARDED_ANNOTATIONS`], and finalizers.
pub fn guarded_metadata(
    labels: Option<&Value>,
    annotations: Option<&Value>,
    finalizers: Option<&Value>,
) -> Value {
    let annotations = match annotations {
        Some(Value::Object(map)) => Value::Object(
            map.iter()
                .filter(|(k, _)| !UNGUARDED_ANNOTATIONS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        Some(other) => other.clone(),
        None => Value::Null,
    };
    serde_json::json!({
        "labels": labels.cloned().unwrap_or(Value::Null),
        "annotations": annotations,
        "finalizers": finalizers.cloned().unwrap_or(Value::Null),
    })
}

/// `spec` without `source` and `sources`.
pub fn spec_rest(spec: &Value) -> Value {
    match spec {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "source" | "sources"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The members of an Application's `status` other than `operationState`, whose change by anyone
/// but Argo CD is refused on Applications under promotion control.
pub fn status_rest(app: &Value) -> Vec<(&str, &Value)> {
    match app.get("status") {
        Some(Value::Object(map)) => {
            let mut out: Vec<(&str, &Value)> = map
                .iter()
                .filter(|(k, _)| k.as_str() != "operationState")
                .map(|(k, v)| (k.as_str(), v))
                .collect();
            out.sort_by(|a, b| a.0.cmp(b.0));
            out
        }
        _ => Vec::new(),
    }
}

/// The annotations view of an `annotations` value.
pub fn annotations_of(annotations: Option<&Value>) -> Annotations {
    match annotations {
        None => Annotations::Missing,
        Some(Value::Object(map)) => Annotations::Map {
            authorized_stage: map.get(AUTHORIZED_STAGE).and_then(string),
            refresh: map.get(ARGOCD_REFRESH).map(string),
        },
        Some(_) => Annotations::NotAnObject,
    }
}

/// `metadata.annotations` of an Application.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Annotations {
    /// No `annotations` (or no `metadata` object).
    #[default]
    Missing,
    /// `annotations` is `null` or not an object.
    NotAnObject,
    /// An object.
    Map {
        /// `kargo.akuity.io/authorized-stage`, when it is a string.
        authorized_stage: Option<String>,
        /// `argocd.argoproj.io/refresh`: `None` when absent, `Some(None)` when not a string.
        refresh: Option<Option<String>>,
    },
}

/// An Application's `operation`: its text, and what promote reads of it.
#[derive(Clone, Debug, PartialEq)]
pub struct OperationView {
    /// The whole operation.
    pub raw: RawJson,
    /// The Promotion `info` names ([`operation_promotion`]).
    pub promotion: Option<String>,
    /// The project `info` names ([`operation_project`]).
    pub project: Option<String>,
    /// `sync.revision`, when a string.
    pub revision: Option<String>,
    /// `sync.revisions`, when a list (entries that are not strings read as `""`).
    pub revisions: Option<Vec<String>>,
}

impl OperationView {
    /// The view of an operation.
    pub fn from_value(op: &Value) -> OperationView {
        let sync = op.get("sync");
        OperationView {
            raw: RawJson::of(op),
            promotion: operation_promotion(Some(op)).map(str::to_owned),
            project: operation_project(Some(op)).map(str::to_owned),
            revision: sync.and_then(|s| s.get("revision")).and_then(string),
            revisions: sync
                .and_then(|s| s.get("revisions"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|r| r.as_str().unwrap_or_default().to_owned())
                        .collect()
                }),
        }
    }

    /// The revisions the operation asks for, index-aligned with the sources
    /// (`promote_api::argocd::revisions`).
    pub fn requested_revisions(&self, multi_source: bool) -> Vec<String> {
        if multi_source {
            self.revisions.clone().unwrap_or_default()
        } else {
            self.revision.iter().cloned().collect()
        }
    }
}

/// What promote reads of `status.operationState`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperationState {
    /// `phase`, when it is a string.
    pub phase: Option<String>,
    /// The Promotion named in `operation.info`, if any.
    pub promotion: Option<String>,
}

/// A JSON value kept as its text and parsed when needed. Two are equal when their texts are, or
/// else when their values are.
///
/// The fast reader checks the text structurally only (strings terminated, brackets balanced), as
/// it does every value it skips; the API server never sends anything else. A text that is not
/// JSON has no value: it equals only the very same text, never an operation promote derives,
/// so every decision that compares it refuses or replaces it.
#[derive(Clone, Debug, Default)]
pub struct RawJson(Box<str>);

impl RawJson {
    /// From the text of one value.
    pub(crate) fn from_text(text: &str) -> RawJson {
        RawJson(text.into())
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.0
    }

    /// The text of a value.
    pub fn of(v: &Value) -> RawJson {
        RawJson(v.to_string().into())
    }

    /// The value (`None` if the text is not JSON).
    pub fn value(&self) -> Option<Value> {
        serde_json::from_str(&self.0).ok()
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 || matches!((self.value(), other.value()), (Some(a), Some(b)) if a == b)
    }
}

fn string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

fn not_null(v: &Value) -> Option<&Value> {
    (!v.is_null()).then_some(v)
}

impl AppView {
    /// The view of an Application object.
    pub fn from_value(app: &Value) -> AppView {
        let meta = app.get("metadata");
        let field = |k: &str| meta.and_then(|m| m.get(k));
        let annotations = annotations_of(field("annotations"));
        let basis = OperationBasis::of(app);
        AppView {
            name: app
                .pointer("/metadata/name")
                .and_then(string)
                .unwrap_or_default(),
            namespace: app
                .pointer("/metadata/namespace")
                .and_then(string)
                .unwrap_or_default(),
            annotations,
            lockdown: app
                .pointer("/metadata/labels")
                .and_then(|l| l.get(LOCKDOWN))
                .and_then(string),
            operation: app
                .get("operation")
                .and_then(not_null)
                .map(OperationView::from_value),
            source: app
                .pointer("/spec/source")
                .and_then(not_null)
                .map(RawJson::of),
            sources: app
                .pointer("/spec/sources")
                .and_then(not_null)
                .map(RawJson::of),
            multi_source: is_multi_source(app),
            sync_options: basis.sync_options.cloned(),
            retry: basis.retry.cloned(),
            operation_state: app
                .get("status")
                .and_then(Value::as_object)
                .and_then(|s| s.get("operationState"))
                .map(|state| OperationState {
                    phase: state.get("phase").and_then(string),
                    promotion: operation_promotion(state.get("operation").and_then(not_null))
                        .map(str::to_owned),
                }),
            spec_rest: app.get("spec").map(|s| RawJson::of(&spec_rest(s))),
            guarded_meta: RawJson::of(&guarded_metadata(
                field("labels"),
                field("annotations"),
                field("finalizers"),
            )),
        }
    }

    /// Whether a write from `self` (the old object) to `new` changes what lockdown covers
    /// besides `operation` and the sources: the rest of `spec` and the guarded metadata.
    pub fn rest_changed(&self, new: &AppView) -> Option<&'static str> {
        if self.spec_rest != new.spec_rest {
            Some("its spec")
        } else if self.guarded_meta != new.guarded_meta {
            Some("its labels, annotations or finalizers")
        } else {
            None
        }
    }

    /// The `kargo.akuity.io/authorized-stage` annotation.
    pub fn authorized_stage(&self) -> Option<&str> {
        match &self.annotations {
            Annotations::Map {
                authorized_stage, ..
            } => authorized_stage.as_deref(),
            _ => None,
        }
    }

    /// The Promotion this Application's `operation` names, if any.
    pub fn promotion(&self) -> Option<&str> {
        self.operation.as_ref()?.promotion.as_deref()
    }

    /// Whether an operation is in progress (`Running` or `Terminating`), Argo CD's own rule.
    pub fn operation_in_progress(&self) -> bool {
        self.operation_state
            .as_ref()
            .is_some_and(|s| matches!(s.phase.as_deref(), Some("Running" | "Terminating")))
    }

    /// Whether the Application is labelled `promote.dev/lockdown: "true"`.
    pub fn locked(&self) -> bool {
        self.lockdown.as_deref() == Some("true")
    }

    /// What the sync operation is built from.
    pub fn basis(&self) -> OperationBasis<'_> {
        OperationBasis {
            multi_source: self.multi_source,
            sync_options: self.sync_options.as_ref(),
            retry: self.retry.as_ref(),
        }
    }

    /// The sources of a multi-source Application (empty otherwise: a single source's operation
    /// needs none).
    pub fn multi_sources(&self) -> Vec<Value> {
        if !self.multi_source {
            return Vec::new();
        }
        match self.sources.as_ref().and_then(RawJson::value) {
            Some(Value::Array(list)) => list,
            _ => Vec::new(),
        }
    }
}

/// Whether a write from `old` to `new` is a promotion write: the new `operation` names a
/// Promotion and the old object's `operation` did not name the same one.
pub fn is_promotion_write(old: Option<&AppView>, new: &AppView) -> bool {
    let Some(promo) = new.promotion() else {
        return false;
    };
    old.and_then(AppView::promotion) != Some(promo)
}
