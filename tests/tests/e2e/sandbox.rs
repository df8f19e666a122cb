//! The sandbox against its judges: the real `kubectl` binary, a kube-rs client, a real webhook
//! over TLS, and real Git repositories for the Argo CD simulator.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use promote_sandbox::{Options, Sandbox};
use promote_tests::{bare_repo, git, workspace_root};
use serde_json::{Value, json};

pub(crate) async fn start(dir: &Path, endpoints: &[(&str, std::net::SocketAddr)]) -> Sandbox {
    Sandbox::start(Options {
        dir: dir.to_path_buf(),
        port: 0,
        service_endpoints: endpoints
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect(),
        argocd: true,
    })
    .await
    .unwrap()
}

/// Run kubectl against the sandbox; returns (success, stdout, stderr).
pub(crate) fn kubectl(
    kubeconfig: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    use std::io::Write;
    let mut cmd = Command::new("kubectl");
    cmd.env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd
        .spawn()
        .expect("kubectl is installed (scripts/test installs it)");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub(crate) async fn k(
    kubeconfig: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    let kc = kubeconfig.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let stdin = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        kubectl(&kc, &a, stdin.as_deref())
    })
    .await
    .unwrap()
}

pub(crate) async fn ok(kc: &Path, args: &[&str]) -> String {
    let (good, out, err) = k(kc, args, None).await;
    assert!(good, "kubectl {args:?} failed:\n{err}\n{out}");
    out
}

