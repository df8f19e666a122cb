//! The AdmissionReview v1 wire format as the decisions read it: the request ([`Request`], with
//! Applications as [`view::AppView`]s), its errors, and the fast reader (`scan`) that reads a
//! review's envelope and objects without building their JSON trees, falling back to serde_json
//! for anything it does not understand. Decisions (`admission`) use this module; it knows
//! nothing of them.

mod scan;
pub mod view;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// What routing reads of an Application write before deciding whether to decide:
/// [`Review::app_write`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppWrite<'a> {
    /// The writer.
    pub user: &'a str,
    /// `kargo.akuity.io/authorized-stage` after the write.
    pub authorized_after: Option<String>,
    /// The same before it.
    pub authorized_before: Option<String>,
    /// The `kargo.akuity.io/lockdown` label of the stored object (else the new one).
    pub lockdown: Option<String>,
}

/// The admission operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    /// The operation as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// The requesting user, as the API server authenticated it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(default)]
pub struct UserInfo {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// Group, version and kind of the request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

/// An AdmissionReview v1 request (the fields decisions use; objects stay open JSON).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub uid: String,
    #[serde(default)]
    pub kind: Gvk,
    #[serde(default)]
    pub sub_resource: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    pub operation: Operation,
    #[serde(default)]
    pub user_info: UserInfo,
    /// The object after the request; `None` for Applications, which come as [`Request::app`].
    /// Read by the fast reader (`admission::scan`), it has no `status` other than
    /// `status.operationState` and no `metadata.managedFields`: no decision reads more of a
    /// request object, and that is where the bulk of a large object lives. Patches computed on
    /// the slim object address the same paths in the full one.
    #[serde(default)]
    pub object: Option<Value>,
    /// The stored object before the request, slimmed the same way.
    #[serde(default)]
    pub old_object: Option<Value>,
    #[serde(default)]
    pub dry_run: bool,
    /// For an Application (request kind `Application`): what the Application hooks read of the
    /// object after the request. Its JSON tree is never built.
    #[serde(skip)]
    pub app: Option<Box<view::AppView>>,
    /// For an Application: the same of the stored object before the request.
    #[serde(skip)]
    pub old_app: Option<Box<view::AppView>>,
    /// For an Application UPDATE: whether `status` other than `status.operationState` differs
    /// between the two objects (compared while reading them; `status` is most of an
    /// Application's bytes, so it is never kept).
    #[serde(skip)]
    pub app_status_changed: bool,
}

impl Request {
    /// The object's name (from the request, else the object).
    pub fn object_name(&self) -> &str {
        if !self.name.is_empty() {
            return &self.name;
        }
        if let Some(app) = self.app.as_ref().or(self.old_app.as_ref()) {
            return &app.name;
        }
        self.object
            .as_ref()
            .or(self.old_object.as_ref())
            .and_then(|o| o.pointer("/metadata/name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The object as the request leaves it: `object`, or `oldObject` for a DELETE.
    pub fn current(&self) -> Option<&Value> {
        self.object.as_ref().or(self.old_object.as_ref())
    }

    fn is_application(&self) -> bool {
        self.kind.kind == "Application"
    }

    /// An Application request's objects as views (see [`Request::app`]); other requests as they
    /// are.
    fn into_views(mut self) -> Request {
        if self.is_application() {
            self.app_status_changed = match (&self.object, &self.old_object) {
                (Some(new), Some(old)) => view::status_rest(new) != view::status_rest(old),
                _ => false,
            };
            self.app = self
                .object
                .take()
                .map(|o| Box::new(view::AppView::from_value(&o)));
            self.old_app = self
                .old_object
                .take()
                .map(|o| Box::new(view::AppView::from_value(&o)));
        }
        self
    }
}

/// Why a body is not an AdmissionReview this server can answer (HTTP 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReviewError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error(
        "expected apiVersion \"admission.k8s.io/v1\" and kind \"AdmissionReview\", got {api_version:?} {kind:?}; configure admissionReviewVersions: [v1]"
    )]
    WrongType { api_version: String, kind: String },
    #[error("the AdmissionReview has no request")]
    NoRequest,
    #[error("the AdmissionReview request is malformed: {0}")]
    BadRequest(String),
    #[error("the AdmissionReview request has an empty uid")]
    NoUid,
    #[error("this path handles {expected} objects but the request is for kind {got:?}")]
    WrongKind { expected: &'static str, got: String },
}

/// The review envelope, parsed in one pass (the common case).
#[derive(Deserialize)]
struct Envelope {
    #[serde(default, rename = "apiVersion")]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    request: Option<Request>,
}

/// An AdmissionReview read up to its objects, which are read by [`Review::into_request`] (or not
/// at all, for Argo CD's routine Application writes: [`Review::settled`]).
pub struct Review<'a> {
    body: &'a [u8],
    read: ReviewRead<'a>,
}

// The scanned variant holds the noted `status` members of both objects (about 1.7 KB, on the
// stack for one review); boxing it would cost an allocation on every review to save a copy.
#[allow(clippy::large_enum_variant)]
enum ReviewRead<'a> {
    /// Read by the fast reader; the objects are still raw text.
    Scanned(scan::Scanned<'a>),
    /// Read by serde_json (the fast reader refused the body), objects included.
    Parsed(Request),
}

/// Read an AdmissionReview v1 body, leaving its objects for later.
pub fn read_review(body: &[u8]) -> Result<Review<'_>, ReviewError> {
    let read = match scan::review(body) {
        Some(s) => ReviewRead::Scanned(s),
        None => ReviewRead::Parsed(parse_review_serde(body)?),
    };
    Ok(Review { body, read })
}

