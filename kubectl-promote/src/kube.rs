//! The Kubernetes API, as the plugin uses it: a blocking facade over a `kube::Client` (the plugin's
//! steps are synchronous; a small tokio runtime lives inside) that speaks raw JSON to exact paths,
//! so Argo CD Applications and Kargo objects are read and patched as open JSON and never lose a
//! field. Every request is counted (`requests()`) for the request budget the bench reports.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

/// The Kargo API group/version path prefix.
pub const KARGO: &str = "/apis/kargo.akuity.io/v1alpha1";
/// Argo CD's API group/version path prefix.
pub const ARGOCD: &str = "/apis/argoproj.io/v1alpha1";

/// A connection to a cluster.
pub struct Kube {
    rt: tokio::runtime::Runtime,
    client: kube::Client,
    /// The namespace of the kubeconfig context (`default` when it names none).
    pub namespace: String,
    /// The API server URL (for messages).
    pub server: String,
    requests: AtomicU64,
    polls: AtomicU64,
}

/// What the API server answered when it refused.
#[derive(Clone, Debug)]
pub struct ApiFailure {
    /// HTTP status code (0 when the server was not reached).
    pub code: u16,
    /// Kubernetes `reason` (`NotFound`, `Conflict`, `Forbidden`, ...).
    pub reason: String,
    /// The server's message.
    pub message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.code == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{} ({} {})", self.message, self.code, self.reason)
        }
    }
}

impl ApiFailure {
    /// 404.
    pub fn not_found(&self) -> bool {
        self.code == 404
    }
    /// 409: a resourceVersion conflict, an existing name, or a webhook's "busy" answer.
    pub fn conflict(&self) -> bool {
        self.code == 409
    }
}

fn failure(e: kube::Error) -> ApiFailure {
    match e {
        kube::Error::Api(s) => ApiFailure {
            code: s.code,
            reason: s.reason.clone(),
            message: s.message.clone(),
        },
        other => ApiFailure {
            code: 0,
            reason: String::new(),
            message: crate::git::redact::strip_userinfo(&other.to_string()),
        },
    }
}

/// Why no connection to a cluster could be set up (before any request).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The I/O runtime could not start.
    #[error("cannot start the I/O runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The kubeconfig file named on the command line could not be read or used.
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig { path: String, reason: String },
    /// No kubeconfig and not in a cluster.
    #[error("no cluster configured: {0}")]
    NoCluster(String),
    /// The client could not be built from the configuration (bad certificate, URL, ...).
    #[error("cannot build the API client: {0}")]
    Client(String),
}

/// The requests the plugin makes, as a trait so that the promotion rules run against an
/// in-memory API server in unit tests (`promotion::tests`). Paths are exact API paths; bodies
/// and answers are open JSON.
pub trait Api: Sync {
    /// GET an object; `None` when it does not exist.
    fn get(&self, path: &str) -> Result<Option<Value>, ApiFailure>;
    /// GET while waiting for something (counted apart from the promotion's own requests).
    fn poll(&self, path: &str) -> Result<Option<Value>, ApiFailure> {
        self.get(path)
    }
    /// LIST a collection, optionally with a label selector.
    fn list(&self, path: &str, selector: Option<&str>) -> Result<Vec<Value>, ApiFailure>;
    /// POST an object to a collection.
    fn create(&self, path: &str, body: &Value) -> Result<Value, ApiFailure>;
    /// PATCH with a JSON merge patch (RFC 7386); a `metadata.resourceVersion` in it is a
    /// precondition (409 when the object moved on).
    fn merge_patch(&self, path: &str, patch: &Value) -> Result<Value, ApiFailure>;
    /// Who the server says we are (`SelfSubjectReview`, as `kubectl auth whoami`); `None` when the
    /// server does not offer it.
    fn whoami(&self) -> Result<Option<String>, ApiFailure>;
}

