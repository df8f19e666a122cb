//! An Argo CD application-controller simulator. It writes through the API like the real
//! controller (as `system:serviceaccount:argocd:argocd-application-controller`, so admission and
//! RBAC see its writes): when an Application gets an `operation` and none is running, it sets
//! `status.operationState` Running, resolves the revisions against the real Git repository the
//! source names, then in one JSON merge patch records the finished operation and clears
//! `operation` (Argo CD's `setOperationState`), and finally reconciles: `status.sync`,
//! `status.health`, `status.history`, `status.reconciledAt`. A hard/normal refresh annotation is
//! consumed the same way.
//!
//! Failure injection, per Application, by annotation:
//! - `sandbox.promote.dev/sync: fail` — the sync ends `Failed`;
//! - `sandbox.promote.dev/sync: hang` — the operation stays `Running` until the annotation changes;
//! - `sandbox.promote.dev/health: Degraded` (or any health status) — health after the sync;
//! - `sandbox.promote.dev/sync-delay: 2s` — time the sync takes;
//! - `sandbox.promote.dev/reconcile-delay: 2s` — time between the sync and the reconcile.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::{ApiRequest, Cluster, Reply};
use crate::rbac::UserInfo;

pub const CONTROLLER: &str = "system:serviceaccount:argocd:argocd-application-controller";

