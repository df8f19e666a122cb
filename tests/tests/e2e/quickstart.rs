//! Kargo's own quickstart pipeline (`docs/docs/20-quickstart/index.md` of akuity/kargo v1.11: a
//! PromotionTask with git-clone, git-clear, kustomize-set-image, kustomize-build, git-commit,
//! git-push and argocd-update, rendering each Stage into branch `stage/<stage>`), with its
//! manifests as the docs give them, against a repository laid out like akuity/kargo-demo, served
//! by `git daemon`; the file steps (file-write, copy, delete) on the same repository.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use promote_tests::{bare_repo, bin, git, git_daemon};

/// The quickstart's manifests, as its docs write them (the heredoc's `\${{` unescaped,
/// `${GITOPS_REPO_URL}` substituted), plus what Kargo's Warehouse and Argo CD's ApplicationSet
/// would have made: a Freight (already verified in test and uat) and the three Applications.
pub(crate) fn manifests(repo: &str) -> String {
    let docs = r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata:
  name: kargo-demo
---
apiVersion: v1
kind: Secret
type: Opaque
metadata:
  name: kargo-demo-repo
  namespace: kargo-demo
  labels:
    kargo.akuity.io/cred-type: git
stringData:
  repoURL: ${GITOPS_REPO_URL}
  username: user
  password: not-used
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata:
  name: kargo-demo
  namespace: kargo-demo
spec:
  subscriptions:
  - image:
      repoURL: public.ecr.aws/nginx/nginx
      constraint: ^1.29.0
      discoveryLimit: 5
---
apiVersion: kargo.akuity.io/v1alpha1
kind: PromotionTask
metadata:
  name: demo-promo-process
  namespace: kargo-demo
spec:
  vars:
  - name: gitopsRepo
    value: ${GITOPS_REPO_URL}
  - name: imageRepo
    value: public.ecr.aws/nginx/nginx
  steps:
  - uses: git-clone
    config:
      repoURL: ${{ vars.gitopsRepo }}
      checkout:
      - branch: main
        path: ./src
      - branch: stage/${{ ctx.stage }}
        create: true
        path: ./out
  - uses: git-clear
    config:
      path: ./out
  - uses: kustomize-set-image
    as: update
    config:
      path: ./src/base
      images:
      - image: ${{ vars.imageRepo }}
        tag: ${{ imageFrom(vars.imageRepo).Tag }}
  - uses: kustomize-build
    config:
      path: ./src/stages/${{ ctx.stage }}
      outPath: ./out
  - uses: git-commit
    as: commit
    config:
      path: ./out
      message: ${{ task.outputs.update.commitMessage }}
  - uses: git-push
    config:
      path: ./out
  - uses: argocd-update
    config:
      apps:
      - name: kargo-demo-${{ ctx.stage }}
        sources:
        - repoURL: ${{ vars.gitopsRepo }}
          desiredRevision: ${{ task.outputs.commit.commit }}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: test
  namespace: kargo-demo
spec:
  requestedFreight:
  - origin:
      kind: Warehouse
      name: kargo-demo
    sources:
      direct: true
  promotionTemplate:
    spec:
      steps:
      - task:
          name: demo-promo-process
        as: promo-process
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: uat
  namespace: kargo-demo
spec:
  requestedFreight:
  - origin:
      kind: Warehouse
      name: kargo-demo
    sources:
      stages:
      - test
  promotionTemplate:
    spec:
      steps:
      - task:
          name: demo-promo-process
        as: promo-process
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: prod
  namespace: kargo-demo
spec:
  requestedFreight:
  - origin:
      kind: Warehouse
      name: kargo-demo
    sources:
      stages:
      - uat
  promotionTemplate:
    spec:
      steps:
      - task:
          name: demo-promo-process
        as: promo-process
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Freight
metadata:
  namespace: kargo-demo
alias: wise-wombat
origin:
  kind: Warehouse
  name: kargo-demo
images:
- repoURL: public.ecr.aws/nginx/nginx
  tag: 1.29.1
status:
  verifiedIn:
    test: {}
    uat: {}
"#;
    let mut out = docs.replace("${GITOPS_REPO_URL}", repo);
    for stage in ["test", "uat", "prod"] {
        out.push_str(&format!(
            "---\napiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: kargo-demo-{stage}\n  namespace: argocd\n  annotations:\n    kargo.akuity.io/authorized-stage: kargo-demo:{stage}\nspec:\n  project: default\n  source:\n    repoURL: {repo}\n    targetRevision: stage/{stage}\n    path: .\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: kargo-demo-{stage}\n"
        ));
    }
    out
}

/// A repository laid out like akuity/kargo-demo: a base and one overlay per Stage, each with its
/// own page and node port.
pub(crate) fn layout() -> Vec<(String, String)> {
    let mut files = vec![
        (
            "base/kustomization.yaml".to_owned(),
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\nresources:\n- deploy.yaml\n- service.yaml\n".to_owned(),
        ),
        (
            "base/deploy.yaml".to_owned(),
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: kargo-demo\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: kargo-demo\n  template:\n    metadata:\n      labels:\n        app: kargo-demo\n    spec:\n      containers:\n      - name: nginx\n        image: public.ecr.aws/nginx/nginx:placeholder\n        volumeMounts:\n        - name: content\n          mountPath: /usr/share/nginx/html\n      volumes:\n      - name: content\n        configMap:\n          name: kargo-demo-content\n".to_owned(),
        ),
        (
            "base/service.yaml".to_owned(),
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: kargo-demo\nspec:\n  type: NodePort\n  selector:\n    app: kargo-demo\n  ports:\n  - protocol: TCP\n    port: 3000\n    targetPort: 80\n    nodePort: 30000\n".to_owned(),
        ),
    ];
    for (i, stage) in ["test", "uat", "prod"].into_iter().enumerate() {
        files.push((
            format!("stages/{stage}/kustomization.yaml"),
            format!("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\nresources:\n- ../../base\n- configmap.yaml\n\npatches:\n- target:\n    kind: Service\n    name: kargo-demo\n  patch: |-\n    - op: replace\n      path: /spec/ports/0/nodePort\n      value: {}\n", 30081 + i),
        ));
        files.push((
            format!("stages/{stage}/configmap.yaml"),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kargo-demo-content\ndata:\n  index.html: |-\n    <h1>{stage}</h1>\n"),
        ));
    }
    files
}

