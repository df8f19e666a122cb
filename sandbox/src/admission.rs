//! Dynamic admission as kube-apiserver does it: MutatingWebhookConfigurations (in name order,
//! each webhook in order, JSONPatch responses applied one after the other), then
//! ValidatingWebhookConfigurations; rules, namespaceSelector, objectSelector and CEL
//! matchConditions decide which webhooks are called; AdmissionReview v1 over HTTPS with the
//! webhook's caBundle, `?timeout=`, `timeoutSeconds` and `failurePolicy`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::rbac::UserInfo;
use crate::registry::ResourceType;
use crate::selectors::LabelSelector;

/// One admission request, before it is shaped as an AdmissionReview.
#[derive(Clone)]
pub struct Attrs<'a> {
    pub operation: &'a str,
    pub rt: &'a ResourceType,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub object: Option<&'a Value>,
    pub old_object: Option<&'a Value>,
    pub user: &'a UserInfo,
    pub dry_run: bool,
    /// Labels of the object's namespace (for `namespaceSelector`).
    pub namespace_labels: Option<Value>,
}

impl Attrs<'_> {
    fn request(&self, uid: &str) -> Value {
        let gvk = json!({"group": self.rt.group, "version": self.rt.version, "kind": self.rt.kind});
        let gvr =
            json!({"group": self.rt.group, "version": self.rt.version, "resource": self.rt.plural});
        let options_kind = match self.operation {
            "CREATE" => "CreateOptions",
            "UPDATE" => "UpdateOptions",
            _ => "DeleteOptions",
        };
        let mut r = json!({
            "uid": uid,
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "operation": self.operation,
            "userInfo": self.user.to_json(),
            "object": self.object.cloned().unwrap_or(Value::Null),
            "oldObject": self.old_object.cloned().unwrap_or(Value::Null),
            "dryRun": self.dry_run,
            "options": {"kind": options_kind, "apiVersion": "meta.k8s.io/v1"},
        });
        if !self.subresource.is_empty() {
            r["subResource"] = json!(self.subresource);
            r["requestSubResource"] = json!(self.subresource);
        }
        if !self.name.is_empty() {
            r["name"] = json!(self.name);
        }
        if !self.namespace.is_empty() {
            r["namespace"] = json!(self.namespace);
        }
        r
    }
}

/// Calls webhooks; knows where Service references live on this machine.
pub struct Admission {
    /// `name.namespace` → local address.
    pub endpoints: HashMap<String, SocketAddr>,
    clients: Mutex<HashMap<(String, String), reqwest::Client>>,
}

fn strs(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn rule_matches(rule: &Value, a: &Attrs) -> bool {
    let any = |k: &str, want: &str| strs(rule.get(k)).iter().any(|x| *x == "*" || *x == want);
    if !any("operations", a.operation)
        || !any("apiGroups", &a.rt.group)
        || !any("apiVersions", &a.rt.version)
    {
        return false;
    }
    let res_ok = strs(rule.get("resources")).iter().any(|r| {
        let (res, sub) = r.split_once('/').unwrap_or((r, ""));
        let res_ok = res == "*" || res == a.rt.plural;
        let sub_ok = sub == "*" || sub == a.subresource;
        res_ok && sub_ok
    });
    if !res_ok {
        return false;
    }
    match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
        "Cluster" => !a.rt.namespaced,
        "Namespaced" => a.rt.namespaced,
        _ => true,
    }
}

fn selector_ok(sel: Option<&Value>, labels: &[&Value]) -> Result<bool, String> {
    let Some(sel) = sel.filter(|s| s.as_object().is_some_and(|m| !m.is_empty())) else {
        return Ok(true);
    };
    let s = LabelSelector::from_object(sel)?;
    Ok(labels.iter().any(|o| s.matches(o)))
}

