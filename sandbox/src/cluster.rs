//! The API server's request handling: routing, authentication, authorization, admission, the
//! create/get/list/watch/update/patch/delete semantics of kube-apiserver, and discovery.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::admission::{Admission, Attrs};
use crate::error::{ApiError, Cause, qualified};
use crate::rbac::{self, Attributes, TokenEntry, UserInfo};
use crate::registry::{self, ResourceType};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{Event, Inner, Store};
use crate::table;

pub use crate::wire::{ApiRequest, Reply};

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        Reply::Json {
            code: e.code,
            body: e.status(),
            warnings: vec![],
        }
    }
}

/// The in-memory cluster.
pub struct Cluster {
    pub store: Store,
    pub tokens: Vec<TokenEntry>,
    pub admission: Admission,
}

/// What a resource path names.
#[derive(Debug, Clone)]
struct Target {
    rt: ResourceType,
    namespace: String,
    name: String,
    subresource: String,
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn meta_str<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn meta_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let root = obj.as_object_mut()?;
    let m = root.entry("metadata").or_insert_with(|| json!({}));
    if !m.is_object() {
        *m = json!({});
    }
    m.as_object_mut()
}

fn set_meta(obj: &mut Value, key: &str, value: Value) {
    if let Some(m) = meta_mut(obj) {
        m.insert(key.to_owned(), value);
    }
}

fn rv_of(obj: &Value) -> u64 {
    meta_str(obj, "resourceVersion").parse().unwrap_or(0)
}

const SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

fn validate_name(rt: &ResourceType, name: &str) -> Option<Cause> {
    if rt.group == "rbac.authorization.k8s.io" {
        if name.contains('/') || name.contains('%') || name == "." || name == ".." {
            return Some(Cause::new(
                "FieldValueInvalid",
                "metadata.name",
                format!(
                    "Invalid value: {name:?}: may not contain '/' or '%' and may not be '.' or '..'"
                ),
            ));
        }
        return None;
    }
    let label = rt.plural == "namespaces" && rt.group.is_empty();
    let max = if label { 63 } else { 253 };
    let ok = regex::Regex::new(SUBDOMAIN).is_ok_and(|re| re.is_match(name))
        && (!label || !name.contains('.'))
        && name.len() <= max;
    if ok {
        return None;
    }
    let msg = if label {
        format!(
            "Invalid value: {name:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        )
    } else {
        format!(
            "Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    };
    Some(Cause::new("FieldValueInvalid", "metadata.name", msg))
}

fn random_suffix() -> String {
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = ulid::Ulid::new().random();
    (0..5)
        .map(|_| {
            let c = ALPHA[(n % ALPHA.len() as u128) as usize] as char;
            n /= ALPHA.len() as u128;
            c
        })
        .collect()
}

/// Strip strategic-merge-patch directives so the rest applies as a JSON merge patch.
fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with("$"));
            for x in m.values_mut() {
                strip_directives(x);
            }
        }
        Value::Array(a) => {
            a.retain(|x| !x.get("$patch").is_some_and(|p| p == "delete"));
            for x in a {
                strip_directives(x);
            }
        }
        _ => {}
    }
}

fn parse_json(body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    if content_type.contains("protobuf") {
        return crate::protobuf::to_json(body)
            .map_err(|e| ApiError::new(415, "UnsupportedMediaType", e));
    }
    if content_type.contains("cbor") {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {content_type:?})"
            ),
        ));
    }
    if content_type.contains("yaml") {
        let text = std::str::from_utf8(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
        serde_yaml::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml: {e}")))
    }
}

