//! `kubectl promote` against a cluster (the sandbox), end to end: real plugin binary, real Git
//! repository, the Argo CD simulator, real `kubectl` invoking the plugin, and (in the first story)
//! the real webhook installed from `manifests/`.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use promote_tests::{bare_repo, bin, git, reserved_port, workspace_root};
use serde_json::Value;

use crate::backend::{Backend, Kind, both};
use crate::sandbox::{k, ok};
use crate::webhook::{Webhook, install_webhook_at, sh};

const STAGES: &[&str] = &["dev", "test", "prod"];

pub(crate) fn stage_yaml(name: &str, url: &str) -> String {
    let sources = match name {
        "dev" => "{ direct: true }".to_owned(),
        "test" => "{ stages: [dev] }".to_owned(),
        _ => "{ stages: [test] }".to_owned(),
    };
    format!(
        r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {{ name: {name}, namespace: demo }}
spec:
  requestedFreight:
    - origin: {{ kind: Warehouse, name: web }}
      sources: {sources}
  promotionTemplate:
    spec:
      vars:
        - {{ name: repo, value: "{url}" }}
      steps:
        - uses: git-clone
          config:
            repoURL: ${{{{ vars.repo }}}}
            checkout: [{{ branch: main, path: ./src }}]
        - uses: kustomize-set-image
          as: image
          config: {{ path: ./src/env/{name}, images: [{{ image: nginx, tag: "${{{{ imageFrom('nginx').Tag }}}}" }}] }}
        - uses: git-commit
          as: commit
          config: {{ path: ./src, message: "${{{{ outputs.image.commitMessage }}}}" }}
        - uses: git-push
          as: push
          config: {{ path: ./src }}
        - uses: argocd-update
          config:
            apps:
              - name: demo-{name}
                sources:
                  - repoURL: ${{{{ vars.repo }}}}
                    desiredRevision: ${{{{ outputs.push.commit }}}}
"#
    )
}

fn app_yaml(stage: &str, url: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: demo-{stage}\n  namespace: argocd\n  annotations:\n    kargo.akuity.io/authorized-stage: \"demo:{stage}\"\nspec:\n  project: default\n  destination: {{ server: https://kubernetes.default.svc, namespace: demo-{stage} }}\n  source: {{ repoURL: \"{url}\", path: env/{stage}, targetRevision: main }}\n"
    )
}

const PROJECT: &str = r#"
apiVersion: v1
kind: Namespace
metadata: { name: demo, labels: { kargo.akuity.io/project: "true" } }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: alice-promoter, namespace: demo }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: promote-promoter }
subjects: [{ kind: User, name: alice, apiGroup: rbac.authorization.k8s.io }]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: promoters-sync, namespace: argocd }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: promote-argocd-syncer }
subjects:
  - { kind: User, name: alice, apiGroup: rbac.authorization.k8s.io }
  - { kind: User, name: bob, apiGroup: rbac.authorization.k8s.io }
