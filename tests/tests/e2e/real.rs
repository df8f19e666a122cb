//! The real tier (issue 17): the webhook installed from `manifests/` into the real kube-apiserver,
//! etcd and kube-controller-manager (`scripts/kube up`, built from their Go modules by
//! `scripts/kube-build`), deciding real users' writes made with real kubectl, as the sandbox tests
//! do. `scripts/test` sets `PROMOTE_REAL_KUBE=1` when Go is present (CI requires it); without it
//! these tests say they were skipped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use promote_tests::{bare_repo, reserved_port, workspace_root};

use crate::sandbox::k;
use crate::webhook::{kargo_quickstart_applies, project_decisions};

/// A running `scripts/kube up`, stopped (SIGTERM, then waited for) on drop.
pub(crate) struct RealKube {
    child: Child,
    dir: PathBuf,
}

impl Drop for RealKube {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RealKube {
    /// Whether the real tier is enabled (`PROMOTE_REAL_KUBE=1`); when not, says so.
    pub(crate) fn enabled() -> bool {
        let on = std::env::var("PROMOTE_REAL_KUBE").as_deref() == Ok("1");
        if !on {
            eprintln!(
                "skipped: the real control plane is not enabled (scripts/test sets PROMOTE_REAL_KUBE=1 when Go is installed)"
            );
        }
        on
    }

    /// Start the real control plane in `dir`, Services mapped to local ports, with the Argo CD
    /// simulator; `None` (with a note) when the real tier is not enabled.
    pub(crate) fn up(dir: &Path, services: &[(&str, u16)]) -> Option<RealKube> {
        Self::start(dir, services, false)
    }

    /// The same with the real Argo CD (`scripts/kube up --real-argocd`: its application
    /// controller, repo server and redis) when `PROMOTE_REAL_ARGOCD=1` (scripts/test sets it
    /// when it built Argo CD), else with the simulator, saying so. The second value says which.
    pub(crate) fn up_with_argocd(dir: &Path, services: &[(&str, u16)]) -> Option<(RealKube, bool)> {
        let real = std::env::var("PROMOTE_REAL_ARGOCD").as_deref() == Ok("1");
        if !real && std::env::var("PROMOTE_REAL_KUBE_REQUIRED").as_deref() == Ok("1") {
            panic!(
                "CI requires the real Argo CD: scripts/kube-build --argocd, then PROMOTE_REAL_ARGOCD=1"
            );
        }
        if !real {
            eprintln!(
                "note: the real Argo CD is not built, so the simulator syncs (scripts/test builds it with scripts/kube-build --argocd)"
            );
        }
        Self::start(dir, services, real).map(|k| (k, real))
    }

