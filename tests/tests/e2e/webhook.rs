//! promote-webhook end to end: the real binary over real TLS, installed into the sandbox from
//! `manifests/` with real kubectl, deciding real users' writes; and its server behaviour
//! (certificate reload under load, bad bodies, limits, metrics, graceful shutdown).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use promote_tests::{bare_repo, bin, reserved_port, workspace_root};
use serde_json::{Value, json};

use crate::sandbox::{fails, k, ok};

/// The webhook process, killed on drop.
pub(crate) struct Webhook {
    child: Child,

    metrics_port: u16,
    log: PathBuf,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Webhook {
    pub(crate) fn start(
        dir: &Path,
        port: u16,
        cert: &Path,
        key: &Path,
        kubeconfig: &Path,
    ) -> Webhook {
        let metrics_port = reserved_port();
        let log = dir.join(format!(
            "webhook-{port}-{}.log",
            Instant::now().elapsed().as_nanos()
        ));
        let child = Command::new(bin("promote-webhook").unwrap())
            .args([
                "serve",
                "--log-format",
                "text",
                "--reload-interval",
                "100ms",
            ])
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let w = Webhook {
            child,
            metrics_port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if w.ops("/readyz").is_some_and(|(code, _)| code == 200) {
                return w;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("webhook never became ready:\n{}", w.logs());
    }

    pub(crate) fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET on the plain-HTTP port: (status, body).
    pub(crate) fn ops(&self, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let code = out.split_whitespace().nth(1)?.parse().ok()?;
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
        Some((code, body))
    }
}

pub(crate) fn certs(dir: &Path) -> String {
    let out = Command::new(bin("promote-webhook").unwrap())
        .args([
            "certs",
            "--service",
            "promote-webhook",
            "--namespace",
            "promote-system",
            "--out",
        ])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Install promote as the README says (certificates from `promote-webhook certs`, the TLS Secret,
/// `manifests/` with the caBundle filled in) into any cluster whose kubeconfig has the contexts
/// `admin` (current) and `promote-webhook` (the sandbox and the real tier both write one), and run
/// the webhook binary on `port` (neither runs Pods). Returns the webhook and what `kubectl apply`
/// printed.
pub(crate) async fn install_webhook_at(kc: &Path, dir: &Path, port: u16) -> (Webhook, String) {
    let kc = kc.to_path_buf();
    let certs_dir = dir.join("certs");
    let ca_bundle = certs(&certs_dir);
    let sa_kc = dir.join("webhook.kubeconfig");
    std::fs::write(
        &sa_kc,
        std::fs::read_to_string(&kc)
            .unwrap()
            .replace("current-context: admin", "current-context: promote-webhook"),
    )
    .unwrap();
    ok(&kc, &["create", "namespace", "promote-system"]).await;
    let (crt, key) = (certs_dir.join("tls.crt"), certs_dir.join("tls.key"));
    let (crt_s, key_s) = (crt.display().to_string(), key.display().to_string());
    ok(
        &kc,
        &[
            "create",
            "secret",
            "tls",
            "promote-webhook-tls",
            "-n",
            "promote-system",
            "--cert",
            &crt_s,
            "--key",
            &key_s,
        ],
    )
    .await;
    let kc_s = kc.display().to_string();
    let (good, out, err) = sh(
        &workspace_root(),
        r#"kubectl kustomize manifests/ | sed "s|caBundle: \"\"|caBundle: $CA_BUNDLE|" | kubectl apply -f -"#,
        &[
            ("KUBECONFIG", kc_s.as_str()),
            ("CA_BUNDLE", ca_bundle.as_str()),
        ],
    );
    assert!(good, "install failed:\n{err}\n{out}");
    assert!(
        out.contains(
            "validatingwebhookconfiguration.admissionregistration.k8s.io/promote-webhook created"
        ),
        "{out}"
    );
    (Webhook::start(dir, port, &crt, &key, &sa_kc), out)
}

/// Install promote with its Helm chart (`charts/promote`, the serving certificate generated by
/// the chart) and run the webhook binary on `port` with that certificate, read back from the
/// Secret the chart made. Returns the webhook and what `helm install` printed.
pub(crate) async fn install_webhook_with_helm(
    kc: &Path,
    dir: &Path,
    port: u16,
    helm: &Path,
) -> (Webhook, String) {
    let out = Command::new(helm)
        .args(["install", "promote"])
        .arg(workspace_root().join("charts/promote"))
        .args(["--namespace", "promote-system", "--create-namespace"])
        .arg("--kubeconfig")
        .arg(kc)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "helm install failed:\n{}{printed}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (good, secret, err) = crate::sandbox::k(
        kc,
        &[
            "get",
            "secret",
            "promote-webhook-tls",
            "-n",
            "promote-system",
            "-o",
            "json",
        ],
        None,
    )
    .await;
    assert!(good, "{err}");
    let secret: serde_json::Value = serde_json::from_str(&secret).unwrap();
    let certs_dir = dir.join("helm-certs");
    std::fs::create_dir_all(&certs_dir).unwrap();
    for (key, file) in [("tls.crt", "tls.crt"), ("tls.key", "tls.key")] {
        use base64::Engine;
        let data = base64::engine::general_purpose::STANDARD
            .decode(secret["data"][key].as_str().unwrap())
            .unwrap();
        std::fs::write(certs_dir.join(file), data).unwrap();
    }
    let sa_kc = dir.join("webhook.kubeconfig");
    std::fs::write(
        &sa_kc,
        std::fs::read_to_string(kc)
            .unwrap()
            .replace("current-context: admin", "current-context: promote-webhook"),
    )
    .unwrap();
    (
        Webhook::start(
            dir,
            port,
            &certs_dir.join("tls.crt"),
            &certs_dir.join("tls.key"),
            &sa_kc,
        ),
        printed,
    )
}

pub(crate) fn sh(dir: &Path, script: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn apply(kc: &Path, user: &str, yaml: &str) -> (bool, String, String) {
    k(kc, &["--context", user, "apply", "-f", "-"], Some(yaml)).await
}

/// `kubectl patch <kind> <name> --subresource=status` in the project, as `user`.
async fn patch_status(
    kc: &Path,
    user: &str,
    kind: &str,
    name: &str,
    patch: &Value,
) -> (bool, String, String) {
    k(
        kc,
        &[
            "--context",
            user,
            "-n",
            "kargo-demo",
            "patch",
            kind,
            name,
            "--subresource=status",
            "--type",
            "merge",
            "-p",
            &patch.to_string(),
        ],
        None,
    )
    .await
}

async fn patch_app(kc: &Path, user: &str, app: &str, patch: &Value) -> (bool, String, String) {
    k(
        kc,
        &[
            "--context",
            user,
            "-n",
            "argocd",
            "patch",
            "application",
            app,
            "--type",
            "merge",
            "-p",
            &patch.to_string(),
        ],
        None,
    )
    .await
}

fn promotion_op(promotion: &str, revision: &str) -> Value {
    json!({ "operation": {
        "info": [
            { "name": "kargo.akuity.io/promotion", "value": promotion },
            { "name": "kargo.akuity.io/project", "value": "kargo-demo" }
        ],
        "sync": { "revision": revision }
    }})
}

const PROJECT_YAML: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: kargo-demo
  labels:
    kargo.akuity.io/project: "true"
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: alice-promoter
  namespace: kargo-demo
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: promote-promoter }
subjects: [{ kind: User, name: alice, apiGroup: rbac.authorization.k8s.io }]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: bob-viewer
  namespace: kargo-demo
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: promote-viewer }
subjects: [{ kind: User, name: bob, apiGroup: rbac.authorization.k8s.io }]
---
# alice owns the project's Stages: she may authorize Applications for them.
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: alice-authorizer
  namespace: kargo-demo
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: promote-stage-authorizer }
subjects: [{ kind: User, name: alice, apiGroup: rbac.authorization.k8s.io }]
---
# bob may write Promotion objects and every status the plugin writes (RBAC, as the installed
# promoter role grants) but lacks the promote verb the webhook checks.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: promotion-writer
  namespace: kargo-demo
rules:
  - apiGroups: ["kargo.akuity.io"]
    resources: ["promotions", "promotions/status", "freights/status", "stages/status"]
    verbs: ["get", "create", "update", "patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: bob-promotion-writer
  namespace: kargo-demo
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: promotion-writer }
subjects: [{ kind: User, name: bob, apiGroup: rbac.authorization.k8s.io }]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: app-editor
  namespace: argocd
rules:
  - apiGroups: ["argoproj.io"]
    resources: ["applications"]
    verbs: ["get", "list", "patch", "update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: app-editors
  namespace: argocd
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: app-editor }
subjects:
  - { kind: User, name: alice, apiGroup: rbac.authorization.k8s.io }
  - { kind: User, name: bob, apiGroup: rbac.authorization.k8s.io }
"#;

fn stages_yaml(repo: &str) -> String {
    format!(
        r#"
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {{ name: guestbook, namespace: kargo-demo }}
spec:
  subscriptions:
    - image: {{ repoURL: nginx }}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {{ name: test, namespace: kargo-demo }}
spec:
  requestedFreight:
    - origin: {{ kind: Warehouse, name: guestbook }}
      sources: {{ direct: true }}
  promotionTemplate:
    spec:
      vars:
        - {{ name: repo, value: "{repo}" }}
      steps:
        - uses: git-clone
          config:
            repoURL: ${{{{ vars.repo }}}}
            checkout: [{{ branch: main, path: ./src }}]
        - uses: argocd-update
          config:
            apps: [{{ name: guestbook-test }}]
"#
    )
}

fn app_yaml(name: &str, repo: &str, annotation: Option<&str>) -> String {
    let ann = annotation
        .map(|a| format!("  annotations:\n    kargo.akuity.io/authorized-stage: \"{a}\"\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: argocd\n{ann}spec:\n  project: default\n  destination: {{ server: https://kubernetes.default.svc, namespace: guestbook }}\n  source: {{ repoURL: \"{repo}\", path: env/test, targetRevision: main }}\n  syncPolicy: {{ syncOptions: [CreateNamespace=true] }}\n"
    )
}

/// What the webhook decides through real kubectl before any Argo CD sync, in any cluster with
/// Kargo's quickstart manifests (Project, Secret, Warehouse, PromotionTask, Stages) apply with
/// one `kubectl apply -f` on a cluster with promote installed: the Project creates its namespace,
/// labelled, and everything after it lands there. A dry run creates nothing; a Project whose
/// namespace exists unlabelled is refused.
pub(crate) async fn kargo_quickstart_applies(kc: &Path) {
    let all = crate::quickstart::manifests("https://github.com/example/kargo-demo.git");
    // Its own project name: the decisions above use kargo-demo already.
    let kargo = all
        .split("---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Freight")
        .next()
        .unwrap()
        .replace("kargo-demo", "quickstart");
    // A server-side dry run reaches the webhook with dryRun set (its other objects then fail:
    // their namespace does not exist), and must create nothing.
    let _ = k(kc, &["apply", "--dry-run=server", "-f", "-"], Some(&kargo)).await;
    let (good, _, _) = k(kc, &["get", "namespace", "quickstart"], None).await;
    assert!(!good, "a server dry run creates no namespace");
    let (good, out, err) = k(kc, &["apply", "-f", "-"], Some(&kargo)).await;
    assert!(good, "{err}\n{out}");
    for made in [
        "project.kargo.akuity.io/quickstart created",
        "warehouse.kargo.akuity.io/quickstart created",
        "promotiontask.kargo.akuity.io/demo-promo-process created",
        "stage.kargo.akuity.io/prod created",
    ] {
        assert!(out.contains(made), "{made} in\n{out}");
    }
    let ns = ok(
        kc,
        &[
            "get",
            "namespace",
            "kargo-demo",
            "-o",
            "jsonpath={.metadata.labels}",
        ],
    )
    .await;
    assert!(ns.contains("\"kargo.akuity.io/project\":\"true\""), "{ns}");
    let stages = ok(kc, &["get", "stages", "-n", "quickstart", "-o", "name"]).await;
    assert_eq!(stages.lines().count(), 3, "{stages}");
    ok(kc, &["create", "namespace", "plain"]).await;
    let err = fails(
        kc,
        &["apply", "-f", "-"],
        Some("apiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata:\n  name: plain\n"),
    )
    .await;
    assert!(
        err.contains("already exists and is not labeled as a Project namespace"),
        "{err}"
    );
    // As an attacker would try it: a Project over a system namespace is refused (it would adopt
    // kube-system as a project) ...
    let err = fails(
        kc,
        &["apply", "-f", "-"],
        Some(
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata:\n  name: kube-system\n",
        ),
    )
    .await;
    assert!(err.contains("not labeled as a Project namespace"), "{err}");
    // ... and a promoter, holding the installed roles, may not create Projects at all: the
    // webhook's namespace creation is not theirs to trigger.
    let err = fails(
        kc,
        &["--context", "alice", "apply", "-f", "-"],
        Some(
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: Project\nmetadata:\n  name: alices-own\n",
        ),
    )
    .await;
    assert!(err.contains("forbidden"), "{err}");
    let (good, _, _) = k(kc, &["get", "namespace", "alices-own"], None).await;
    assert!(!good, "no namespace for a refused Project");
}

/// promote installed (the sandbox, the real control plane): Stage, project and Freight rules,
/// who may promote, and the trust model's attacks (SECURITY.md). Returns the Freight's name, the
/// Promotion's name and the Promotion manifest.
pub(crate) async fn project_decisions(kc: &Path, url: &str) -> (String, String, String) {
    let kc = kc.to_path_buf();
    let url = url.to_owned();
    let (good, _, err) = apply(&kc, "admin", PROJECT_YAML).await;
    assert!(good, "{err}");
    let (good, _, err) = apply(&kc, "admin", &stages_yaml(&url)).await;
    assert!(good, "{err}");
    // Stage validation: an invalid Stage is refused with field paths.
    let bad_stage = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: { name: broken, namespace: kargo-demo }\nspec:\n  requestedFreight:\n    - origin: { kind: Warehouse, name: guestbook }\n      sources: { direct: true }\n    - origin: { kind: Warehouse, name: guestbook }\n      sources: { direct: true }\n";
    let (good, _, err) = apply(&kc, "admin", bad_stage).await;
    assert!(
        !good
            && err.contains("admission webhook \"stage.validate.promote.dev\" denied the request")
            && err.contains("spec.requestedFreight[1]"),
        "{err}"
    );

    // Kargo objects only in project namespaces: refused elsewhere, by namespaceSelector.
    let stray = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: { name: stray, namespace: default }\nspec:\n  subscriptions:\n    - image: { repoURL: nginx }\n";
    let (good, _, err) = apply(&kc, "admin", stray).await;
    assert!(
        !good
            && err.contains("admission webhook \"project.validate.promote.dev\" denied the request: namespace \"default\" is not a Kargo project"),
        "{err}"
    );

    // Freight: the name becomes the content hash, the alias a label.
    let freight = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: { name: anything, namespace: kargo-demo }\nalias: first-light\norigin: { kind: Warehouse, name: guestbook }\nimages: [{ repoURL: nginx, tag: 1.25.0 }]\n";
    let out = k(&kc, &["create", "-f", "-", "-o", "json"], Some(freight)).await;
    assert!(out.0, "{}", out.2);
    let f: Value = serde_json::from_str(&out.1).unwrap();
    let freight_name = f["metadata"]["name"].as_str().unwrap().to_owned();
    let expected = promote_api::freight_id::freight_id(&serde_json::from_value(f.clone()).unwrap());
    assert_eq!(freight_name, expected);
    assert_eq!(
        f["metadata"]["labels"]["kargo.akuity.io/alias"],
        "first-light"
    );

    // Promotions: alice may promote, bob may not.
    let promo = format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: whatever, namespace: kargo-demo }}\nspec: {{ stage: test, freight: {freight_name}, steps: [{{ uses: fake }}] }}\n"
    );
    let (good, _, err) = k(
        &kc,
        &["--context", "bob", "create", "-f", "-"],
        Some(&promo),
    )
    .await;
    assert!(!good && err.contains("user \"bob\" is not permitted to create Promotions for Stage \"test\" in project \"kargo-demo\""), "{err}");
    let out = k(
        &kc,
        &["--context", "alice", "create", "-f", "-", "-o", "json"],
        Some(&promo),
    )
    .await;
    assert!(out.0, "{}", out.2);
    let p: Value = serde_json::from_str(&out.1).unwrap();
    let promo_name = p["metadata"]["name"].as_str().unwrap().to_owned();
    assert!(
        promo_name.starts_with("test.") && promo_name.ends_with(&freight_name[..7]),
        "{promo_name}"
    );
    assert_eq!(
        p["metadata"]["annotations"]["kargo.akuity.io/create-actor"],
        "kubernetes:alice"
    );
    assert_eq!(p["spec"]["steps"][0]["uses"], "git-clone");
    assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Stage");
    let (good, _, err) = k(
        &kc,
        &[
            "--context",
            "alice",
            "-n",
            "kargo-demo",
            "patch",
            "promotion",
            &promo_name,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"freight":"0000000"}}"#,
        ],
        None,
    )
    .await;
    assert!(!good && err.contains("spec is immutable"), "{err}");

    // Applications.
    for (name, ann) in [
        ("guestbook-test", Some("kargo-demo:test")),
        ("guestbook-other", None),
    ] {
        let (good, _, err) = apply(&kc, "admin", &app_yaml(name, &url, ann)).await;
        assert!(good, "{err}");
    }
    // bob may edit Applications but may not promote.
    let (good, _, err) = patch_app(
        &kc,
        "bob",
        "guestbook-test",
        &promotion_op(&promo_name, "main"),
    )
    .await;
    assert!(!good && err.contains("admission webhook \"application.validate.promote.dev\" denied the request: user \"bob\" is not permitted"), "{err}");
    // An Application that does not authorize the Stage.
    let (good, _, err) = patch_app(
        &kc,
        "alice",
        "guestbook-other",
        &promotion_op(&promo_name, "main"),
    )
    .await;
    assert!(
        !good
            && err.contains(
                "hint: annotate it with kargo.akuity.io/authorized-stage: \"kargo-demo:test\""
            ),
        "{err}"
    );
    // Authorizing and promoting in the same request.
    let mut both = promotion_op(&promo_name, "main");
    both["metadata"] =
        json!({ "annotations": { "kargo.akuity.io/authorized-stage": "kargo-demo:test" } });
    let (good, _, err) = patch_app(&kc, "alice", "guestbook-other", &both).await;
    assert!(
        !good && err.contains("a request cannot authorize itself"),
        "{err}"
    );
    // The trust model (SECURITY.md): the writes the decisions trust, attacked with real kubectl
    // by a user holding the installed roles' write rights.
    // bob widens the annotation of an Application to a Stage he may promote.
    let widen = json!({ "metadata": { "annotations": { "kargo.akuity.io/authorized-stage": "kargo-demo:test,kargo-demo:dev" } } });
    let (good, _, err) = patch_app(&kc, "bob", "guestbook-test", &widen).await;
    assert!(
        !good
            && err.contains(
                "user \"bob\" may not change which Stages Argo CD Application \"guestbook-test\""
            )
            && err.contains("needs the \"authorize\" verb on stages/dev"),
        "{err}"
    );
    // bob forges Argo CD's status of an Application under promotion control.
    let forged = json!({ "status": { "health": { "status": "Healthy" }, "sync": { "status": "Synced", "revision": "0000000000000000000000000000000000000000" } } });
    let (good, _, err) = patch_app(&kc, "bob", "guestbook-test", &forged).await;
    assert!(
        !good && err.contains("is written only by Argo CD's service accounts"),
        "{err}"
    );
    // bob approves Freight for a Stage he may not promote, or marks it verified.
    for patch in [
        json!({ "status": { "approvedFor": { "test": {} } } }),
        json!({ "status": { "verifiedIn": { "test": {} } } }),
    ] {
        let (good, _, err) = patch_status(&kc, "bob", "freight", &freight_name, &patch).await;
        assert!(
            !good && err.contains("user \"bob\" is not permitted to change status."),
            "{err}"
        );
    }
    // alice may promote test, but verification is evidence, not a statement.
    let (good, _, err) = patch_status(
        &kc,
        "alice",
        "freight",
        &freight_name,
        &json!({ "status": { "verifiedIn": { "test": {} } } }),
    )
    .await;
    assert!(
        !good
            && err.contains("status.verifiedIn is evidence")
            && err.contains("no Succeeded Promotion"),
        "{err}"
    );
    let (good, _, err) = patch_status(
        &kc,
        "alice",
        "freight",
        &freight_name,
        &json!({ "status": { "approvedFor": { "test": {} } } }),
    )
    .await;
    assert!(good, "approval by a promoter: {err}");
    // bob rewrites alice's Promotion and Stage status.
    let (good, _, err) = patch_status(
        &kc,
        "bob",
        "promotion",
        &promo_name,
        &json!({ "status": { "phase": "Running" } }),
    )
    .await;
    assert!(
        !good && err.contains("user \"bob\" is not permitted to update the status of Promotions"),
        "{err}"
    );
    let (good, _, err) = patch_status(
        &kc,
        "bob",
        "stage",
        "test",
        &json!({ "status": { "lastPromotion": { "name": promo_name } } }),
    )
    .await;
    assert!(
        !good && err.contains("user \"bob\" is not permitted to write the status of the Stage"),
        "{err}"
    );
    let (good, _, err) = patch_status(&kc, "alice", "stage", "test", &json!({ "status": { "freightHistory": [{ "items": { "Warehouse/guestbook": { "name": freight_name, "origin": { "kind": "Warehouse", "name": "guestbook" } } } }] } })).await;
    assert!(
        !good && err.contains("changes freightHistory without recording a Succeeded Promotion"),
        "{err}"
    );
    // alice writes the metadata later promotions read (stageMetadata(), freightMetadata()) by
    // hand, outside a running set-metadata step: refused, on the Stage and on the Freight.
    let (good, _, err) = patch_status(
        &kc,
        "alice",
        "stage",
        "test",
        &json!({ "status": { "metadata": { "approved": true } } }),
    )
    .await;
    assert!(
        !good && err.contains("may not change status.metadata of Stage \"test\""),
        "{err}"
    );
    let (good, _, err) = patch_status(
        &kc,
        "alice",
        "freight",
        &freight_name,
        &json!({ "status": { "metadata": { "tested": true } } }),
    )
    .await;
    assert!(
        !good && err.contains("may not change status.metadata of Freight"),
        "{err}"
    );
    // A Stage that asks for verification (which promote does not run) never gets Freight
    // recorded as verified in it, whoever writes it.
    let gated = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: { name: gated, namespace: kargo-demo }\nspec:\n  requestedFreight:\n    - origin: { kind: Warehouse, name: guestbook }\n      sources: { direct: true }\n  verification:\n    analysisTemplates: [{ name: smoke }]\n";
    let (good, _, err) = apply(&kc, "admin", gated).await;
    assert!(good, "{err}");
    let (good, _, err) = patch_status(
        &kc,
        "alice",
        "freight",
        &freight_name,
        &json!({ "status": { "verifiedIn": { "gated": {} } } }),
    )
    .await;
    assert!(
        !good && err.contains("asks for verification (spec.verification)"),
        "{err}"
    );
    // Typos in steps are refused when applied, PromotionTasks and ClusterPromotionTasks too.
    let task = "apiVersion: kargo.akuity.io/v1alpha1\nkind: PromotionTask\nmetadata: { name: typo, namespace: kargo-demo }\nspec:\n  steps:\n    - uses: git-push\n      config: { pth: ./src }\n";
    let cluster_task = task
        .replace("kind: PromotionTask", "kind: ClusterPromotionTask")
        .replace("name: typo, namespace: kargo-demo", "name: typo");
    for doc in [task.to_owned(), cluster_task] {
        let (good, _, err) = apply(&kc, "admin", &doc).await;
        assert!(
            !good
                && err.contains("promotiontask.validate.promote.dev")
                && err.contains("spec.steps[0].config.pth: Invalid value: unknown field"),
            "{err}"
        );
    }
    // kustomize-set-image as Kargo v1.11 has it: an image without a tag or digest is refused
    // when applied (Kargo's controller would fail the Promotion), with what to write instead.
    let untagged = task
        .replace("name: typo,", "name: untagged,")
        .replace("uses: git-push", "uses: kustomize-set-image")
        .replace(
            "{ pth: ./src }",
            "{ path: ./src, images: [{ image: nginx }] }",
        );
    let (good, _, err) = apply(&kc, "admin", &untagged).await;
    assert!(
        !good
            && err
                .contains("spec.steps[0].config.images[0]: Invalid value: tag or digest required")
            && err.contains("imageFrom"),
        "{err}"
    );
    // New Freight must belong to an existing Warehouse, one artifact per subscription.
    let orphan = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: { name: anything, namespace: kargo-demo }\norigin: { kind: Warehouse, name: nowhere }\nimages: [{ repoURL: nginx, tag: 1.26.0 }]\n";
    let (good, _, err) = k(&kc, &["create", "-f", "-"], Some(orphan)).await;
    assert!(!good && err.contains("warehouse does not exist"), "{err}");
    // Lockdown covers the whole Application: bob (who may patch Applications) can neither
    // repoint, re-project, automate nor unlock a locked one.
    let (good, _, err) = apply(
        &kc,
        "admin",
        &app_yaml("guestbook-locked", &url, Some("kargo-demo:test")),
    )
    .await;
    assert!(good, "{err}");
    let (good, _, err) = k(
        &kc,
        &[
            "-n",
            "argocd",
            "label",
            "application",
            "guestbook-locked",
            "promote.dev/lockdown=true",
        ],
        None,
    )
    .await;
    assert!(good, "locking is anyone's: {err}");
    for (what, patch) in [
        (
            "its spec",
            json!({ "spec": { "destination": { "namespace": "elsewhere" } } }),
        ),
        ("its spec", json!({ "spec": { "project": "other" } })),
        (
            "its spec",
            json!({ "spec": { "syncPolicy": { "automated": { "prune": true } } } }),
        ),
        (
            "its labels, annotations or finalizers",
            json!({ "metadata": { "labels": { "promote.dev/lockdown": null } } }),
        ),
    ] {
        let (good, _, err) = patch_app(&kc, "bob", "guestbook-locked", &patch).await;
        assert!(!good && err.contains(&format!("is locked down (label promote.dev/lockdown: \"true\"): {what} may change only through a promotion")), "{patch}: {err}");
    }
    // A JSON patch is decided on the object it produces, like a merge patch.
    let (good, _, err) = k(
        &kc,
        &[
            "--context",
            "bob",
            "-n",
            "argocd",
            "patch",
            "application",
            "guestbook-locked",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/source/path","value":"env/prod"}]"#,
        ],
        None,
    )
    .await;
    assert!(
        !good && err.contains("its sources may change only through a promotion"),
        "{err}"
    );
    let (good, _, err) = k(
        &kc,
        &[
            "-n",
            "argocd",
            "label",
            "application",
            "guestbook-locked",
            "promote.dev/lockdown-",
        ],
        None,
    )
    .await;
    // Unlocking is for Argo CD's own accounts (--lockdown-allow), not for kubectl users, not even
    // the cluster admin's.
    assert!(
        !good && err.contains("its labels, annotations or finalizers may change only"),
        "{err}"
    );
    // A promotion write without the plan the Promotion's runner records first.
    let (good, _, err) = patch_app(
        &kc,
        "alice",
        "guestbook-test",
        &promotion_op(&promo_name, "main"),
    )
    .await;
    assert!(
        !good && err.contains("has not recorded a sync plan"),
        "{err}"
    );
    // alice runs the Promotion: she records the plan (as kubectl promote does) ...
    let plan = json!({ "status": { "phase": "Running", "state": { "promote.dev/argocd-update": { "argocd/guestbook-test": {
        "sources": [{ "repoURL": url, "path": "env/test", "targetRevision": "main" }],
        "revisions": ["main"]
    } } } } });
    let (good, _, err) = patch_status(&kc, "alice", "promotion", &promo_name, &plan).await;
    assert!(good, "{err}");
    // Not even a cluster admin, who may promote every Stage, can act as alice's runner: record
    // its progress, take its lease, claim the Stage for it, or sync with it.
    let (good, _, err) = patch_status(
        &kc,
        "admin",
        "promotion",
        &promo_name,
        &json!({ "status": { "currentStep": 1 } }),
    )
    .await;
    assert!(
        !good
            && err.contains("user \"admin\" may not write the status of Promotion")
            && err.contains("only its runner records its progress"),
        "{err}"
    );
    let (good, _, err) = k(
        &kc,
        &[
            "-n",
            "kargo-demo",
            "annotate",
            "promotion",
            &promo_name,
            "promote.dev/lease-holder=admin@box/1",
        ],
        None,
    )
    .await;
    assert!(
        !good && err.contains("it has none, so it is run by its creator, user \"alice\""),
        "{err}"
    );
    let (good, _, err) = patch_status(
        &kc,
        "admin",
        "stage",
        "test",
        &json!({ "status": { "currentPromotion": { "name": promo_name } } }),
    )
    .await;
    assert!(!good && err.contains("is run by user \"alice\""), "{err}");
    let (good, _, err) = patch_app(
        &kc,
        "admin",
        "guestbook-test",
        &promotion_op(&promo_name, "main"),
    )
    .await;
    assert!(
        !good && err.contains("that Promotion is run by user \"alice\""),
        "{err}"
    );
    // alice takes her Promotion's first lease; a live lease is not taken over, not even by a
    // cluster admin.
    let lease = |holder: &str| {
        format!(
            "{{\"metadata\":{{\"annotations\":{{\"promote.dev/lease-holder\":\"{holder}\",\"promote.dev/lease-expires\":\"2999-01-01T00:00:00Z\"}}}}}}"
        )
    };
    let (good, _, err) = k(
        &kc,
        &[
            "--context",
            "alice",
            "-n",
            "kargo-demo",
            "patch",
            "promotion",
            &promo_name,
            "--type",
            "merge",
            "-p",
            &lease("alice@laptop/1"),
        ],
        None,
    )
    .await;
    assert!(good, "{err}");
    let (good, _, err) = k(
        &kc,
        &[
            "-n",
            "kargo-demo",
            "patch",
            "promotion",
            &promo_name,
            "--type",
            "merge",
            "-p",
            &lease("admin@box/1"),
        ],
        None,
    )
    .await;
    assert!(
        !good && err.contains("may take it over only once that lease has expired"),
        "{err}"
    );
    // What a remote step recorded as Succeeded is never rewritten, not even by its runner.
    let record = json!({ "status": { "stepExecutionMetadata": [{ "alias": "step-2", "status": "Succeeded" }], "state": { "step-2": { "apps": [] } } } });
    let (good, _, err) = patch_status(&kc, "alice", "promotion", &promo_name, &record).await;
    assert!(good, "{err}");
    let rewrite =
        json!({ "status": { "state": { "step-2": { "apps": [{ "name": "elsewhere" }] } } } });
    let (good, _, err) = patch_status(&kc, "alice", "promotion", &promo_name, &rewrite).await;
    assert!(
        !good && err.contains("step \"step-2\" (argocd-update) is recorded as Succeeded"),
        "{err}"
    );
    // ... and a promotion write that also repoints the Application is refused.
    let mut repoint = promotion_op(&promo_name, "main");
    repoint["spec"] = json!({ "source": { "path": "env/prod" } });
    let (good, _, err) = patch_app(&kc, "alice", "guestbook-test", &repoint).await;
    assert!(!good && err.contains("are not the ones Promotion"), "{err}");
    (freight_name, promo_name, promo)
}