/// A timestamp as Kubernetes writes them (RFC 3339, seconds, UTC).
pub fn timestamp(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Now, as Kubernetes writes it.
pub fn now() -> String {
    timestamp(jiff::Timestamp::now())
}

/// Path of a Kargo object (or collection when `name` is empty).
pub fn kargo_path(plural: &str, ns: &str, name: &str) -> String {
    if name.is_empty() {
        format!("{KARGO}/namespaces/{ns}/{plural}")
    } else {
        format!("{KARGO}/namespaces/{ns}/{plural}/{name}")
    }
}

/// Path of an Argo CD Application.
pub fn app_path(ns: &str, name: &str) -> String {
    if name.is_empty() {
        format!("{ARGOCD}/namespaces/{ns}/applications")
    } else {
        format!("{ARGOCD}/namespaces/{ns}/applications/{name}")
    }
}

/// Percent-encode a URL component (RFC 3986 unreserved characters kept): label selectors in
/// queries, branch names in provider API paths, `http` query parameters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Kube {
    /// Connect with the kubeconfig (`--kubeconfig`, else `$KUBECONFIG`, else `~/.kube/config`,
    /// else in-cluster) and context (`--context`, else the current one).
    pub fn connect(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Self, ConnectError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(ConnectError::Runtime)?;
        let opts = kube::config::KubeConfigOptions {
            context: context.map(str::to_owned),
            ..Default::default()
        };
        let config =
            rt.block_on(async {
                match kubeconfig {
                    Some(path) => {
                        let bad = |e: &dyn std::fmt::Display| ConnectError::Kubeconfig {
                            path: path.display().to_string(),
                            reason: e.to_string(),
                        };
                        let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| bad(&e))?;
                        kube::Config::from_custom_kubeconfig(kc, &opts)
                            .await
                            .map_err(|e| bad(&e))
                    }
                    None if context.is_some() => kube::Config::from_kubeconfig(&opts)
                        .await
                        .map_err(|e| ConnectError::Kubeconfig {
                            path: "(default)".into(),
                            reason: e.to_string(),
                        }),
                    None => kube::Config::infer()
                        .await
                        .map_err(|e| ConnectError::NoCluster(e.to_string())),
                }
            })?;
        let namespace = config.default_namespace.clone();
        let server = config.cluster_url.to_string();
        let client = {
            let _guard = rt.enter();
            kube::Client::try_from(config).map_err(|e| ConnectError::Client(e.to_string()))?
        };
        Ok(Self {
            rt,
            client,
            namespace,
            server,
            requests: AtomicU64::new(0),
            polls: AtomicU64::new(0),
        })
    }

    /// How many API requests were sent so far, not counting polls while waiting.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed) - self.polls()
    }

    /// How many of the requests were polls while waiting (for Argo CD, for a busy Stage).
    pub fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }

    /// With `PROMOTE_REPORT_REQUESTS=1`, print the request counts on stderr (the bench reads it).
    pub fn report(&self) {
        if std::env::var_os("PROMOTE_REPORT_REQUESTS").is_some_and(|v| v == "1") {
            eprintln!(
                "api requests: {} (+{} polls while waiting)",
                self.requests(),
                self.polls()
            );
        }
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value, ApiFailure> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut req = http::Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let body = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| ApiFailure {
                code: 0,
                reason: String::new(),
                message: e.to_string(),
            })?,
            None => Vec::new(),
        };
        let req = req.body(body).map_err(|e| ApiFailure {
            code: 0,
            reason: String::new(),
            message: e.to_string(),
        })?;
        let client = self.client.clone();
        self.rt
            .block_on(async move {
                tokio::time::timeout(Duration::from_secs(60), client.request::<Value>(req)).await
            })
            .map_err(|_| ApiFailure {
                code: 0,
                reason: "Timeout".into(),
                message: format!(
                    "the API server at {} did not answer within 60s",
                    self.server
                ),
            })?
            .map_err(failure)
    }

    /// Run a background task on the client's runtime (signal handlers).
    pub fn spawn<F>(&self, f: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.rt.spawn(f);
    }
}

impl Api for Kube {
    fn poll(&self, path: &str) -> Result<Option<Value>, ApiFailure> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        self.get(path)
    }

    fn get(&self, path: &str) -> Result<Option<Value>, ApiFailure> {
        match self.send("GET", path, None, None) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list(&self, path: &str, selector: Option<&str>) -> Result<Vec<Value>, ApiFailure> {
        let path = match selector {
            Some(s) => format!("{path}?labelSelector={}", percent_encode(s)),
            None => path.to_owned(),
        };
        let v = self.send("GET", &path, None, None)?;
        Ok(v.get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    fn create(&self, path: &str, body: &Value) -> Result<Value, ApiFailure> {
        self.send("POST", path, Some("application/json"), Some(body))
    }

    fn merge_patch(&self, path: &str, patch: &Value) -> Result<Value, ApiFailure> {
        self.send(
            "PATCH",
            path,
            Some("application/merge-patch+json"),
            Some(patch),
        )
    }

    fn whoami(&self) -> Result<Option<String>, ApiFailure> {
        let body = serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
        match self.create("/apis/authentication.k8s.io/v1/selfsubjectreviews", &body) {
            Ok(v) => Ok(v
                .pointer("/status/userInfo/username")
                .and_then(Value::as_str)
                .map(str::to_owned)),
            Err(e) if e.not_found() || e.code == 403 => Ok(None),
            Err(e) => Err(e),
        }
    }
}