impl Cluster {
    pub fn new(tokens: Vec<TokenEntry>, admission: Admission) -> Arc<Self> {
        let c = Self {
            store: Store::new(),
            tokens,
            admission,
        };
        {
            let mut inner = c.store.lock();
            for rt in registry::builtins() {
                inner
                    .types
                    .insert((rt.group.clone(), rt.plural.clone()), rt);
            }
            for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                let rv = inner.next_rv();
                let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
                    "name": ns, "uid": crate::admission::uuid(), "resourceVersion": rv.to_string(),
                    "creationTimestamp": now(), "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
                inner
                    .bucket("", "namespaces")
                    .insert((String::new(), ns.to_owned()), obj);
            }
        }
        Arc::new(c)
    }

    /// The user a bearer token (and impersonation headers) stand for.
    pub fn authenticate(
        &self,
        token: Option<&str>,
        as_user: Option<&str>,
        as_groups: &[String],
    ) -> Result<UserInfo, ApiError> {
        let unauthorized = || ApiError::new(401, "Unauthorized", "Unauthorized");
        let token = token.ok_or_else(unauthorized)?;
        let user = self
            .tokens
            .iter()
            .find(|t| t.token == token)
            .map(|t| t.user.clone())
            .ok_or_else(unauthorized)?;
        let Some(as_user) = as_user else {
            return Ok(user);
        };
        let inner = self.store.lock();
        let check = |resource: &str, name: &str| -> Result<(), ApiError> {
            let a = Attributes {
                verb: "impersonate".into(),
                resource: resource.into(),
                name: name.into(),
                ..Attributes::default()
            };
            rbac::authorize(&inner, &user, &a)
                .map(|_| ())
                .ok_or_else(|| ApiError::new(403, "Forbidden", a.forbidden_message(&user)))
        };
        check("users", as_user)?;
        for g in as_groups {
            check("groups", g)?;
        }
        let mut groups = as_groups.to_vec();
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        Ok(UserInfo {
            username: as_user.to_owned(),
            uid: String::new(),
            groups,
        })
    }

    /// Handle one request.
    pub async fn handle(self: &Arc<Self>, req: ApiRequest) -> Reply {
        match self.route(&req).await {
            Ok(r) => r,
            Err(e) => e.into(),
        }
    }

    async fn route(self: &Arc<Self>, req: &ApiRequest) -> Result<Reply, ApiError> {
        let user = req
            .user
            .clone()
            .ok_or_else(|| ApiError::new(401, "Unauthorized", "Unauthorized"))?;
        let path = if req.path.len() > 1 {
            req.path.trim_end_matches('/')
        } else {
            req.path.as_str()
        };
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let resource_path = matches!(
            segs.as_slice(),
            ["api", "v1", _, ..] | ["apis", _, _, _, ..]
        );
        if !resource_path {
            let a = Attributes {
                verb: req.method.to_ascii_lowercase(),
                path: Some(path.to_owned()),
                ..Attributes::default()
            };
            {
                let inner = self.store.lock();
                if rbac::authorize(&inner, &user, &a).is_none() {
                    return Err(ApiError::new(403, "Forbidden", a.forbidden_message(&user)));
                }
            }
            let types: Vec<ResourceType> = self.store.lock().types.values().cloned().collect();
            return crate::discovery::answer(&types, path, &segs, &req.accept);
        }
        let (group, version, rest) = match segs.as_slice() {
            ["api", v, rest @ ..] => ("", *v, rest),
            ["apis", g, v, rest @ ..] => (*g, *v, rest),
            _ => {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ));
            }
        };
        let (namespace, rest): (&str, &[&str]) = match rest {
            ["namespaces", ns, r, tail @ ..]
                if !(group.is_empty()
                    && matches!(*r, "status" | "finalize")
                    && tail.is_empty()) =>
            {
                (ns, &rest[2..])
            }
            _ => ("", rest),
        };
        let (plural, name, sub) = match rest {
            [p] => (*p, "", ""),
            [p, n] => (*p, *n, ""),
            [p, n, s] => (*p, *n, *s),
            _ => {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ));
            }
        };
        let rt = {
            let inner = self.store.lock();
            inner.find_type(group, plural).cloned()
        };
        let Some(rt) = rt.filter(|rt| rt.version == version) else {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        };
        if rt.namespaced && namespace.is_empty() && !name.is_empty() {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
        if !rt.namespaced && !namespace.is_empty() {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
        if !(sub.is_empty() || sub == "status" && rt.status_subresource) {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
        let watch = matches!(
            req.query.get("watch").map(String::as_str),
            Some("true" | "1")
        );
        let verb = match (req.method.as_str(), name.is_empty()) {
            ("GET", false) => "get",
            ("GET", true) if watch => "watch",
            ("GET", true) => "list",
            ("POST", true) => "create",
            ("PUT", false) => "update",
            ("PATCH", false) => "patch",
            ("DELETE", false) => "delete",
            ("DELETE", true) => "deletecollection",
            _ => {
                return Err(ApiError::method_not_allowed(
                    "the server does not allow this method on the requested resource",
                ));
            }
        };
        if rt.review && verb != "create" {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        let a = Attributes {
            verb: verb.into(),
            group: rt.group.clone(),
            resource: rt.plural.clone(),
            subresource: sub.into(),
            namespace: namespace.into(),
            name: name.into(),
            path: None,
        };
        {
            let inner = self.store.lock();
            if rbac::authorize(&inner, &user, &a).is_none() {
                return Err(ApiError::new(403, "Forbidden", a.forbidden_message(&user))
                    .with_details(json!({"name": name, "group": rt.group, "kind": rt.plural})));
            }
        }
        let t = Target {
            rt,
            namespace: namespace.into(),
            name: name.into(),
            subresource: sub.into(),
        };
        match verb {
            "get" => self.get(&t, req),
            "list" => self.list(&t, req),
            "watch" => self.watch(&t, req),
            "create" => self.create(&t, req, &user).await,
            "update" => self.update(&t, req, &user).await,
            "patch" => self.patch(&t, req, &user).await,
            "delete" => self.delete(&t, req, &user).await,
            _ => self.delete_collection(&t, req, &user).await,
        }
    }

    fn get(&self, t: &Target, req: &ApiRequest) -> Result<Reply, ApiError> {
        let inner = self.store.lock();
        let obj = inner
            .get(&t.rt.group, &t.rt.plural, &t.namespace, &t.name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&t.rt.group, &t.rt.plural, &t.name))?;
        if table::wants_table(&req.accept) {
            let inc = req.query.get("includeObject").map_or("", String::as_str);
            return Ok(Reply::ok(table::table(&t.rt, &[obj], inc, None)));
        }
        Ok(Reply::ok(obj))
    }

    fn selectors(req: &ApiRequest) -> Result<(LabelSelector, FieldSelector), ApiError> {
        let l = LabelSelector::parse(req.query.get("labelSelector").map_or("", String::as_str))
            .map_err(ApiError::bad_request)?;
        let f = FieldSelector::parse(req.query.get("fieldSelector").map_or("", String::as_str))
            .map_err(ApiError::bad_request)?;
        Ok((l, f))
    }

    fn list(&self, t: &Target, req: &ApiRequest) -> Result<Reply, ApiError> {
        let (ls, fs) = Self::selectors(req)?;
        let inner = self.store.lock();
        let ns = (!t.namespace.is_empty()).then_some(t.namespace.as_str());
        let all: Vec<Value> = inner
            .list(&t.rt.group, &t.rt.plural, ns)
            .into_iter()
            .filter(|o| ls.matches(o) && fs.matches(o))
            .collect();
        let rv = inner.rv;
        drop(inner);
        // limit/continue: the continue token is the offset, as an opaque string.
        let start: usize = req
            .query
            .get("continue")
            .map(|c| {
                c.parse()
                    .map_err(|_| ApiError::bad_request("invalid continue token"))
            })
            .transpose()?
            .unwrap_or(0);
        let limit: usize = req
            .query
            .get("limit")
            .and_then(|l| l.parse().ok())
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        let end = start.saturating_add(limit).min(all.len());
        let page: Vec<Value> = all
            .get(start.min(all.len())..end)
            .map(<[Value]>::to_vec)
            .unwrap_or_default();
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if end < all.len() {
            meta["continue"] = json!(end.to_string());
            meta["remainingItemCount"] = json!(all.len() - end);
        }
        if table::wants_table(&req.accept) {
            let inc = req.query.get("includeObject").map_or("", String::as_str);
            let mut tbl = table::table(&t.rt, &page, inc, Some(rv));
            tbl["metadata"] = meta;
            return Ok(Reply::ok(tbl));
        }
        Ok(Reply::ok(json!({
            "kind": format!("{}List", t.rt.kind),
            "apiVersion": t.rt.api_version(),
            "metadata": meta,
            "items": page,
        })))
    }

    fn watch(&self, t: &Target, req: &ApiRequest) -> Result<Reply, ApiError> {
        let (ls, fs) = Self::selectors(req)?;
        let timeout = req
            .query
            .get("timeoutSeconds")
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(1800);
        let as_table = table::wants_table(&req.accept);
        let include = req.query.get("includeObject").cloned().unwrap_or_default();
        let bookmarks = req
            .query
            .get("allowWatchBookmarks")
            .is_some_and(|v| v == "true");
        let initial_events = req
            .query
            .get("sendInitialEvents")
            .is_some_and(|v| v == "true");
        let from = req
            .query
            .get("resourceVersion")
            .cloned()
            .unwrap_or_default();
        let rt = t.rt.clone();
        let ns = t.namespace.clone();
        let matches = move |ev: &Event| {
            ev.group == rt.group
                && ev.plural == rt.plural
                && (ns.is_empty() || ev.namespace == ns)
                && ls.matches(&ev.object)
                && fs.matches(&ev.object)
        };
        let rt = t.rt.clone();
        let format = move |type_: &str, obj: &Value| -> Value {
            if as_table {
                json!({"type": type_, "object": table::table(&rt, std::slice::from_ref(obj), &include, None)})
            } else {
                json!({"type": type_, "object": obj})
            }
        };
        let (tx, rx) = mpsc::channel(1024);
        let mut first = vec![];
        let mut sub = {
            let inner = self.store.lock();
            if from.is_empty() || from == "0" || initial_events {
                let ns = (!t.namespace.is_empty()).then_some(t.namespace.as_str());
                for o in inner.list(&t.rt.group, &t.rt.plural, ns) {
                    let ev = Event {
                        rv: rv_of(&o),
                        type_: "ADDED",
                        group: t.rt.group.clone(),
                        plural: t.rt.plural.clone(),
                        namespace: meta_str(&o, "namespace").to_owned(),
                        object: o,
                    };
                    if matches(&ev) {
                        first.push(format("ADDED", &ev.object));
                    }
                }
                if initial_events && bookmarks {
                    first.push(json!({"type": "BOOKMARK", "object": {"kind": t.rt.kind, "apiVersion": t.rt.api_version(),
                        "metadata": {"resourceVersion": inner.rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}}}));
                }
            } else {
                let since: u64 = from.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {from:?}"))
                })?;
                let oldest = inner
                    .log
                    .front()
                    .map_or(inner.rv, |e| e.rv.saturating_sub(1));
                if since < oldest {
                    first.push(json!({"type": "ERROR", "object": ApiError::new(410, "Expired", format!("too old resource version: {since} ({oldest})")).status()}));
                } else {
                    for ev in inner.log.iter().filter(|e| e.rv > since) {
                        if matches(ev) {
                            first.push(format(ev.type_, &ev.object));
                        }
                    }
                }
            }
            self.store.subscribe()
        };
        let kind = t.rt.kind.clone();
        let api_version = t.rt.api_version();
        let mut last_rv = self.store.lock().rv;
        tokio::spawn(async move {
            for ev in first {
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
            let deadline = tokio::time::sleep(Duration::from_secs(timeout));
            tokio::pin!(deadline);
            let period = Duration::from_secs(30);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                tokio::select! {
                    _ = &mut deadline => return,
                    _ = tx.closed() => return,
                    _ = tick.tick(), if bookmarks => {
                        let _ = tx.send(json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": last_rv.to_string()}}})).await;
                    }
                    ev = sub.recv() => match ev {
                        Ok(ev) => {
                            last_rv = ev.rv;
                            if matches(&ev) && tx.send(format(ev.type_, &ev.object)).await.is_err() {
                                return;
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            let _ = tx.send(json!({"type": "ERROR", "object": ApiError::new(410, "Expired", "watch fell behind; relist").status()})).await;
                            return;
                        }
                        Err(_) => return,
                    }
                }
            }
        });
        Ok(Reply::Watch(rx))
    }

    fn body(req: &ApiRequest) -> Result<Value, ApiError> {
        parse_json(&req.body, &req.content_type)
    }

    fn check_kind(rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        let av = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if (!av.is_empty() && av != rt.api_version()) || (!kind.is_empty() && kind != rt.kind) {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                rt.api_version()
            ))
            .with_details(json!({"kind": kind})));
        }
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        Ok(())
    }

    /// A Secret's `stringData` is write-only, as on the real API server: folded into `data`
    /// (base64, over a `data` key of the same name) and never stored.
    fn fold_string_data(rt: &ResourceType, obj: &mut Value) {
        if !(rt.group.is_empty() && rt.plural == "secrets") {
            return;
        }
        let Some(string_data) = obj.as_object_mut().and_then(|m| m.remove("stringData")) else {
            return;
        };
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        if !obj.get("data").is_some_and(Value::is_object) {
            obj["data"] = json!({});
        }
        for (k, v) in string_data.as_object().into_iter().flatten() {
            if let Some(text) = v.as_str() {
                obj["data"][k] = json!(b64.encode(text.as_bytes()));
            }
        }
    }

    fn namespace_labels(&self, ns: &str) -> Option<Value> {
        let inner = self.store.lock();
        inner
            .get("", "namespaces", "", ns)
            .map(|n| n.pointer("/metadata/labels").cloned().unwrap_or(json!({})))
    }

    fn webhook_configs(&self, rt: &ResourceType, kind: &str) -> Vec<Value> {
        if rt.group == "admissionregistration.k8s.io" || rt.review {
            return vec![];
        }
        let inner = self.store.lock();
        inner.list("admissionregistration.k8s.io", kind, None)
    }

    /// Schema pruning/validation; returns warnings, or the 422 / strict 400.
    fn check_schema(
        rt: &ResourceType,
        obj: &mut Value,
        req: &ApiRequest,
    ) -> Result<Vec<String>, ApiError> {
        let mut causes = vec![];
        let name = meta_str(obj, "name").to_owned();
        let mut warnings = vec![];
        if let Some(schema) = &rt.schema {
            let out = crate::schema::apply(schema, obj);
            causes.extend(out.causes);
            if !out.pruned.is_empty() {
                match req.query.get("fieldValidation").map(String::as_str) {
                    Some("Strict") => {
                        let list: Vec<String> = out
                            .pruned
                            .iter()
                            .map(|p| format!("unknown field \"{p}\""))
                            .collect();
                        return Err(ApiError::bad_request(format!(
                            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                            rt.kind,
                            rt.version,
                            rt.kind,
                            list.join(", ")
                        )));
                    }
                    Some("Ignore") => {}
                    _ => {
                        warnings.extend(out.pruned.iter().map(|p| format!("unknown field \"{p}\"")))
                    }
                }
            }
        }
        if !name.is_empty()
            && let Some(c) = validate_name(rt, &name)
        {
            causes.insert(0, c);
        }
        if rt.plural == "customresourcedefinitions"
            && let Err(e) = registry::from_crd(obj)
        {
            causes.push(Cause::new("FieldValueInvalid", "spec", e));
        }
        if causes.is_empty() {
            Ok(warnings)
        } else {
            Err(ApiError::invalid(&rt.kind, &rt.group, &name, causes))
        }
    }

    async fn create(
        self: &Arc<Self>,
        t: &Target,
        req: &ApiRequest,
        user: &UserInfo,
    ) -> Result<Reply, ApiError> {
        let mut obj = Self::body(req)?;
        Self::check_kind(&t.rt, &mut obj)?;
        Self::fold_string_data(&t.rt, &mut obj);
        if t.rt.review {
            return self.review(t, obj, user);
        }
        let rt = &t.rt;
        {
            let Some(m) = meta_mut(&mut obj) else {
                return Err(ApiError::bad_request("metadata must be an object"));
            };
            if rt.namespaced {
                match m.get("namespace").and_then(Value::as_str) {
                    Some(n) if !n.is_empty() && n != t.namespace => {
                        return Err(ApiError::bad_request(
                            "the namespace of the provided object does not match the namespace sent on the request",
                        ));
                    }
                    _ => {
                        m.insert("namespace".into(), json!(t.namespace));
                    }
                }
            } else {
                m.remove("namespace");
            }
            for k in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "deletionTimestamp",
                "generation",
                "managedFields",
                "selfLink",
            ] {
                m.remove(k);
            }
        }
        if rt.namespaced && self.namespace_labels(&t.namespace).is_none() {
            return Err(ApiError::not_found("", "namespaces", &t.namespace));
        }
        if meta_str(&obj, "name").is_empty() && meta_str(&obj, "generateName").is_empty() {
            return Err(ApiError::invalid(
                &rt.kind,
                &rt.group,
                "",
                vec![Cause::new(
                    "FieldValueRequired",
                    "metadata.name",
                    "Required value: name or generateName is required",
                )],
            ));
        }
        if rt.status_subresource
            && rt.custom
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        let dry_run = req.query.get("dryRun").is_some_and(|d| d == "All");
        let mut warnings = Self::check_schema(rt, &mut obj.clone(), req)
            .map(|_| vec![])
            .unwrap_or_default();
        let mutating = self.webhook_configs(rt, "mutatingwebhookconfigurations");
        let validating = self.webhook_configs(rt, "validatingwebhookconfigurations");
        let ns_labels = self.namespace_labels(&t.namespace);
        let name_before = meta_str(&obj, "name").to_owned();
        let a = Attrs {
            operation: "CREATE",
            rt,
            subresource: "",
            namespace: &t.namespace,
            name: &name_before,
            object: None,
            old_object: None,
            user,
            dry_run,
            namespace_labels: ns_labels.clone(),
        };
        warnings.extend(self.admission.mutate(&mutating, &a, &mut obj).await?);
        if meta_str(&obj, "name").is_empty() {
            let g = meta_str(&obj, "generateName").to_owned();
            set_meta(&mut obj, "name", json!(format!("{g}{}", random_suffix())));
        }
        {
            let Some(m) = meta_mut(&mut obj) else {
                return Err(ApiError::bad_request("metadata must be an object"));
            };
            m.insert("uid".into(), json!(crate::admission::uuid()));
            m.insert("creationTimestamp".into(), json!(now()));
            if rt.custom {
                m.insert("generation".into(), json!(1));
            }
        }
        if rt.plural == "namespaces" && rt.group.is_empty() {
            obj["status"] = json!({"phase": "Active"});
            let name = meta_str(&obj, "name").to_owned();
            if let Some(m) = meta_mut(&mut obj)
                && let Some(l) = m.entry("labels").or_insert(json!({})).as_object_mut()
            {
                l.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
        }
        warnings.extend(Self::check_schema(rt, &mut obj, req)?);
        let name = meta_str(&obj, "name").to_owned();
        let a = Attrs {
            operation: "CREATE",
            rt,
            subresource: "",
            namespace: &t.namespace,
            name: &name,
            object: Some(&obj),
            old_object: None,
            user,
            dry_run,
            namespace_labels: ns_labels,
        };
        warnings.extend(self.admission.validate(&validating, &a).await?);
        warnings.dedup();
        if dry_run {
            return Ok(Reply::Json {
                code: 201,
                body: obj,
                warnings,
            });
        }
        let mut inner = self.store.lock();
        if inner
            .get(&rt.group, &rt.plural, &t.namespace, &name)
            .is_some()
        {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        if rt.plural == "customresourcedefinitions" {
            Self::register_crd(&mut inner, &mut obj)?;
        }
        let rv = inner.next_rv();
        set_meta(&mut obj, "resourceVersion", json!(rv.to_string()));
        inner
            .bucket(&rt.group, &rt.plural)
            .insert((t.namespace.clone(), name), obj.clone());
        self.store.emit(
            &mut inner,
            Event {
                rv,
                type_: "ADDED",
                group: rt.group.clone(),
                plural: rt.plural.clone(),
                namespace: t.namespace.clone(),
                object: obj.clone(),
            },
        );
        Ok(Reply::Json {
            code: 201,
            body: obj,
            warnings,
        })
    }

    fn register_crd(inner: &mut Inner, crd: &mut Value) -> Result<(), ApiError> {
        let rt = registry::from_crd(crd).map_err(ApiError::bad_request)?;
        let key = (rt.group.clone(), rt.plural.clone());
        if let Some(existing) = inner.types.get(&key)
            && !existing.custom
        {
            return Err(ApiError::bad_request(format!(
                "{} is a built-in resource",
                qualified(&rt.group, &rt.plural)
            )));
        }
        let t = now();
        crd["status"] = json!({
            "acceptedNames": crd.pointer("/spec/names").cloned().unwrap_or(json!({})),
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": t},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": t},
            ],
            "storedVersions": [rt.version],
        });
        inner.types.insert(key, rt);
        Ok(())
    }

    fn review(&self, t: &Target, mut obj: Value, user: &UserInfo) -> Result<Reply, ApiError> {
        let spec = obj.get("spec").cloned().unwrap_or(json!({}));
        let inner = self.store.lock();
        let status = match t.rt.kind.as_str() {
            "SelfSubjectAccessReview" => rbac::review(&inner, user, &spec),
            // `kubectl auth whoami`: who the request authenticated as.
            "SelfSubjectReview" => json!({"userInfo": {
                "username": user.username, "uid": user.uid, "groups": user.groups}}),
            _ => {
                let who = UserInfo {
                    username: spec
                        .get("user")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    uid: spec
                        .get("uid")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    groups: spec
                        .get("groups")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|g| g.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                if who.username.is_empty() && who.groups.is_empty() {
                    return Err(ApiError::invalid(
                        &t.rt.kind,
                        &t.rt.group,
                        "",
                        vec![Cause::new(
                            "FieldValueRequired",
                            "spec.user",
                            "Required value: at least one of user or group must be specified",
                        )],
                    ));
                }
                let mut spec = spec.clone();
                if t.rt.kind == "LocalSubjectAccessReview" {
                    spec["resourceAttributes"]["namespace"] = json!(t.namespace);
                }
                rbac::review(&inner, &who, &spec)
            }
        };
        obj["status"] = status;
        Ok(Reply::Json {
            code: 201,
            body: obj,
            warnings: vec![],
        })
    }

    async fn update(
        self: &Arc<Self>,
        t: &Target,
        req: &ApiRequest,
        user: &UserInfo,
    ) -> Result<Reply, ApiError> {
        let mut body = Self::body(req)?;
        Self::check_kind(&t.rt, &mut body)?;
        let body_name = meta_str(&body, "name").to_owned();
        if !body_name.is_empty() && body_name != t.name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({})",
                t.name
            )));
        }
        let precondition =
            Some(meta_str(&body, "resourceVersion").to_owned()).filter(|s| !s.is_empty());
        if precondition.is_none() && t.rt.custom {
            return Err(ApiError::invalid(
                &t.rt.kind,
                &t.rt.group,
                &t.name,
                vec![Cause::new(
                    "FieldValueInvalid",
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update",
                )],
            ));
        }
        self.write_existing(t, req, user, precondition, move |_old| Ok(body.clone()))
            .await
    }

    async fn patch(
        self: &Arc<Self>,
        t: &Target,
        req: &ApiRequest,
        user: &UserInfo,
    ) -> Result<Reply, ApiError> {
        let ct = req
            .content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        let patch_doc = parse_json(&req.body, &ct)?;
        let precondition = match &patch_doc {
            Value::Object(_) => {
                Some(meta_str(&patch_doc, "resourceVersion").to_owned()).filter(|s| !s.is_empty())
            }
            _ => None,
        };
        match ct.as_str() {
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                if req.query.get("fieldManager").is_none_or(String::is_empty) {
                    return Err(ApiError::invalid(
                        "PatchOptions",
                        "meta.k8s.io",
                        "",
                        vec![Cause::new(
                            "FieldValueRequired",
                            "fieldManager",
                            "Required value: is required for apply patch",
                        )],
                    ));
                }
                let exists = {
                    let inner = self.store.lock();
                    inner
                        .get(&t.rt.group, &t.rt.plural, &t.namespace, &t.name)
                        .is_some()
                };
                if !exists {
                    let mut create = req.clone();
                    create.body = serde_json::to_vec(&patch_doc).unwrap_or_default();
                    create.content_type = "application/json".into();
                    let mut obj = patch_doc.clone();
                    set_meta(&mut obj, "name", json!(t.name));
                    create.body = serde_json::to_vec(&obj).unwrap_or_default();
                    return self.create(t, &create, user).await;
                }
            }
            "application/merge-patch+json"
            | "application/strategic-merge-patch+json"
            | "application/json-patch+json" => {}
            other => {
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
                    ),
                ));
            }
        }
        self.write_existing(t, req, user, precondition, move |old| {
            let mut new = old.clone();
            match ct.as_str() {
                "application/json-patch+json" => {
                    let p: json_patch::Patch = serde_json::from_value(patch_doc.clone())
                        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                    // kube-apiserver answers a failed operation (a `test` that does not match,
                    // a path that does not exist) with this message and no detail (measured by
                    // tests/tests/e2e/fidelity.rs).
                    json_patch::patch(&mut new, &p).map_err(|_| {
                        ApiError::new(
                            422,
                            "Invalid",
                            "the server rejected our request due to an error in our request",
                        )
                    })?;
                }
                "application/strategic-merge-patch+json" => {
                    let mut p = patch_doc.clone();
                    strip_directives(&mut p);
                    json_patch::merge(&mut new, &p);
                }
                _ => json_patch::merge(&mut new, &patch_doc),
            }
            Ok(new)
        })
        .await
    }

    /// Update-like writes: build the new object from the current one, apply the subresource
    /// rules, schema, admission, and store it if the current object has not moved meanwhile.
    async fn write_existing(
        self: &Arc<Self>,
        t: &Target,
        req: &ApiRequest,
        user: &UserInfo,
        precondition: Option<String>,
        make: impl Fn(&Value) -> Result<Value, ApiError>,
    ) -> Result<Reply, ApiError> {
        let rt = &t.rt;
        let dry_run = req.query.get("dryRun").is_some_and(|d| d == "All");
        for _attempt in 0..20 {
            let old = {
                let inner = self.store.lock();
                inner
                    .get(&rt.group, &rt.plural, &t.namespace, &t.name)
                    .cloned()
                    .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, &t.name))?
            };
            let old_rv = meta_str(&old, "resourceVersion").to_owned();
            if let Some(p) = &precondition
                && *p != old_rv
            {
                return Err(ApiError::conflict(&rt.group, &rt.plural, &t.name));
            }
            let mut new = make(&old)?;
            if !new.is_object() {
                return Err(ApiError::bad_request(
                    "the result of the write is not an object",
                ));
            }
            Self::fold_string_data(rt, &mut new);
            new["apiVersion"] = json!(rt.api_version());
            new["kind"] = json!(rt.kind);
            if t.subresource == "status" {
                let status = new.get("status").cloned();
                new = old.clone();
                match status {
                    Some(s) => new["status"] = s,
                    None => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            } else if rt.status_subresource {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            {
                let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
                let Some(m) = meta_mut(&mut new) else {
                    return Err(ApiError::bad_request("metadata must be an object"));
                };
                for k in [
                    "name",
                    "namespace",
                    "uid",
                    "creationTimestamp",
                    "generation",
                    "deletionTimestamp",
                ] {
                    match old_meta.get(k) {
                        Some(v) => m.insert(k.into(), v.clone()),
                        None => m.remove(k),
                    };
                }
                m.insert("resourceVersion".into(), json!(old_rv));
                m.remove("managedFields");
            }
            let mut warnings = Self::check_schema(rt, &mut new, req)?;
            let ns_labels = self.namespace_labels(&t.namespace);
            let mutating = self.webhook_configs(rt, "mutatingwebhookconfigurations");
            let validating = self.webhook_configs(rt, "validatingwebhookconfigurations");
            let a = Attrs {
                operation: "UPDATE",
                rt,
                subresource: &t.subresource,
                namespace: &t.namespace,
                name: &t.name,
                object: None,
                old_object: Some(&old),
                user,
                dry_run,
                namespace_labels: ns_labels,
            };
            warnings.extend(self.admission.mutate(&mutating, &a, &mut new).await?);
            if !mutating.is_empty() {
                warnings.extend(Self::check_schema(rt, &mut new, req)?);
            }
            // generation: bumped when anything but metadata (and status, with the subresource) changes
            if rt.custom {
                let strip = |v: &Value| {
                    let mut v = v.clone();
                    if let Some(m) = v.as_object_mut() {
                        m.remove("metadata");
                        if rt.status_subresource {
                            m.remove("status");
                        }
                    }
                    v
                };
                if strip(&old) != strip(&new) {
                    let g = old
                        .pointer("/metadata/generation")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    set_meta(&mut new, "generation", json!(g + 1));
                }
            }
            let a = Attrs {
                object: Some(&new),
                ..a
            };
            warnings.extend(self.admission.validate(&validating, &a).await?);
            warnings.dedup();
            if new == old || dry_run {
                return Ok(Reply::Json {
                    code: 200,
                    body: new,
                    warnings,
                });
            }
            let mut inner = self.store.lock();
            let current_rv = inner
                .get(&rt.group, &rt.plural, &t.namespace, &t.name)
                .map(|o| meta_str(o, "resourceVersion").to_owned());
            match current_rv {
                None => return Err(ApiError::not_found(&rt.group, &rt.plural, &t.name)),
                Some(c) if c != old_rv => {
                    if precondition.is_some() {
                        return Err(ApiError::conflict(&rt.group, &rt.plural, &t.name));
                    }
                    continue;
                }
                Some(_) => {}
            }
            if rt.plural == "customresourcedefinitions" {
                Self::register_crd(&mut inner, &mut new)?;
            }
            let rv = inner.next_rv();
            set_meta(&mut new, "resourceVersion", json!(rv.to_string()));
            let finalized = new.pointer("/metadata/deletionTimestamp").is_some()
                && new
                    .pointer("/metadata/finalizers")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty);
            let key = (t.namespace.clone(), t.name.clone());
            let type_ = if finalized {
                inner.bucket(&rt.group, &rt.plural).remove(&key);
                "DELETED"
            } else {
                inner.bucket(&rt.group, &rt.plural).insert(key, new.clone());
                "MODIFIED"
            };
            self.store.emit(
                &mut inner,
                Event {
                    rv,
                    type_,
                    group: rt.group.clone(),
                    plural: rt.plural.clone(),
                    namespace: t.namespace.clone(),
                    object: new.clone(),
                },
            );
            return Ok(Reply::Json {
                code: 200,
                body: new,
                warnings,
            });
        }
        Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": too many concurrent writes",
                qualified(&rt.group, &rt.plural),
                t.name
            ),
        ))
    }

    async fn delete(
        self: &Arc<Self>,
        t: &Target,
        req: &ApiRequest,
        user: &UserInfo,
    ) -> Result<Reply, ApiError> {
        let rt = &t.rt;
        let opts: Value = if req.body.is_empty() {
            json!({})
        } else {
            parse_json(&req.body, &req.content_type).unwrap_or(json!({}))
        };
        let dry_run = req.query.get("dryRun").is_some_and(|d| d == "All")
            || opts
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|d| d == "All"));
        let old = {
            let inner = self.store.lock();
            inner
                .get(&rt.group, &rt.plural, &t.namespace, &t.name)
                .cloned()
                .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, &t.name))?
        };
        if let Some(p) = opts
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            && p != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(&rt.group, &rt.plural, &t.name));
        }
        if let Some(p) = opts.pointer("/preconditions/uid").and_then(Value::as_str)
            && p != meta_str(&old, "uid")
        {
            return Err(ApiError::conflict(&rt.group, &rt.plural, &t.name));
        }
        let validating = self.webhook_configs(rt, "validatingwebhookconfigurations");
        let mutating = self.webhook_configs(rt, "mutatingwebhookconfigurations");
        let mut scratch = Value::Null;
        let a = Attrs {
            operation: "DELETE",
            rt,
            subresource: "",
            namespace: &t.namespace,
            name: &t.name,
            object: None,
            old_object: Some(&old),
            user,
            dry_run,
            namespace_labels: self.namespace_labels(&t.namespace),
        };
        let mut warnings = self.admission.mutate(&mutating, &a, &mut scratch).await?;
        warnings.extend(self.admission.validate(&validating, &a).await?);
        if dry_run {
            return Ok(Reply::Json {
                code: 200,
                body: old,
                warnings,
            });
        }
        let mut inner = self.store.lock();
        let Some(mut current) = inner
            .get(&rt.group, &rt.plural, &t.namespace, &t.name)
            .cloned()
        else {
            return Err(ApiError::not_found(&rt.group, &rt.plural, &t.name));
        };
        let rv = inner.next_rv();
        set_meta(&mut current, "resourceVersion", json!(rv.to_string()));
        let has_finalizers = current
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
            && !(rt.plural == "namespaces" && rt.group.is_empty());
        let key = (t.namespace.clone(), t.name.clone());
        if has_finalizers {
            if current.pointer("/metadata/deletionTimestamp").is_none() {
                set_meta(&mut current, "deletionTimestamp", json!(now()));
            }
            inner
                .bucket(&rt.group, &rt.plural)
                .insert(key, current.clone());
            self.store.emit(
                &mut inner,
                Event {
                    rv,
                    type_: "MODIFIED",
                    group: rt.group.clone(),
                    plural: rt.plural.clone(),
                    namespace: t.namespace.clone(),
                    object: current.clone(),
                },
            );
            return Ok(Reply::Json {
                code: 202,
                body: current,
                warnings,
            });
        }
        inner.bucket(&rt.group, &rt.plural).remove(&key);
        self.store.emit(
            &mut inner,
            Event {
                rv,
                type_: "DELETED",
                group: rt.group.clone(),
                plural: rt.plural.clone(),
                namespace: t.namespace.clone(),
                object: current.clone(),
            },
        );
        // Cascades: a Namespace takes its objects with it, a CRD its custom resources.
        if rt.group.is_empty() && rt.plural == "namespaces" {
            let buckets: Vec<(String, String)> = inner.objects.keys().cloned().collect();
            for (g, p) in buckets {
                let doomed: Vec<_> = inner
                    .bucket(&g, &p)
                    .keys()
                    .filter(|(ns, _)| *ns == t.name)
                    .cloned()
                    .collect();
                for k in doomed {
                    if let Some(mut o) = inner.bucket(&g, &p).remove(&k) {
                        let rv = inner.next_rv();
                        set_meta(&mut o, "resourceVersion", json!(rv.to_string()));
                        self.store.emit(
                            &mut inner,
                            Event {
                                rv,
                                type_: "DELETED",
                                group: g.clone(),
                                plural: p.clone(),
                                namespace: k.0.clone(),
                                object: o,
                            },
                        );
                    }
                }
            }
        }
        if rt.plural == "customresourcedefinitions"
            && let Ok(crt) = registry::from_crd(&current)
        {
            inner.types.remove(&(crt.group.clone(), crt.plural.clone()));
            inner.objects.remove(&(crt.group, crt.plural));
        }
        Ok(Reply::Json {
            code: 200,
            body: current,
            warnings,
        })
    }

    async fn delete_collection(
        self: &Arc<Self>,
        t: &Target,
        req: &ApiRequest,
        user: &UserInfo,
    ) -> Result<Reply, ApiError> {
        let (ls, fs) = Self::selectors(req)?;
        let names: Vec<String> = {
            let inner = self.store.lock();
            let ns = (!t.namespace.is_empty()).then_some(t.namespace.as_str());
            inner
                .list(&t.rt.group, &t.rt.plural, ns)
                .into_iter()
                .filter(|o| ls.matches(o) && fs.matches(o))
                .map(|o| meta_str(&o, "name").to_owned())
                .collect()
        };
        let mut items = vec![];
        for name in names {
            let one = Target { name, ..t.clone() };
            let mut r = req.clone();
            r.body = vec![];
            if let Reply::Json { body, .. } = self.delete(&one, &r, user).await? {
                items.push(body);
            }
        }
        Ok(Reply::ok(
            json!({"kind": format!("{}List", t.rt.kind), "apiVersion": t.rt.api_version(), "metadata": {}, "items": items}),
        ))
    }

    /// Direct access for the simulator and tests: the object, if stored.
    pub fn get_object(&self, group: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.store.lock().get(group, plural, ns, name).cloned()
    }
}