crate::backend::both!(webhook_installed_from_the_manifests_decides_real_writes);
async fn webhook_installed_from_the_manifests_decides_real_writes(kind: crate::backend::Kind) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = bare_repo(
        tmp.path(),
        "gitops",
        &[("env/test/kustomization.yaml", "resources: []\n")],
    );
    let main_sha = promote_tests::git(&repo, &["rev-parse", "main"])
        .trim()
        .to_owned();
    let url = format!("file://{}", repo.display());
    let port = reserved_port();
    let Some(sb) = crate::backend::Backend::start(
        kind,
        &tmp.path().join("sb"),
        &[("promote-webhook.promote-system", port)],
    )
    .await
    else {
        return;
    };
    let kc = sb.kubeconfig();
    let (hook, out) = install_webhook_at(&kc, tmp.path(), port).await;
    assert!(
        out.contains("deployment.apps/promote-webhook created"),
        "{out}"
    );

    let (_freight, promo_name, promo) = project_decisions(&kc, &url).await;
    kargo_quickstart_applies(&kc).await;
    // The real thing: injected operation, then Argo CD syncs and clears it through the webhook's
    // matchConditions (its writes never reach the webhook).
    // The client names another revision and another initiator: the plan's revision and the
    // writer are what Argo CD gets.
    let mut sent = promotion_op(&promo_name, "some-other-branch");
    sent["operation"]["initiatedBy"] = json!({ "username": "mallory" });
    let (good, _, err) = patch_app(&kc, "alice", "guestbook-test", &sent).await;
    assert!(good, "{err}");
    let done = sb
        .wait_app("argocd", "guestbook-test", |a| {
            a.get("operation").is_none()
                && a.pointer("/status/operationState/phase")
                    .and_then(Value::as_str)
                    == Some("Succeeded")
        })
        .await;
    let op = &done["status"]["operationState"]["operation"];
    assert_eq!(op["initiatedBy"]["username"], "alice", "{op}");
    assert_eq!(op["sync"]["revision"], "main", "{op}");
    assert_eq!(op["info"][1]["value"], promo_name.as_str());
    assert_eq!(op["sync"]["syncOptions"], json!(["CreateNamespace=true"]));
    assert_eq!(
        done["status"]["operationState"]["syncResult"]["revision"],
        main_sha.as_str()
    );
    // Replaying the same (now finished) Promotion's operation is refused. Its runner finishes it.
    let mut live = sb
        .get("promotions.kargo.akuity.io", "kargo-demo", &promo_name)
        .await
        .unwrap();
    live["status"]["phase"] = json!("Succeeded");
    let (good, _, err) = k(
        &kc,
        &[
            "--context",
            "alice",
            "replace",
            "--subresource=status",
            "-f",
            "-",
        ],
        Some(&live.to_string()),
    )
    .await;
    assert!(good, "{err}");
    let (good, _, err) = patch_app(
        &kc,
        "alice",
        "guestbook-test",
        &promotion_op(&promo_name, "main"),
    )
    .await;
    assert!(!good && err.contains("is already Succeeded"), "{err}");
    // A finished Promotion's status is final, even for its runner.
    let (good, _, err) = patch_status(
        &kc,
        "alice",
        "promotion",
        &promo_name,
        &json!({ "status": { "phase": "Running" } }),
    )
    .await;
    assert!(
        !good && err.contains("a finished Promotion's status is final"),
        "{err}"
    );
    let logs = hook.logs();
    assert!(
        logs.lines().any(|l| l.contains(" review uid=")
            && l.contains("path=/validate-argoproj-io-v1alpha1-application")
            && l.contains("user=bob")
            && l.contains("allowed=false")),
        "{logs}"
    );
    let (_, metrics) = hook.ops("/metrics").unwrap();
    assert!(metrics.contains("promote_webhook_requests_total{path=\"/validate-argoproj-io-v1alpha1-application\",operation=\"UPDATE\",allowed=\"false\"}"), "{metrics}");

    // The webhook goes down: Argo CD's own writes still pass; promotion writes fail closed.
    drop(hook);
    // Users' writes to Applications under promotion control fail closed too; a plain sync of
    // any other Application does not need the webhook.
    let plain = json!({ "operation": { "initiatedBy": { "username": "admin" }, "sync": { "revision": "main" } } });
    let (good, _, err) = patch_app(&kc, "admin", "guestbook-test", &plain).await;
    assert!(!good && err.contains("failed calling webhook"), "{err}");
    let (good, _, err) = patch_app(&kc, "admin", "guestbook-other", &plain).await;
    assert!(good, "a plain sync must not need the webhook: {err}");
    sb.wait_app("argocd", "guestbook-other", |a| {
        a.get("operation").is_none()
            && a.pointer("/status/operationState/operation/initiatedBy/username")
                .and_then(Value::as_str)
                == Some("admin")
    })
    .await;
    let (good, _, err) = patch_app(
        &kc,
        "alice",
        "guestbook-test",
        &promotion_op("test.01j00000000000000000000000.aaaaaaa", "main"),
    )
    .await;
    assert!(!good && err.contains("failed calling webhook"), "{err}");
    let (good, _, err) = k(
        &kc,
        &["--context", "alice", "create", "-f", "-"],
        Some(&promo),
    )
    .await;
    assert!(!good && err.contains("failed calling webhook"), "{err}");
    sb.stop().await;
}