pub(crate) async fn fails(kc: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let (good, out, err) = k(kc, args, stdin).await;
    assert!(!good, "kubectl {args:?} should fail:\n{out}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_kubectl_against_the_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let sb = start(tmp.path(), &[]).await;
    let kc = sb.kubeconfig_path();
    let root = workspace_root();
    let fixtures = root.join("api/tests/fixtures");

    // The CRDs are installed at start; `kubectl apply -k` adopts them, and a second apply is a no-op.
    let crds = root.join("manifests/crds");
    let out = ok(&kc, &["apply", "-k", crds.to_str().unwrap()]).await;
    assert!(
        out.contains(
            "customresourcedefinition.apiextensions.k8s.io/stages.kargo.akuity.io configured"
        ),
        "{out}"
    );
    let out = ok(&kc, &["apply", "-k", crds.to_str().unwrap()]).await;
    assert!(
        out.contains(
            "customresourcedefinition.apiextensions.k8s.io/stages.kargo.akuity.io unchanged"
        ),
        "{out}"
    );
    ok(&kc, &["create", "namespace", "kargo-demo"]).await;
    ok(&kc, &["create", "namespace", "platform-team"]).await;
    for f in [
        "stage-test.yaml",
        "stage-uat-upstream.yaml",
        "freight-image.yaml",
        "warehouse-image.yaml",
        "stage-multi-origin.yaml",
    ] {
        ok(&kc, &["apply", "-f", fixtures.join(f).to_str().unwrap()]).await;
    }
    // Tables with the CRD's printer columns.
    let out = ok(&kc, &["get", "stages", "-n", "kargo-demo"]).await;
    let header = out.lines().next().unwrap();
    assert!(
        header.split_whitespace().eq([
            "NAME", "SHARD", "CURRENT", "FREIGHT", "HEALTH", "READY", "STATUS", "AGE"
        ]),
        "{out}"
    );
    assert!(out.contains("\ntest "), "{out}");
    let out = ok(&kc, &["get", "freight", "-A"]).await;
    assert!(
        out.contains("be79d3d863f2323dd406cff7a99de434892f8740   wonky-wombat"),
        "{out}"
    );
    let out = ok(
        &kc,
        &["get", "stage", "test", "-n", "kargo-demo", "-o", "yaml"],
    )
    .await;
    let y: Value = serde_yaml::from_str(&out).unwrap();
    assert_eq!(y["metadata"]["generation"], 1);
    assert!(y["metadata"]["uid"].as_str().unwrap().len() == 36);
    // Patches: merge and JSON; generation follows spec changes.
    ok(
        &kc,
        &[
            "patch",
            "stage",
            "test",
            "-n",
            "kargo-demo",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"shard":"a"}}"#,
        ],
    )
    .await;
    ok(
        &kc,
        &[
            "patch",
            "stage",
            "test",
            "-n",
            "kargo-demo",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/shard","value":"b"}]"#,
        ],
    )
    .await;
    let out = ok(
        &kc,
        &[
            "get",
            "stage",
            "test",
            "-n",
            "kargo-demo",
            "-o",
            "jsonpath={.spec.shard} {.metadata.generation}",
        ],
    )
    .await;
    assert_eq!(out, "b 3");
    // 409 on a stale update.
    let stale = ok(
        &kc,
        &["get", "stage", "test", "-n", "kargo-demo", "-o", "json"],
    )
    .await;
    ok(
        &kc,
        &["label", "stage", "test", "-n", "kargo-demo", "touched=yes"],
    )
    .await;
    let err = fails(&kc, &["replace", "-f", "-"], Some(&stale)).await;
    assert!(
        err.contains("Error from server (Conflict)")
            && err.contains("the object has been modified"),
        "{err}"
    );
    // 422 on a schema violation, 400 on an unknown field under kubectl's strict validation.
    let err = fails(
        &kc,
        &[
            "patch",
            "stage",
            "test",
            "-n",
            "kargo-demo",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"requestedFreight":"x"}}"#,
        ],
        None,
    )
    .await;
    assert!(err.contains(r#"The Stage "test" is invalid: spec.requestedFreight: Invalid value: "string": spec.requestedFreight in body must be of type array: "string""#), "{err}");
    let bad = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {name: w2, namespace: kargo-demo}\nspec:\n  subscriptions: []\n  bogus: 1\n";
    let err = fails(&kc, &["apply", "-f", "-"], Some(bad)).await;
    assert!(err.contains(r#"unknown field "spec.bogus""#), "{err}");
    // RBAC through tokens, impersonation and SelfSubjectAccessReview.
    let err = fails(
        &kc,
        &["--context", "alice", "get", "stages", "-n", "kargo-demo"],
        None,
    )
    .await;
    assert!(err.contains(r#"User "alice" cannot list resource "stages" in API group "kargo.akuity.io" in the namespace "kargo-demo""#), "{err}");
    ok(
        &kc,
        &[
            "create",
            "role",
            "promoter",
            "-n",
            "kargo-demo",
            "--verb=promote,get,list",
            "--resource=stages.kargo.akuity.io",
            "--resource-name=test",
        ],
    )
    .await;
    ok(
        &kc,
        &[
            "create",
            "rolebinding",
            "alice-promoter",
            "-n",
            "kargo-demo",
            "--role=promoter",
            "--user=alice",
        ],
    )
    .await;
    assert_eq!(
        ok(
            &kc,
            &[
                "--context",
                "alice",
                "auth",
                "can-i",
                "promote",
                "stages/test",
                "-n",
                "kargo-demo"
            ]
        )
        .await
        .trim(),
        "yes"
    );
    let (good, out, _) = k(
        &kc,
        &[
            "--context",
            "alice",
            "auth",
            "can-i",
            "promote",
            "stages/prod",
            "-n",
            "kargo-demo",
        ],
        None,
    )
    .await;
    assert!(!good && out.trim() == "no", "{out}");
    assert_eq!(
        ok(
            &kc,
            &[
                "auth",
                "can-i",
                "promote",
                "stages/test",
                "-n",
                "kargo-demo",
                "--as",
                "alice"
            ]
        )
        .await
        .trim(),
        "yes"
    );
    let (good, out, _) = k(
        &kc,
        &[
            "auth",
            "can-i",
            "promote",
            "stages/test",
            "-n",
            "kargo-demo",
            "--as",
            "bob",
        ],
        None,
    )
    .await;
    assert!(!good && out.trim() == "no", "{out}");
    let err = fails(
        &kc,
        &[
            "--context",
            "bob",
            "auth",
            "can-i",
            "get",
            "pods",
            "--as",
            "alice",
        ],
        None,
    )
    .await;
    assert!(
        err.contains("cannot impersonate resource \"users\""),
        "{err}"
    );
    // A watch sees a change made while it runs.
    let kc2 = kc.clone();
    let watch = tokio::task::spawn_blocking(move || {
        kubectl(
            &kc2,
            &[
                "get",
                "stages",
                "-n",
                "kargo-demo",
                "-w",
                "--request-timeout=4s",
                "-o",
                "name",
            ],
            None,
        )
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ok(
        &kc,
        &[
            "patch",
            "stage",
            "uat",
            "-n",
            "kargo-demo",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"shard":"w"}}"#,
        ],
    )
    .await;
    let (_, out, _) = watch.await.unwrap();
    assert!(
        out.matches("stage.kargo.akuity.io/uat").count() >= 2,
        "initial ADDED and the MODIFIED: {out}"
    );
    // Delete.
    let out = ok(&kc, &["delete", "stage", "uat", "-n", "kargo-demo"]).await;
    assert!(
        out.contains(r#"stage.kargo.akuity.io "uat" deleted"#),
        "{out}"
    );
    let err = fails(&kc, &["get", "stage", "uat", "-n", "kargo-demo"], None).await;
    assert!(
        err.contains(r#"Error from server (NotFound): stages.kargo.akuity.io "uat" not found"#),
        "{err}"
    );
    // explain reads the OpenAPI v3 documents built from the CRD schemas.
    let out = ok(&kc, &["explain", "stages.spec.requestedFreight"]).await;
    assert!(out.contains("FIELD: requestedFreight"), "{out}");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kube_rs_client_against_the_sandbox() {
    use futures::{StreamExt, TryStreamExt};
    use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
    use promote_api::types::Stage;

    let tmp = tempfile::tempdir().unwrap();
    let sb = start(tmp.path(), &[]).await;
    let kubeconfig = kube::config::Kubeconfig::read_from(sb.kubeconfig_path()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": "p"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let stages: Api<Stage> = Api::namespaced(client.clone(), "p");
    let text = std::fs::read_to_string(workspace_root().join("api/tests/fixtures/stage-test.yaml"))
        .unwrap();
    let mut stage: Stage = serde_yaml::from_str(&text).unwrap();
    stage.metadata.namespace = Some("p".into());
    let created = stages.create(&PostParams::default(), &stage).await.unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    let mut watch = stages
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    // Status subresource: a main-resource write ignores status, a status write the rest.
    let patched = stages
        .patch_status(
            "test",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"freightSummary": "Steady"}, "spec": {"shard": "ignored"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.generation, Some(1));
    let raw = serde_json::to_value(&patched).unwrap();
    assert_eq!(raw["status"]["freightSummary"], "Steady");
    assert!(raw["spec"].get("shard").is_none());
    let patched = stages
        .patch(
            "test",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"freightSummary": "Lost"}, "spec": {"shard": "s1"}})),
        )
        .await
        .unwrap();
    let raw = serde_json::to_value(&patched).unwrap();
    assert_eq!(raw["status"]["freightSummary"], "Steady");
    assert_eq!(patched.metadata.generation, Some(2));
    // Stale replace: 409 Conflict as a kube::Error::Api.
    let err = stages
        .replace("test", &PostParams::default(), &created)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict")),
        other => panic!("{other:?}"),
    }
    // Server-side apply creates, list sees it with a resourceVersion.
    let applied = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage", "metadata": {"name": "prod"},
        "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"}, "sources": {"stages": ["test"]}}]}});
    stages
        .patch("prod", &PatchParams::apply("tests"), &Patch::Apply(applied))
        .await
        .unwrap();
    let list = stages.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 2);
    assert!(list.metadata.resource_version.is_some());
    // The watch saw both MODIFIED events and the ADDED, in order.
    let mut seen = vec![];
    while seen.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(5), watch.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(s) => seen.push(format!("ADDED {}", s.metadata.name.unwrap())),
            WatchEvent::Modified(s) => seen.push(format!("MODIFIED {}", s.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, ["MODIFIED test", "MODIFIED test", "ADDED prod"]);
    // 404 and 403 are Status objects.
    let err = stages.get("nope").await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404 && s.reason == "NotFound"),
        "{err:?}"
    );
    sb.stop().await;
}