/// `kubectl promote stage/<stage> --freight-alias <alias> --local <root>/kargo`, the mirror cache
/// in `<root>/cache`, with `extra` arguments and `env`.
fn promote_local(
    root: &Path,
    stage: &str,
    alias: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Output {
    Command::new(bin("kubectl-promote").unwrap())
        .arg(format!("stage/{stage}"))
        .args(["--freight-alias", alias, "--local"])
        .arg(root.join("kargo"))
        .arg("--cache-dir")
        .arg(root.join("cache"))
        .args(extra)
        .env("GIT_TERMINAL_PROMPT", "0")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

struct Quickstart {
    tmp: tempfile::TempDir,
    bare: PathBuf,
    manifests: PathBuf,
    _daemon: promote_tests::Server,
}

impl Quickstart {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let files = layout();
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let bare = bare_repo(tmp.path(), "kargo-demo", &refs);
        let daemon = git_daemon(tmp.path());
        let url = format!("git://127.0.0.1:{}/kargo-demo.git", daemon.port);
        let manifests = tmp.path().join("kargo");
        std::fs::create_dir_all(&manifests).unwrap();
        std::fs::write(manifests.join("quickstart.yaml"), manifests_text(&url)).unwrap();
        Self {
            tmp,
            bare,
            manifests,
            _daemon: daemon,
        }
    }

    fn promote(&self, stage: &str, extra: &[&str]) -> Output {
        promote_local(self.tmp.path(), stage, "wise-wombat", extra, &[])
    }

    fn show(&self, rev: &str) -> String {
        git(&self.bare, &["show", rev])
    }

    /// What `kubectl kustomize` renders for a Stage's overlay with the image set by hand.
    fn expected(&self, stage: &str, tag: &str) -> String {
        let co = self.tmp.path().join(format!("expect-{stage}"));
        git(
            self.tmp.path(),
            &[
                "clone",
                "-q",
                self.bare.to_str().unwrap(),
                co.to_str().unwrap(),
            ],
        );
        let deploy = co.join("base/deploy.yaml");
        let text = std::fs::read_to_string(&deploy).unwrap();
        std::fs::write(&deploy, text.replace(":placeholder", &format!(":{tag}"))).unwrap();
        let out = Command::new("kubectl")
            .arg("kustomize")
            .arg(co.join(format!("stages/{stage}")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn manifests_text(url: &str) -> String {
    manifests(url)
}

fn ok(out: &Output) -> (String, String) {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{stderr}\n{stdout}");
    (stdout, stderr)
}

#[test]
fn kargos_quickstart_promotes_test_uat_and_prod_unchanged() {
    let q = Quickstart::new();
    for stage in ["test", "uat", "prod"] {
        let (out, err) = ok(&q.promote(stage, &[]));
        assert!(out.contains("PHASE      Succeeded"), "{out}\n{err}");
        let branch = format!("stage/{stage}");
        let files = git(&q.bare, &["ls-tree", "--name-only", &branch]);
        assert_eq!(
            files,
            "configmap-kargo-demo-content.yaml\ndeployment-kargo-demo.yaml\nservice-kargo-demo.yaml",
            "{stage}"
        );
        // Each file is one resource of kustomize's output, byte for byte.
        let rendered: String = [
            "configmap-kargo-demo-content",
            "service-kargo-demo",
            "deployment-kargo-demo",
        ]
        .iter()
        .map(|f| q.show(&format!("{branch}:{f}.yaml")))
        .collect::<Vec<_>>()
        .join("\n---\n");
        assert_eq!(
            format!("{rendered}\n"),
            q.expected(stage, "1.29.1"),
            "{stage}"
        );
        assert!(
            q.show(&format!("{branch}:deployment-kargo-demo.yaml"))
                .contains("image: public.ecr.aws/nginx/nginx:1.29.1")
        );
        let message = git(&q.bare, &["log", "-1", "--format=%B", &branch]);
        assert!(
            message.starts_with("Updated ./src/base to use new image"),
            "{message}"
        );
        // The source branch is never pushed: kustomize-set-image's edit only feeds the render.
        assert!(q.show("main:base/deploy.yaml").contains(":placeholder"));
    }
    // Promoting again changes nothing: the same render is no commit and no push.
    let before = git(&q.bare, &["rev-parse", "stage/test"]);
    let (out, _) = ok(&q.promote("test", &[]));
    assert_eq!(git(&q.bare, &["rev-parse", "stage/test"]), before, "{out}");
    assert!(
        out.contains("git-commit") && out.contains("Skipped"),
        "{out}"
    );
}

#[test]
fn the_quickstart_runs_from_a_cluster_promotion_task_too() {
    let q = Quickstart::new();
    let text = std::fs::read_to_string(q.manifests.join("quickstart.yaml")).unwrap();
    let text = text
        .replace(
            "kind: PromotionTask\nmetadata:\n  name: demo-promo-process\n  namespace: kargo-demo\n",
            "kind: ClusterPromotionTask\nmetadata:\n  name: demo-promo-process\n",
        )
        .replace(
            "      - task:\n          name: demo-promo-process\n",
            "      - task:\n          name: demo-promo-process\n          kind: ClusterPromotionTask\n",
        );
    assert!(text.contains("kind: ClusterPromotionTask\n"));
    std::fs::write(q.manifests.join("quickstart.yaml"), text).unwrap();
    let (out, err) = ok(&q.promote("test", &[]));
    assert!(out.contains("PHASE      Succeeded"), "{out}\n{err}");
    assert!(
        q.show("stage/test:deployment-kargo-demo.yaml")
            .contains("nginx:1.29.1")
    );
}

#[test]
fn copy_delete_and_file_write_edit_the_checkouts() {
    let tmp = tempfile::tempdir().unwrap();
    let files = layout();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let bare = bare_repo(tmp.path(), "repo", &refs);
    let url = format!("file://{}", bare.display());
    let manifests = tmp.path().join("kargo");
    std::fs::create_dir_all(&manifests).unwrap();
    let stage = format!(
        r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {{name: ops, namespace: demo}}
spec:
  requestedFreight:
  - origin: {{kind: Warehouse, name: w}}
    sources: {{direct: true}}
  promotionTemplate:
    spec:
      steps:
      - uses: git-clone
        config:
          repoURL: {url}
          checkout: [{{branch: main, path: ./src}}, {{branch: ops, create: true, path: ./out}}]
      - uses: copy
        config: {{inPath: ./src/stages, outPath: ./out/overlays, ignore: "configmap.yaml"}}
      - uses: copy
        config: {{inPath: ./src/base/service.yaml, outPath: ./out/service.yaml}}
      - uses: file-write
        config: {{path: ./out/NOTES.txt, contents: "promoted ${{{{ ctx.stage }}}}\n"}}
      - uses: delete
        config: {{paths: ["./out/overlays/*/kustomization.yaml"], pathsAreGlobs: true, strict: true}}
      - uses: delete
        config: {{path: ./src/stages/prod}}
      - uses: git-commit
        config: {{path: ./out, message: ops}}
      - uses: git-push
        config: {{path: ./out}}
      - uses: file-write
        config: {{path: ./out/NOTES.txt, contents: "again"}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Freight
metadata: {{namespace: demo}}
alias: a
origin: {{kind: Warehouse, name: w}}
images: [{{repoURL: nginx, tag: "1"}}]
"#
    );
    std::fs::write(manifests.join("ops.yaml"), stage).unwrap();
    let out = promote_local(tmp.path(), "ops", "a", &[], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    // The last file-write refuses to replace the file without overwrite: the promotion Fails
    // after the push, which stays.
    assert!(!out.status.success());
    assert!(
        text.contains("already exists; set overwrite to true"),
        "{text}"
    );
    let tree = git(&bare, &["ls-tree", "-r", "--name-only", "ops"]);
    assert_eq!(tree, "NOTES.txt\nservice.yaml", "{tree}");
    assert_eq!(git(&bare, &["show", "ops:NOTES.txt"]), "promoted ops");
    // A strict delete that matches nothing fails the promotion: nothing is committed (the
    // branch git-clone created stays empty).
    let strict = std::fs::read_to_string(manifests.join("ops.yaml"))
        .unwrap()
        .replace("./out/overlays/*/kustomization.yaml", "./out/none/*.yaml")
        .replace("branch: ops,", "branch: ops2,");
    std::fs::write(manifests.join("ops.yaml"), strict).unwrap();
    let out = promote_local(tmp.path(), "ops", "a", &[], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("no paths matched pattern \"./out/none/*.yaml\""),
        "{text}"
    );
    assert!(git(&bare, &["ls-tree", "--name-only", "ops2"]).is_empty());
}

/// The helm binary the tests use (`scripts/test` builds it; CI requires it).
pub(crate) fn helm() -> Option<PathBuf> {
    match std::env::var("PROMOTE_HELM") {
        Ok(p) => Some(PathBuf::from(p)),
        Err(_) if std::env::var("PROMOTE_REAL_KUBE_REQUIRED").is_ok_and(|v| v == "1") => {
            panic!(
                "PROMOTE_HELM is not set: scripts/test builds helm with scripts/kube-build --helm"
            )
        }
        Err(_) => None,
    }
}

#[test]
fn helm_template_renders_with_the_real_helm() {
    let Some(helm) = helm() else {
        eprintln!("skipped: helm is not built (scripts/test builds it when Go is installed)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let seed = tmp.path().join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(Command::new(&helm)
        .args(["create", "web"])
        .current_dir(&seed));
    std::fs::create_dir_all(seed.join("env")).unwrap();
    std::fs::write(seed.join("env/test.yaml"), "replicaCount: 3\n").unwrap();
    git(&seed, &["init", "-q", "-b", "main"]);
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-q", "-m", "chart"]);
    let bare = tmp.path().join("charts.git");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            seed.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    git(&bare, &["config", "uploadpack.allowFilter", "true"]);
    git(&bare, &["config", "uploadpack.allowAnySHA1InWant", "true"]);
    let url = format!("file://{}", bare.display());
    let manifests = tmp.path().join("kargo");
    std::fs::create_dir_all(&manifests).unwrap();
    let render = |out: &str, layout: &str| {
        format!(
            "      - uses: helm-template\n        config: {{path: ./src/web, releaseName: web, outPath: {out}, {layout}valuesFiles: [./src/env/test.yaml, ./src/env/missing.yaml], ignoreMissingValueFiles: true, setValues: [{{key: image.tag, value: \"${{{{ imageFrom('nginx').Tag }}}}\"}}]}}\n"
        )
    };
    let stage = format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: test, namespace: demo}}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w}}\n    sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps:\n      - uses: git-clone\n        config: {{repoURL: {url}, checkout: [{{branch: main, path: ./src}}, {{branch: stage/test, create: true, path: ./out}}]}}\n{}{}{}      - uses: git-commit\n        config: {{path: ./out, message: render}}\n      - uses: git-push\n        config: {{path: ./out}}\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {{namespace: demo}}\nalias: a\norigin: {{kind: Warehouse, name: w}}\nimages: [{{repoURL: nginx, tag: 1.27.3}}]\n",
        render("./out/all.yaml", ""),
        render("./out/flat", "outLayout: flat, "),
        render("./out/helm", "")
    );
    std::fs::write(manifests.join("stage.yaml"), stage).unwrap();
    let path = format!(
        "{}:{}",
        helm.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = promote_local(tmp.path(), "test", "a", &["-n", "demo"], &[("PATH", &path)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The single file is what helm template prints for the same inputs.
    let expected = run(Command::new(&helm)
        .args([
            "template",
            "web",
            "web",
            "--namespace",
            "demo",
            "--values",
            "env/test.yaml",
            "--set",
            "image.tag=1.27.3",
        ])
        .current_dir(&seed));
    let all = git(&bare, &["show", "stage/test:all.yaml"]);
    assert_eq!(format!("{all}\n"), expected.trim().to_owned() + "\n");
    assert!(
        all.contains("replicas: 3") && all.contains("nginx:1.27.3"),
        "{all}"
    );
    let tree = git(&bare, &["ls-tree", "-r", "--name-only", "stage/test"]);
    for f in [
        "flat/apps-deployment-web.yaml",
        "flat/service-web.yaml",
        "flat/serviceaccount-web.yaml",
        "helm/web/templates/deployment.yaml",
        "helm/web/templates/service.yaml",
    ] {
        assert!(tree.lines().any(|l| l == f), "{f} in\n{tree}\n{text}");
    }
    // A values file that is neither there nor optional fails before anything is written.
    let strict = std::fs::read_to_string(manifests.join("stage.yaml"))
        .unwrap()
        .replacen(
            "ignoreMissingValueFiles: true",
            "ignoreMissingValueFiles: false",
            1,
        );
    std::fs::write(manifests.join("stage.yaml"), strict).unwrap();
    let out = promote_local(tmp.path(), "test", "a", &["-n", "demo"], &[("PATH", &path)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("values file \"./src/env/missing.yaml\" does not exist"),
        "{text}"
    );
}

#[test]
fn structured_files_are_edited_and_read_byte_faithfully() {
    let tmp = tempfile::tempdir().unwrap();
    let json_text = "{\n  \"image\": { \"tag\": \"1.0\" },\n  \"replicas\": 2\n}\n";
    let toml_text = "# app settings\n[image]\ntag = \"1.0\"  # pinned\n\n[[ports]]\nnumber = 80\n";
    let yaml_text = "owner: team-web\n";
    let bare = bare_repo(
        tmp.path(),
        "cfg",
        &[
            ("app.json", json_text),
            ("app.toml", toml_text),
            ("meta.yaml", yaml_text),
        ],
    );
    let url = format!("file://{}", bare.display());
    let manifests = tmp.path().join("kargo");
    std::fs::create_dir_all(&manifests).unwrap();
    let stage = format!(
        r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {{name: cfg, namespace: demo}}
spec:
  requestedFreight:
  - origin: {{kind: Warehouse, name: w}}
    sources: {{direct: true}}
  promotionTemplate:
    spec:
      steps:
      - uses: git-clone
        config: {{repoURL: {url}, checkout: [{{branch: main, path: ./src}}]}}
      - uses: json-update
        as: json
        config: {{path: ./src/app.json, updates: [{{key: image.tag, value: "${{{{ imageFrom('nginx').Tag }}}}"}}, {{key: region, value: eu}}]}}
      - uses: toml-update
        as: toml
        config: {{path: ./src/app.toml, updates: [{{key: image.tag, value: "2.0"}}, {{key: ports.0.number, value: 8080}}]}}
      - uses: json-parse
        as: parsed
        config: {{path: ./src/app.json, outputs: [{{name: tag, fromExpression: image.tag}}, {{name: replicas, fromExpression: replicas}}]}}
      - uses: yaml-parse
        as: meta
        config: {{path: ./src/meta.yaml, outputs: [{{name: owner, fromExpression: owner}}]}}
      - uses: compose-output
        as: summary
        config: {{line: "${{{{ outputs.meta.owner }}}} runs ${{{{ outputs.parsed.tag }}}} x${{{{ outputs.parsed.replicas }}}}"}}
      - uses: file-write
        config: {{path: ./src/SUMMARY, contents: "${{{{ outputs.summary.line }}}}"}}
      - uses: fail
        if: ${{{{ outputs.parsed.replicas > 5 }}}}
        config: {{message: too many replicas}}
      - uses: git-commit
        config: {{path: ./src, message: "${{{{ outputs.json.commitMessage }}}}"}}
      - uses: git-push
        config: {{path: ./src}}
      - uses: fail
        config: {{message: stop here}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Freight
metadata: {{namespace: demo}}
alias: a
origin: {{kind: Warehouse, name: w}}
images: [{{repoURL: nginx, tag: "1.27.3"}}]
"#
    );
    std::fs::write(manifests.join("cfg.yaml"), stage).unwrap();
    let out = promote_local(tmp.path(), "cfg", "a", &[], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    // The last step fails on purpose, as Kargo's fail does; everything before it landed.
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("PHASE      Failed") && text.contains("failed: stop here"),
        "{text}"
    );
    assert_eq!(
        git(&bare, &["show", "main:app.json"]),
        "{\"region\":\"eu\",\n  \"image\": { \"tag\": \"1.27.3\" },\n  \"replicas\": 2\n}"
    );
    assert_eq!(
        git(&bare, &["show", "main:app.toml"]),
        "# app settings\n[image]\ntag = \"2.0\"  # pinned\n\n[[ports]]\nnumber = 8080"
    );
    assert_eq!(
        git(&bare, &["show", "main:SUMMARY"]),
        "team-web runs 1.27.3 x2"
    );
    let message = git(&bare, &["log", "-1", "--format=%B", "main"]);
    assert_eq!(
        message,
        "Updated ./src/app.json\n\n- image.tag: \"1.27.3\"\n- region: \"eu\""
    );
}

#[test]
fn git_tag_makes_an_annotated_tag_that_git_push_publishes() {
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "tags", &[("README", "x\n")]);
    let url = format!("file://{}", bare.display());
    let manifests = tmp.path().join("kargo");
    std::fs::create_dir_all(&manifests).unwrap();
    let write = |force: bool, content: &str| {
        let stage = format!(
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: rel, namespace: demo}}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w}}\n    sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps:\n      - uses: git-clone\n        config: {{repoURL: {url}, checkout: [{{branch: main, path: ./src}}], author: {{name: Rel Bot, email: rel@example.com}}}}\n      - uses: file-write\n        config: {{path: ./src/VERSION, contents: \"{content}\", overwrite: true}}\n      - uses: git-commit\n        config: {{path: ./src, message: release}}\n      - uses: git-tag\n        as: tag\n        config: {{path: ./src, tag: v1, message: \"Release ${{{{ ctx.stage }}}}\", force: {force}}}\n      - uses: git-push\n        config: {{path: ./src}}\n      - uses: git-push\n        config: {{path: ./src, tag: v1}}\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {{namespace: demo}}\nalias: a\norigin: {{kind: Warehouse, name: w}}\nimages: [{{repoURL: nginx, tag: \"1\"}}]\n"
        );
        std::fs::write(manifests.join("rel.yaml"), stage).unwrap();
        promote_local(tmp.path(), "rel", "a", &[], &[])
    };
    let (out, _) = ok(&write(false, "1.0"));
    assert!(out.contains("PHASE      Succeeded"), "{out}");
    assert_eq!(git(&bare, &["cat-file", "-t", "v1"]), "tag");
    assert_eq!(
        git(&bare, &["rev-parse", "v1^{commit}"]),
        git(&bare, &["rev-parse", "main"])
    );
    let tag = git(&bare, &["cat-file", "-p", "v1"]);
    assert!(
        tag.contains("tagger Rel Bot <rel@example.com>") && tag.ends_with("Release rel"),
        "{tag}"
    );
    // The tag exists now: without force the next release is refused before its push.
    let main = git(&bare, &["rev-parse", "main"]);
    let refused = write(false, "2.0");
    let text = String::from_utf8_lossy(&refused.stdout);
    assert!(
        !refused.status.success() && text.contains("tag \"v1\" already exists"),
        "{text}"
    );
    assert_eq!(git(&bare, &["rev-parse", "main"]), main, "nothing pushed");
    let (out, _) = ok(&write(true, "2.0"));
    assert!(out.contains("PHASE      Succeeded"), "{out}");
    assert_eq!(
        git(&bare, &["rev-parse", "v1^{commit}"]),
        git(&bare, &["rev-parse", "main"])
    );
    assert_ne!(git(&bare, &["rev-parse", "main"]), main);
}

#[test]
fn http_judges_the_response_by_expressions() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    // A deployment API: 503 first, then "pending", then "done" with a version.
    let server = promote_tests::HttpServer::start(move |req| {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        let json = |s: &str| {
            vec![
                ("Content-Type".to_owned(), "application/json".to_owned()),
                ("X-Run".to_owned(), s.to_owned()),
            ]
        };
        match (req.target.as_str(), n) {
            (t, 0) if t.starts_with("/status") => {
                ("503 Service Unavailable".into(), vec![], b"busy".to_vec())
            }
            (t, 1) if t.starts_with("/status") => (
                "200 OK".into(),
                json("r1"),
                br#"{"state":"pending"}"#.to_vec(),
            ),
            (t, _) if t.starts_with("/status") => (
                "200 OK".into(),
                json("r2"),
                br#"{"state":"done","version":"1.2.3"}"#.to_vec(),
            ),
            _ => ("404 Not Found".into(), vec![], b"no".to_vec()),
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let bare = bare_repo(tmp.path(), "r", &[("README", "x\n")]);
    let manifests = tmp.path().join("kargo");
    std::fs::create_dir_all(&manifests).unwrap();
    let base = format!("http://127.0.0.1:{}", server.port);
    let stage = format!(
        r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {{name: ops, namespace: demo}}
spec:
  requestedFreight:
  - origin: {{kind: Warehouse, name: w}}
    sources: {{direct: true}}
  promotionTemplate:
    spec:
      steps:
      - uses: git-clone
        config: {{repoURL: "file://{bare}", checkout: [{{branch: main, path: ./src}}]}}
      - uses: http
        as: wait
        config:
          url: {base}/status
          queryParams: [{{name: stage, value: "${{{{ ctx.stage }}}}"}}]
          headers: [{{name: Authorization, value: "Bearer s3cr3t-token"}}]
          pollInterval: 1s
          successExpression: response.body.state == "done"
          failureExpression: response.body.state == "failed"
          outputs:
          - {{name: version, fromExpression: response.body.version}}
          - {{name: run, fromExpression: "response.header('x-run')"}}
      - uses: file-write
        config: {{path: ./src/DEPLOYED, contents: "${{{{ outputs.wait.version }}}} ${{{{ outputs.wait.run }}}}"}}
      - uses: git-commit
        config: {{path: ./src, message: deployed}}
      - uses: git-push
        config: {{path: ./src}}
      - uses: http
        config: {{url: {base}/missing}}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Freight
metadata: {{namespace: demo}}
alias: a
origin: {{kind: Warehouse, name: w}}
images: [{{repoURL: nginx, tag: "1"}}]
"#,
        bare = bare.display()
    );
    std::fs::write(manifests.join("ops.yaml"), stage).unwrap();
    let out = promote_local(tmp.path(), "ops", "a", &[], &[]);
    let (text, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    // The 503 was retried, "pending" waited for, "done" succeeded with its outputs; the last
    // request's 404 fails the promotion, as Kargo's http does.
    assert!(!out.status.success());
    assert!(
        text.contains("HTTP (404) response from GET"),
        "{text}\n{err}"
    );
    assert_eq!(git(&bare, &["show", "main:DEPLOYED"]), "1.2.3 r2");
    let reqs = server.requests.lock().unwrap();
    assert_eq!(reqs[0].target, "/status?stage=ops");
    assert_eq!(
        reqs[0].headers.get("authorization").map(String::as_str),
        Some("Bearer s3cr3t-token")
    );
    assert!(
        !text.contains("s3cr3t") && !err.contains("s3cr3t"),
        "headers are never printed"
    );
}

/// `helm-update-chart` with the real helm: a dependency from an HTTP repository (static files)
/// and one from an OCI registry (Debian's docker-registry, pushed with helm) move to the
/// Freight's versions; `Chart.lock` and `charts/` come back into the commit (the old archives
/// removed), only the version scalars of `Chart.yaml` change, and the commit message is Kargo's.
#[test]
fn helm_update_chart_updates_dependencies_with_the_real_helm() {
    let Some(helm) = helm() else {
        eprintln!("skipped: helm is not built (scripts/test builds it when Go is installed)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let helm_cmd = |args: &[&str]| {
        let out = Command::new(&helm)
            .args(args)
            .current_dir(root)
            .env("HELM_CACHE_HOME", root.join("h/cache"))
            .env("HELM_CONFIG_HOME", root.join("h/config"))
            .env("HELM_DATA_HOME", root.join("h/data"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "helm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let chart = |name: &str, version: &str| {
        let dir = root.join(format!("c/{name}-{version}"));
        std::fs::create_dir_all(dir.join("templates")).unwrap();
        std::fs::write(
            dir.join("Chart.yaml"),
            format!("apiVersion: v2\nname: {name}\nversion: {version}\n"),
        )
        .unwrap();
        dir.display().to_string()
    };
    // An HTTP repository: packaged charts and helm's own index.
    let repo_dir = root.join("repo");
    std::fs::create_dir_all(&repo_dir).unwrap();
    let served = repo_dir.clone();
    let http = promote_tests::HttpServer::start(move |req| {
        match std::fs::read(served.join(req.target.trim_start_matches('/'))) {
            Ok(body) => ("200 OK".into(), vec![], body),
            Err(_) => ("404 Not Found".into(), vec![], Vec::new()),
        }
    });
    let http_url = format!("http://127.0.0.1:{}", http.port);
    for v in ["1.0.0", "1.1.0"] {
        let c = chart("podinfo", v);
        helm_cmd(&["package", &c, "-d", repo_dir.to_str().unwrap()]);
    }
    helm_cmd(&[
        "repo",
        "index",
        repo_dir.to_str().unwrap(),
        "--url",
        &http_url,
    ]);
    // An OCI registry.
    let reg = promote_tests::docker_registry(&root.join("registry"), None).unwrap();
    let oci = format!("oci://127.0.0.1:{}/charts", reg.port);
    for v in ["0.2.0", "0.3.0"] {
        let c = chart("other", v);
        helm_cmd(&["package", &c, "-d", root.join("pkg").to_str().unwrap()]);
        let tgz = root.join(format!("pkg/other-{v}.tgz"));
        helm_cmd(&["push", tgz.to_str().unwrap(), &oci, "--plain-http"]);
    }
    let chart_yaml = format!(
        "apiVersion: v2\nname: umbrella\nversion: 0.1.0\n# the web tier\ndependencies:\n  - name: podinfo   # pinned by Kargo\n    repository: {http_url}\n    version: \"1.0.0\"\n  - name: other\n    repository: {oci}\n    version: 0.2.0\n"
    );
    let bare = bare_repo(
        root,
        "gitops",
        &[("charts/umbrella/Chart.yaml", &chart_yaml)],
    );
    let url = format!("file://{}", bare.display());
    let manifests = root.join("kargo");
    std::fs::create_dir_all(&manifests).unwrap();
    let stage = format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: test, namespace: demo}}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w}}\n    sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      vars:\n      - {{name: web, value: \"{http_url}\"}}\n      - {{name: oci, value: \"{oci}\"}}\n      steps:\n      - uses: git-clone\n        config: {{repoURL: \"{url}\", checkout: [{{branch: main, path: ./src}}]}}\n      - uses: helm-update-chart\n        as: deps\n        config:\n          path: ./src/charts/umbrella\n          charts:\n          - {{repository: \"${{{{ vars.web }}}}\", name: podinfo, version: \"${{{{ chartFrom(vars.web, 'podinfo').Version }}}}\"}}\n          - {{repository: \"${{{{ vars.oci }}}}\", name: other, version: \"${{{{ chartFrom(vars.oci + '/other').Version }}}}\"}}\n      - uses: git-commit\n        config: {{path: ./src, message: \"${{{{ outputs.deps.commitMessage }}}}\"}}\n      - uses: git-push\n        config: {{path: ./src}}\n"
    );
    let freight = |alias: &str, web: &str, other: &str| {
        format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {{namespace: demo}}\nalias: {alias}\norigin: {{kind: Warehouse, name: w}}\ncharts:\n- {{repoURL: \"{http_url}\", name: podinfo, version: \"{web}\"}}\n- {{repoURL: \"{oci}/other\", version: \"{other}\"}}\n"
        )
    };
    std::fs::write(
        manifests.join("stage.yaml"),
        stage + &freight("old", "1.0.0", "0.2.0") + &freight("new", "1.1.0", "0.3.0"),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        helm.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = [("PATH", path.as_str()), ("HOME", root.to_str().unwrap())];
    let first = promote_local(root, "test", "old", &["-n", "demo"], &env);
    assert!(
        first.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&first.stderr)
    );
    let files = git(&bare, &["ls-tree", "-r", "--name-only", "main"]);
    assert!(files.contains("charts/umbrella/Chart.lock"), "{files}");
    assert!(
        files.contains("charts/umbrella/charts/podinfo-1.0.0.tgz")
            && files.contains("charts/umbrella/charts/other-0.2.0.tgz"),
        "{files}"
    );
    assert_eq!(
        git(&bare, &["show", "main:charts/umbrella/Chart.yaml"]),
        chart_yaml.trim_end(),
        "versions already right: Chart.yaml unchanged"
    );
    let second = promote_local(root, "test", "new", &["-n", "demo"], &env);
    assert!(
        second.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&second.stdout),
        String::from_utf8_lossy(&second.stderr)
    );
    let files = git(&bare, &["ls-tree", "-r", "--name-only", "main"]);
    assert!(
        files.contains("charts/umbrella/charts/podinfo-1.1.0.tgz")
            && files.contains("charts/umbrella/charts/other-0.3.0.tgz"),
        "{files}"
    );
    assert!(
        !files.contains("podinfo-1.0.0.tgz") && !files.contains("other-0.2.0.tgz"),
        "stale archives removed: {files}"
    );
    let expected = chart_yaml
        .replace("version: \"1.0.0\"", "version: \"1.1.0\"")
        .replace("version: 0.2.0", "version: 0.3.0");
    assert_eq!(
        git(&bare, &["show", "main:charts/umbrella/Chart.yaml"]),
        expected.trim_end(),
        "only the version scalars move"
    );
    let lock = git(&bare, &["show", "main:charts/umbrella/Chart.lock"]);
    assert!(
        lock.contains("version: 1.1.0") && lock.contains("version: 0.3.0"),
        "{lock}"
    );
    let message = git(&bare, &["log", "-1", "--format=%B", "main"]);
    assert!(message.starts_with("Updated chart dependencies for ./src/charts/umbrella\n\n- other: 0.2.0 -> 0.3.0\n- podinfo: 1.0.0 -> 1.1.0"), "{message}");
}

/// `untar` on an archive made by the real tar: gzip detected, leading components stripped,
/// `.gitignore` patterns honoured, links skipped and said, files written into the checkout.
#[test]
fn untar_extracts_an_archive_of_the_checkout() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let src = root.join("bundle/app");
    std::fs::create_dir_all(src.join("conf/sub")).unwrap();
    std::fs::write(src.join("conf/a.yaml"), "a: 1\n").unwrap();
    std::fs::write(src.join("conf/sub/b.yaml"), "b: 2\n").unwrap();
    std::fs::write(src.join("conf/NOTES.md"), "notes\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", src.join("conf/link")).unwrap();
    let out = Command::new("tar")
        .args([
            "czf",
            "bundle.tgz",
            "-C",
            root.join("bundle").to_str().unwrap(),
            "app",
        ])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let archive = std::fs::read(root.join("bundle.tgz")).unwrap();
    // The archive goes into the repository through git itself (binary).
    let seed = root.join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    git(&seed, &["init", "-q", "-b", "main"]);
    std::fs::write(seed.join("bundle.tgz"), &archive).unwrap();
    std::fs::create_dir_all(seed.join("out")).unwrap();
    std::fs::write(seed.join("out/a.yaml"), "a: old\n").unwrap();
    std::fs::write(seed.join("out/keep.yaml"), "keep\n").unwrap();
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-q", "-m", "seed"]);
    let bare = root.join("files.git");
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            seed.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    git(&bare, &["config", "uploadpack.allowFilter", "true"]);
    git(&bare, &["config", "uploadpack.allowAnySHA1InWant", "true"]);
    let url = format!("file://{}", bare.display());
    let manifests = root.join("kargo");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(
        manifests.join("stage.yaml"),
        format!("apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: test, namespace: demo}}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w}}\n    sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps:\n      - uses: git-clone\n        config: {{repoURL: \"{url}\", checkout: [{{branch: main, path: ./src}}]}}\n      - uses: untar\n        config: {{inPath: ./src/bundle.tgz, outPath: ./src/out, stripComponents: 2, ignore: \"*.md\\n\"}}\n      - uses: git-commit\n        config: {{path: ./src, message: unpacked}}\n      - uses: git-push\n        config: {{path: ./src}}\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {{namespace: demo}}\nalias: a\norigin: {{kind: Warehouse, name: w}}\nimages: [{{repoURL: nginx, tag: 1.27.3}}]\n"),
    )
    .unwrap();
    let out = promote_local(root, "test", "a", &["-n", "demo"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 link(s) skipped"), "{stdout}");
    let files = git(&bare, &["ls-tree", "-r", "--name-only", "main"]);
    assert_eq!(
        files
            .lines()
            .filter(|l| l.starts_with("out/"))
            .collect::<Vec<_>>(),
        ["out/a.yaml", "out/keep.yaml", "out/sub/b.yaml"],
        "{files}"
    );
    assert_eq!(git(&bare, &["show", "main:out/a.yaml"]), "a: 1");
    assert_eq!(git(&bare, &["show", "main:out/keep.yaml"]), "keep");
}

/// `http-download` from a server on 127.0.0.1 (a header and query parameters sent, as Kargo
/// sends them), then `untar` of what came: the files land in the commit; a second download onto
/// the same file without `allowOverwrite` fails and pushes nothing.
#[test]
fn http_download_fetches_a_file_into_the_checkout() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("b/app")).unwrap();
    std::fs::write(root.join("b/app/values.yaml"), "replicas: 2\n").unwrap();
    let out = Command::new("tar")
        .args([
            "czf",
            "bundle.tgz",
            "-C",
            root.join("b").to_str().unwrap(),
            "app",
        ])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(out.status.success());
    let archive = std::fs::read(root.join("bundle.tgz")).unwrap();
    let server = promote_tests::HttpServer::start(move |req| {
        let token = req
            .headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("x-token") && v == "t0ken");
        if req.target == "/bundle.tgz?channel=stable&v=1+2" && token {
            ("200 OK".into(), vec![], archive.clone())
        } else {
            ("404 Not Found".into(), vec![], Vec::new())
        }
    });
    let bare = bare_repo(root, "files", &[("README.md", "files\n")]);
    let url = format!("file://{}", bare.display());
    let manifests = root.join("kargo");
    std::fs::create_dir_all(&manifests).unwrap();
    let download = format!(
        "      - uses: http-download\n        config: {{url: \"http://127.0.0.1:{}/bundle.tgz\", outPath: ./src/dl/bundle.tgz, headers: [{{name: X-Token, value: t0ken}}], queryParams: [{{name: v, value: \"1 2\"}}, {{name: channel, value: stable}}]}}\n",
        server.port
    );
    let stage = |name: &str, steps: &str| {
        format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: {name}, namespace: demo}}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w}}\n    sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps:\n      - uses: git-clone\n        config: {{repoURL: \"{url}\", checkout: [{{branch: main, path: ./src}}]}}\n{steps}      - uses: git-commit\n        config: {{path: ./src, message: downloaded}}\n      - uses: git-push\n        config: {{path: ./src}}\n"
        )
    };
    let untar = "      - uses: untar\n        config: {inPath: ./src/dl/bundle.tgz, outPath: ./src/dl, stripComponents: 1}\n";
    std::fs::write(
        manifests.join("stage.yaml"),
        stage("test", &format!("{download}{untar}"))
            + &stage("again", &download)
            + "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {namespace: demo}\nalias: a\norigin: {kind: Warehouse, name: w}\nimages: [{repoURL: nginx, tag: 1.27.3}]\n",
    )
    .unwrap();
    let out = promote_local(root, "test", "a", &["-n", "demo"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !stdout.contains("t0ken"),
        "a header value was printed:\n{stdout}"
    );
    assert_eq!(git(&bare, &["show", "main:dl/values.yaml"]), "replicas: 2");
    let head = git(&bare, &["rev-parse", "main"]);
    let again = promote_local(root, "again", "a", &["-n", "demo"], &[]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("allowOverwrite")
            || String::from_utf8_lossy(&again.stderr).contains("allowOverwrite")
    );
    assert_eq!(git(&bare, &["rev-parse", "main"]), head, "nothing pushed");
}

/// `yaml-merge` through a promotion: base and environment values merged into a new file, a
/// missing cluster file skipped (`ignoreMissingFiles`), the base's comments kept, Kargo's message.
#[test]
fn yaml_merge_merges_values_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let bare = bare_repo(
        root,
        "values",
        &[
            (
                "base/values.yaml",
                "# defaults\nimage:\n  tag: \"1.0\" # pinned\nreplicas: 1\n",
            ),
            (
                "qa/values.yaml",
                "image:\n  tag: \"2.0\"\nreplicas: null\nresources:\n  cpu: 100m\n",
            ),
        ],
    );
    let url = format!("file://{}", bare.display());
    let manifests = root.join("kargo");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(
        manifests.join("stage.yaml"),
        format!("apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: qa, namespace: demo}}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w}}\n    sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps:\n      - uses: git-clone\n        config: {{repoURL: \"{url}\", checkout: [{{branch: main, path: ./src}}]}}\n      - uses: yaml-merge\n        as: merge\n        config: {{inFiles: [./src/base/values.yaml, ./src/qa/values.yaml, ./src/qa/cluster-a/values.yaml], outFile: ./src/out/values.yaml, ignoreMissingFiles: true}}\n      - uses: git-commit\n        config: {{path: ./src, message: \"${{{{ outputs.merge.commitMessage }}}}\"}}\n      - uses: git-push\n        config: {{path: ./src}}\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {{namespace: demo}}\nalias: a\norigin: {{kind: Warehouse, name: w}}\nimages: [{{repoURL: nginx, tag: 1.27.3}}]\n"),
    )
    .unwrap();
    let out = promote_local(root, "qa", "a", &["-n", "demo"], &[]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        git(&bare, &["show", "main:out/values.yaml"]),
        "# defaults\nimage:\n  tag: \"2.0\" # pinned\nresources:\n  cpu: 100m"
    );
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%B", "main"]),
        "Merged 2 YAML files to ./src/out/values.yaml\n- ./src/base/values.yaml\n- ./src/qa/values.yaml"
    );
}

/// `git-wait-for-pr` against local fakes of GitHub's, GitLab's and Gitea's REST APIs: an open pull
/// request is asked again until merged (its merge commit is the output), one closed without merging
/// fails the promotion.
#[test]
fn git_wait_for_pr_waits_for_the_merge() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let asked = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = asked.clone();
    let api = promote_tests::HttpServer::start(move |req| {
        let body = match req.target.as_str() {
            "/api/v3/repos/acme/app/pulls/7" => {
                if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    r#"{"number": 7, "state": "open", "merged": false}"#
                } else {
                    r#"{"number": 7, "state": "closed", "merged": true, "merge_commit_sha": "1111111111111111111111111111111111111111"}"#
                }
            }
            "/api/v4/projects/acme%2Fapp/merge_requests/3" => {
                r#"{"iid": 3, "state": "merged", "merge_commit_sha": "2222222222222222222222222222222222222222"}"#
            }
            "/api/v1/repos/acme/app/pulls/5" => {
                r#"{"number": 5, "state": "closed", "merged": true, "merge_commit_sha": "3333333333333333333333333333333333333333"}"#
            }
            "/api/v3/repos/acme/app/pulls/8" => {
                r#"{"number": 8, "state": "closed", "merged": false}"#
            }
            _ => return ("404 Not Found".into(), vec![], b"{}".to_vec()),
        };
        (
            "200 OK".into(),
            vec![("Content-Type".into(), "application/json".into())],
            body.as_bytes().to_vec(),
        )
    });
    let repo = format!("http://127.0.0.1:{}/acme/app", api.port);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let manifests = root.join("kargo");
    std::fs::create_dir_all(&manifests).unwrap();
    let stage = |name: &str, steps: &str| {
        format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: {name}, namespace: demo}}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w}}\n    sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps:\n{steps}"
        )
    };
    let wait = |provider: &str, n: u32| {
        format!(
            "      - uses: git-wait-for-pr\n        config: {{repoURL: \"{repo}\", provider: {provider}, prNumber: {n}, pollInterval: 1s}}\n"
        )
    };
    std::fs::write(
        manifests.join("stages.yaml"),
        stage("merged", &(wait("github", 7) + &wait("gitlab", 3) + &wait("gitea", 5)))
            + &stage("closed", &wait("github", 8))
            + "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {namespace: demo}\nalias: a\norigin: {kind: Warehouse, name: w}\nimages: [{repoURL: nginx, tag: 1.27.3}]\n",
    )
    .unwrap();
    let out = promote_local(root, "merged", "a", &["-n", "demo"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for sha in [
        "1111111111111111111111111111111111111111",
        "2222222222222222222222222222222222222222",
        "3333333333333333333333333333333333333333",
    ] {
        assert!(stdout.contains(&format!("merged as {sha}")), "{stdout}");
    }
    assert!(
        asked.load(Ordering::SeqCst) >= 2,
        "the open pull request was asked again"
    );
    let closed = promote_local(root, "closed", "a", &["-n", "demo"], &[]);
    assert!(!closed.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&closed.stdout),
        String::from_utf8_lossy(&closed.stderr)
    );
    assert!(text.contains("was closed without being merged"), "{text}");
}