fn controller() -> UserInfo {
    UserInfo {
        username: CONTROLLER.into(),
        uid: "argocd-application-controller".into(),
        groups: vec![
            "system:serviceaccounts".into(),
            "system:serviceaccounts:argocd".into(),
            "system:authenticated".into(),
        ],
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn annotation<'a>(app: &'a Value, key: &str) -> Option<&'a str> {
    app.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

fn duration(app: &Value, key: &str) -> Duration {
    annotation(app, key)
        .and_then(|d| promote_api::duration::parse(d).ok())
        .unwrap_or(Duration::ZERO)
}

/// Where the simulator reads and writes Applications: the sandbox in this process, or any
/// Kubernetes API server over HTTPS (the real tier, `promote-sandbox argocd`).
pub enum Api {
    /// The sandbox's own store, written through its request handler (admission and RBAC apply).
    Local(Arc<Cluster>),
    /// An API server, as the Argo CD controller's service account.
    Remote {
        client: reqwest::Client,
        server: String,
        token: String,
    },
}

impl Api {
    fn path(k: &(String, String)) -> String {
        format!(
            "/apis/argoproj.io/v1alpha1/namespaces/{}/applications/{}",
            k.0, k.1
        )
    }

    /// One request to the remote API server: the JSON answer, or its message.
    async fn remote(
        &self,
        method: reqwest::Method,
        path: &str,
        patch: Option<&Value>,
    ) -> Result<Value, String> {
        let Api::Remote {
            client,
            server,
            token,
        } = self
        else {
            return Err("not a remote API server".into());
        };
        let mut req = client
            .request(method, format!("{server}{path}"))
            .bearer_auth(token);
        if let Some(body) = patch {
            req = req
                .header("Content-Type", "application/merge-patch+json")
                .body(serde_json::to_vec(body).map_err(|e| e.to_string())?);
        }
        let r = req.send().await.map_err(|e| e.to_string())?;
        let ok = r.status().is_success();
        let v: Value = r.json().await.map_err(|e| e.to_string())?;
        if ok {
            Ok(v)
        } else {
            Err(v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("request failed")
                .to_owned())
        }
    }

    async fn get(&self, k: &(String, String)) -> Option<Value> {
        match self {
            Api::Local(c) => c.get_object("argoproj.io", "applications", &k.0, &k.1),
            Api::Remote { .. } => self
                .remote(reqwest::Method::GET, &Api::path(k), None)
                .await
                .ok(),
        }
    }

    async fn list(&self) -> Vec<Value> {
        match self {
            Api::Local(c) => c.store.lock().list("argoproj.io", "applications", None),
            Api::Remote { .. } => self
                .remote(
                    reqwest::Method::GET,
                    "/apis/argoproj.io/v1alpha1/applications",
                    None,
                )
                .await
                .ok()
                .and_then(|l| l.get("items").and_then(Value::as_array).cloned())
                .unwrap_or_default(),
        }
    }

    async fn patch(&self, k: &(String, String), body: Value) -> Result<Value, String> {
        match self {
            Api::Local(cluster) => {
                let req = ApiRequest {
                    method: "PATCH".into(),
                    path: Api::path(k),
                    content_type: "application/merge-patch+json".into(),
                    user: Some(controller()),
                    body: serde_json::to_vec(&body).map_err(|e| e.to_string())?,
                    ..ApiRequest::default()
                };
                match cluster.handle(req).await {
                    Reply::Json { code, body, .. } if code < 300 => Ok(body),
                    Reply::Json { body, .. } => Err(body
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("patch failed")
                        .to_owned()),
                    _ => Err("unexpected reply".into()),
                }
            }
            Api::Remote { .. } => {
                self.remote(reqwest::Method::PATCH, &Api::path(k), Some(&body))
                    .await
            }
        }
    }
}

/// Run the simulator against `api` until it goes away: the sandbox's own events, or a poll of
/// a remote API server's Applications every 100 ms.
pub fn spawn_on(api: Arc<Api>) -> tokio::task::JoinHandle<()> {
    let inflight: Arc<Mutex<HashSet<(String, String)>>> = Arc::default();
    let cluster = match &*api {
        Api::Local(c) => c.clone(),
        Api::Remote { .. } => {
            return tokio::spawn(async move {
                loop {
                    for app in api.list().await {
                        consider(&api, &inflight, &app);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
    };
    let mut events = cluster.store.subscribe();
    let existing = cluster
        .store
        .lock()
        .list("argoproj.io", "applications", None);
    tokio::spawn(async move {
        for app in existing {
            consider(&api, &inflight, &app);
        }
        loop {
            match events.recv().await {
                Ok(ev)
                    if ev.group == "argoproj.io"
                        && ev.plural == "applications"
                        && ev.type_ != "DELETED" =>
                {
                    consider(&api, &inflight, &ev.object);
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    for app in api.list().await {
                        consider(&api, &inflight, &app);
                    }
                }
                Err(_) => return,
            }
        }
    })
}

fn key(app: &Value) -> (String, String) {
    let m = |k: &str| {
        app.pointer(&format!("/metadata/{k}"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    (m("namespace"), m("name"))
}

/// Run the simulator in the sandbox until the cluster goes away.
pub fn spawn(cluster: Arc<Cluster>) -> tokio::task::JoinHandle<()> {
    spawn_on(Arc::new(Api::Local(cluster)))
}

fn consider(api: &Arc<Api>, inflight: &Arc<Mutex<HashSet<(String, String)>>>, app: &Value) {
    let wants_sync = app.get("operation").is_some_and(|o| !o.is_null());
    let wants_refresh = annotation(app, "argocd.argoproj.io/refresh").is_some();
    if !wants_sync && !wants_refresh {
        return;
    }
    let k = key(app);
    {
        let mut set = inflight.lock().unwrap_or_else(|p| p.into_inner());
        if !set.insert(k.clone()) {
            return;
        }
    }
    let api = api.clone();
    let inflight = inflight.clone();
    tokio::spawn(async move {
        let result = if wants_sync {
            sync(&api, &k).await
        } else {
            refresh(&api, &k).await
        };
        if let Err(e) = result {
            eprintln!("argocd simulator: application {}/{}: {e}", k.0, k.1);
        }
        inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&k);
        // Look again: something may have changed while we worked.
        if let Some(app) = api.get(&k).await {
            consider(&api, &inflight, &app);
        }
    });
}

fn sources(app: &Value) -> (Vec<Value>, bool) {
    match app.pointer("/spec/sources").and_then(Value::as_array) {
        Some(s) if !s.is_empty() => (s.clone(), true),
        _ => (
            app.pointer("/spec/source").cloned().into_iter().collect(),
            false,
        ),
    }
}

/// Resolve a source's revision the way the repo-server would: Helm charts keep the version,
/// Git revisions become commit SHAs.
async fn resolve(source: &Value, wanted: &str) -> Result<String, String> {
    let rev = if wanted.is_empty() {
        source
            .get("targetRevision")
            .and_then(Value::as_str)
            .unwrap_or("HEAD")
            .to_owned()
    } else {
        wanted.to_owned()
    };
    if source
        .get("chart")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.is_empty())
    {
        return Ok(rev);
    }
    if rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(rev.to_ascii_lowercase());
    }
    let url = source
        .get("repoURL")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let rev_for_err = rev.clone();
    let out = tokio::process::Command::new("git")
        .args(["ls-remote", "--", &url])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .await
        .map_err(|e| format!("running git: {e}"))?;
    let unresolved = || format!("unable to resolve '{rev_for_err}' to a commit SHA");
    if !out.status.success() {
        return Err(unresolved());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let refs: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once('\t')).collect();
    let find = |name: &str| {
        refs.iter()
            .find(|(_, r)| *r == name)
            .map(|(sha, _)| (*sha).to_owned())
    };
    let candidates = if rev == "HEAD" {
        vec!["HEAD".to_owned()]
    } else {
        vec![
            format!("refs/tags/{rev}^{{}}"),
            format!("refs/tags/{rev}"),
            format!("refs/heads/{rev}"),
            rev.clone(),
        ]
    };
    candidates
        .iter()
        .find_map(|c| find(c))
        .ok_or_else(unresolved)
}

async fn sync(api: &Api, k: &(String, String)) -> Result<(), String> {
    let Some(app) = api.get(k).await else {
        return Ok(());
    };
    let Some(op) = app.get("operation").filter(|o| !o.is_null()).cloned() else {
        return Ok(());
    };
    let started = now();
    api.patch(
        k,
        json!({"status": {"operationState": {
        "operation": op, "phase": "Running", "message": "", "startedAt": started}}}),
    )
    .await?;
    // Injected behaviour is read from the live object, so a test can change it mid-sync.
    loop {
        let live = api.get(k).await.unwrap_or(Value::Null);
        if annotation(&live, "sandbox.promote.dev/sync") != Some("hang") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let app = api.get(k).await.unwrap_or(app);
    tokio::time::sleep(duration(&app, "sandbox.promote.dev/sync-delay")).await;
    let (srcs, multi) = sources(&app);
    let wanted: Vec<String> = if multi {
        op.pointer("/sync/revisions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|r| r.as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        vec![
            op.pointer("/sync/revision")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        ]
    };
    let mut revisions = vec![];
    let mut failure = None;
    for (i, s) in srcs.iter().enumerate() {
        match resolve(s, wanted.get(i).map_or("", String::as_str)).await {
            Ok(r) => revisions.push(r),
            Err(e) => {
                failure = Some(format!(
                    "ComparisonError: Failed to load target state: failed to generate manifest for source {} of {}: rpc error: code = Unknown desc = {e}",
                    i + 1,
                    srcs.len()
                ));
                break;
            }
        }
    }
    if srcs.is_empty() {
        failure = Some("ComparisonError: application has no source".into());
    }
    if failure.is_none() && annotation(&app, "sandbox.promote.dev/sync") == Some("fail") {
        failure = Some("one or more objects failed to apply, reason: injected by promote-sandbox (sandbox.promote.dev/sync: fail)".into());
    }
    let finished = now();
    let mut result = json!({"resources": []});
    if multi {
        // Argo CD's SyncOperationResult always has `revision` (its CRD requires it; the real
        // API server refused this status without it, as the sandbox did not).
        result["revision"] = json!("");
        result["revisions"] = json!(revisions);
        result["sources"] = json!(srcs);
    } else {
        result["revision"] = json!(revisions.first().cloned().unwrap_or_default());
        result["source"] = srcs.first().cloned().unwrap_or(json!({}));
    }
    let (phase, message) = match &failure {
        Some(m) => ("Failed", m.clone()),
        None => (
            "Succeeded",
            "successfully synced (all tasks run)".to_owned(),
        ),
    };
    let mut state = json!({"operation": op, "phase": phase, "message": message,
        "startedAt": started, "finishedAt": finished});
    if failure.is_none() {
        state["syncResult"] = result.clone();
    }
    api.patch(
        k,
        json!({"operation": null, "status": {"operationState": state}}),
    )
    .await?;
    if failure.is_some() {
        return Ok(());
    }
    tokio::time::sleep(duration(&app, "sandbox.promote.dev/reconcile-delay")).await;
    let live = api.get(k).await.unwrap_or(app.clone());
    let health = annotation(&live, "sandbox.promote.dev/health")
        .unwrap_or("Healthy")
        .to_owned();
    let mut history = live
        .pointer("/status/history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let next_id = history
        .iter()
        .filter_map(|h| h.get("id").and_then(Value::as_i64))
        .max()
        .unwrap_or(-1)
        + 1;
    let mut entry = json!({"id": next_id, "deployStartedAt": started, "deployedAt": finished,
        "initiatedBy": op.get("initiatedBy").cloned().unwrap_or(json!({}))});
    let mut sync_status = json!({"status": "Synced", "comparedTo": {"destination": live.pointer("/spec/destination").cloned().unwrap_or(json!({}))}});
    if multi {
        entry["revisions"] = json!(revisions);
        entry["sources"] = json!(srcs);
        sync_status["revisions"] = json!(revisions);
        sync_status["comparedTo"]["sources"] = json!(srcs);
    } else {
        entry["revision"] = json!(revisions.first().cloned().unwrap_or_default());
        entry["source"] = srcs.first().cloned().unwrap_or(json!({}));
        sync_status["revision"] = json!(revisions.first().cloned().unwrap_or_default());
        sync_status["comparedTo"]["source"] = srcs.first().cloned().unwrap_or(json!({}));
    }
    history.push(entry);
    if history.len() > 10 {
        history.drain(..history.len() - 10);
    }
    // Argo CD v3 stamps when the health last changed (seen on the real Argo CD, real tier).
    let since = match live.pointer("/status/health") {
        Some(h) if h.get("status").and_then(Value::as_str) == Some(health.as_str()) => h
            .get("lastTransitionTime")
            .cloned()
            .unwrap_or_else(|| json!(now())),
        _ => json!(now()),
    };
    let mut health_status = json!({"status": health, "lastTransitionTime": since});
    if health != "Healthy" {
        health_status["message"] = json!(format!(
            "injected by promote-sandbox (sandbox.promote.dev/health: {health})"
        ));
    }
    api.patch(k, json!({
        "metadata": {"annotations": {"argocd.argoproj.io/refresh": null}},
        "status": {"sync": sync_status, "health": health_status, "history": history, "reconciledAt": now(),
                   "sourceType": "Kustomize", "summary": {}, "controllerNamespace": "argocd",
                   "resourceHealthSource": "appTree"}
    }))
    .await?;
    Ok(())
}

async fn refresh(api: &Api, k: &(String, String)) -> Result<(), String> {
    let Some(app) = api.get(k).await else {
        return Ok(());
    };
    tokio::time::sleep(duration(&app, "sandbox.promote.dev/reconcile-delay")).await;
    let mut status = json!({"reconciledAt": now()});
    if app.pointer("/status/health").is_none() {
        status["health"] = json!({"status": annotation(&app, "sandbox.promote.dev/health").unwrap_or("Healthy"),
            "lastTransitionTime": now()});
    }
    if app.pointer("/status/sync").is_none() {
        status["sync"] = json!({"status": "OutOfSync"});
    }
    api.patch(k, json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": null}}, "status": status})).await?;
    Ok(())
}