fn review_body(i: usize) -> String {
    let app = json!({ "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": { "name": format!("app-{i}"), "namespace": "argocd" },
        "spec": { "source": { "repoURL": "https://example.com/x.git", "targetRevision": "main" } } });
    json!({ "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": format!("uid-{i}"), "kind": { "group": "argoproj.io", "version": "v1alpha1", "kind": "Application" },
        "operation": "UPDATE", "userInfo": { "username": "system:serviceaccount:argocd:argocd-application-controller" },
        "namespace": "argocd", "object": app, "oldObject": app } })
    .to_string()
}

fn client(ca_pems: &[&str]) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_preconfigured_tls({
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            for pem in ca_pems {
                for c in rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    roots.add(c.unwrap()).unwrap();
                }
            }
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth()
        })
        .resolve(
            "promote-webhook.promote-system.svc",
            "127.0.0.1:0".parse().unwrap(),
        );
    b = b
        .pool_max_idle_per_host(16)
        .timeout(Duration::from_secs(10));
    b.build().unwrap()
}

/// Write a certificate pair the way the kubelet updates a mounted Secret: into a fresh
/// timestamped directory, then an atomic swap of the `..data` symlink.
fn kubelet_swap(dir: &Path, generation: usize, cert: &str, key: &str) {
    let ts = dir.join(format!("..gen_{generation}"));
    std::fs::create_dir_all(&ts).unwrap();
    std::fs::write(ts.join("tls.crt"), cert).unwrap();
    std::fs::write(ts.join("tls.key"), key).unwrap();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..gen_{generation}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for f in ["tls.crt", "tls.key"] {
        if std::fs::symlink_metadata(dir.join(f)).is_err() {
            std::os::unix::fs::symlink(format!("..data/{f}"), dir.join(f)).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_reloads_certificates_under_load_and_shuts_down_gracefully() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let names = promote_webhook::tls::service_names("promote-webhook", "promote-system");
    let first = promote_webhook::tls::generate("ca-1", &names).unwrap();
    let second = promote_webhook::tls::generate("ca-2", &names).unwrap();
    let tls_dir = tmp.path().join("tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    kubelet_swap(&tls_dir, 1, &first.cert_pem, &first.key_pem);
    // An API server that answers slowly, so a review needing a lookup is in flight on SIGTERM.
    let api = promote_tests::HttpServer::start(|_req| {
        std::thread::sleep(Duration::from_millis(1500));
        ("404 Not Found".into(), vec![("Content-Type".into(), "application/json".into())], br#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":"not found"}"#.to_vec())
    });
    let kc = tmp.path().join("kubeconfig");
    std::fs::write(&kc, format!("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{}\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n", api.port)).unwrap();
    let port = reserved_port();
    let mut hook = Webhook::start(
        tmp.path(),
        port,
        &tls_dir.join("tls.crt"),
        &tls_dir.join("tls.key"),
        &kc,
    );
    let base = format!("https://promote-webhook.promote-system.svc:{port}");
    let url = format!("{base}/validate-argoproj-io-v1alpha1-application?timeout=10s");
    let both = client(&[&first.ca_pem, &second.ca_pem]);

    // Load: 8 keep-alive clients sending reviews until told to stop.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (c, url, stop, sent, failed) = (
            both.clone(),
            url.clone(),
            stop.clone(),
            sent.clone(),
            failed.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut i = w * 1_000_000;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let r = c
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .body(review_body(i))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        let v: Value = r.json().await.unwrap_or_default();
                        if v["response"]["allowed"] != true
                            || v["response"]["uid"] != format!("uid-{i}").as_str()
                        {
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
                sent.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Rotation to a new pair: fresh connections soon present the new certificate.
    kubelet_swap(&tls_dir, 2, &second.cert_pem, &second.key_pem);
    let only_second = client(&[&second.ca_pem]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fresh = client(&[&second.ca_pem]);
        if fresh.post(&url).body(review_body(1)).send().await.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served:\n{}",
            hook.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A broken rotation (certificate and key that do not match) keeps the working pair.
    kubelet_swap(&tls_dir, 3, &first.cert_pem, &second.key_pem);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = client(&[&second.ca_pem])
        .post(&url)
        .body(review_body(2))
        .send()
        .await;
    assert!(
        r.is_ok_and(|r| r.status() == 200),
        "the old pair must stay in use"
    );
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let (sent, failed) = (sent.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    assert!(sent > 100, "only {sent} reviews under load");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} reviews failed during rotation"
    );
    let (_, metrics) = hook.ops("/metrics").unwrap();
    assert!(
        metrics.contains("promote_webhook_certificate_reloads_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("promote_webhook_certificate_reloads_total{result=\"error\"} 1"),
        "{metrics}"
    );
    assert!(
        hook.logs()
            .contains("keeping the previous serving certificate")
    );

    // Bad bodies get 400 with a JSON error, oversized ones 413, unknown paths 404.
    let r = only_second
        .post(&url)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("not JSON"), "{v}");
    let r = only_second
        .post(&url)
        .body(r#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(17 * 1024 * 1024));
    // Its own client: the server closes a connection after refusing a body, and a pooled
    // connection closed that way must not be reused by the next request.
    let r = client(&[&second.ca_pem])
        .post(&url)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = only_second
        .post(format!("{base}/nope"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // A 1.5 MiB Application review (twice: object and oldObject) fits.
    let mut body: Value = serde_json::from_str(&review_body(3)).unwrap();
    body["request"]["object"]["status"] = json!({ "history": "y".repeat(1_500_000) });
    body["request"]["oldObject"]["status"] = json!({ "history": "z".repeat(1_500_000) });
    let r = only_second
        .post(&url)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Plain HTTP on the TLS port is refused.
    let plain = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{port}/validate-argoproj-io-v1alpha1-application"
        ))
        .body(review_body(4))
        .send()
        .await;
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status() != 200));

    // SIGTERM while a review waits on the (slow) API server: it is answered, then the server exits.
    let promo = json!({ "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
        "metadata": { "name": "p", "namespace": "kargo-demo" }, "spec": { "stage": "test", "freight": "abc" } });
    let review = json!({ "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "slow", "kind": { "group": "kargo.akuity.io", "version": "v1alpha1", "kind": "Promotion" },
        "operation": "CREATE", "userInfo": { "username": "alice" }, "namespace": "kargo-demo", "object": promo } });
    let c2 = only_second.clone();
    let url2 = format!("{base}/mutate-kargo-akuity-io-v1alpha1-promotion");
    let in_flight =
        tokio::spawn(async move { c2.post(&url2).body(review.to_string()).send().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        Command::new("kill")
            .args(["-TERM", &hook.child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let answered = in_flight.await.unwrap().unwrap();
    assert_eq!(answered.status(), 200);
    let v: Value = answered.json().await.unwrap();
    assert_eq!(v["response"]["uid"], "slow");
    // Draining (--shutdown-delay): new reviews are still answered, since the Service may still
    // route to this replica, and every answer closes its connection so clients move on.
    let late = only_second
        .post(&url)
        .body(review_body(4))
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 200);
    assert_eq!(
        late.headers()
            .get("connection")
            .and_then(|v| v.to_str().ok()),
        Some("close")
    );
    let status = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(s) = hook.child.try_wait().unwrap() {
                return (s, hook.logs());
            }
            assert!(
                Instant::now() < deadline,
                "the webhook did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    assert!(
        status.0.success(),
        "exit status {:?}\n{}",
        status.0,
        status.1
    );
    assert!(status.1.contains("shutting down"), "{}", status.1);
}

#[test]
fn review_command_evaluates_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let objects = tmp.path().join("objects");
    std::fs::create_dir_all(&objects).unwrap();
    std::fs::write(objects.join("promotion.yaml"), "apiVersion: kargo.akuity.io/v1alpha1\nkind: Promotion\nmetadata: { name: test.01j00000000000000000000000.abcdef0, namespace: kargo-demo, annotations: { kargo.akuity.io/create-actor: 'kubernetes:alice' } }\nspec: { stage: test, freight: abcdef0123, steps: [{ uses: argocd-update }] }\n").unwrap();
    let app = json!({ "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": { "name": "guestbook", "namespace": "argocd", "annotations": { "kargo.akuity.io/authorized-stage": "kargo-demo:prod" } },
        "spec": { "source": { "repoURL": "https://example.com/x.git", "targetRevision": "main" } } });
    let mut new = app.clone();
    new["operation"] = json!({ "info": [{ "name": "kargo.akuity.io/promotion", "value": "test.01j00000000000000000000000.abcdef0" }, { "name": "kargo.akuity.io/project", "value": "kargo-demo" }], "sync": { "revision": "abc" } });
    let review = json!({ "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u-1", "kind": { "group": "argoproj.io", "version": "v1alpha1", "kind": "Application" },
        "operation": "UPDATE", "userInfo": { "username": "alice" }, "namespace": "argocd", "object": new, "oldObject": app } });
    std::fs::write(tmp.path().join("review.json"), review.to_string()).unwrap();
    let run = |extra: &[&str]| {
        let out = Command::new(bin("promote-webhook").unwrap())
            .current_dir(tmp.path())
            .args(["review", "-f", "review.json", "--objects", "objects"])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = run(&["--can-promote"]);
    assert_eq!(code, Some(1), "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["response"]["status"]["code"], 403);
    assert!(
        v["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("kargo.akuity.io/authorized-stage: \"kargo-demo:test\"")
    );
    let (code, out) = run(&["--can-promote", "--mutate"]);
    assert_eq!(code, Some(0), "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["response"]["patchType"], "JSONPatch");
}