/// Evaluate `matchConditions`: `Ok(true)` call, `Ok(false)` skip, `Err` an evaluation error.
fn conditions(
    webhook: &Value,
    object: &Value,
    old: &Value,
    request: &Value,
) -> Result<bool, String> {
    let Some(conds) = webhook.get("matchConditions").and_then(Value::as_array) else {
        return Ok(true);
    };
    let mut err = None;
    for c in conds {
        let name = c.get("name").and_then(Value::as_str).unwrap_or("");
        let expr = c.get("expression").and_then(Value::as_str).unwrap_or("");
        let result = (|| -> Result<bool, String> {
            let program = cel::Program::compile(expr).map_err(|e| e.to_string())?;
            let mut ctx = cel::Context::default();
            for (k, v) in [("object", object), ("oldObject", old), ("request", request)] {
                ctx.add_variable_from_value(k, cel::to_value(v).map_err(|e| e.to_string())?);
            }
            match program.execute(&ctx).map_err(|e| e.to_string())? {
                cel::Value::Bool(b) => Ok(b),
                other => Err(format!("must evaluate to bool, got {other:?}")),
            }
        })();
        match result {
            Ok(false) => return Ok(false),
            Ok(true) => {}
            Err(e) => {
                err.get_or_insert(format!("matchCondition {name:?}: {e}"));
            }
        }
    }
    match err {
        Some(e) => Err(e),
        None => Ok(true),
    }
}