/// A webhook that counts calls, denies Stages labelled `deny: "true"`, and adds a label.
async fn test_webhook(
    pki: &promote_sandbox::tls::Pki,
    calls: Arc<AtomicUsize>,
) -> std::net::SocketAddr {
    use axum::routing::post;
    let mutate = |calls: Arc<AtomicUsize>| {
        move |axum::Json(review): axum::Json<Value>| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let req = &review["request"];
                let patch = if req["object"]["metadata"]["labels"].is_object() {
                    json!([{"op": "add", "path": "/metadata/labels/mutated-by", "value": "test-hook"}])
                } else {
                    json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated-by": "test-hook"}}])
                };
                let patch = base64::engine::general_purpose::STANDARD.encode(patch.to_string());
                axum::Json(
                    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                    "response": {"uid": req["uid"], "allowed": true, "patchType": "JSONPatch", "patch": patch}}),
                )
            }
        }
    };
    let validate = |calls: Arc<AtomicUsize>| {
        move |axum::Json(review): axum::Json<Value>| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let req = &review["request"];
                let deny = req["object"]["metadata"]["labels"]["deny"] == "true";
                let user = req["userInfo"]["username"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned();
                let response = if deny {
                    json!({"uid": req["uid"], "allowed": false, "status": {"code": 403, "reason": "Forbidden",
                        "message": format!("stage {} may not be labelled deny (user {user}, operation {})", req["name"].as_str().unwrap_or(""), req["operation"].as_str().unwrap_or(""))}})
                } else {
                    json!({"uid": req["uid"], "allowed": true})
                };
                axum::Json(
                    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}),
                )
            }
        }
    };
    let app = axum::Router::new()
        .route("/mutate", post(mutate(calls.clone())))
        .route("/validate", post(validate(calls)));
    serve_tls(pki, app)
}