---
# bob may read and write Promotions (RBAC) but has no promote verb.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: promotion-writer, namespace: demo }
rules:
  - apiGroups: ["kargo.akuity.io"]
    resources: ["warehouses", "freights", "stages", "promotions", "promotiontasks"]
    verbs: ["get", "list", "watch", "create", "patch"]
  - apiGroups: ["kargo.akuity.io"]
    resources: ["promotions/status", "stages/status", "freights/status"]
    verbs: ["get", "patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: bob-writer, namespace: demo }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: promotion-writer }
subjects: [{ kind: User, name: bob, apiGroup: rbac.authorization.k8s.io }]
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: { name: web, namespace: demo }
spec:
  subscriptions:
    - image: { repoURL: nginx }
"#;

/// A sandbox with a dev → test → prod project, a GitOps repository and Argo CD Applications.
pub(crate) struct World {
    pub(crate) tmp: tempfile::TempDir,
    backend: Backend,
    pub(crate) kc: PathBuf,
    repo: PathBuf,
    pub(crate) hook: Option<Webhook>,
}

impl World {
    /// On the sandbox.
    pub(crate) async fn new(webhook: bool) -> World {
        World::on(Kind::Sandbox, webhook).await.unwrap()
    }

    /// On either backend; `None` when it is the real one and the real tier is not enabled.
    pub(crate) async fn on(kind: Kind, webhook: bool) -> Option<World> {
        let tmp = tempfile::tempdir().unwrap();
        let mut files = vec![
            ("base/kustomization.yaml".to_owned(), "resources:\n- deployment.yaml\n".to_owned()),
            ("base/deployment.yaml".to_owned(), "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.24.0\n".to_owned()),
        ];
        for s in STAGES {
            files.push((
                format!("env/{s}/kustomization.yaml"),
                "# overlay\nresources:\n- ../../base\nimages:\n- name: nginx\n  newTag: \"1.24.0\" # promoted\n".to_owned(),
            ));
        }
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let repo = bare_repo(tmp.path(), "gitops", &refs);
        let url = format!("file://{}", repo.display());
        let port = reserved_port();
        let endpoints = if webhook {
            vec![("promote-webhook.promote-system", port)]
        } else {
            vec![]
        };
        let backend = Backend::start(kind, &tmp.path().join("sb"), &endpoints).await?;
        let kc = backend.kubeconfig();
        let hook = if webhook {
            Some(install_webhook_at(&kc, tmp.path(), port).await.0)
        } else {
            let roles = workspace_root().join("manifests/rbac/roles.yaml");
            ok(&kc, &["apply", "-f", &roles.display().to_string()]).await;
            None
        };
        let mut docs = vec![PROJECT.to_owned()];
        for s in STAGES {
            docs.push(stage_yaml(s, &url));
            docs.push(app_yaml(s, &url));
        }
        let (good, out, err) = k(&kc, &["apply", "-f", "-"], Some(&docs.join("\n---\n"))).await;
        assert!(good, "{err}\n{out}");
        Some(World {
            tmp,
            backend,
            kc,
            repo,
            hook,
        })
    }

    fn command(&self, user: &str, args: &[&str]) -> Command {
        let mut c = Command::new(bin("kubectl-promote").unwrap());
        c.env("KUBECONFIG", &self.kc)
            .env("PROMOTE_CACHE_DIR", self.tmp.path().join("cache"))
            .env("PROMOTE_REPORT_REQUESTS", "1")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .args(["--context", user, "-n", "demo", "-q"])
            .args(args);
        c
    }

    /// Run the plugin as `user`; (exit code, stdout, stderr).
    pub(crate) async fn plugin(&self, user: &str, args: &[&str]) -> (i32, String, String) {
        self.plugin_env(user, args, &[]).await
    }

    async fn plugin_env(
        &self,
        user: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (i32, String, String) {
        let mut c = self.command(user, args);
        c.envs(env.iter().copied());
        let out: Output = tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub(crate) fn spawn(&self, user: &str, args: &[&str], env: &[(&str, &str)]) -> Child {
        let mut c = self.command(user, args);
        c.envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().unwrap()
    }

    /// An object as the admin reads it (`Null` when there is none).
    async fn get(&self, plural: &str, ns: &str, name: &str) -> Value {
        let group = if plural == "applications" {
            "argoproj.io"
        } else {
            "kargo.akuity.io"
        };
        self.backend
            .get(&format!("{plural}.{group}"), ns, name)
            .await
            .unwrap_or(Value::Null)
    }

    async fn promotions(&self) -> Vec<Value> {
        self.backend
            .list("promotions.kargo.akuity.io", "demo")
            .await
    }

    /// The GitOps repository's URL.
    pub(crate) fn repo_url(&self) -> String {
        format!("file://{}", self.repo.display())
    }

    fn head(&self) -> String {
        git(&self.repo, &["rev-parse", "main"]).trim().to_owned()
    }

    fn overlay(&self, stage: &str) -> String {
        git(
            &self.repo,
            &["show", &format!("main:env/{stage}/kustomization.yaml")],
        )
    }

    /// `kubectl promote freight create` for nginx:`tag`, as admin, with `extra` flags.
    async fn create_freight(&self, tag: &str, extra: &[&str]) -> (i32, String, String) {
        let image = format!("nginx:{tag}");
        let mut args = vec!["freight", "create", "--warehouse", "web", "--image", &image];
        args.extend_from_slice(extra);
        self.plugin("admin", &args).await
    }

    pub(crate) async fn freight(&self, tag: &str, alias: &str) -> String {
        let (code, out, err) = self
            .create_freight(tag, &["--alias", alias, "-o", "name"])
            .await;
        assert_eq!(code, 0, "{err}");
        out.trim()
            .trim_start_matches("freight.kargo.akuity.io/")
            .to_owned()
    }

    async fn annotate(&self, app: &str, annotation: &str) {
        ok(
            &self.kc,
            &[
                "-n",
                "argocd",
                "annotate",
                "--overwrite",
                "applications",
                app,
                annotation,
            ],
        )
        .await;
    }

    /// Wait until `pred` holds for the Application.
    async fn wait_app(&self, app: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.backend.wait_app("argocd", app, pred).await
    }
}

fn requests(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("api requests: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Wait until a Promotion for `stage` is Running (and return its name).
async fn running_promotion(w: &World, stage: &str, app: &str) -> String {
    let app_state = w
        .wait_app(app, |a| {
            a.pointer("/status/operationState/phase")
                .and_then(Value::as_str)
                == Some("Running")
        })
        .await;
    let name = app_state
        .pointer("/status/operationState/operation/info")
        .and_then(Value::as_array)
        .and_then(|i| i.iter().find(|e| e["name"] == "kargo.akuity.io/promotion"))
        .and_then(|e| e["value"].as_str())
        .unwrap()
        .to_owned();
    assert!(name.starts_with(&format!("{stage}.")), "{name}");
    name
}

both!(dev_test_prod_with_the_webhook_installed);
async fn dev_test_prod_with_the_webhook_installed(kind: Kind) {
    let Some(w) = World::on(kind, true).await else {
        return;
    };
    let v1 = w.freight("1.25.0", "v1").await;
    let v2 = w.freight("1.26.0", "v2").await;
    assert_eq!(v1.len(), 40);
    // Freight without an alias gets a generated one: by the plugin, and by the webhook for
    // Freight created any other way.
    let (code, out, err) = w.create_freight("1.29.0", &["-o", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let made: Value = serde_json::from_str(&out).unwrap();
    let alias = made["alias"].as_str().unwrap();
    assert!(
        alias.contains('-') && made["metadata"]["labels"]["kargo.akuity.io/alias"] == alias,
        "{made}"
    );
    let bare = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: { name: x, namespace: demo }\norigin: { kind: Warehouse, name: web }\nimages: [{ repoURL: nginx, tag: 1.30.0 }]\n";
    let (good, out, err) = k(&w.kc, &["create", "-f", "-", "-o", "json"], Some(bare)).await;
    assert!(good, "{err}");
    let made: Value = serde_json::from_str(&out).unwrap();
    let id = made["metadata"]["name"].as_str().unwrap();
    assert_eq!(
        made["alias"],
        promote_api::naming::freight_alias(id, 0).as_str(),
        "{made}"
    );

    // Not available to test before dev verified it: refused, nothing written.
    let (code, _, err) = w
        .plugin("alice", &["stage/test", "--freight-alias", "v1"])
        .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("is not available to Stage \"test\"") && err.contains("dev"),
        "{err}"
    );
    assert!(w.promotions().await.is_empty());

    // dev: the whole flow, as alice.
    let (code, out, err) = w
        .plugin("alice", &["stage/dev", "--freight", &v1[..8], "-o", "json"])
        .await;
    assert_eq!(code, 0, "{err}\n{out}");
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["phase"], "Succeeded");
    let pushed = summary["commits"][0]["commit"].as_str().unwrap().to_owned();
    assert_eq!(pushed, w.head());
    assert!(
        w.overlay("dev").contains("newTag: \"1.25.0\" # promoted"),
        "{}",
        w.overlay("dev")
    );
    let n = requests(&err);
    // 20, plus the two Events Kargo records on a Promotion (created, finished).
    assert!(
        n <= 22,
        "one promotion made {n} API requests (target: at most 22):\n{err}"
    );
    let promo_name = summary["promotion"].as_str().unwrap();
    let promo = w.get("promotions", "demo", promo_name).await;
    assert_eq!(promo["status"]["phase"], "Succeeded", "{promo}");
    assert_eq!(
        promo["metadata"]["annotations"]["kargo.akuity.io/create-actor"],
        "kubernetes:alice"
    );
    assert_eq!(
        promo["status"]["stepExecutionMetadata"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        promo["status"]["state"]["push"]["commit"],
        pushed.as_str(),
        "{promo:#}"
    );
    let stage = w.get("stages", "demo", "dev").await;
    assert_eq!(stage["status"]["lastPromotion"]["name"], promo_name);
    assert!(
        stage["status"]
            .get("currentPromotion")
            .is_none_or(Value::is_null),
        "{stage}"
    );
    assert_eq!(stage["status"]["health"]["status"], "Healthy");
    assert_eq!(
        stage["status"]["freightHistory"][0]["items"]["Warehouse/web"]["name"],
        v1.as_str(),
        "{stage:#}"
    );
    let freight = w.get("freights", "demo", &v1).await;
    assert!(
        freight["status"]["verifiedIn"].get("dev").is_some(),
        "{freight}"
    );
    let app = w.get("applications", "argocd", "demo-dev").await;
    assert_eq!(app["status"]["sync"]["revision"], pushed.as_str());
    assert_eq!(
        app["status"]["operationState"]["operation"]["initiatedBy"]["username"],
        "alice"
    );

    // test, through the real kubectl (plugin on PATH).
    let plugin_dir = bin("kubectl-promote")
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        plugin_dir.display(),
        std::env::var("PATH").unwrap()
    );
    let kc = w.kc.display().to_string();
    let cache = w.tmp.path().join("cache").display().to_string();
    let (good, out, err) = sh(
        w.tmp.path(),
        "kubectl promote --context alice -n demo stage/test --freight-alias v1 -q",
        &[
            ("PATH", path.as_str()),
            ("KUBECONFIG", kc.as_str()),
            ("PROMOTE_CACHE_DIR", cache.as_str()),
        ],
    );
    assert!(good, "{err}\n{out}");
    assert!(out.contains("PHASE      Succeeded"), "{out}");
    let (good, out, err) = sh(
        w.tmp.path(),
        "kubectl promote --context alice -n demo get stages",
        &[("PATH", path.as_str()), ("KUBECONFIG", kc.as_str())],
    );
    assert!(good, "{err}");
    assert!(
        out.starts_with("NAME   SHARD   CURRENT FREIGHT   HEALTH    LAST PROMOTION"),
        "{out}"
    );
    let dev = out.lines().find(|l| l.starts_with("dev ")).unwrap();
    assert!(
        dev.contains(&v1[..7]) && dev.contains("Healthy") && dev.contains("Succeeded"),
        "{out}"
    );
    // Plain kubectl, through Kargo's printer columns: the Freight, Ready, and why.
    let (good, out, err) = k(
        &w.kc,
        &["--context", "alice", "-n", "demo", "get", "stages"],
        None,
    )
    .await;
    assert!(good, "{err}");
    assert!(
        out.starts_with("NAME   SHARD   CURRENT FREIGHT")
            && out.contains("READY")
            && out.contains("STATUS"),
        "{out}"
    );
    let dev = out.lines().find(|l| l.starts_with("dev ")).unwrap();
    assert!(
        dev.contains(&v1)
            && dev.contains("Healthy")
            && dev.contains("True")
            && dev.contains("Freight has been verified"),
        "{out}"
    );

    // Completion through kubectl's plugin protocol: Stage names come from the cluster.
    let out = Command::new(bin("kubectl_complete-promote").unwrap())
        .env("KUBECONFIG", &w.kc)
        .args(["__complete", "--context", "alice", "-n", "demo", "stage/"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text, "stage/dev\nstage/prod\nstage/test\n:4\n");
    // Generated from the clap definitions: each argument completes what it names.
    let complete = |words: &[&str]| {
        let out = Command::new(bin("kubectl_complete-promote").unwrap())
            .env("KUBECONFIG", &w.kc)
            .args(["__complete", "--context", "alice", "-n", "demo"])
            .args(words)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(complete(&["get", "stages", ""]), "dev\nprod\ntest\n:4\n");
    assert_eq!(complete(&["approve", "--stage", "p"]), "prod\n:4\n");
    assert_eq!(complete(&["get", "freight", "v1"]), "v1\n:4\n");
    // Finished Promotions cannot be aborted or resumed: none is offered.
    assert_eq!(complete(&["abort", ""]), ":4\n");
    // -n takes a project, never a subcommand.
    assert!(!complete(&["-n", ""]).contains("get"));
    let (code, out, _) = w.plugin("alice", &["completion", "bash"]).await;
    assert!(code == 0 && out.contains("kubectl-promote"), "{out}");

    // bob may write Promotions but not promote: the webhook refuses, nothing runs.
    let before = w.promotions().await.len();
    let (code, _, err) = w
        .plugin("bob", &["stage/prod", "--freight-alias", "v1"])
        .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("denied the request") && err.contains("promote"),
        "{err}"
    );
    assert_eq!(w.promotions().await.len(), before);

    // prod as alice, then v2 to dev and on to every Stage downstream of dev.
    let (code, _, err) = w
        .plugin("alice", &["stage/prod", "--freight-alias", "v1"])
        .await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = w
        .plugin("alice", &["stage/dev", "--freight-alias", "v2"])
        .await;
    assert_eq!(code, 0, "{err}");
    // qa takes Freight from dev too, but only once test verified it as well: skipped, said.
    let qa = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: { name: qa, namespace: demo }\nspec:\n  requestedFreight:\n    - origin: { kind: Warehouse, name: web }\n      sources: { stages: [dev, test], availabilityStrategy: All }\n  promotionTemplate: { spec: { steps: [{ uses: argocd-wait, config: { apps: [{ name: demo-test }] } }] } }\n";
    let (good, _, err) = k(&w.kc, &["apply", "-f", "-"], Some(qa)).await;
    assert!(good, "{err}");
    let (code, out, err) = w
        .plugin(
            "alice",
            &[
                "--downstream-from",
                "stage/dev",
                "--freight-alias",
                "v2",
                "-o",
                "name",
            ],
        )
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.trim().starts_with("promotion/test."), "{out}");
    assert!(err.contains("skipping Stage qa: Freight"), "{err}");
    assert!(w.overlay("test").contains("1.26.0") && w.overlay("prod").contains("1.25.0"));
    let freight = w.get("freights", "demo", &v1).await;
    assert!(
        freight["status"]["currentlyIn"].get("dev").is_none(),
        "v1 left dev: {freight}"
    );
    assert!(
        freight["status"]["currentlyIn"].get("prod").is_some(),
        "{freight}"
    );

    // history and get.
    let (code, out, err) = w.plugin("alice", &["history", "stage/dev"]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[1].starts_with("*") && lines[1].contains(&v2[..7]) && lines[2].contains(&v1[..7]),
        "{out}"
    );
    let (code, out, _) = w.plugin("alice", &["get", "freight", "-o", "wide"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("v1") && out.contains("Warehouse/web") && out.contains("VERIFIED IN"),
        "{out}"
    );
    assert!(
        out.contains("ARTIFACTS") && out.contains("nginx:1.25.0"),
        "{out}"
    );
    // -l selects by label, as kubectl does.
    let (code, out, _) = w
        .plugin(
            "alice",
            &[
                "get",
                "freight",
                "-l",
                "kargo.akuity.io/alias=v1",
                "--no-headers",
            ],
        )
        .await;
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("v1"), "{out}");
    let (code, out, _) = w
        .plugin(
            "alice",
            &["get", "promotions", "--no-headers", "-o", "wide"],
        )
        .await;
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 5, "{out}");
    assert!(
        out.lines()
            .all(|l| l.contains("Succeeded") && l.contains("alice")),
        "{out}"
    );
    let (code, out, _) = w.plugin("admin", &["get", "stages", "-A"]).await;
    assert_eq!(code, 0);
    assert!(
        out.starts_with("NAMESPACE   NAME   SHARD") && out.contains("demo        prod"),
        "{out}"
    );
    // -o jsonpath= prints what real kubectl prints for the same objects, byte for byte:
    // lists and single objects, ranges, filters, escaped keys, compact JSON, missing keys.
    for (what, template) in [
        ("stages", "{.items[*].metadata.name}"),
        (
            "stages",
            r#"{range .items[*]}{.metadata.name}{"\t"}{.status.freightSummary}{"\n"}{end}"#,
        ),
        (
            "stages",
            r#"{.items[*].status.conditions[?(@.type=="Ready")].status}"#,
        ),
        ("stages", "{.items[0].metadata}"),
        (
            "stages",
            "{.kind} {.apiVersion} {.metadata} {.items[*].status.nothing}",
        ),
        (
            "stages",
            "{.items[0].metadata.generation} {.items[-1:].spec.requestedFreight}",
        ),
        (
            "stage/prod",
            "{.metadata.name}: {.status.lastPromotion.name} {.status.health}",
        ),
        (
            "stage/prod",
            r#"{.metadata.labels} {.metadata.annotations['kargo.akuity.io/x']}"#,
        ),
        (
            "freight",
            r#"{range .items[?(@.alias=="v1")]}{.alias} {.origin} {.images[*].tag}{end}"#,
        ),
        (
            "freight",
            "{.items[*].metadata.labels.kargo\\.akuity\\.io/alias}",
        ),
        ("promotions", "{.items[*].status.phase}"),
    ] {
        let format = format!("jsonpath={template}");
        let (good, want, err) = k(
            &w.kc,
            &[
                "--context",
                "alice",
                "-n",
                "demo",
                "get",
                what,
                "-o",
                &format,
            ],
            None,
        )
        .await;
        assert!(good, "kubectl -o {format}: {err}");
        let (code, got, err) = w.plugin("alice", &["get", what, "-o", &format]).await;
        assert_eq!(code, 0, "{err}");
        assert_eq!(got, want, "get {what} -o {format}");
    }
    let (code, _, err) = w
        .plugin("alice", &["get", "stages", "-o", "jsonpath={.items[x]}"])
        .await;
    assert!(
        code != 0 && err.contains("error parsing jsonpath {.items[x]}: invalid array index x"),
        "{err}"
    );
    let (code, out, err) = w
        .plugin(
            "alice",
            &[
                "approve",
                "--freight",
                "v2",
                "--stage",
                "prod",
                "--dry-run",
                "-o",
                "json",
            ],
        )
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        serde_json::from_str::<Value>(&out).unwrap()["status"]["approvedFor"]["prod"]["approvedAt"]
            .is_string(),
        "{out}"
    );
    assert!(
        w.get("freights", "demo", &v2).await["status"]
            .get("approvedFor")
            .is_none_or(|a| a.get("prod").is_none())
    );
    let (code, out, _) = w
        .plugin("alice", &["get", "stage", "dev", "-o", "json"])
        .await;
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["kind"],
        "Stage"
    );

    // A dry run writes nothing and shows the Promotion it would create.
    let before = w.promotions().await.len();
    let head = w.head();
    let (code, out, err) = w
        .plugin(
            "alice",
            &[
                "stage/prod",
                "--freight-alias",
                "v2",
                "--dry-run",
                "-o",
                "json",
            ],
        )
        .await;
    assert_eq!(code, 0, "{err}");
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["object"]["kind"], "Promotion");
    assert!(
        s["diff"]
            .as_str()
            .unwrap()
            .contains("+  newTag: \"1.26.0\""),
        "{out}"
    );
    assert_eq!((w.promotions().await.len(), w.head()), (before, head));
}

both!(queueing_failures_abort_and_resume);
async fn queueing_failures_abort_and_resume(kind: Kind) {
    let Some(w) = World::on(kind, false).await else {
        return;
    };
    let v1 = w.freight("1.25.0", "v1").await;
    w.freight("1.26.0", "v2").await;
    w.freight("1.27.0", "v3").await;

    // Two promotions of one Stage at once: one runs, the other is refused (never both).
    w.annotate("demo-dev", "sandbox.promote.dev/sync-delay=1500ms")
        .await;
    let a = w.spawn("alice", &["stage/dev", "--freight-alias", "v1"], &[]);
    let b = w.spawn("alice", &["stage/dev", "--freight-alias", "v2"], &[]);
    let (a, b) = tokio::task::spawn_blocking(move || {
        (a.wait_with_output().unwrap(), b.wait_with_output().unwrap())
    })
    .await
    .unwrap();
    let codes = [a.status.code(), b.status.code()];
    let errs = format!(
        "{}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    assert!(
        codes.contains(&Some(0)) && codes.contains(&Some(1)),
        "{codes:?}\n{errs}"
    );
    assert!(errs.contains("is busy: Promotion \"dev."), "{errs}");
    // With --wait both run, one after the other.
    let a = w.spawn(
        "alice",
        &["stage/dev", "--freight-alias", "v1", "--wait"],
        &[],
    );
    let b = w.spawn(
        "alice",
        &["stage/dev", "--freight-alias", "v2", "--wait"],
        &[],
    );
    let (a, b) = tokio::task::spawn_blocking(move || {
        (a.wait_with_output().unwrap(), b.wait_with_output().unwrap())
    })
    .await
    .unwrap();
    assert_eq!(
        (a.status.code(), b.status.code()),
        (Some(0), Some(0)),
        "{}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let runs: Vec<Value> = w
        .promotions()
        .await
        .into_iter()
        .filter(|p| p["status"]["phase"] == "Succeeded")
        .collect();
    let mut windows: Vec<(String, String)> = runs
        .iter()
        .map(|p| {
            (
                p["status"]["startedAt"].as_str().unwrap().to_owned(),
                p["status"]["finishedAt"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    windows.sort();
    assert!(
        windows.windows(2).all(|p| p[0].1 <= p[1].0),
        "promotions of one Stage overlapped: {windows:?}"
    );
    w.annotate("demo-dev", "sandbox.promote.dev/sync-delay=0s")
        .await;

    // A recorded push is checked against the remote before resume trusts it: a record whose
    // commit is not on the branch (rewritten; with the webhook installed nobody but the runner
    // could even write it) fails the resume instead of syncing an unknown commit.
    w.annotate("demo-dev", "sandbox.promote.dev/sync=hang")
        .await;
    let ttl = [("PROMOTE_LEASE_TTL", "2")];
    let mut child = w.spawn("alice", &["stage/dev", "--freight-alias", "v2"], &ttl);
    let name = running_promotion(&w, "dev", "demo-dev").await;
    child.kill().unwrap();
    child.wait().unwrap();
    let forged = "0123456789abcdef0123456789abcdef01234567";
    let kc = w.kc.display().to_string();
    let (good, _, err) = crate::sandbox::k(
        &w.kc,
        &[
            "--kubeconfig",
            &kc,
            "-n",
            "demo",
            "patch",
            "promotion",
            &name,
            "--subresource=status",
            "--type",
            "merge",
            "-p",
            &serde_json::json!({ "status": { "state": { "push": { "commit": forged } } } })
                .to_string(),
        ],
        None,
    )
    .await;
    assert!(good, "{err}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let (code, _, err) = loop {
        let r = w.plugin("alice", &["resume", &name]).await;
        if !r.2.contains("is still being run by") || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "the push recorded on the Promotion (commit {forged} on branch \"main\""
        )) && err.contains("is not on that branch"),
        "{err}"
    );
    assert_eq!(
        w.get("promotions", "demo", &name).await["status"]["phase"],
        "Errored"
    );
    w.annotate("demo-dev", "sandbox.promote.dev/sync=run").await;
    w.wait_app("demo-dev", |a| {
        a.pointer("/status/operationState/phase")
            .and_then(Value::as_str)
            != Some("Running")
    })
    .await;

    // Killed while Argo CD syncs; resumed without a second push.
    w.annotate("demo-dev", "sandbox.promote.dev/sync=hang")
        .await;
    // A lease long enough that the checks below run well inside it, even on a slow machine.
    let long_ttl = [("PROMOTE_LEASE_TTL", "6")];
    let mut child = w.spawn("alice", &["stage/dev", "--freight-alias", "v3"], &long_ttl);
    let name = running_promotion(&w, "dev", "demo-dev").await;
    let pushed = w.head();
    child.kill().unwrap();
    child.wait().unwrap();
    let p = w.get("promotions", "demo", &name).await;
    assert_eq!(p["status"]["phase"], "Running");
    assert_eq!(p["status"]["state"]["push"]["commit"], pushed.as_str());
    let (code, _, err) = w.plugin("alice", &["resume", &name]).await;
    assert_eq!(code, 1);
    assert!(err.contains("is still being run by alice@"), "{err}");
    let (_, out, _) = w.plugin("alice", &["get", "promotions", &name]).await;
    assert!(out.contains("   Running   "), "{out}");
    // Nobody else may take the Stage while the lease holds.
    let (code, _, err) = w
        .plugin("alice", &["stage/dev", "--freight-alias", "v1"])
        .await;
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("is busy: Promotion \"{name}\"")),
        "{err}"
    );
    // Wait for the lease to run out: the Promotion then shows as stale.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, out, _) = w.plugin("alice", &["get", "promotions", &name]).await;
        if out.contains("Running (stale)") {
            break;
        }
        assert!(Instant::now() < deadline, "the lease never expired:\n{out}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    w.annotate("demo-dev", "sandbox.promote.dev/sync=run").await;
    let (code, out, err) = w
        .plugin("alice", &["resume", &name, "--dry-run", "-o", "json"])
        .await;
    assert_eq!(code, 0, "{err}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    let plan: Vec<(&str, &str)> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["uses"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        plan,
        [
            ("git-clone", "Pending"),
            ("kustomize-set-image", "Pending"),
            ("git-commit", "Pending"),
            ("git-push", "Skipped"),
            ("argocd-update", "Pending")
        ]
    );
    assert_eq!(
        w.get("promotions", "demo", &name).await["status"]["phase"],
        "Running",
        "a dry run changes nothing"
    );
    let (code, out, err) = w.plugin("alice", &["resume", &name, "-o", "json"]).await;
    assert_eq!(code, 0, "{err}\n{out}");
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        s["steps"][3]["message"],
        "done before the interruption (recorded on the Promotion, and the commit is on the remote); not run again"
    );
    assert_eq!(w.head(), pushed, "resume pushed again");
    assert_eq!(
        w.get("promotions", "demo", &name).await["status"]["phase"],
        "Succeeded"
    );
    assert!(w.overlay("dev").contains("1.27.0"));

    // abort while Argo CD hangs: the runner notices at its next lease renewal.
    w.annotate("demo-dev", "sandbox.promote.dev/sync=hang")
        .await;
    let child = w.spawn("alice", &["stage/dev", "--freight-alias", "v1"], &ttl);
    let name = running_promotion(&w, "dev", "demo-dev").await;
    let (code, out, err) = w.plugin("alice", &["abort", &name]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Aborted"), "{out}");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Aborted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stage = w.get("stages", "demo", "dev").await;
    assert!(
        stage["status"]
            .get("currentPromotion")
            .is_none_or(Value::is_null),
        "{stage}"
    );

    // Ctrl-C: the Promotion is Aborted and the Stage freed.
    let child = w.spawn("alice", &["stage/dev", "--freight-alias", "v2"], &[]);
    let pid = child.id().to_string();
    // Wait for a new sync request (the previous op is still hanging: ours waits for it).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !w.promotions().await.iter().any(|p| {
        p["spec"]["freight"] != v1.as_str()
            && p["status"]["phase"] == "Running"
            && p["status"]["currentStep"].as_i64() == Some(4)
    }) {
        assert!(
            Instant::now() < deadline,
            "promotion never reached argocd-update"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stage = w.get("stages", "demo", "dev").await;
    assert!(
        stage["status"]
            .get("currentPromotion")
            .is_none_or(Value::is_null),
        "{stage}"
    );
    assert_eq!(
        stage["status"]["lastPromotion"]["status"]["phase"],
        "Aborted"
    );
    w.annotate("demo-dev", "sandbox.promote.dev/sync=run").await;

    // Argo CD failures are failures, with Argo CD's message.
    w.annotate("demo-test", "sandbox.promote.dev/sync=fail")
        .await;
    let (code, _, err) = w
        .plugin("alice", &["stage/test", "--freight-alias", "v1"])
        .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("promotion test.")
            && err.contains("Failed")
            && err.contains("injected by promote-sandbox"),
        "{err}"
    );
    let stage = w.get("stages", "demo", "test").await;
    assert_eq!(
        stage["status"]["lastPromotion"]["status"]["phase"],
        "Failed"
    );
    assert!(
        w.get("freights", "demo", &v1).await["status"]["verifiedIn"]
            .get("test")
            .is_none()
    );
    w.annotate("demo-test", "sandbox.promote.dev/sync=run")
        .await;
    w.annotate("demo-test", "sandbox.promote.dev/health=Degraded")
        .await;
    let (code, _, err) = w
        .plugin("alice", &["stage/test", "--freight-alias", "v1"])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("is Degraded after the sync"), "{err}");
    // Plain kubectl no longer shows the Stage Healthy; refresh records what the Application
    // shows now, and promote's own table reads it live.
    let health_of = |out: &str| {
        let header = out.lines().next().unwrap_or_default();
        let col = header.find("HEALTH").unwrap();
        let row = out
            .lines()
            .find(|l| l.starts_with("test "))
            .unwrap()
            .to_owned();
        row[col..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let (good, out, err) = k(
        &w.kc,
        &["--context", "alice", "-n", "demo", "get", "stages"],
        None,
    )
    .await;
    assert!(good, "{err}");
    assert_ne!(health_of(&out), "Healthy", "{out}");
    let (code, out, err) = w.plugin("alice", &["refresh", "stage/test"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "stage.kargo.akuity.io/test Unhealthy (1 Application(s) checked)\n"
    );
    let (good, out, err) = k(
        &w.kc,
        &["--context", "alice", "-n", "demo", "get", "stages"],
        None,
    )
    .await;
    assert!(good, "{err}");
    assert_eq!(health_of(&out), "Unhealthy", "{out}");
    let (code, out, err) = w.plugin("alice", &["get", "stages", "-o", "wide"]).await;
    assert_eq!(code, 0, "{err}");
    let row = out.lines().find(|l| l.starts_with("test ")).unwrap();
    assert!(row.contains("Unhealthy") && row.contains("(live)"), "{out}");

    // An Application not authorized for the Stage: refused with the annotation to add.
    w.annotate("demo-test", "sandbox.promote.dev/health=Healthy")
        .await;
    w.annotate("demo-test", "kargo.akuity.io/authorized-stage=demo:dev")
        .await;
    let (code, _, err) = w
        .plugin("alice", &["stage/test", "--freight-alias", "v1"])
        .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("does not permit mutation by Kargo Stage \"test\"")
            && err.contains("hint: annotate it"),
        "{err}"
    );

    // approve makes Freight available without upstream verification.
    let (code, _, err) = w
        .plugin("alice", &["stage/prod", "--freight-alias", "v3"])
        .await;
    assert_eq!(code, 1, "{err}");
    let (code, out, err) = w
        .plugin("alice", &["approve", "--freight", "v3", "--stage", "prod"])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("approved for Stage prod"), "{out}");
    let (code, _, err) = w
        .plugin("alice", &["stage/prod", "--freight-alias", "v3"])
        .await;
    assert_eq!(code, 0, "{err}");
}

both!(legacy_stage_and_multi_source_application_through_the_webhook);
async fn legacy_stage_and_multi_source_application_through_the_webhook(kind: Kind) {
    let Some(w) = World::on(kind, true).await else {
        return;
    };
    let url = format!("file://{}", w.repo.display());
    let extra = format!(
        r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {{ name: legacy, namespace: demo }}
spec:
  subscriptions:
    warehouse: web
  promotionMechanisms:
    gitRepoUpdates:
      - repoURL: "{url}"
        writeBranch: main
        kustomize:
          images:
            - image: nginx
              path: env/prod
    argoCDAppUpdates:
      - appName: legacy-app
        appNamespace: argocd
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: legacy-app
  namespace: argocd
  annotations: {{ kargo.akuity.io/authorized-stage: "demo:legacy" }}
spec:
  project: default
  destination: {{ server: https://kubernetes.default.svc, namespace: legacy }}
  source: {{ repoURL: "{url}", path: env/prod, targetRevision: main }}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {{ name: multi, namespace: demo }}
spec:
  requestedFreight:
    - origin: {{ kind: Warehouse, name: web }}
      sources: {{ direct: true }}
  promotionTemplate:
    spec:
      steps:
        - uses: git-clone
          config: {{ repoURL: "{url}", checkout: [{{ branch: main, path: ./src }}] }}
        - uses: kustomize-set-image
          as: image
          config: {{ path: ./src/env/test, images: [{{ image: nginx, tag: "${{{{ imageFrom('nginx').Tag }}}}" }}] }}
        - uses: git-commit
          config: {{ path: ./src, message: "${{{{ outputs.image.commitMessage }}}}" }}
        - uses: git-push
          as: push
          config: {{ path: ./src }}
        - uses: argocd-update
          config:
            apps:
              - name: multi-app
                sources:
                  - repoURL: "{url}"
                    desiredRevision: ${{{{ outputs.push.commit }}}}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: multi-app
  namespace: argocd
  annotations: {{ kargo.akuity.io/authorized-stage: "demo:multi" }}
spec:
  project: default
  destination: {{ server: https://kubernetes.default.svc, namespace: multi }}
  sources:
    - {{ repoURL: "https://charts.example.com", chart: podinfo, targetRevision: 6.5.0, helm: {{ releaseName: podinfo }} }}
    - {{ repoURL: "{url}", path: env/test, targetRevision: main }}
"#
    );
    let (good, out, err) = k(&w.kc, &["apply", "-f", "-"], Some(&extra)).await;
    assert!(good, "{err}\n{out}");
    w.freight("1.25.0", "v1").await;

    // The legacy Stage (Kargo's promotionMechanisms) promotes like a modern one.
    let (code, out, err) = w
        .plugin(
            "alice",
            &["stage/legacy", "--freight-alias", "v1", "-o", "json"],
        )
        .await;
    assert_eq!(code, 0, "{err}\n{out}");
    let pushed = w.head();
    assert!(
        w.overlay("prod").contains("newTag: \"1.25.0\" # promoted"),
        "{}",
        w.overlay("prod")
    );
    let app = w.get("applications", "argocd", "legacy-app").await;
    assert_eq!(
        app["status"]["sync"]["revision"],
        pushed.as_str(),
        "{app:#}"
    );
    let promo: Value = serde_json::from_str(&out).unwrap();
    let uses: Vec<&str> = promo["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["uses"].as_str().unwrap())
        .collect();
    assert_eq!(
        uses,
        [
            "git-clone",
            "kustomize-set-image",
            "git-commit",
            "git-push",
            "argocd-update"
        ]
    );
    assert_eq!(app["status"]["health"]["status"], "Healthy");

    // Multi-source: the revisions are index-aligned, the chart's slot keeps its version.
    let (code, out, err) = w
        .plugin(
            "alice",
            &["stage/multi", "--freight-alias", "v1", "-o", "json"],
        )
        .await;
    assert_eq!(code, 0, "{err}\n{out}");
    let pushed = w.head();
    let app = w.get("applications", "argocd", "multi-app").await;
    let state = &app["status"]["operationState"];
    assert_eq!(
        state["operation"]["sync"]["revisions"],
        serde_json::json!(["6.5.0", pushed]),
        "{app:#}"
    );
    assert_eq!(
        state["syncResult"]["revisions"],
        serde_json::json!(["6.5.0", pushed])
    );
    assert_eq!(
        app["spec"]["sources"][0]["helm"]["releaseName"], "podinfo",
        "other fields survive"
    );
    assert_eq!(app["status"]["health"]["status"], "Healthy");
}

both!(project_git_credentials_from_kargo_secrets);
async fn project_git_credentials_from_kargo_secrets(kind: Kind) {
    const CANARY: &str = "CANARY-kargo-secret-51f0";
    let Some(w) = World::on(kind, false).await else {
        return;
    };
    let http = promote_tests::git_http(w.repo.parent().unwrap(), Some(("promoter", CANARY)));
    let url = format!("http://127.0.0.1:{}/gitops.git", http.port);
    let stage = format!(
        r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {{ name: creds, namespace: demo }}
spec:
  requestedFreight:
    - origin: {{ kind: Warehouse, name: web }}
      sources: {{ direct: true }}
  promotionTemplate:
    spec:
      steps:
        - uses: git-clone
          config: {{ repoURL: "{url}", checkout: [{{ branch: main, path: ./src }}] }}
        - uses: kustomize-set-image
          as: image
          config: {{ path: ./src/env/dev, images: [{{ image: nginx, tag: "${{{{ imageFrom('nginx').Tag }}}}" }}] }}
        - uses: git-commit
          config: {{ path: ./src, message: "${{{{ outputs.image.commitMessage }}}}" }}
        - uses: git-push
          config: {{ path: ./src }}
"#
    );
    let (good, _, err) = k(&w.kc, &["apply", "-f", "-"], Some(&stage)).await;
    assert!(good, "{err}");
    w.freight("1.25.0", "v1").await;
    let (code, _, err) = w
        .plugin("alice", &["stage/creds", "--freight-alias", "v1"])
        .await;
    assert_eq!(code, 1, "no credentials yet: {err}");

    // The project's Kargo credential Secret (repoURL without .git: matched after normalization).
    let b64 = |s: &str| promote_tests::base64(s.as_bytes());
    let secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "gitops-creds", "namespace": "demo", "labels": {"kargo.akuity.io/cred-type": "git"}},
        "data": {"repoURL": b64(url.trim_end_matches(".git")), "username": b64("promoter"), "password": b64(CANARY)}});
    let (good, _, err) = k(&w.kc, &["apply", "-f", "-"], Some(&secret.to_string())).await;
    assert!(good, "{err}");
    // alice may not read Secrets: her own credentials (none) apply, quietly.
    let (code, _, err) = w
        .plugin("alice", &["stage/creds", "--freight-alias", "v1"])
        .await;
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("Secret"), "{err}");
    ok(
        &w.kc,
        &[
            "create",
            "rolebinding",
            "alice-git-creds",
            "-n",
            "demo",
            "--clusterrole=promote-credentials-reader",
            "--user=alice",
        ],
    )
    .await;
    for format in ["table", "json"] {
        let (code, out, err) = w
            .plugin(
                "alice",
                &["stage/creds", "--freight-alias", "v1", "-o", format],
            )
            .await;
        assert_eq!(code, 0, "{err}");
        assert!(
            !out.contains(CANARY) && !err.contains(CANARY),
            "credential leaked:\n{out}\n{err}"
        );
    }
    assert!(w.overlay("dev").contains("1.25.0"));
    for p in w.promotions().await {
        assert!(
            !p.to_string().contains(CANARY),
            "credential in a Promotion: {p}"
        );
    }

    // An SSH key from a credential Secret (the user's ssh options still apply).
    let (sshd, user_cmd) = promote_tests::sshd(&w.tmp.path().join("ssh")).unwrap();
    let key = std::fs::read_to_string(w.tmp.path().join("ssh/user_key")).unwrap();
    let ssh_url = format!("ssh://root@127.0.0.1:{}{}", sshd.port, w.repo.display());
    let own_ssh = user_cmd.split(" -i ").next().unwrap().to_owned()
        + " -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR";
    let ssh_stage = stage
        .replace("name: creds", "name: creds-ssh")
        .replace(&url, &ssh_url);
    let (good, _, err) = k(&w.kc, &["apply", "-f", "-"], Some(&ssh_stage)).await;
    assert!(good, "{err}");
    let tmpdir = w.tmp.path().join("plugin-tmp");
    std::fs::create_dir_all(&tmpdir).unwrap();
    let tmpdir_s = tmpdir.display().to_string();
    let env = [
        ("GIT_SSH_COMMAND", own_ssh.as_str()),
        ("TMPDIR", tmpdir_s.as_str()),
    ];
    let (code, _, err) = w
        .plugin_env("alice", &["stage/creds-ssh", "--freight-alias", "v1"], &env)
        .await;
    assert_eq!(code, 1, "no key yet: {err}");
    let secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "gitops-ssh", "namespace": "demo", "labels": {"kargo.akuity.io/cred-type": "git"}},
        "data": {"repoURL": b64(&ssh_url), "sshPrivateKey": b64(&key)}});
    let (good, _, err) = k(&w.kc, &["apply", "-f", "-"], Some(&secret.to_string())).await;
    assert!(good, "{err}");
    let (code, _, err) = w
        .plugin_env("alice", &["stage/creds-ssh", "--freight-alias", "v1"], &env)
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("PRIVATE KEY"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&tmpdir).unwrap().collect();
    assert!(
        left.is_empty(),
        "the private key file outlived the promotion: {left:?}"
    );
}