/// `git-merge-pr` against local fakes of GitHub's, GitLab's and Gitea's REST APIs: a pull request
/// GitHub is still computing is tried again under `wait: true` and then merged with the method
/// asked for; GitLab's and Gitea's are merged at once; their merge commits are the outputs. A
/// conflict, a not-ready pull request without `wait`, and a merge method the repository refuses
/// each fail the promotion with the reason, and an unknown method fails before any request.
#[test]
fn git_merge_pr_merges_or_waits() {
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};
    let merged = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let looks = Arc::new(Mutex::new(0usize));
    let (m, l) = (merged.clone(), looks.clone());
    let api = promote_tests::HttpServer::start(move |req| {
        let json = |status: &str, body: String| {
            (
                status.to_owned(),
                vec![("Content-Type".into(), "application/json".into())],
                body.into_bytes(),
            )
        };
        let done = |k: &str| m.lock().unwrap().contains(k);
        let path = req.target.as_str();
        let body = String::from_utf8_lossy(&req.body).into_owned();
        match (req.method.as_str(), path) {
            ("GET", "/api/v3/repos/acme/app/pulls/7") => {
                let first = {
                    let mut n = l.lock().unwrap();
                    *n += 1;
                    *n == 1
                };
                if done("gh7") {
                    json("200 OK", r#"{"number": 7, "state": "closed", "merged": true, "merged_at": "2026-12-02T07:00:00Z", "merge_commit_sha": "1111111111111111111111111111111111111111"}"#.into())
                } else if first {
                    json("200 OK", r#"{"number": 7, "state": "open", "mergeable": null, "mergeable_state": "unknown"}"#.into())
                } else {
                    json("200 OK", r#"{"number": 7, "state": "open", "mergeable": true, "mergeable_state": "clean"}"#.into())
                }
            }
            ("PUT", "/api/v3/repos/acme/app/pulls/7/merge") => {
                if !body.contains(r#""merge_method":"squash""#) {
                    return json("422 Unprocessable Entity", format!(r#"{{"message": "unexpected body {body}"}}"#));
                }
                m.lock().unwrap().insert("gh7".into());
                json("200 OK", r#"{"merged": true, "sha": "1111111111111111111111111111111111111111", "message": "Pull Request successfully merged"}"#.into())
            }
            ("GET", "/api/v4/projects/acme%2Fapp/merge_requests/3") => {
                json("200 OK", r#"{"iid": 3, "state": "opened", "draft": false, "detailed_merge_status": "mergeable"}"#.into())
            }
            ("PUT", "/api/v4/projects/acme%2Fapp/merge_requests/3/merge") => {
                json("200 OK", r#"{"iid": 3, "state": "merged", "merge_commit_sha": "2222222222222222222222222222222222222222"}"#.into())
            }
            ("GET", "/api/v1/repos/acme/app/pulls/5") => {
                if done("gitea5") {
                    json("200 OK", r#"{"number": 5, "state": "closed", "merged": true, "merge_commit_sha": "3333333333333333333333333333333333333333"}"#.into())
                } else {
                    json("200 OK", r#"{"number": 5, "state": "open", "merged": false, "mergeable": true}"#.into())
                }
            }
            ("POST", "/api/v1/repos/acme/app/pulls/5/merge") if body.contains(r#""Do":"merge""#) => {
                m.lock().unwrap().insert("gitea5".into());
                ("200 OK".into(), vec![], vec![])
            }
            ("GET", "/api/v3/repos/acme/app/pulls/8") => {
                json("200 OK", r#"{"number": 8, "state": "open", "mergeable": false, "mergeable_state": "dirty"}"#.into())
            }
            ("GET", "/api/v3/repos/acme/app/pulls/9") => {
                json("200 OK", r#"{"number": 9, "state": "open", "mergeable": null, "mergeable_state": "unknown"}"#.into())
            }
            ("GET", "/api/v3/repos/acme/app/pulls/10") => {
                json("200 OK", r#"{"number": 10, "state": "open", "mergeable": true, "mergeable_state": "clean"}"#.into())
            }
            ("PUT", "/api/v3/repos/acme/app/pulls/10/merge") => {
                json("405 Method Not Allowed", r#"{"message": "Squash merges are not allowed on this repository."}"#.into())
            }
            _ => json("404 Not Found", r#"{"message": "Not Found"}"#.into()),
        }
    });
    let repo = format!("http://127.0.0.1:{}/acme/app", api.port);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let manifests = root.join("kargo");
    std::fs::create_dir_all(&manifests).unwrap();
    let stage = |name: &str, steps: &str| {
        format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: {name}, namespace: demo}}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w}}\n    sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps:\n{steps}"
        )
    };
    let merge = |provider: &str, n: u32, extra: &str| {
        format!(
            "      - uses: git-merge-pr\n        config: {{repoURL: \"{repo}\", provider: {provider}, prNumber: {n}{extra}}}\n"
        )
    };
    std::fs::write(
        manifests.join("stages.yaml"),
        stage(
            "merged",
            &(merge(
                "github",
                7,
                ", wait: true, pollInterval: 1s, mergeMethod: squash",
            ) + &merge("gitlab", 3, "")
                + &merge("gitea", 5, "")),
        ) + &stage("conflict", &merge("github", 8, ", wait: true"))
            + &stage("unready", &merge("github", 9, ""))
            + &stage("refused", &merge("github", 10, ", mergeMethod: squash"))
            + &stage("badmethod", &merge("github", 10, ", mergeMethod: fast"))
            + "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {namespace: demo}\nalias: a\norigin: {kind: Warehouse, name: w}\nimages: [{repoURL: nginx, tag: 1.27.3}]\n",
    )
    .unwrap();
    let out = promote_local(root, "merged", "a", &["-n", "demo"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for sha in [
        "1111111111111111111111111111111111111111",
        "2222222222222222222222222222222222222222",
        "3333333333333333333333333333333333333333",
    ] {
        assert!(stdout.contains(&format!("merged as {sha}")), "{stdout}");
    }
    assert!(
        *looks.lock().unwrap() >= 3,
        "GitHub's pull request was read again"
    );
    let before = api.requests.lock().unwrap().len();
    for (stage, why) in [
        (
            "conflict",
            "pull request 8 has conflicts and cannot be merged",
        ),
        (
            "unready",
            "pull request 9 is not ready to merge (mergeable_state \"unknown\") and wait is disabled",
        ),
        (
            "refused",
            "GitHub refused to merge pull request 10: Squash merges are not allowed on this repository.",
        ),
        (
            "badmethod",
            "unsupported merge method \"fast\" for github; use one of merge, rebase, squash",
        ),
    ] {
        let out = promote_local(root, stage, "a", &["-n", "demo"], &[]);
        assert!(!out.status.success(), "{stage}");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(why), "{stage}: {text}");
    }
    let sent: Vec<String> = api.requests.lock().unwrap()[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect();
    assert!(
        !sent
            .iter()
            .any(|r| r.contains("/pulls/8/merge") || r.contains("/pulls/9/merge")),
        "no merge was attempted for a pull request that cannot be merged: {sent:?}"
    );
    assert_eq!(
        sent.iter().filter(|r| r.contains("/pulls/10")).count(),
        2,
        "the refused merge was tried once and the unknown method never sent: {sent:?}"
    );
}

/// A local fake of GitHub's Git data API over a real bare repository, plus smart HTTP for the
/// same repository: what `github-push` talks to. Commits made through the API carry the author
/// and committer given, else GitHub's own identity (as GitHub does for a token's commits). On the
/// first branch update, when `race` is set, someone else's commit lands on `main` first and the
/// update is refused as GitHub refuses a non-fast-forward (422).
fn fake_github(root: &Path, bare: &Path, token: &str, race: bool) -> promote_tests::HttpServer {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (root, bare) = (root.to_owned(), bare.to_owned());
    let auth = format!("token {token}");
    let raced = AtomicBool::new(!race);
    promote_tests::HttpServer::start(move |req| {
        let Some(api) = req.target.strip_prefix("/api/v3/repos/acme/app/") else {
            return promote_tests::git_http_backend(&root, "anonymous", req);
        };
        let json = |status: &str, v: serde_json::Value| {
            (
                status.to_owned(),
                vec![("Content-Type".into(), "application/json".into())],
                v.to_string().into_bytes(),
            )
        };
        if req.headers.get("authorization") != Some(&auth) {
            return json(
                "401 Unauthorized",
                serde_json::json!({"message": "Bad credentials"}),
            );
        }
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let run = |args: &[&str], envs: &[(&str, String)], input: &str| {
            let mut child = Command::new("git")
                .args(args)
                .current_dir(&bare)
                .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            )
        };
        match (req.method.as_str(), api) {
            ("POST", "git/commits") => {
                let mut args = vec![
                    "commit-tree".to_owned(),
                    body["tree"].as_str().unwrap_or_default().to_owned(),
                ];
                for p in body["parents"].as_array().cloned().unwrap_or_default() {
                    args.push("-p".into());
                    args.push(p.as_str().unwrap_or_default().to_owned());
                }
                let who = |k: &str, var: &str| -> Vec<(String, String)> {
                    let v = &body[k];
                    if v.is_null() {
                        vec![
                            (format!("GIT_{var}_NAME"), "GitHub".into()),
                            (format!("GIT_{var}_EMAIL"), "noreply@github.com".into()),
                        ]
                    } else {
                        vec![
                            (
                                format!("GIT_{var}_NAME"),
                                v["name"].as_str().unwrap_or_default().into(),
                            ),
                            (
                                format!("GIT_{var}_EMAIL"),
                                v["email"].as_str().unwrap_or_default().into(),
                            ),
                            (
                                format!("GIT_{var}_DATE"),
                                v["date"].as_str().unwrap_or_default().into(),
                            ),
                        ]
                    }
                };
                let envs: Vec<(String, String)> = who("author", "AUTHOR")
                    .into_iter()
                    .chain(who("committer", "COMMITTER"))
                    .collect();
                let envs: Vec<(&str, String)> =
                    envs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                let (ok, sha) = run(&argv, &envs, body["message"].as_str().unwrap_or_default());
                if !ok {
                    return json(
                        "422 Unprocessable Entity",
                        serde_json::json!({"message": "Tree SHA does not exist"}),
                    );
                }
                json("201 Created", serde_json::json!({"sha": sha}))
            }
            ("POST", "git/refs") => {
                let r = body["ref"].as_str().unwrap_or_default();
                if run(&["rev-parse", "--verify", "-q", r], &[], "").0 {
                    return json(
                        "422 Unprocessable Entity",
                        serde_json::json!({"message": "Reference already exists"}),
                    );
                }
                run(
                    &["update-ref", r, body["sha"].as_str().unwrap_or_default()],
                    &[],
                    "",
                );
                json("201 Created", serde_json::json!({"ref": r}))
            }
            ("PATCH", r) if r.starts_with("git/refs/heads/") => {
                let name = format!("refs/{}", r.trim_start_matches("git/refs/"));
                let sha = body["sha"].as_str().unwrap_or_default();
                if !raced.swap(true, Ordering::SeqCst) {
                    // Someone else's commit lands first.
                    let (_, tip) = run(&["rev-parse", &name], &[], "");
                    let (_, blob) = run(&["hash-object", "-w", "--stdin"], &[], "other\n");
                    let (_, tree) =
                        run(&["mktree"], &[], &format!("100644 blob {blob}\tOTHER.md\n"));
                    let (_, base_tree) = run(&["rev-parse", &format!("{tip}^{{tree}}")], &[], "");
                    let _ = tree;
                    let (_, listing) = run(&["ls-tree", &base_tree], &[], "");
                    let (_, merged_tree) = run(
                        &["mktree"],
                        &[],
                        &format!("{listing}\n100644 blob {blob}\tOTHER.md\n"),
                    );
                    let envs = [
                        ("GIT_AUTHOR_NAME", "Someone".to_owned()),
                        ("GIT_AUTHOR_EMAIL", "someone@example.com".to_owned()),
                        ("GIT_COMMITTER_NAME", "Someone".to_owned()),
                        ("GIT_COMMITTER_EMAIL", "someone@example.com".to_owned()),
                    ];
                    let (_, other) = run(
                        &[
                            "commit-tree",
                            &merged_tree,
                            "-p",
                            &tip,
                            "-m",
                            "someone else",
                        ],
                        &envs,
                        "",
                    );
                    run(&["update-ref", &name, &other], &[], "");
                    return json(
                        "422 Unprocessable Entity",
                        serde_json::json!({"message": "Update is not a fast forward"}),
                    );
                }
                let forced = body["force"].as_bool().unwrap_or(false);
                let (_, tip) = run(&["rev-parse", &name], &[], "");
                if !forced && !run(&["merge-base", "--is-ancestor", &tip, sha], &[], "").0 {
                    return json(
                        "422 Unprocessable Entity",
                        serde_json::json!({"message": "Update is not a fast forward"}),
                    );
                }
                run(&["update-ref", &name, sha], &[], "");
                json(
                    "200 OK",
                    serde_json::json!({"ref": name, "object": {"sha": sha}}),
                )
            }
            ("DELETE", r) if r.starts_with("git/refs/") => {
                run(
                    &[
                        "update-ref",
                        "-d",
                        &format!("refs/{}", r.trim_start_matches("git/refs/")),
                    ],
                    &[],
                    "",
                );
                ("204 No Content".into(), vec![], vec![])
            }
            _ => json("404 Not Found", serde_json::json!({"message": "Not Found"})),
        }
    })
}

/// `github-push` against a local fake of GitHub's API over a real repository: the commit is
/// replayed through the API with its author and committer kept (it is not signed), the branch
/// moves to the replayed commit, the staging ref is gone; a branch that moved on meanwhile is
/// integrated and the push retried; `generateTargetBranch` creates the branch; the token is
/// never printed.
#[test]
fn github_push_replays_commits_through_the_api() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let served = root.join("served");
    let bare = bare_repo(
        &served.join("acme"),
        "app",
        &[("values.yaml", "image:\n  tag: \"1.0\"\n")],
    );
    let key = root.join("signing_key");
    let keygen = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "promoter@example.com",
            "-f",
        ])
        .arg(&key)
        .status()
        .unwrap();
    assert!(keygen.success());
    for (name, race, signed) in [
        ("test", false, false),
        ("race", true, false),
        ("signed", false, true),
    ] {
        let api = fake_github(&served, &bare, "s3cret-token", race);
        let author = if signed {
            format!(
                ", author: {{name: Promoter, email: promoter@example.com, signingKey: \"{}\"}}",
                key.display()
            )
        } else {
            String::new()
        };
        let url = format!("http://127.0.0.1:{}/acme/app.git", api.port);
        let manifests = root.join("kargo");
        std::fs::create_dir_all(&manifests).unwrap();
        let stage = |name: &str, push: &str| {
            format!(
                "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: {name}, namespace: demo}}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w}}\n    sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps:\n      - uses: git-clone\n        config: {{repoURL: \"{url}\", checkout: [{{branch: main, path: ./src}}]{author}}}\n      - uses: yaml-update\n        config: {{path: ./src/values.yaml, updates: [{{key: image.tag, value: \"{name}\"}}]}}\n      - uses: git-commit\n        config: {{path: ./src, message: \"bump to {name}\"}}\n      - uses: github-push\n        as: push\n        config: {{path: ./src{push}}}\n"
            )
        };
        std::fs::write(
            manifests.join("stages.yaml"),
            stage(name, "")
                + &stage("pr", ", generateTargetBranch: true")
                + "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {namespace: demo}\nalias: a\norigin: {kind: Warehouse, name: w}\nimages: [{repoURL: nginx, tag: 1.27.3}]\n",
        )
        .unwrap();
        let env = [
            ("GITHUB_TOKEN", "s3cret-token"),
            ("PROMOTE_TOKEN_HOSTS", &*format!("127.0.0.1:{}", api.port)),
            ("GIT_CONFIG_COUNT", "1"),
            ("GIT_CONFIG_KEY_0", "gpg.format"),
            ("GIT_CONFIG_VALUE_0", "ssh"),
        ];
        let before = git(&bare, &["rev-parse", "main"]);
        let out = promote_local(root, name, "a", &["-n", "demo"], &env);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(
            !stdout.contains("s3cret") && !stderr.contains("s3cret"),
            "the token was printed"
        );
        let tip = git(&bare, &["rev-parse", "main"]);
        assert_ne!(tip, before);
        assert_eq!(
            git(&bare, &["show", "main:values.yaml"]),
            format!("image:\n  tag: \"{name}\"")
        );
        assert_eq!(
            git(&bare, &["log", "-1", "--format=%s", "main"]),
            format!("bump to {name}")
        );
        let author = git(
            &bare,
            &["log", "-1", "--format=%an <%ae>|%cn <%ce>", "main"],
        );
        if signed {
            assert_eq!(
                author, "GitHub <noreply@github.com>|GitHub <noreply@github.com>",
                "a commit signed by the git-clone step's key is left to GitHub to attribute and sign"
            );
        } else {
            assert!(
                !author.contains("GitHub"),
                "an unsigned commit keeps its author and committer: {author}"
            );
        }
        assert!(
            stdout.contains(&format!("pushed {} to main", &tip[..12])),
            "{stdout}"
        );
        if race {
            assert!(stdout.contains("after 1 retry"), "{stdout}");
            assert_eq!(
                git(&bare, &["log", "-1", "--format=%s", "main~1"]),
                "someone else"
            );
            assert_eq!(git(&bare, &["show", "main:OTHER.md"]), "other");
        } else {
            assert_eq!(
                git(&bare, &["rev-parse", "main~1"]),
                before,
                "one commit replayed on the old tip"
            );
        }
        assert_eq!(
            git(&bare, &["for-each-ref", "refs/kargo"]),
            "",
            "the staging ref is deleted"
        );
        let sent: Vec<String> = api
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.target.starts_with("/api/"))
            .map(|r| format!("{} {}", r.method, r.target))
            .collect();
        assert!(
            sent.contains(&"POST /api/v3/repos/acme/app/git/commits".to_owned()),
            "{sent:?}"
        );
        assert!(
            sent.contains(&"PATCH /api/v3/repos/acme/app/git/refs/heads/main".to_owned()),
            "{sent:?}"
        );
        if name == "test" {
            let pr = promote_local(root, "pr", "a", &["-n", "demo"], &env);
            let stdout = String::from_utf8_lossy(&pr.stdout).into_owned();
            assert!(
                pr.status.success(),
                "{stdout}\n{}",
                String::from_utf8_lossy(&pr.stderr)
            );
            let branches = git(
                &bare,
                &[
                    "for-each-ref",
                    "--format=%(refname:short)",
                    "refs/heads/kargo/promotion",
                ],
            );
            assert!(branches.starts_with("kargo/promotion/pr."), "{branches}");
            assert_eq!(
                git(&bare, &["show", &format!("{branches}:values.yaml")]),
                "image:\n  tag: \"pr\""
            );
            let tip = git(&bare, &["rev-parse", &branches]);
            assert!(
                stdout.contains(&format!("pushed {} to {branches}", &tip[..12])),
                "{stdout}"
            );
        }
    }
}

/// `set-metadata` with `--local`: the values hold for the rest of the promotion, where
/// `stageMetadata()` reads them back; `configMap()` and `secret()` read DIR's objects; an update
/// of a Stage the manifests do not hold fails and names it.
#[test]
fn set_metadata_and_lookups_with_local() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let manifests = root.join("kargo");
    std::fs::create_dir_all(&manifests).unwrap();
    let stage = |name: &str, target: &str| {
        format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: {name}, namespace: demo}}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w}}\n    sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps:\n      - uses: set-metadata\n        config: {{updates: [{{kind: Stage, name: {target}, values: {{owner: \"${{{{ configMap('team').owner }}}}\"}}}}]}}\n      - uses: compose-output\n        as: out\n        config: {{owner: \"${{{{ stageMetadata('{target}').owner }}}}\", token: \"${{{{ secret('api').token }}}}\"}}\n      - uses: fail\n        config: {{message: \"read back ${{{{ outputs.out.owner }}}} ${{{{ outputs.out.token }}}}\"}}\n"
        )
    };
    std::fs::write(
        manifests.join("stages.yaml"),
        stage("meta", "meta")
            + &stage("missing", "nowhere")
            + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: team, namespace: demo}\ndata: {owner: platform}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: api, namespace: demo}\nstringData: {token: t0k}\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {namespace: demo}\nalias: a\norigin: {kind: Warehouse, name: w}\nimages: [{repoURL: nginx, tag: 1.27.3}]\n",
    )
    .unwrap();
    // The last step, `fail`, shows what the earlier ones read back.
    let out = promote_local(root, "meta", "a", &["-n", "demo"], &[]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("for this run only"), "{text}");
    assert!(text.contains("read back platform t0k"), "{text}");
    let out = promote_local(root, "missing", "a", &["-n", "demo"], &[]);
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(
            "set-metadata: Stage \"nowhere\" not found in the manifests of project \"demo\""
        ),
        "{text}"
    );
}

/// Before its first write, a promotion checks what its pull-request steps will need: a
/// `git-open-pr` for a host whose provider cannot be told, or a `git-merge-pr` with a merge method
/// its provider refuses, fails the promotion with nothing pushed.
#[test]
fn pull_request_steps_are_checked_before_anything_is_pushed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let bare = bare_repo(root, "app", &[("values.yaml", "tag: \"1\"\n")]);
    let url = format!("file://{}", bare.display());
    let manifests = root.join("kargo");
    std::fs::create_dir_all(&manifests).unwrap();
    let stage = |name: &str, pr: &str| {
        format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: {name}, namespace: demo}}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w}}\n    sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps:\n      - uses: git-clone\n        config: {{repoURL: \"{url}\", checkout: [{{branch: main, path: ./src}}]}}\n      - uses: yaml-update\n        config: {{path: ./src/values.yaml, updates: [{{key: tag, value: \"{name}\"}}]}}\n      - uses: git-commit\n        config: {{path: ./src, message: bump}}\n      - uses: git-push\n        as: push\n        config: {{path: ./src, generateTargetBranch: true}}\n{pr}"
        )
    };
    std::fs::write(
        manifests.join("stages.yaml"),
        stage("open", "      - uses: git-open-pr\n        config: {repoURL: \"https://git.example.com/acme/app\", sourceBranch: \"${{ outputs.push.branch }}\", targetBranch: main}\n")
            + &stage("merge", "      - uses: git-merge-pr\n        config: {repoURL: \"https://github.com/acme/app\", prNumber: 1, mergeMethod: fast-forward}\n")
            + "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {namespace: demo}\nalias: a\norigin: {kind: Warehouse, name: w}\nimages: [{repoURL: nginx, tag: 1.27.3}]\n",
    )
    .unwrap();
    for (stage, why) in [
        (
            "open",
            "cannot tell which provider hosts \"git.example.com\"",
        ),
        (
            "merge",
            "unsupported merge method \"fast-forward\" for github",
        ),
    ] {
        let out = promote_local(root, stage, "a", &["-n", "demo"], &[]);
        assert!(!out.status.success());
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(why), "{stage}: {text}");
        assert!(text.contains("cannot deliver"), "{stage}: {text}");
        assert_eq!(
            git(
                &bare,
                &["for-each-ref", "--format=%(refname)", "refs/heads"]
            ),
            "refs/heads/main",
            "nothing was pushed"
        );
    }
}

