//! Where an end-to-end story runs (issue 17): the sandbox, or the real kube-apiserver, etcd and
//! kube-controller-manager (`scripts/kube up`, [`RealKube`]). A story written against [`Backend`]
//! reads and waits through real kubectl only, so the same assertions judge both servers;
//! [`both!`] turns one story into two tests, `NAME::sandbox` and `NAME::real`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use promote_sandbox::Sandbox;
use serde_json::Value;

use crate::real::RealKube;
use crate::sandbox::k;

/// Which server a story runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Sandbox,
    Real,
}

/// A running cluster of either kind, with the same users (`admin`, `alice`, `bob`,
/// `promote-webhook`) and the Argo CD simulator syncing its Applications.
pub(crate) enum Backend {
    Sandbox(Sandbox),
    Real(RealKube),
}

impl Backend {
    /// Start a cluster in `dir` whose Services `NAME.NAMESPACE` reach `127.0.0.1:PORT`. `None`
    /// (with a note saying why) when `kind` is `Real` and the real tier is not enabled.
    pub(crate) async fn start(kind: Kind, dir: &Path, endpoints: &[(&str, u16)]) -> Option<Self> {
        match kind {
            Kind::Sandbox => {
                let endpoints: Vec<(&str, std::net::SocketAddr)> = endpoints
                    .iter()
                    .map(|(s, p)| (*s, std::net::SocketAddr::from(([127, 0, 0, 1], *p))))
                    .collect();
                Some(Backend::Sandbox(
                    crate::sandbox::start(dir, &endpoints).await,
                ))
            }
            Kind::Real => {
                let dir = dir.to_path_buf();
                let endpoints: Vec<(String, u16)> = endpoints
                    .iter()
                    .map(|(s, p)| ((*s).to_owned(), *p))
                    .collect();
                tokio::task::spawn_blocking(move || {
                    let e: Vec<(&str, u16)> =
                        endpoints.iter().map(|(s, p)| (s.as_str(), *p)).collect();
                    RealKube::up(&dir, &e)
                })
                .await
                .unwrap()
                .map(Backend::Real)
            }
        }
    }

    pub(crate) fn kubeconfig(&self) -> PathBuf {
        match self {
            Backend::Sandbox(sb) => sb.kubeconfig_path(),
            Backend::Real(r) => r.kubeconfig(),
        }
    }

    /// One object as the admin reads it with kubectl (`resource` as kubectl takes it, e.g.
    /// `applications.argoproj.io`); `None` when it does not exist.
    pub(crate) async fn get(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        let (good, out, err) = k(
            &self.kubeconfig(),
            &["get", resource, name, "-n", ns, "-o", "json"],
            None,
        )
        .await;
        if !good {
            assert!(
                err.contains("NotFound") || err.contains("not found"),
                "{err}"
            );
            return None;
        }
        Some(serde_json::from_str(&out).unwrap())
    }

    /// Every object of `resource` in `ns`, as kubectl lists them.
    pub(crate) async fn list(&self, resource: &str, ns: &str) -> Vec<Value> {
        let (good, out, err) = k(
            &self.kubeconfig(),
            &["get", resource, "-n", ns, "-o", "json"],
            None,
        )
        .await;
        assert!(good, "{err}");
        let list: Value = serde_json::from_str(&out).unwrap();
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// Wait (up to 60 s: the real server's Argo CD simulator syncs through a watch) until the
    /// Application `ns/name` satisfies `pred`.
    pub(crate) async fn wait_app(
        &self,
        ns: &str,
        name: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let app = self.get("applications.argoproj.io", ns, name).await;
            if let Some(app) = &app
                && pred(app)
            {
                return app.clone();
            }
            assert!(
                Instant::now() < deadline,
                "application {ns}/{name} never reached the expected state: {app:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stop the cluster and wait until everything it started is gone.
    pub(crate) async fn stop(self) {
        match self {
            Backend::Sandbox(sb) => sb.stop().await,
            Backend::Real(r) => tokio::task::spawn_blocking(move || drop(r)).await.unwrap(),
        }
    }
}

/// One test per backend for the story `async fn NAME(kind: Kind)` defined next to it: the
/// sandbox always, the real control plane when the real tier is enabled.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sandbox() {
                super::$name(crate::backend::Kind::Sandbox).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn real() {
                super::$name(crate::backend::Kind::Real).await
            }
        }
    };
}
pub(crate) use both;