both!(kargos_quickstart_through_the_cluster);
/// Kargo's quickstart through the cluster: its manifests applied with one `kubectl apply -f`
/// (the Project creating its namespace), Freight created, then test → uat → prod promoted as a
/// promoter, each Stage's branch rendered by kustomize, synced by Argo CD (the simulator) and
/// shown Ready by plain kubectl.
async fn kargos_quickstart_through_the_cluster(kind: Kind) {
    let Some(w) = World::on(kind, true).await else {
        return;
    };
    let files = crate::quickstart::layout();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let bare = bare_repo(w.tmp.path(), "kargo-demo", &refs);
    let url = format!("file://{}", bare.display());
    let all = crate::quickstart::manifests(&url);
    // Freight comes from a Warehouse in Kargo; here it is created by hand below.
    let (kargo, rest) = all
        .split_once("---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Freight")
        .unwrap();
    let apps = &rest[rest.find("---\napiVersion: argoproj.io").unwrap()..];
    let rbac = "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: { name: alice-promoter, namespace: kargo-demo }\nroleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: promote-promoter }\nsubjects: [{ kind: User, name: alice, apiGroup: rbac.authorization.k8s.io }]\n";
    // prod runs the same steps from a ClusterPromotionTask: the plugin lists it (alice reads it
    // through promote-clusterpromotiontask-reader) and the webhook derives the steps from it.
    let task_at = kargo
        .find("apiVersion: kargo.akuity.io/v1alpha1\nkind: PromotionTask")
        .unwrap();
    let task_end = task_at + kargo[task_at..].find("\n---\n").unwrap();
    let cluster_task = kargo[task_at..task_end]
        .replace("kind: PromotionTask", "kind: ClusterPromotionTask")
        .replace("  namespace: kargo-demo\n", "");
    let task_ref = "      - task:\n          name: demo-promo-process\n";
    let prod_ref = kargo.rfind(task_ref).unwrap();
    let kargo = format!(
        "{}      - task:\n          name: demo-promo-process\n          kind: ClusterPromotionTask\n{}",
        &kargo[..prod_ref],
        &kargo[prod_ref + task_ref.len()..]
    );
    let text = format!("{kargo}\n---\n{cluster_task}\n{apps}\n---\n{rbac}");
    let (good, out, err) = k(&w.kc, &["apply", "-f", "-"], Some(&text)).await;
    assert!(good, "{err}\n{out}");
    assert!(
        out.contains("project.kargo.akuity.io/kargo-demo created")
            && out.contains("clusterpromotiontask.kargo.akuity.io/demo-promo-process created"),
        "{out}"
    );
    let plugin = |user: &'static str, args: Vec<String>| {
        let mut c = Command::new(bin("kubectl-promote").unwrap());
        c.env("KUBECONFIG", &w.kc)
            .env("PROMOTE_CACHE_DIR", w.tmp.path().join("cache"))
            .env_remove("KUBERNETES_SERVICE_HOST")
            .args(["--context", user, "-n", "kargo-demo", "-q"])
            .args(args);
        async move {
            let out = tokio::task::spawn_blocking(move || c.output().unwrap())
                .await
                .unwrap();
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (code, _, err) = plugin(
        "admin",
        [
            "freight",
            "create",
            "--warehouse",
            "kargo-demo",
            "--image",
            "public.ecr.aws/nginx/nginx:1.29.1",
            "--alias",
            "wise-wombat",
        ]
        .map(str::to_owned)
        .to_vec(),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    for stage in ["test", "uat", "prod"] {
        let (code, out, err) = plugin(
            "alice",
            vec![
                format!("stage/{stage}"),
                "--freight-alias".into(),
                "wise-wombat".into(),
            ],
        )
        .await;
        assert_eq!(code, 0, "{stage}: {err}\n{out}");
        let deploy = git(
            &bare,
            &["show", &format!("stage/{stage}:deployment-kargo-demo.yaml")],
        );
        assert!(
            deploy.contains("image: public.ecr.aws/nginx/nginx:1.29.1"),
            "{deploy}"
        );
        let app = w
            .get("applications", "argocd", &format!("kargo-demo-{stage}"))
            .await;
        assert_eq!(
            app["status"]["sync"]["revision"],
            git(&bare, &["rev-parse", &format!("stage/{stage}")]).trim(),
            "{app}"
        );
    }
    let (good, out, err) = k(&w.kc, &["get", "stages", "-n", "kargo-demo"], None).await;
    assert!(good, "{err}");
    for stage in ["test", "uat", "prod"] {
        let row = out
            .lines()
            .find(|l| l.starts_with(&format!("{stage} ")))
            .unwrap();
        assert!(
            row.contains("True") && row.contains("Freight has been verified"),
            "{out}"
        );
    }
}

both!(set_metadata_is_read_back_and_guarded);
/// `set-metadata` through the cluster with the webhook: a promotion of one Stage sets another
/// Stage's and its Freight's `status.metadata`, later steps read them back with
/// `stageMetadata()` and `freightMetadata()` (and a ConfigMap with `configMap()`, an earlier
/// step's status with `status()`); the same metadata written by hand, outside a promotion, is
/// refused by the webhook.
async fn set_metadata_is_read_back_and_guarded(kind: Kind) {
    let Some(w) = World::on(kind, true).await else {
        return;
    };
    let stage = r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: { name: gate, namespace: demo }
spec:
  requestedFreight:
    - origin: { kind: Warehouse, name: web }
      sources: { direct: true }
  promotionTemplate:
    spec:
      steps:
        - uses: set-metadata
          as: meta
          config:
            updates:
              - kind: Stage
                name: prod
                values: { approved-by: "${{ ctx.stage }}", ticket: 42 }
              - kind: Freight
                name: ${{ ctx.targetFreight.name }}
                values: { tested: true, checks: [unit, e2e] }
        - uses: compose-output
          as: out
          config:
            approver: ${{ stageMetadata('prod')['approved-by'] }}
            checks: ${{ len(freightMetadata(ctx.targetFreight.name).checks) }}
            region: ${{ configMap('settings').region }}
            absent: ${{ stageMetadata('dev')?.x ?? 'none' }}
            tested: ${{ freightStatus(ctx.targetFreight.name).metadata.tested }}
            meta: ${{ status('meta') }}
---
apiVersion: v1
kind: ConfigMap
metadata: { name: settings, namespace: demo }
data: { region: eu-west-1 }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: settings-reader, namespace: demo }
rules:
  - { apiGroups: [""], resources: ["configmaps"], verbs: ["get"] }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: alice-settings, namespace: demo }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: settings-reader }