impl Admission {
    pub fn new(endpoints: HashMap<String, SocketAddr>) -> Self {
        Self {
            endpoints,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Run mutating webhooks over `object` in place; returns warnings.
    pub async fn mutate(
        &self,
        configs: &[Value],
        a: &Attrs<'_>,
        object: &mut Value,
    ) -> Result<Vec<String>, ApiError> {
        let mut warnings = vec![];
        for cfg in configs {
            for wh in cfg
                .get("webhooks")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                let current = object.clone();
                let with_object = Attrs {
                    object: (a.operation != "DELETE").then_some(&current),
                    ..a.clone()
                };
                if let Some(resp) = self.call(&wh, &with_object).await? {
                    warnings.extend(strs(resp.get("warnings")).into_iter().map(str::to_owned));
                    if let Some(p) = resp.get("patch").and_then(Value::as_str) {
                        let name = wh.get("name").and_then(Value::as_str).unwrap_or("");
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(p)
                            .map_err(|e| ApiError::internal(format!("admission webhook {name:?} returned a patch that is not base64: {e}")))?;
                        let patch: json_patch::Patch =
                            serde_json::from_slice(&bytes).map_err(|e| {
                                ApiError::internal(format!(
                                    "admission webhook {name:?} returned an invalid JSONPatch: {e}"
                                ))
                            })?;
                        json_patch::patch(object, &patch)
                            .map_err(|e| ApiError::internal(format!("admission webhook {name:?} returned a JSONPatch that does not apply: {e}")))?;
                    }
                }
            }
        }
        Ok(warnings)
    }

    /// Run validating webhooks, all at once as kube-apiserver does (they cannot change the object,
    /// so their order does not matter); the first refusal in configuration order wins. Returns
    /// warnings.
    pub async fn validate(
        &self,
        configs: &[Value],
        a: &Attrs<'_>,
    ) -> Result<Vec<String>, ApiError> {
        let hooks: Vec<Value> = configs
            .iter()
            .flat_map(|cfg| {
                cfg.get("webhooks")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        let answers = futures::future::join_all(hooks.iter().map(|wh| self.call(wh, a))).await;
        let mut warnings = vec![];
        for answer in answers {
            if let Some(resp) = answer? {
                warnings.extend(strs(resp.get("warnings")).into_iter().map(str::to_owned));
            }
        }
        Ok(warnings)
    }

    /// Call one webhook if it matches. `Ok(None)`: not called (or ignored failure).
    async fn call(&self, wh: &Value, a: &Attrs<'_>) -> Result<Option<Value>, ApiError> {
        let name = wh
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let ignore = wh.get("failurePolicy").and_then(Value::as_str) == Some("Ignore");
        let rules = wh
            .get("rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if !rules.iter().any(|r| rule_matches(r, a)) {
            return Ok(None);
        }
        let fail = |msg: String| -> Result<Option<Value>, ApiError> {
            if ignore {
                Ok(None)
            } else {
                Err(ApiError::internal(format!(
                    "failed calling webhook {name:?}: {msg}"
                )))
            }
        };
        // namespaceSelector: the namespace's labels, the object's own for Namespaces;
        // cluster-scoped objects always match.
        let obj_or_old = a.object.or(a.old_object).cloned().unwrap_or(Value::Null);
        let ns_ok = if a.rt.plural == "namespaces" && a.rt.group.is_empty() {
            selector_ok(wh.get("namespaceSelector"), &[&obj_or_old])
        } else if !a.rt.namespaced {
            Ok(true)
        } else {
            let labels =
                json!({"metadata": {"labels": a.namespace_labels.clone().unwrap_or(json!({}))}});
            selector_ok(wh.get("namespaceSelector"), &[&labels])
        };
        let objs: Vec<&Value> = [a.object, a.old_object].into_iter().flatten().collect();
        let obj_ok = selector_ok(wh.get("objectSelector"), &objs);
        match (ns_ok, obj_ok) {
            (Ok(true), Ok(true)) => {}
            (Ok(_), Ok(_)) => return Ok(None),
            (Err(e), _) | (_, Err(e)) => return fail(e),
        }
        let uid = uuid();
        let request = a.request(&uid);
        match conditions(
            wh,
            a.object.unwrap_or(&Value::Null),
            a.old_object.unwrap_or(&Value::Null),
            &request,
        ) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => return fail(e),
        }
        let versions = strs(wh.get("admissionReviewVersions"));
        if !versions.contains(&"v1") {
            return fail(format!(
                "webhook does not accept v1 AdmissionReview (admissionReviewVersions {versions:?})"
            ));
        }
        if a.dry_run
            && !matches!(
                wh.get("sideEffects").and_then(Value::as_str),
                Some("None" | "NoneOnDryRun")
            )
        {
            return Err(ApiError::bad_request(format!(
                "admission webhook {name:?} has side effects and does not support dry run"
            )));
        }
        let timeout = wh
            .get("timeoutSeconds")
            .and_then(Value::as_u64)
            .unwrap_or(10)
            .clamp(1, 30);
        let (url, host, addr) = match self.target(wh, timeout) {
            Ok(t) => t,
            Err(e) => return fail(e),
        };
        let ca = wh
            .pointer("/clientConfig/caBundle")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let client = match self.client(&ca, &host, addr) {
            Ok(c) => c,
            Err(e) => return fail(format!("failed to call webhook: {e}")),
        };
        let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request});
        let sent = client
            .post(&url)
            .timeout(Duration::from_secs(timeout))
            .json(&review)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                let detail = if e.is_timeout() {
                    "context deadline exceeded".to_owned()
                } else {
                    error_chain(&e)
                };
                return fail(format!("failed to call webhook: Post {url:?}: {detail}"));
            }
        };
        let status = resp.status();
        let body: Value = match resp.json().await {
            Ok(b) => b,
            Err(e) => return fail(format!("received invalid webhook response: {e}")),
        };
        if !status.is_success() {
            return fail(format!(
                "received invalid webhook response: HTTP {status}: {body}"
            ));
        }
        let Some(r) = body.get("response").cloned() else {
            return fail("webhook response was absent".into());
        };
        if r.get("uid").and_then(Value::as_str) != Some(uid.as_str()) {
            return fail(format!(
                "expected response.uid={uid:?}, got {:?}",
                r.get("uid").and_then(Value::as_str).unwrap_or("")
            ));
        }
        if r.get("allowed").and_then(Value::as_bool) == Some(true) {
            return Ok(Some(r));
        }
        // kube's webhookerrors.ToStatusErr
        let st = r.get("status").cloned().unwrap_or(json!({}));
        let code = st.get("code").and_then(Value::as_u64).unwrap_or(0);
        let code = if code < 400 { 400 } else { code.min(599) } as u16;
        let reason = st.get("reason").and_then(Value::as_str).unwrap_or("");
        let msg = st.get("message").and_then(Value::as_str).unwrap_or("");
        let denied = format!("admission webhook {name:?} denied the request");
        let message = if !msg.is_empty() {
            format!("{denied}: {msg}")
        } else if !reason.is_empty() {
            format!("{denied}: {reason}")
        } else {
            format!("{denied} without explanation")
        };
        let mut e = ApiError::new(code, reason, message);
        if let Some(d) = st.get("details") {
            e.details = Some(Box::new(d.clone()));
        }
        Err(e)
    }

    fn target(
        &self,
        wh: &Value,
        timeout: u64,
    ) -> Result<(String, String, Option<SocketAddr>), String> {
        let cc = wh.get("clientConfig").cloned().unwrap_or(json!({}));
        if let Some(svc) = cc.get("service") {
            let s = |k: &str| svc.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let (name, ns) = (s("name"), s("namespace"));
            let path = match s("path") {
                p if p.is_empty() => "/".to_owned(),
                p => p,
            };
            let host = format!("{name}.{ns}.svc");
            let addr = self.endpoints.get(&format!("{name}.{ns}")).copied().ok_or_else(|| {
                format!("failed to call webhook: service \"{ns}/{name}\" not found (start the sandbox with --service-endpoint {name}.{ns}=127.0.0.1:PORT)")
            })?;
            return Ok((
                format!("https://{host}{path}?timeout={timeout}s"),
                host,
                Some(addr),
            ));
        }
        let url = cc
            .get("url")
            .and_then(Value::as_str)
            .ok_or("clientConfig has neither url nor service")?;
        if !url.starts_with("https://") {
            return Err(format!("webhook url {url:?} must use https"));
        }
        let sep = if url.contains('?') { '&' } else { '?' };
        Ok((format!("{url}{sep}timeout={timeout}s"), String::new(), None))
    }

    fn client(
        &self,
        ca_b64: &str,
        host: &str,
        addr: Option<SocketAddr>,
    ) -> Result<reqwest::Client, String> {
        let key = (ca_b64.to_owned(), host.to_owned());
        let mut cache = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let ca = base64::engine::general_purpose::STANDARD
            .decode(ca_b64.trim())
            .map_err(|e| format!("caBundle is not base64: {e}"))?;
        let tls = crate::tls::client_config(&ca).map_err(|e| e.to_string())?;
        let mut b = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .http1_only()
            .pool_max_idle_per_host(8);
        if let Some(addr) = addr {
            b = b.resolve(host, addr);
        }
        let c = b.build().map_err(|e| e.to_string())?;
        cache.insert(key, c.clone());
        Ok(c)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A random UUID (v4 layout) from ulid's randomness.
pub fn uuid() -> String {
    let n = ulid::Ulid::new().0 ^ (u128::from(std::process::id()) << 64);
    let x = (n & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let h = format!("{x:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_conditions_in_cel() {
        let wh = json!({"matchConditions": [
            {"name": "promotion", "expression": "has(object.operation) && has(object.operation.info)"},
            {"name": "not-argocd", "expression": "request.userInfo.username != 'system:serviceaccount:argocd:argocd-application-controller'"},
        ]});
        let obj = json!({"operation": {"info": [{"name": "x"}]}});
        let req = json!({"userInfo": {"username": "alice"}});
        assert_eq!(conditions(&wh, &obj, &Value::Null, &req), Ok(true));
        assert_eq!(conditions(&wh, &json!({}), &Value::Null, &req), Ok(false));
        let argo = json!({"userInfo": {"username": "system:serviceaccount:argocd:argocd-application-controller"}});
        assert_eq!(conditions(&wh, &obj, &Value::Null, &argo), Ok(false));
        let broken =
            json!({"matchConditions": [{"name": "b", "expression": "object.nope.deeper == 1"}]});
        assert!(conditions(&broken, &json!({}), &Value::Null, &req).is_err());
    }

    #[test]
    fn uuids_look_like_uuids() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, uuid());
    }
}