/// `git-open-pr`, `git-wait-for-pr` and `git-merge-pr` against local fakes of Azure DevOps' and
/// Bitbucket Cloud's REST APIs: a pull request opened (and found again on a second run), one
/// merged already, one merged by the step (Azure completes it asynchronously; Bitbucket names the
/// merge commit by a prefix, resolved to the full id), each provider's token sent in its form.
#[test]
fn azure_devops_and_bitbucket_pull_requests() {
    use std::sync::{Arc, Mutex};
    let state = Arc::new(Mutex::new(
        std::collections::BTreeMap::<String, String>::new(),
    ));
    let st = state.clone();
    let api = promote_tests::HttpServer::start(move |req| {
        let json = |status: &str, v: serde_json::Value| {
            (
                status.to_owned(),
                vec![("Content-Type".into(), "application/json".into())],
                v.to_string().into_bytes(),
            )
        };
        let auth = req
            .headers
            .get("authorization")
            .cloned()
            .unwrap_or_default();
        let mut st = st.lock().unwrap();
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
        if let Some(rest) = path.strip_prefix("/acme/shop/_apis/git/repositories/app/") {
            if auth != format!("Basic {}", promote_tests::base64(b":az-t0ken"))
                || !query.contains("api-version=7.1")
            {
                return json("401 Unauthorized", serde_json::json!({"message": "no"}));
            }
            return match (req.method.as_str(), rest) {
                ("GET", "pullrequests") => {
                    let open = st.contains_key("az-open");
                    let value = if open
                        && query.contains("searchCriteria.sourceRefName=refs%2Fheads%2Fkargo%2Fx")
                    {
                        serde_json::json!([{ "pullRequestId": 11, "status": "active", "repository": { "webUrl": "https://dev.azure.com/acme/shop/_git/app" } }])
                    } else {
                        serde_json::json!([])
                    };
                    json("200 OK", serde_json::json!({ "value": value, "count": 0 }))
                }
                ("POST", "pullrequests")
                    if body["sourceRefName"] == "refs/heads/kargo/x"
                        && body["targetRefName"] == "refs/heads/main" =>
                {
                    st.insert("az-open".into(), "1".into());
                    json(
                        "201 Created",
                        serde_json::json!({ "pullRequestId": 11, "status": "active", "repository": { "webUrl": "https://dev.azure.com/acme/shop/_git/app" } }),
                    )
                }
                ("GET", "pullrequests/12") => json(
                    "200 OK",
                    serde_json::json!({ "pullRequestId": 12, "status": "completed", "lastMergeCommit": { "commitId": "a".repeat(40) } }),
                ),
                ("GET", "pullrequests/13") => {
                    // Completed a moment after the PATCH: the step reads it again.
                    let polls = st.entry("az13-polls".into()).or_default();
                    polls.push('.');
                    if st.contains_key("az13-done") && st["az13-polls"].len() > 2 {
                        json(
                            "200 OK",
                            serde_json::json!({ "pullRequestId": 13, "status": "completed", "lastMergeCommit": { "commitId": "b".repeat(40) } }),
                        )
                    } else {
                        json(
                            "200 OK",
                            serde_json::json!({ "pullRequestId": 13, "status": "active", "isDraft": false, "mergeStatus": "succeeded", "lastMergeSourceCommit": { "commitId": "c".repeat(40) } }),
                        )
                    }
                }
                ("PATCH", "pullrequests/13")
                    if body["status"] == "completed"
                        && body["lastMergeSourceCommit"]["commitId"] == "c".repeat(40)
                        && body["completionOptions"]["mergeStrategy"] == "squash" =>
                {
                    st.insert("az13-done".into(), "1".into());
                    json(
                        "200 OK",
                        serde_json::json!({ "pullRequestId": 13, "status": "active" }),
                    )
                }
                _ => json(
                    "404 Not Found",
                    serde_json::json!({ "message": format!("{} {}", req.method, req.target) }),
                ),
            };
        }
        if let Some(rest) = path.strip_prefix("/2.0/repositories/acme/app/") {
            if auth != "Bearer bb-t0ken" {
                return json(
                    "401 Unauthorized",
                    serde_json::json!({"error": {"message": "no"}}),
                );
            }
            return match (req.method.as_str(), rest) {
                ("GET", "pullrequests") => json(
                    "200 OK",
                    serde_json::json!({ "values": [
                    { "id": 3, "state": "OPEN", "source": { "branch": { "name": "other" } }, "destination": { "branch": { "name": "main" } } }
                ] }),
                ),
                ("POST", "pullrequests") if body["source"]["branch"]["name"] == "kargo/x" => json(
                    "201 Created",
                    serde_json::json!({ "id": 21, "state": "OPEN", "links": { "html": { "href": "https://bitbucket.org/acme/app/pull-requests/21" } } }),
                ),
                ("GET", "pullrequests/22") => json(
                    "200 OK",
                    serde_json::json!({ "id": 22, "state": "MERGED", "merge_commit": { "hash": "dddddddddddd" } }),
                ),
                ("GET", "pullrequests/23") => json(
                    "200 OK",
                    serde_json::json!({ "id": 23, "state": "OPEN", "draft": false }),
                ),
                ("POST", "pullrequests/23/merge") if body["merge_strategy"] == "merge_commit" => {
                    json(
                        "200 OK",
                        serde_json::json!({ "id": 23, "state": "MERGED", "merge_commit": { "hash": "eeeeeeeeeeee" } }),
                    )
                }
                ("GET", "commit/dddddddddddd") => {
                    json("200 OK", serde_json::json!({ "hash": "d".repeat(40) }))
                }
                ("GET", "commit/eeeeeeeeeeee") => {
                    json("200 OK", serde_json::json!({ "hash": "e".repeat(40) }))
                }
                _ => json(
                    "404 Not Found",
                    serde_json::json!({ "error": { "message": format!("{} {}", req.method, req.target) } }),
                ),
            };
        }
        json("404 Not Found", serde_json::json!({}))
    });
    let azure = format!("http://127.0.0.1:{}/acme/shop/_git/app", api.port);
    let bitbucket = format!("http://127.0.0.1:{}/acme/app", api.port);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let manifests = root.join("kargo");
    std::fs::create_dir_all(&manifests).unwrap();
    let stage = |name: &str, steps: String| {
        format!(
            "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: {name}, namespace: demo}}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w}}\n    sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps:\n{steps}"
        )
    };
    let steps = |repo: &str, provider: &str, waited: u32, merged: u32, method: &str| {
        format!(
            "      - uses: git-open-pr\n        config: {{repoURL: \"{repo}\", provider: {provider}, sourceBranch: kargo/x, targetBranch: main, labels: [promotion]}}\n      - uses: git-wait-for-pr\n        config: {{repoURL: \"{repo}\", provider: {provider}, prNumber: {waited}}}\n      - uses: git-merge-pr\n        config: {{repoURL: \"{repo}\", provider: {provider}, prNumber: {merged}, mergeMethod: {method}}}\n"
        )
    };
    std::fs::write(
        manifests.join("stages.yaml"),
        stage("azure", steps(&azure, "azure", 12, 13, "squash"))
            + &stage("bitbucket", steps(&bitbucket, "bitbucket", 22, 23, "merge_commit"))
            + "---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {namespace: demo}\nalias: a\norigin: {kind: Warehouse, name: w}\nimages: [{repoURL: nginx, tag: 1.27.3}]\n",
    )
    .unwrap();
    let hosts = format!("127.0.0.1:{}", api.port);
    let env = [
        ("AZURE_DEVOPS_TOKEN", "az-t0ken"),
        ("BITBUCKET_TOKEN", "bb-t0ken"),
        ("PROMOTE_TOKEN_HOSTS", hosts.as_str()),
    ];
    for (stage, opened, commits) in [
        (
            "azure",
            "opened pull request #11 https://dev.azure.com/acme/shop/_git/app/pullrequest/11",
            ["a".repeat(40), "b".repeat(40)],
        ),
        (
            "bitbucket",
            "opened pull request #21 https://bitbucket.org/acme/app/pull-requests/21",
            ["d".repeat(40), "e".repeat(40)],
        ),
    ] {
        let out = promote_local(root, stage, "a", &["-n", "demo"], &env);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stage}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(opened), "{stdout}");
        for c in &commits {
            assert!(
                stdout.contains(&format!("merged as {c}")),
                "{stage}: {stdout}"
            );
        }
        assert!(!stdout.contains("t0ken"), "a token was printed");
    }
    // Azure's pull request is found again, not opened twice.
    let again = promote_local(root, "azure", "a", &["-n", "demo"], &env);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.contains("reused open pull request #11"), "{stdout}");
}