subjects: [{ kind: User, name: alice, apiGroup: rbac.authorization.k8s.io }]
"#;
    let (good, _, err) = k(&w.kc, &["apply", "-f", "-"], Some(stage)).await;
    assert!(good, "{err}");
    let freight = w.freight("1.25.0", "v1").await;
    let (code, out, err) = w
        .plugin(
            "alice",
            &["stage/gate", "--freight-alias", "v1", "-o", "json"],
        )
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let prod = w.get("stages", "demo", "prod").await;
    assert_eq!(
        prod["status"]["metadata"],
        serde_json::json!({ "approved-by": "gate", "ticket": 42 })
    );
    let f = w.get("freights", "demo", &freight).await;
    assert_eq!(
        f["status"]["metadata"],
        serde_json::json!({ "tested": true, "checks": ["unit", "e2e"] })
    );
    let promotion = w
        .promotions()
        .await
        .into_iter()
        .find(|p| p["spec"]["stage"] == "gate")
        .unwrap();
    // Kargo's Events on the Promotion: created, then succeeded, with Kargo's annotations.
    let (good, events, err) = k(&w.kc, &["get", "events", "-n", "demo", "-o", "json"], None).await;
    assert!(good, "{err}");
    let events: Value = serde_json::from_str(&events).unwrap();
    let mine: Vec<&Value> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["involvedObject"]["name"] == promotion["metadata"]["name"])
        .collect();
    let reasons: Vec<&str> = mine.iter().filter_map(|e| e["reason"].as_str()).collect();
    assert_eq!(
        reasons,
        ["PromotionCreated", "PromotionSucceeded"],
        "{mine:?}"
    );
    assert_eq!(
        mine[0]["message"],
        "Promotion created for Stage \"gate\" by \"kubernetes:alice\""
    );
    assert_eq!(
        mine[1]["message"],
        "Promotion Succeeded: all steps completed"
    );
    let a = &mine[1]["metadata"]["annotations"];
    assert_eq!(a["event.kargo.akuity.io/stage-name"], "gate");
    assert_eq!(a["event.kargo.akuity.io/freight-name"], freight.as_str());
    assert_eq!(a["event.kargo.akuity.io/actor"], "kubernetes:alice");
    assert_eq!(a["event.kargo.akuity.io/verification-pending"], "false");
    assert!(
        a["event.kargo.akuity.io/freight-images"]
            .as_str()
            .unwrap()
            .contains("nginx")
    );
    assert_eq!(
        promotion["status"]["state"]["out"],
        serde_json::json!({ "approver": "gate", "checks": 2, "region": "eu-west-1", "absent": "none", "tested": true, "meta": "Succeeded" }),
        "{promotion}"
    );
    // By hand, outside a promotion: refused, and nothing changes.
    let (good, _, err) = k(
        &w.kc,
        &[
            "--context",
            "alice",
            "-n",
            "demo",
            "patch",
            "stages",
            "prod",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"metadata":{"approved-by":"me"}}}"#,
        ],
        None,
    )
    .await;
    assert!(!good);
    assert!(
        err.contains("may not change status.metadata of Stage \"prod\""),
        "{err}"
    );
    assert_eq!(
        w.get("stages", "demo", "prod").await["status"]["metadata"]["approved-by"],
        "gate"
    );
    // Typos in steps fail at `kubectl apply`: a Stage's, a PromotionTask's, a
    // ClusterPromotionTask's.
    let typo_stage = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: { name: typo, namespace: demo }\nspec:\n  requestedFreight:\n    - origin: { kind: Warehouse, name: web }\n      sources: { direct: true }\n  promotionTemplate:\n    spec:\n      steps:\n        - uses: git-pushh\n          config: { path: ./src }\n";
    let typo_task = "apiVersion: kargo.akuity.io/v1alpha1\nkind: PromotionTask\nmetadata: { name: typo, namespace: demo }\nspec:\n  steps:\n    - uses: git-push\n      config: { pth: ./src }\n";
    let typo_cluster_task = typo_task
        .replace("kind: PromotionTask", "kind: ClusterPromotionTask")
        .replace("name: typo, namespace: demo", "name: typo");
    for (doc, want) in [
        (
            typo_stage.to_owned(),
            "spec.promotionTemplate.spec.steps[0].uses: Invalid value: unknown step kind \"git-pushh\"",
        ),
        (
            typo_task.to_owned(),
            "PromotionTask \"typo\" in namespace \"demo\"",
        ),
        (typo_cluster_task, "ClusterPromotionTask \"typo\""),
    ] {
        let (good, _, err) = k(&w.kc, &["apply", "-f", "-"], Some(&doc)).await;
        assert!(!good, "{doc}");
        assert!(err.contains(want), "{err}");
        if !doc.contains("kind: Stage") {
            assert!(
                err.contains(
                    "spec.steps[0].config.pth: Invalid value: unknown field (known: path,"
                ),
                "{err}"
            );
        }
    }
}