/// Serve `app` over TLS with the test PKI on 127.0.0.1; returns its address.
fn serve_tls(pki: &promote_sandbox::tls::Pki, app: axum::Router) -> std::net::SocketAddr {
    let cfg = promote_sandbox::tls::server_config(&pki.cert_pem, &pki.key_pem).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(cfg),
    );
    tokio::spawn(async move { server.serve(app.into_make_service()).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admission_webhooks_as_kube_apiserver_calls_them() {
    let tmp = tempfile::tempdir().unwrap();
    let pki =
        promote_sandbox::tls::generate("test-hook-ca", &["test-hook.hooks.svc".into()]).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let addr = test_webhook(&pki, calls.clone()).await;
    // A second service name that points nowhere: the webhook is "down".
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let sb = start(
        tmp.path(),
        &[("test-hook.hooks", addr), ("dead-hook.hooks", dead)],
    )
    .await;
    let kc = sb.kubeconfig_path();
    let ca = base64::engine::general_purpose::STANDARD.encode(&pki.ca_pem);
    let hooks = format!(
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {{name: test-hook}}
webhooks:
- name: mutate.test-hook.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig: {{service: {{name: test-hook, namespace: hooks, path: /mutate}}, caBundle: {ca}}}
  rules: [{{operations: [CREATE], apiGroups: [kargo.akuity.io], apiVersions: ["*"], resources: [stages]}}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: test-hook}}
webhooks:
- name: validate.test-hook.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  timeoutSeconds: 5
  clientConfig: {{service: {{name: test-hook, namespace: hooks, path: /validate}}, caBundle: {ca}}}
  namespaceSelector: {{matchLabels: {{guarded: "yes"}}}}
  matchConditions:
  - name: skip-argocd
    expression: "request.userInfo.username != 'system:serviceaccount:argocd:argocd-application-controller'"
  rules: [{{operations: [CREATE, UPDATE], apiGroups: [kargo.akuity.io], apiVersions: ["*"], resources: [stages]}}]
- name: down.test-hook.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  timeoutSeconds: 2
  clientConfig: {{service: {{name: dead-hook, namespace: hooks, path: /validate}}, caBundle: {ca}}}
  objectSelector: {{matchLabels: {{fail-closed: "yes"}}}}
  rules: [{{operations: ["*"], apiGroups: [kargo.akuity.io], apiVersions: ["*"], resources: [stages]}}]
"#
    );
    ok(&kc, &["create", "namespace", "guarded"]).await;
    ok(&kc, &["label", "namespace", "guarded", "guarded=yes"]).await;
    ok(&kc, &["create", "namespace", "open"]).await;
    let (good, _, err) = k(&kc, &["apply", "-f", "-"], Some(&hooks)).await;
    assert!(good, "{err}");
    let stage = |ns: &str, name: &str, labels: &str| {
        format!(
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: {name}, namespace: {ns}, labels: {{{labels}}}}}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w}}\n    sources: {{direct: true}}\n"
        )
    };
    // Mutation applied (label added), validation passed.
    let (good, _, err) = k(
        &kc,
        &["create", "-f", "-"],
        Some(&stage("guarded", "a", "")),
    )
    .await;
    assert!(good, "{err}");
    let out = ok(
        &kc,
        &[
            "get",
            "stage",
            "a",
            "-n",
            "guarded",
            "-o",
            "jsonpath={.metadata.labels.mutated-by}",
        ],
    )
    .await;
    assert_eq!(out, "test-hook");
    // A denial reaches kubectl with the webhook's message; the PATCH is reviewed as an UPDATE.
    let err = fails(
        &kc,
        &["label", "stage", "a", "-n", "guarded", "deny=true"],
        None,
    )
    .await;
    assert!(
        err.contains(r#"admission webhook "validate.test-hook.example.com" denied the request: stage a may not be labelled deny (user admin, operation UPDATE)"#),
        "{err}"
    );
    // namespaceSelector: the same change in an unlabelled namespace is not reviewed.
    let (good, _, err) = k(
        &kc,
        &["create", "-f", "-"],
        Some(&stage("open", "b", "deny: \"true\"")),
    )
    .await;
    assert!(good, "{err}");
    // matchConditions: Argo CD's service account is not reviewed (as admin via impersonation).
    let (good, _, err) = k(
        &kc,
        &[
            "create",
            "-f",
            "-",
            "--as",
            "system:serviceaccount:argocd:argocd-application-controller",
            "--as-group",
            "system:masters",
        ],
        Some(&stage("guarded", "c", "deny: \"true\"")),
    )
    .await;
    assert!(good, "{err}");
    // failurePolicy Fail with the webhook down: refused with kube's message.
    let err = fails(
        &kc,
        &["create", "-f", "-"],
        Some(&stage("open", "d", "fail-closed: \"yes\"")),
    )
    .await;
    assert!(err.contains(r#"Internal error occurred: failed calling webhook "down.test-hook.example.com": failed to call webhook: Post "https://dead-hook.hooks.svc/validate?timeout=2s""#), "{err}");
    assert!(calls.load(Ordering::SeqCst) >= 3);
    sb.stop().await;
}

pub(crate) async fn wait_for(
    sb: &Sandbox,
    ns: &str,
    name: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..100 {
        if let Some(app) = sb
            .cluster
            .get_object("argoproj.io", "applications", ns, name)
            && pred(&app)
        {
            return app;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "application {ns}/{name} never reached the expected state: {:?}",
        sb.cluster
            .get_object("argoproj.io", "applications", ns, name)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn argocd_simulator_syncs_real_revisions() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = bare_repo(
        tmp.path(),
        "gitops",
        &[("env/dev/kustomization.yaml", "resources: []\n")],
    );
    let main_sha = git(&repo, &["rev-parse", "main"]).trim().to_owned();
    let url = format!("file://{}", repo.display());
    let sb = start(&tmp.path().join("sb"), &[]).await;
    let app = |name: &str, spec: Value, annotations: Value| {
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
               "metadata": {"name": name, "namespace": "argocd", "annotations": annotations}, "spec": spec})
    };
    let single = json!({"project": "default", "destination": {"server": "https://kubernetes.default.svc", "namespace": "dev"},
        "source": {"repoURL": url, "targetRevision": "main", "path": "env/dev"}});
    sb.create("admin", &app("dev", single.clone(), json!({})))
        .await
        .unwrap();
    let op = json!({"operation": {"initiatedBy": {"username": "alice"}, "info": [{"name": "Reason", "value": "test"}], "sync": {"revision": "main"}}});
    sb.request(
        "admin",
        "PATCH",
        "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/dev",
        Some(&op),
    )
    .await
    .unwrap();
    let done = wait_for(&sb, "argocd", "dev", |a| {
        a.pointer("/status/reconciledAt").is_some() && a.pointer("/status/sync/revision").is_some()
    })
    .await;
    assert_eq!(done["status"]["operationState"]["phase"], "Succeeded");
    assert_eq!(
        done["status"]["operationState"]["syncResult"]["revision"],
        main_sha.as_str()
    );
    assert_eq!(done["status"]["sync"]["revision"], main_sha.as_str());
    assert_eq!(done["status"]["health"]["status"], "Healthy");
    assert!(done.get("operation").is_none(), "operation cleared: {done}");
    assert!(
        done["status"]["reconciledAt"].as_str().unwrap()
            >= done["status"]["operationState"]["finishedAt"]
                .as_str()
                .unwrap()
    );
    assert_eq!(
        done["status"]["operationState"]["operation"]["initiatedBy"]["username"],
        "alice"
    );

    // Multi-source: revisions index by index (a chart keeps its version).
    let multi = json!({"project": "default", "destination": {"namespace": "dev"}, "sources": [
        {"repoURL": "https://charts.example.com", "chart": "app", "targetRevision": "1.2.3"},
        {"repoURL": url, "targetRevision": "main", "path": "env/dev"}]});
    sb.create("admin", &app("multi", multi, json!({})))
        .await
        .unwrap();
    let op = json!({"operation": {"sync": {"revisions": ["1.2.4", main_sha]}}});
    sb.request(
        "admin",
        "PATCH",
        "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/multi",
        Some(&op),
    )
    .await
    .unwrap();
    let done = wait_for(&sb, "argocd", "multi", |a| {
        a.pointer("/status/sync/revisions").is_some()
    })
    .await;
    assert_eq!(
        done["status"]["sync"]["revisions"],
        json!(["1.2.4", main_sha])
    );

    // Injected failure, Degraded health, and an unresolvable revision.
    sb.create(
        "admin",
        &app(
            "broken",
            single.clone(),
            json!({"sandbox.promote.dev/sync": "fail"}),
        ),
    )
    .await
    .unwrap();
    sb.request(
        "admin",
        "PATCH",
        "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/broken",
        Some(&json!({"operation": {"sync": {}}})),
    )
    .await
    .unwrap();
    let done = wait_for(&sb, "argocd", "broken", |a| {
        a.pointer("/status/operationState/phase")
            .and_then(Value::as_str)
            == Some("Failed")
    })
    .await;
    assert!(
        done["status"]["operationState"]["message"]
            .as_str()
            .unwrap()
            .contains("injected")
    );
    sb.create(
        "admin",
        &app(
            "sick",
            single.clone(),
            json!({"sandbox.promote.dev/health": "Degraded"}),
        ),
    )
    .await
    .unwrap();
    sb.request(
        "admin",
        "PATCH",
        "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/sick",
        Some(&json!({"operation": {"sync": {}}})),
    )
    .await
    .unwrap();
    let done = wait_for(&sb, "argocd", "sick", |a| {
        a.pointer("/status/health/status").is_some()
    })
    .await;
    assert_eq!(done["status"]["health"]["status"], "Degraded");
    sb.create("admin", &app("lost", single, json!({})))
        .await
        .unwrap();
    sb.request(
        "admin",
        "PATCH",
        "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/lost",
        Some(&json!({"operation": {"sync": {"revision": "no-such-branch"}}})),
    )
    .await
    .unwrap();
    let done = wait_for(&sb, "argocd", "lost", |a| {
        a.pointer("/status/operationState/phase")
            .and_then(Value::as_str)
            == Some("Failed")
    })
    .await;
    assert!(
        done["status"]["operationState"]["message"]
            .as_str()
            .unwrap()
            .contains("unable to resolve 'no-such-branch' to a commit SHA"),
        "{done}"
    );
    sb.stop().await;
}

/// Validating webhooks run at once, as kube-apiserver runs them: two hooks that each wait for the
/// other to arrive both allow only if they are called concurrently.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn validating_webhooks_are_called_concurrently() {
    use axum::routing::post;
    let tmp = tempfile::tempdir().unwrap();
    let pki = promote_sandbox::tls::generate("barrier-ca", &["barrier.hooks.svc".into()]).unwrap();
    let arrived = Arc::new(AtomicUsize::new(0));
    let handler = {
        let arrived = arrived.clone();
        move |axum::Json(review): axum::Json<Value>| {
            let arrived = arrived.clone();
            async move {
                arrived.fetch_add(1, Ordering::SeqCst);
                let mut together = false;
                for _ in 0..50 {
                    if arrived.load(Ordering::SeqCst) >= 2 {
                        together = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let uid = review["request"]["uid"].clone();
                let response = if together {
                    json!({"uid": uid, "allowed": true})
                } else {
                    json!({"uid": uid, "allowed": false, "status": {"code": 403, "message": "validating webhooks were called one at a time"}})
                };
                axum::Json(
                    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}),
                )
            }
        }
    };
    let app = axum::Router::new().route("/barrier", post(handler));
    let addr = serve_tls(&pki, app);
    let sb = start(tmp.path(), &[("barrier.hooks", addr)]).await;
    let kc = sb.kubeconfig_path();
    let ca = base64::engine::general_purpose::STANDARD.encode(&pki.ca_pem);
    let hook = |n: &str| {
        format!(
            "- name: {n}.barrier.example.com\n  admissionReviewVersions: [v1]\n  sideEffects: None\n  timeoutSeconds: 5\n  clientConfig: {{service: {{name: barrier, namespace: hooks, path: /barrier}}, caBundle: {ca}}}\n  rules: [{{operations: [CREATE], apiGroups: [kargo.akuity.io], apiVersions: [\"*\"], resources: [stages]}}]\n"
        )
    };
    let cfg = format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {{name: barrier}}\nwebhooks:\n{}{}",
        hook("one"),
        hook("two")
    );
    let (good, _, err) = k(&kc, &["apply", "-f", "-"], Some(&cfg)).await;
    assert!(good, "{err}");
    let stage = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {name: s, namespace: default}\nspec:\n  requestedFreight:\n  - origin: {kind: Warehouse, name: w}\n    sources: {direct: true}\n";
    let (good, _, err) = k(&kc, &["create", "-f", "-"], Some(stage)).await;
    assert!(good, "{err}");
    assert_eq!(arrived.load(Ordering::SeqCst), 2);
    sb.stop().await;
}
