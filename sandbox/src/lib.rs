//! `promote-sandbox`: a Kubernetes-API-compatible test cluster with an Argo CD simulator.
//!
//! It is a test and demo tool, not a Kubernetes replacement: an HTTPS server speaking the REST
//! API for the resources promote uses, with kube-apiserver's semantics where our code depends on
//! them (resourceVersion conflicts, status subresources, structural schemas, RBAC, admission
//! webhooks, watches), and a simulated Argo CD application controller.

pub mod admission;
pub mod argocd;
pub mod cluster;
pub mod demo;
pub mod discovery;
pub mod error;
pub mod protobuf;
pub mod rbac;
pub mod registry;
pub mod schema;
pub mod selectors;
pub mod server;
pub mod store;
pub mod table;
pub mod tls;
pub mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

pub use cluster::{ApiRequest, Cluster, Reply};
pub use error::SandboxError;

/// The CRDs the sandbox installs at start: Kargo's (generated into `manifests/crds`) and its
/// reduced Argo CD Application CRD.
pub const CRDS: &[(&str, &str)] = &[
    (
        "kargo.akuity.io_clusterpromotiontasks.yaml",
        include_str!("../../manifests/crds/kargo.akuity.io_clusterpromotiontasks.yaml"),
    ),
    (
        "kargo.akuity.io_freights.yaml",
        include_str!("../../manifests/crds/kargo.akuity.io_freights.yaml"),
    ),
    (
        "kargo.akuity.io_projectconfigs.yaml",
        include_str!("../../manifests/crds/kargo.akuity.io_projectconfigs.yaml"),
    ),
    (
        "kargo.akuity.io_projects.yaml",
        include_str!("../../manifests/crds/kargo.akuity.io_projects.yaml"),
    ),
    (
        "kargo.akuity.io_promotions.yaml",
        include_str!("../../manifests/crds/kargo.akuity.io_promotions.yaml"),
    ),
    (
        "kargo.akuity.io_promotiontasks.yaml",
        include_str!("../../manifests/crds/kargo.akuity.io_promotiontasks.yaml"),
    ),
    (
        "kargo.akuity.io_stages.yaml",
        include_str!("../../manifests/crds/kargo.akuity.io_stages.yaml"),
    ),
    (
        "kargo.akuity.io_warehouses.yaml",
        include_str!("../../manifests/crds/kargo.akuity.io_warehouses.yaml"),
    ),
    (
        "argoproj.io_applications.yaml",
        include_str!("../crds/application.yaml"),
    ),
];

/// The users the sandbox knows, in `tokens.csv` and in the kubeconfig.
pub const USERS: &[(&str, &str)] = &[("admin", "system:masters"), ("alice", ""), ("bob", "")];

/// How to start a sandbox.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Where `kubeconfig`, `tokens.csv` and `ca.crt` are written.
    pub dir: PathBuf,
    /// 0 picks a free port.
    pub port: u16,
    /// `name.namespace` → address, for webhook Services.
    pub service_endpoints: HashMap<String, SocketAddr>,
    /// Run the Argo CD simulator.
    pub argocd: bool,
}