    fn start(dir: &Path, services: &[(&str, u16)], real_argocd: bool) -> Option<RealKube> {
        if !Self::enabled() {
            return None;
        }
        let mut cmd = Command::new(workspace_root().join("scripts/kube"));
        cmd.arg("up").arg("--dir").arg(dir);
        if real_argocd {
            cmd.arg("--real-argocd");
        }
        cmd.env(
            "PROMOTE_SANDBOX_BIN",
            promote_tests::bin("promote-sandbox").unwrap(),
        );
        for (svc, port) in services {
            cmd.arg("--service-endpoint")
                .arg(format!("{svc}=127.0.0.1:{port}"));
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == "ready" {
                    let _ = tx.send(());
                }
            }
        });
        let kube = RealKube {
            child,
            dir: dir.to_path_buf(),
        };
        rx.recv_timeout(Duration::from_secs(600))
            .unwrap_or_else(|_| {
                panic!(
                    "scripts/kube up never printed ready; logs in {}",
                    dir.join("logs").display()
                )
            });
        Some(kube)
    }

    pub(crate) fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_control_plane_decides_through_the_manifests() {
    let tmp = tempfile::tempdir().unwrap();
    let port = reserved_port();
    let Some((kube, real_argocd)) = RealKube::up_with_argocd(
        &tmp.path().join("kube"),
        &[("promote-webhook.promote-system", port)],
    ) else {
        return;
    };
    let kc = kube.kubeconfig();
    // What the real Argo CD deploys: a Deployment of no replicas (no kubelet runs here, and
    // kube-controller-manager's deployment controller makes it Healthy), its image set by
    // kustomize-set-image and rendered by the real kustomize in Argo CD's repo server.
    let repo = bare_repo(
        tmp.path(),
        "gitops",
        &[
            ("env/test/kustomization.yaml", "resources:\n- web.yaml\n"),
            (
                "env/test/web.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: web }\nspec:\n  replicas: 0\n  selector: { matchLabels: { app: web } }\n  template:\n    metadata: { labels: { app: web } }\n    spec: { containers: [{ name: web, image: \"nginx:1.24.0\" }] }\n",
            ),
        ],
    );
    let (good, _, err) = k(&kc, &["create", "namespace", "guestbook"], None).await;
    assert!(good, "{err}");
    let url = format!("file://{}", repo.display());
    // Installed with the Helm chart (which `ship.rs` checks installs what manifests/ install):
    // the real API server compiles every matchCondition and checks every object.
    let helm =
        crate::quickstart::helm().expect("the real tier builds helm (scripts/kube-build --helm)");
    let (hook, out) = crate::webhook::install_webhook_with_helm(&kc, tmp.path(), port, &helm).await;
    assert!(out.contains("STATUS: deployed"), "{out}");
    project_decisions(&kc, &url).await;
    kargo_quickstart_applies(&kc).await;
    // Discovery through the real server: RBAC on the status subresource, Freight creation
    // through the webhook, the Warehouse status as the real server stores it.
    crate::discover::discover_in_cluster(&kc, tmp.path()).await;
    crate::discover::discovery_job_is_least_privilege(&kc).await;
    // Kargo's printer columns and the custom verb, as the real server serves them.
    let (good, out, err) = k(&kc, &["get", "stages", "-n", "kargo-demo"], None).await;
    assert!(good && out.starts_with("NAME"), "{err}{out}");
    let (_, out, _) = k(
        &kc,
        &[
            "--context",
            "bob",
            "auth",
            "can-i",
            "promote",
            "stages.kargo.akuity.io/test",
            "-n",
            "kargo-demo",
        ],
        None,
    )
    .await;
    assert_eq!(out.trim(), "no");

    // The plugin promotes through the real API server with the webhook deciding every write it
    // makes (the Promotion, the claim, each step's record, its sync plan, the sync itself, the
    // results on Stage and Freight) and the real Argo CD (or, without it, the simulator) syncing
    // as Argo CD's account.
    let app = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: guestbook-full\n  namespace: argocd\n  annotations: { kargo.akuity.io/authorized-stage: \"kargo-demo:full\" }\nspec:\n  project: default\n  destination: { server: https://kubernetes.default.svc, namespace: guestbook }\n  source: { repoURL: \"@REPO@\", path: env/test, targetRevision: main }\n".replace("@REPO@", &url);
    let (good, _, err) = k(&kc, &["apply", "-f", "-"], Some(&app)).await;
    assert!(good, "{err}");
    let stage = format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{ name: full, namespace: kargo-demo }}\nspec:\n  requestedFreight:\n    - origin: {{ kind: Warehouse, name: guestbook }}\n      sources: {{ direct: true }}\n  promotionTemplate:\n    spec:\n      steps:\n        - uses: git-clone\n          config: {{ repoURL: \"{url}\", checkout: [{{ branch: main, path: ./src }}] }}\n        - uses: kustomize-set-image\n          config: {{ path: ./src/env/test, images: [{{ image: nginx, tag: \"${{{{ imageFrom('nginx').Tag }}}}\" }}] }}\n        - uses: git-commit\n          config: {{ path: ./src, message: promoted }}\n        - uses: git-push\n          as: push\n          config: {{ path: ./src }}\n        - uses: argocd-update\n          config:\n            apps:\n              - name: guestbook-full\n                sources:\n                  - repoURL: \"{url}\"\n                    desiredRevision: ${{{{ outputs.push.commit }}}}\n"
    );
    let (good, _, err) = k(&kc, &["apply", "-f", "-"], Some(&stage)).await;
    assert!(good, "{err}");
    let out = Command::new(promote_tests::bin("kubectl-promote").unwrap())
        .args([
            "stage/full",
            "--freight-alias",
            "first-light",
            "-n",
            "kargo-demo",
            "--context",
            "alice",
            "-o",
            "json",
            "--timeout",
            "2m",
            "--cache-dir",
        ])
        .arg(tmp.path().join("cache"))
        .env("KUBECONFIG", &kc)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["phase"], "Succeeded", "{summary}");
    let pushed = summary["commits"][0]["commit"].as_str().unwrap().to_owned();
    assert_eq!(
        promote_tests::git(&repo, &["rev-parse", "main"]).trim(),
        pushed
    );
    let (_, out, _) = k(
        &kc,
        &[
            "get",
            "application",
            "guestbook-full",
            "-n",
            "argocd",
            "-o",
            "json",
        ],
        None,
    )
    .await;
    let a: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(a["status"]["operationState"]["phase"], "Succeeded", "{a}");
    assert_eq!(
        a["status"]["operationState"]["syncResult"]["revision"],
        pushed.as_str(),
        "{a}"
    );
    assert_eq!(
        a["status"]["operationState"]["operation"]["initiatedBy"]["username"], "alice",
        "{a}"
    );
    if real_argocd {
        // Argo CD really deployed the pushed revision: the Deployment runs the Freight's tag.
        let freight = summary["freight"].as_str().unwrap();
        let (good, tag, err) = k(
            &kc,
            &[
                "get",
                "freight",
                freight,
                "-n",
                "kargo-demo",
                "-o",
                "jsonpath={.images[0].tag}",
            ],
            None,
        )
        .await;
        assert!(good && !tag.is_empty(), "{err}");
        let (good, out, err) = k(
            &kc,
            &[
                "get",
                "deployment",
                "web",
                "-n",
                "guestbook",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].image}",
            ],
            None,
        )
        .await;
        assert!(good, "{err}");
        assert_eq!(out, format!("nginx:{tag}"));
        assert_eq!(a["status"]["sync"]["status"], "Synced", "{a}");
        assert_eq!(a["status"]["sync"]["revision"], pushed.as_str(), "{a}");
    }
    let (_, out, _) = k(
        &kc,
        &["get", "stage", "full", "-n", "kargo-demo", "-o", "json"],
        None,
    )
    .await;
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        s["status"]["lastPromotion"]["status"]["phase"], "Succeeded",
        "{s}"
    );
    assert_eq!(s["status"]["health"]["status"], "Healthy", "{s}");
    assert!(
        s["status"]
            .get("currentPromotion")
            .is_none_or(serde_json::Value::is_null),
        "{s}"
    );
    // Verified in the Stage: accepted as evidence, because Argo CD's own status confirms it.
    let (_, out, _) = k(
        &kc,
        &[
            "get",
            "freight",
            "-n",
            "kargo-demo",
            "-l",
            "kargo.akuity.io/alias=first-light",
            "-o",
            "jsonpath={.items[0].status.verifiedIn}",
        ],
        None,
    )
    .await;
    assert!(out.contains("full"), "{out}");
    // A refresh through the webhook: Healthy is accepted because the Application shows it now;
    // a user who may not promote the Stage may not record its health.
    let refresh = |user: &str| {
        Command::new(promote_tests::bin("kubectl-promote").unwrap())
            .args([
                "refresh",
                "stage/full",
                "-n",
                "kargo-demo",
                "--context",
                user,
            ])
            .env("KUBECONFIG", &kc)
            .output()
            .unwrap()
    };
    let out = refresh("alice");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "stage.kargo.akuity.io/full Healthy (1 Application(s) checked)\n"
    );
    // alice, a promoter, forging a Healthy by hand with kubectl: refused unless the Applications
    // it names show it now.
    let forged = r#"{"status":{"health":{"status":"Healthy","output":{"applicationStatuses":[{"name":"not-there","namespace":"argocd"}]}}}}"#;
    let (good, _, err) = k(
        &kc,
        &[
            "--context",
            "alice",
            "-n",
            "kargo-demo",
            "patch",
            "stage",
            "full",
            "--subresource=status",
            "--type=merge",
            "-p",
            forged,
        ],
        None,
    )
    .await;
    assert!(
        !good && err.contains("records the Stage as Healthy but") && err.contains("not-there"),
        "{err}"
    );
    // A second later, so that bob's write is not the same bytes (checkedAt has seconds), which
    // would change nothing and be allowed.
    std::thread::sleep(Duration::from_millis(1100));
    let out = refresh("bob");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("bob"),
        "{err}{}",
        String::from_utf8_lossy(&out.stdout)
    );
    drop(hook);
}

/// helm, built from helm.sh/helm/v3 the same way (`scripts/kube-build --helm`), for the Helm
/// steps and charts to come: it runs and renders a chart.
#[test]
fn helm_is_built_from_its_go_module() {
    let Ok(helm) = std::env::var("PROMOTE_HELM") else {
        eprintln!("skipped: helm is not built (scripts/test builds it when Go is installed)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(&helm)
            .args(args)
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "helm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let version = run(&["version", "--short"]);
    assert!(version.starts_with("v3."), "{version}");
    run(&["create", "demo"]);
    let rendered = run(&["template", "rel", "demo", "--set", "image.tag=1.25.0"]);
    assert!(
        rendered.contains("kind: Deployment") && rendered.contains(":1.25.0\""),
        "{rendered}"
    );
}