both!(get_watch_prints_what_changes);
/// `kubectl promote get stages -w`: the table, then a row again for each Stage that changes,
/// under the same header, until interrupted; `-o name -w` prints each change as a name.
async fn get_watch_prints_what_changes(kind: Kind) {
    let Some(w) = World::on(kind, false).await else {
        return;
    };
    for (case, args, first, initial, again) in [
        (1, vec!["get", "stages", "-w"], "NAME", 4, "test "),
        (
            2,
            vec!["get", "stages", "-w", "-o", "name"],
            "stage.kargo.akuity.io/dev",
            3,
            "stage.kargo.akuity.io/test",
        ),
    ] {
        let mut child = w.spawn("alice", &args, &[]);
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let next =
            |rx: &std::sync::mpsc::Receiver<String>| rx.recv_timeout(Duration::from_secs(15)).ok();
        let mut lines = Vec::new();
        while lines.len() < initial {
            match next(&rx) {
                Some(l) => lines.push(l),
                None => break,
            }
        }
        assert!(lines[0].starts_with(first), "{lines:?}");
        assert_eq!(lines.len(), initial, "{lines:?}");
        // A change to one Stage prints it again, and only it.
        ok(
            &w.kc,
            &[
                "label",
                "--overwrite",
                "stages",
                "test",
                "-n",
                "demo",
                &format!("seen={case}"),
            ],
        )
        .await;
        let changed = next(&rx).unwrap_or_default();
        assert!(changed.starts_with(again), "{lines:?} then {changed:?}");
        let _ = child.kill();
        let _ = child.wait();
    }
}