/// A running sandbox.
pub struct Sandbox {
    pub addr: SocketAddr,
    pub cluster: Arc<Cluster>,
    pub ca_pem: String,
    pub dir: PathBuf,
    tokens: HashMap<String, String>,
    handle: axum_server::Handle,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn random_token() -> String {
    format!(
        "{:032x}",
        ulid::Ulid::new().0 ^ (u128::from(std::process::id()) << 17)
    )
}

fn write(path: &Path, text: &str) -> Result<(), SandboxError> {
    std::fs::write(path, text).map_err(|source| SandboxError::Io {
        path: path.display().to_string(),
        source,
    })
}

impl Sandbox {
    /// Start serving; returns once the API answers.
    pub async fn start(opts: Options) -> Result<Self, SandboxError> {
        std::fs::create_dir_all(&opts.dir).map_err(|source| SandboxError::Io {
            path: opts.dir.display().to_string(),
            source,
        })?;
        let mut tokens_csv = String::new();
        let mut tokens = HashMap::new();
        for (user, groups) in USERS {
            let t = random_token();
            tokens_csv.push_str(&format!("{t},{user},{user}-uid,\"{groups}\"\n"));
            tokens.insert((*user).to_owned(), t);
        }
        let sa = "system:serviceaccount:promote-system:promote-webhook";
        let t = random_token();
        tokens_csv.push_str(&format!(
            "{t},{sa},promote-webhook-uid,\"system:serviceaccounts,system:serviceaccounts:promote-system\"\n"
        ));
        tokens.insert("promote-webhook".into(), t);
        let entries = rbac::parse_tokens(&tokens_csv).map_err(SandboxError::Start)?;
        write(&opts.dir.join("tokens.csv"), &tokens_csv)?;

        let pki = tls::generate(
            "promote-sandbox-ca",
            &["127.0.0.1".into(), "localhost".into()],
        )?;
        write(&opts.dir.join("ca.crt"), &pki.ca_pem)?;
        let cfg = tls::server_config(&pki.cert_pem, &pki.key_pem)?;

        let cluster = Cluster::new(
            entries,
            admission::Admission::new(opts.service_endpoints.clone()),
        );
        let listener = std::net::TcpListener::bind(("127.0.0.1", opts.port)).map_err(|source| {
            SandboxError::Io {
                path: format!("127.0.0.1:{}", opts.port),
                source,
            }
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| SandboxError::Io {
                path: "listener".into(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SandboxError::Io {
            path: "listener".into(),
            source,
        })?;
        let handle = axum_server::Handle::new();
        let app = server::router(cluster.clone());
        let server = axum_server::from_tcp_rustls(
            listener,
            axum_server::tls_rustls::RustlsConfig::from_config(cfg),
        )
        .handle(handle.clone());
        let mut tasks = vec![tokio::spawn(async move {
            if let Err(e) = server.serve(app.into_make_service()).await {
                eprintln!("promote-sandbox: server stopped: {e}");
            }
        })];
        let sandbox_tmp = Self {
            addr,
            cluster: cluster.clone(),
            ca_pem: pki.ca_pem.clone(),
            dir: opts.dir.clone(),
            tokens: tokens.clone(),
            handle: handle.clone(),
            tasks: vec![],
        };
        sandbox_tmp.bootstrap().await?;
        if opts.argocd {
            tasks.push(argocd::spawn(cluster.clone()));
        }
        write(&opts.dir.join("kubeconfig"), &sandbox_tmp.kubeconfig())?;
        Ok(Self {
            tasks,
            ..sandbox_tmp
        })
    }

    /// The API server's URL.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The bearer token of a user (`admin`, `alice`, `bob`, `promote-webhook`).
    pub fn token(&self, user: &str) -> Option<&str> {
        self.tokens.get(user).map(String::as_str)
    }

    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// A kubeconfig with one context per user; `admin` is current.
    pub fn kubeconfig(&self) -> String {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let mut users = String::new();
        let mut contexts = String::new();
        let mut names: Vec<(&String, &String)> = self.tokens.iter().collect();
        names.sort();
        for (u, token) in names {
            users.push_str(&format!("- name: {u}\n  user:\n    token: {token}\n"));
            contexts.push_str(&format!("- name: {u}\n  context:\n    cluster: sandbox\n    user: {u}\n    namespace: default\n"));
        }
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sandbox\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n{users}contexts:\n{contexts}current-context: admin\npreferences: {{}}\n",
            self.url()
        )
    }

    /// Send one request as `user` through the whole pipeline (no HTTP).
    pub async fn request(
        &self,
        user: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Value> {
        let token = self.token(user);
        let user = self
            .cluster
            .authenticate(token, None, &[])
            .map_err(|e| e.status())?;
        let req = ApiRequest {
            method: method.into(),
            path: path.into(),
            content_type: if method == "PATCH" {
                "application/merge-patch+json".into()
            } else {
                "application/json".into()
            },
            user: Some(user),
            body: body
                .map(|b| serde_json::to_vec(b).unwrap_or_default())
                .unwrap_or_default(),
            ..ApiRequest::default()
        };
        match self.cluster.handle(req).await {
            Reply::Json { code, body, .. } if code < 300 => Ok(body),
            Reply::Json { body, .. } => Err(body),
            Reply::Text(_, t) => Ok(json!(t)),
            Reply::Watch(_) => Err(json!("unexpected watch")),
        }
    }

    /// Create an object (any kind) as `user`, the way `kubectl create -f` would.
    pub async fn create(&self, user: &str, obj: &Value) -> Result<Value, Value> {
        let path = self
            .collection_path(obj)
            .ok_or_else(|| json!(format!("unknown kind in {obj}")))?;
        self.request(user, "POST", &path, Some(obj)).await
    }

    /// The collection URL path for an object's kind and namespace.
    pub fn collection_path(&self, obj: &Value) -> Option<String> {
        let av = obj.get("apiVersion")?.as_str()?;
        let kind = obj.get("kind")?.as_str()?;
        let (group, version) = av.split_once('/').unwrap_or(("", av));
        let inner = self.cluster.store.lock();
        let rt = inner
            .types
            .values()
            .find(|t| t.group == group && t.version == version && t.kind == kind)?;
        let prefix = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        Some(if rt.namespaced {
            let ns = obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default");
            format!("{prefix}/namespaces/{ns}/{}", rt.plural)
        } else {
            format!("{prefix}/{}", rt.plural)
        })
    }

    async fn bootstrap(&self) -> Result<(), SandboxError> {
        for (name, text) in CRDS {
            let crd: Value = serde_yaml::from_str(text).map_err(|e| SandboxError::Load {
                path: (*name).into(),
                message: e.to_string(),
            })?;
            self.create("admin", &crd)
                .await
                .map_err(|e| SandboxError::Load {
                    path: (*name).into(),
                    message: e.to_string(),
                })?;
        }
        let objects = [
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "argocd-application-controller"},
                "rules": [{"apiGroups": ["argoproj.io"], "resources": ["applications", "appprojects"], "verbs": ["get", "list", "watch", "update", "patch"]},
                          {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "argocd-application-controller"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "argocd-application-controller"},
                "subjects": [{"kind": "ServiceAccount", "name": "argocd-application-controller", "namespace": "argocd"}]}),
        ];
        for o in objects {
            self.create("admin", &o)
                .await
                .map_err(|e| SandboxError::Start(format!("bootstrap: {e}")))?;
        }
        Ok(())
    }

    /// Stop serving (in-flight requests finish).
    pub async fn stop(self) {
        self.handle
            .graceful_shutdown(Some(std::time::Duration::from_secs(2)));
        for t in self.tasks {
            t.abort();
        }
    }
}

#[cfg(test)]
mod crd_list_tests {
    /// Every CRD `crdgen` writes is installed by the sandbox (and so shipped by the demo).
    #[test]
    fn the_sandbox_and_the_demo_carry_every_generated_crd() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/crds");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("kargo.akuity.io_"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        assert!(!files.is_empty());
        for f in &files {
            assert!(
                super::CRDS.iter().any(|(n, _)| n == f),
                "{f} missing from CRDS"
            );
            assert!(
                crate::demo::shipped_files().any(|(n, _)| n == format!("crds/{f}")),
                "{f} missing from the demo's manifests"
            );
        }
    }
}