/// `tar` through a promotion: a directory archived (gzipped, an ignore pattern honoured) and
/// read back by the real `tar`, a single file archived by its own name, and the archive the same
/// bytes when promoted again (nothing to commit the second time).
#[test]
fn tar_archives_reproducibly() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let bare = bare_repo(
        root,
        "files",
        &[
            ("site/index.html", "<h1>hi</h1>\n"),
            ("site/css/main.css", "body {}\n"),
            ("site/draft.tmp", "scratch\n"),
            ("notes.txt", "n\n"),
        ],
    );
    let url = format!("file://{}", bare.display());
    let manifests = root.join("kargo");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(
        manifests.join("stage.yaml"),
        format!("apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: pack, namespace: demo}}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w}}\n    sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps:\n      - uses: git-clone\n        config: {{repoURL: \"{url}\", checkout: [{{branch: main, path: ./src}}]}}\n      - uses: tar\n        config: {{inPath: ./src/site, outPath: ./src/out/site.tgz, gzip: true, ignore: \"*.tmp\"}}\n      - uses: tar\n        config: {{inPath: ./src/notes.txt, outPath: ./src/out/notes.tar}}\n      - uses: git-commit\n        config: {{path: ./src, message: packed}}\n      - uses: git-push\n        config: {{path: ./src}}\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {{namespace: demo}}\nalias: a\norigin: {{kind: Warehouse, name: w}}\nimages: [{{repoURL: nginx, tag: 1.27.3}}]\n"),
    )
    .unwrap();
    let out = promote_local(root, "pack", "a", &["-n", "demo"], &[]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let list = |name: &str, flags: &str| {
        let co = root.join("check");
        let _ = std::fs::remove_dir_all(&co);
        git(
            root,
            &["clone", "-q", bare.to_str().unwrap(), co.to_str().unwrap()],
        );
        let out = Command::new("tar")
            .arg(flags)
            .arg(co.join("out").join(name))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(list("site.tgz", "-tzf"), "css/\ncss/main.css\nindex.html\n");
    assert_eq!(list("notes.tar", "-tf"), "notes.txt\n");
    let head = git(&bare, &["rev-parse", "main"]);
    let again = promote_local(root, "pack", "a", &["-n", "demo"], &[]);
    assert!(again.status.success());
    assert_eq!(
        git(&bare, &["rev-parse", "main"]),
        head,
        "the same tree archives to the same bytes"
    );
}