impl Review<'_> {
    /// The request, whose `object` and `oldObject` may not be read yet.
    pub fn head(&self) -> &Request {
        match &self.read {
            ReviewRead::Scanned(s) => &s.head,
            ReviewRead::Parsed(r) => r,
        }
    }

    /// For an Application write the fast reader took whole (and that carries no sync
    /// operation), what deciding whether it needs a decision at all reads; `None` otherwise.
    pub fn app_write(&self) -> Option<AppWrite<'_>> {
        use promote_api::keys::{AUTHORIZED_STAGE, LOCKDOWN};
        let ReviewRead::Scanned(s) = &self.read else {
            return None;
        };
        if s.head.kind.kind != "Application" || s.object.is_some_and(|o| o.operation.is_some()) {
            return None;
        }
        let read = |o: Option<scan::RawObject<'_>>, field: &str, key: &str| match o
            .and_then(|o| o.metadata)
        {
            None => Some(None),
            Some(m) => scan::meta_entry(m, field, key),
        };
        Some(AppWrite {
            user: &s.head.user_info.username,
            authorized_after: read(s.object, "annotations", AUTHORIZED_STAGE)?,
            authorized_before: read(s.old_object, "annotations", AUTHORIZED_STAGE)?,
            lockdown: read(s.old_object.or(s.object), "labels", LOCKDOWN)?,
        })
    }

    /// The whole request, objects read.
    pub fn into_request(self) -> Result<Request, ReviewError> {
        match self.read {
            ReviewRead::Parsed(r) => Ok(r.into_views()),
            ReviewRead::Scanned(s) if s.head.is_application() => {
                let view = |raw: Option<scan::RawObject<'_>>| raw.map(|o| scan::app_view(&o));
                match (view(s.object), view(s.old_object)) {
                    (Some(None), _) | (_, Some(None)) => {
                        parse_review_serde(self.body).map(Request::into_views)
                    }
                    (app, old_app) => Ok(Request {
                        app: app.flatten().map(Box::new),
                        old_app: old_app.flatten().map(Box::new),
                        app_status_changed: match (s.object, s.old_object) {
                            (Some(new), Some(old)) => !scan::same_status_rest(&new, &old),
                            _ => false,
                        },
                        ..s.head
                    }),
                }
            }
            ReviewRead::Scanned(s) => {
                let keep_status = s.head.sub_resource == "status";
                let slim = |raw: Option<scan::RawObject<'_>>| {
                    raw.map(|o| scan::slim_object(o.text, keep_status))
                };
                match (slim(s.object), slim(s.old_object)) {
                    (Some(None), _) | (_, Some(None)) => {
                        parse_review_serde(self.body).map(Request::into_views)
                    }
                    (object, old_object) => Ok(Request {
                        object: object.flatten(),
                        old_object: old_object.flatten(),
                        ..s.head
                    }),
                }
            }
        }
    }
}

/// Parse an AdmissionReview v1 body.
pub fn parse_review(body: &[u8]) -> Result<Request, ReviewError> {
    // The fast reader takes every well-formed review; serde_json reads what it refuses (the same
    // request, only slower), and a body that does not fit is parsed again, loosely, to say
    // precisely what is wrong with it.
    read_review(body)?.into_request()
}

/// [`parse_review`] by serde_json alone, with the objects slimmed as the fast reader slims them
/// (see [`Request::object`]): the oracle the fuzz target `admission` holds the fast reader to.
/// (When the fast reader refuses a body, [`parse_review`] keeps the objects whole; no decision
/// reads what slimming drops.)
#[doc(hidden)]
pub fn parse_review_reference(body: &[u8]) -> Result<Request, ReviewError> {
    let mut req = parse_review_serde(body)?;
    if !req.is_application() {
        let keep_status = req.sub_resource == "status";
        for o in [&mut req.object, &mut req.old_object].into_iter().flatten() {
            slim(o, keep_status);
        }
    }
    Ok(req.into_views())
}

/// Drop `status` other than `status.operationState` (unless `keep_status`) and
/// `metadata.managedFields`, as `scan::slim_object` does while reading.
#[doc(hidden)]
pub fn slim(v: &mut Value, keep_status: bool) {
    let Some(map) = v.as_object_mut() else {
        return;
    };
    if !keep_status && let Some(status) = map.get_mut("status").and_then(Value::as_object_mut) {
        status.retain(|k, _| k == "operationState");
    }
    if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
}

/// [`parse_review`] without the fast reader.
fn parse_review_serde(body: &[u8]) -> Result<Request, ReviewError> {
    if let Ok(env) = serde_json::from_slice::<Envelope>(body)
        && env.api_version == "admission.k8s.io/v1"
        && env.kind == "AdmissionReview"
        && let Some(req) = env.request
        && !req.uid.is_empty()
    {
        return Ok(req);
    }
    let mut v: Value =
        serde_json::from_slice(body).map_err(|e| ReviewError::NotJson(e.to_string()))?;
    let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    if api_version != "admission.k8s.io/v1" || kind != "AdmissionReview" {
        return Err(ReviewError::WrongType {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        });
    }
    let request = match v.get_mut("request").map(Value::take) {
        None | Some(Value::Null) => return Err(ReviewError::NoRequest),
        Some(r) => r,
    };
    let req: Request =
        serde_json::from_value(request).map_err(|e| ReviewError::BadRequest(e.to_string()))?;
    if req.uid.is_empty() {
        return Err(ReviewError::NoUid);
    }
    Ok(req)
}
