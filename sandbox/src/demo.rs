//! `promote-sandbox demo`: the day-one story as one command, with nothing to install beyond the
//! toolchain (git and kubectl on PATH). It starts the sandbox (with its Argo CD simulator), a
//! `git daemon` on 127.0.0.1 serving a GitOps repository (kustomize base + dev/test/prod
//! overlays), creates the webhook's certificates with `promote-webhook certs`, installs
//! `manifests/` through the API exactly as the README tells a cluster admin, runs the webhook
//! binary (the sandbox runs no Pods, so the Deployment's container runs here as a process),
//! creates a project (Warehouse, Stages dev → test → prod, annotated Applications, RBAC for alice
//! and bob) and two Freight, then runs real `kubectl promote` commands, printing each one as a
//! user would type it. The sandbox keeps running afterwards (unless `--exit`) with a kubeconfig
//! in the demo directory, so the user can go on by hand.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Options, Sandbox, SandboxError};

/// The `manifests/` files the demo ships: these, and the Kargo CRDs the sandbox carries
/// (`crate::CRDS`), under `crds/`.
pub fn shipped_files() -> impl Iterator<Item = (String, &'static str)> {
    let crds = crate::CRDS
        .iter()
        .filter(|(n, _)| n.starts_with("kargo.akuity.io_"))
        .map(|(n, t)| (format!("crds/{n}"), *t));
    MANIFESTS
        .iter()
        .map(|(p, t)| ((*p).to_owned(), *t))
        .chain(crds)
}

/// `manifests/` as shipped, written into the demo directory and applied from there.
const MANIFESTS: &[(&str, &str)] = &[
    (
        "kustomization.yaml",
        include_str!("../../manifests/kustomization.yaml"),
    ),
    (
        "crds/kustomization.yaml",
        include_str!("../../manifests/crds/kustomization.yaml"),
    ),
    (
        "rbac/kustomization.yaml",
        include_str!("../../manifests/rbac/kustomization.yaml"),
    ),
    (
        "rbac/roles.yaml",
        include_str!("../../manifests/rbac/roles.yaml"),
    ),
    (
        "webhook/kustomization.yaml",
        include_str!("../../manifests/webhook/kustomization.yaml"),
    ),
    (
        "webhook/namespace.yaml",
        include_str!("../../manifests/webhook/namespace.yaml"),
    ),
    (
        "webhook/rbac.yaml",
        include_str!("../../manifests/webhook/rbac.yaml"),
    ),
    (
        "webhook/deployment.yaml",
        include_str!("../../manifests/webhook/deployment.yaml"),
    ),
    (
        "webhook/service.yaml",
        include_str!("../../manifests/webhook/service.yaml"),
    ),
    (
        "webhook/pdb.yaml",
        include_str!("../../manifests/webhook/pdb.yaml"),
    ),
    (
        "webhook/webhooks.yaml",
        include_str!("../../manifests/webhook/webhooks.yaml"),
    ),
    (
        "components/cert-manager/kustomization.yaml",
        include_str!("../../manifests/components/cert-manager/kustomization.yaml"),
    ),
    (
        "components/cert-manager/certificate.yaml",
        include_str!("../../manifests/components/cert-manager/certificate.yaml"),
    ),
];

const OVERLAY: &str = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: guestbook-STAGE\nresources:\n- ../../base\nimages:\n- name: nginx\n  newTag: \"1.24.0\" # promoted by kubectl promote\n";
const BASE_KUSTOMIZATION: &str = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- deployment.yaml\n";
const BASE_DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: guestbook\nspec:\n  replicas: 1\n  selector:\n    matchLabels: { app: guestbook }\n  template:\n    metadata:\n      labels: { app: guestbook }\n    spec:\n      containers:\n      - name: guestbook\n        image: nginx:1.24.0\n";

/// The project a platform team would write: namespace, who may do what, Warehouse, Stages, Apps.
fn project_yaml(repo: &str, image: &DemoImage) -> String {
    let (repo_url, entry) = (&image.repo_url, &image.kustomize_entry);
    let mut docs = vec![format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: kargo-demo
  labels: {{ kargo.akuity.io/project: "true" }}
---
# alice may promote every Stage of the project.
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: alice-promoter, namespace: kargo-demo }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: promote-promoter }}
subjects: [{{ kind: User, name: alice, apiGroup: rbac.authorization.k8s.io }}]
---
# bob may promote dev and test, not prod.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{ name: dev-test-promoter, namespace: kargo-demo }}
rules:
  - apiGroups: ["kargo.akuity.io"]
    resources: ["warehouses", "freights", "stages", "promotions", "promotiontasks"]
    verbs: ["get", "list", "watch"]
  - apiGroups: ["kargo.akuity.io"]
    resources: ["stages"]
    resourceNames: ["dev", "test"]
    verbs: ["promote"]
  - apiGroups: ["kargo.akuity.io"]
    resources: ["promotions"]
    verbs: ["create", "update", "patch"]
  - apiGroups: ["kargo.akuity.io"]
    resources: ["promotions/status", "stages/status", "freights/status"]
    verbs: ["get", "update", "patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: bob-dev-test-promoter, namespace: kargo-demo }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: Role, name: dev-test-promoter }}
subjects: [{{ kind: User, name: bob, apiGroup: rbac.authorization.k8s.io }}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: promoters-sync, namespace: argocd }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: promote-argocd-syncer }}
subjects:
  - {{ kind: User, name: alice, apiGroup: rbac.authorization.k8s.io }}
  - {{ kind: User, name: bob, apiGroup: rbac.authorization.k8s.io }}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {{ name: guestbook, namespace: kargo-demo }}
spec:
  subscriptions:
    - image: {{ repoURL: {repo_url}, constraint: ^1.25.0 }}"#
    )];
    for (stage, sources) in [
        ("dev", "{ direct: true }"),
        ("test", "{ stages: [dev] }"),
        ("prod", "{ stages: [test] }"),
    ] {
        docs.push(format!(
            r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata: {{ name: {stage}, namespace: kargo-demo }}
spec:
  requestedFreight:
    - origin: {{ kind: Warehouse, name: guestbook }}
      sources: {sources}
  promotionTemplate:
    spec:
      vars:
        - {{ name: repoURL, value: "{repo}" }}
      steps:
        - uses: git-clone
          config:
            repoURL: ${{{{ vars.repoURL }}}}
            checkout: [{{ branch: main, path: ./src }}]
        - uses: kustomize-set-image
          as: update
          config:
            path: ./src/env/{stage}
            images: [{entry}]
        - uses: git-commit
          as: commit
          config:
            path: ./src
            message: ${{{{ outputs.update.commitMessage }}}}
        - uses: git-push
          as: push
          config: {{ path: ./src }}
        - uses: argocd-update
          config:
            apps:
              - name: guestbook-{stage}
                sources:
                  - repoURL: ${{{{ vars.repoURL }}}}
                    desiredRevision: ${{{{ outputs.push.commit }}}}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: guestbook-{stage}
  namespace: argocd
  annotations:
    kargo.akuity.io/authorized-stage: "kargo-demo:{stage}"
spec:
  project: default
  destination: {{ server: https://kubernetes.default.svc, namespace: guestbook-{stage} }}
  source: {{ repoURL: "{repo}", path: env/{stage}, targetRevision: main }}
  syncPolicy: {{ syncOptions: [CreateNamespace=true] }}"#
        ));
    }
    docs.join("\n---\n") + "\n"
}

/// Where the demo's images come from: a registry on 127.0.0.1 (Debian's `docker-registry`),
/// discovered by the Warehouse; else the public name, with Freight created by hand.
struct DemoImage {
    repo_url: String,
    kustomize_entry: String,
    registry: Option<(Guard, String)>,
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(data);
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Push a small image (config and one layer) under `tag`, through the registry API.
async fn push_image(base: &str, repo: &str, tag: &str, created: &str) -> Result<(), String> {
    // reqwest is built without a default TLS provider (the workspace uses ring); building a
    // client without one would panic, even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| e.to_string())?;
    let blob = |data: Vec<u8>| {
        let client = client.clone();
        async move {
            let digest = sha256(&data);
            let start = client
                .post(format!("{base}/v2/{repo}/blobs/uploads/"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let location = start
                .headers()
                .get("Location")
                .and_then(|l| l.to_str().ok())
                .ok_or("the registry gave no upload location")?
                .to_owned();
            let url = if location.starts_with('/') {
                format!("{base}{location}")
            } else {
                location
            };
            let sep = if url.contains('?') { '&' } else { '?' };
            let size = data.len();
            let put = client
                .put(format!("{url}{sep}digest={digest}"))
                .header("Content-Type", "application/octet-stream")
                .body(data)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !put.status().is_success() {
                return Err(format!("blob upload: HTTP {}", put.status()));
            }
            Ok::<_, String>((digest, size))
        }
    };
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": created,
        "config": {"Labels": {"org.opencontainers.image.version": tag}},
        "rootfs": {"type": "layers", "diff_ids": []},
    });
    let (cd, cs) = blob(serde_json::to_vec(&config).map_err(|e| e.to_string())?).await?;
    let (ld, ls) = blob(format!("guestbook {tag}").into_bytes()).await?;
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ls}],
    });
    let put = client
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("Content-Type", OCI_MANIFEST)
        .body(serde_json::to_vec(&manifest).map_err(|e| e.to_string())?)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !put.status().is_success() {
        return Err(format!("manifest upload: HTTP {}", put.status()));
    }
    Ok(())
}

/// Start Debian's docker-registry on 127.0.0.1 when it is installed.
fn demo_image(dir: &Path, wanted: bool) -> Result<DemoImage, SandboxError> {
    let bin = ["/usr/bin/docker-registry", "/usr/local/bin/registry"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| wanted && p.is_file());
    let Some(bin) = bin else {
        return Ok(DemoImage {
            repo_url: "nginx".into(),
            kustomize_entry: "{ image: nginx, tag: \"${{ imageFrom('nginx').Tag }}\" }".into(),
            registry: None,
        });
    };
    let port = free_port()?;
    let root = dir.join("registry");
    std::fs::create_dir_all(&root).map_err(io(&root))?;
    let config = root.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            root.join("data").display()
        ),
    )
    .map_err(io(&config))?;
    let log = std::fs::File::create(root.join("registry.log")).map_err(io(&root))?;
    let child = Command::new(&bin)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| err(format!("starting {}: {e}", bin.display())))?;
    let guard = Guard(child);
    wait_port(port, "docker-registry")?;
    let host = format!("127.0.0.1:{port}");
    Ok(DemoImage {
        repo_url: format!("{host}/nginx"),
        // The overlays name the image `nginx`; the discovered one comes from the registry.
        kustomize_entry: format!(
            "{{ image: {host}/nginx, name: nginx, newName: {host}/nginx, tag: \"${{{{ imageFrom('{host}/nginx').Tag }}}}\" }}"
        ),
        registry: Some((guard, format!("http://{host}"))),
    })
}

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where everything goes (kubeconfig, certificates, repository, manifests, logs).
    pub dir: PathBuf,
    /// Where `kubectl-promote` and `promote-webhook` are (default: next to this binary).
    pub bin_dir: Option<PathBuf>,
    /// Stop at the end instead of serving until Ctrl-C.
    pub exit: bool,
    /// Push the images to Debian's docker-registry and discover them, when it is installed.
    pub registry: bool,
    /// Tell the story on a cluster that is already running instead of a sandbox it starts.
    pub cluster: Option<ExistingCluster>,
}

/// A running cluster the demo may use: one `scripts/kube up` (the real control plane) or
/// `promote-sandbox up` started, with the same users and an Argo CD simulator on it.
#[derive(Debug, Clone)]
pub struct ExistingCluster {
    /// Its kubeconfig: contexts `admin` (current), `alice`, `bob` and `promote-webhook`.
    pub kubeconfig: PathBuf,
    /// The local port its `promote-webhook.promote-system` Service is mapped to, where the
    /// demo runs the webhook.
    pub webhook_port: u16,
}

fn err(msg: impl Into<String>) -> SandboxError {
    SandboxError::Start(msg.into())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SandboxError + '_ {
    move |source| SandboxError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A child process killed when the demo ends.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16, SandboxError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io(Path::new("127.0.0.1:0")))?;
    Ok(l.local_addr().map_err(io(Path::new("127.0.0.1:0")))?.port())
}

fn wait_port(port: u16, what: &str) -> Result<(), SandboxError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(err(format!(
        "{what} did not start listening on 127.0.0.1:{port}"
    )))
}

fn find_bin(dir: &Path, name: &str) -> Result<PathBuf, SandboxError> {
    let here = dir.join(name);
    if here.is_file() {
        return Ok(here);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|p| p.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            err(format!(
                "{name} not found next to promote-sandbox ({}) or on PATH; build everything with `cargo build --release --workspace --bins`",
                dir.display()
            ))
        })
}

/// The demo's shell: runs commands in the demo directory with the sandbox's kubeconfig and the
/// promote binaries first on PATH, printing each as `$ command`.
struct Shell {
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Shell {
    fn say(&self, text: &str) {
        println!("\n# {text}");
    }

    /// `sh -c line` in the demo directory with the demo's environment, printed as typed.
    fn sh(&self, line: &str) -> Command {
        println!("$ {line}");
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(line)
            .current_dir(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd
    }

    /// Run `line` with sh; its output goes to the terminal. Returns whether it succeeded.
    fn run(&self, line: &str) -> Result<bool, SandboxError> {
        let status = self
            .sh(line)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdin(Stdio::null())
            .status()
            .map_err(io(Path::new("sh")))?;
        Ok(status.success())
    }

    /// Run and require success.
    fn must(&self, line: &str) -> Result<(), SandboxError> {
        if self.run(line)? {
            Ok(())
        } else {
            Err(err(format!("the demo stopped: `{line}` failed")))
        }
    }

    /// Run and capture stdout (printed too).
    fn capture(&self, line: &str) -> Result<String, SandboxError> {
        let out = self
            .sh(line)
            .stderr(Stdio::inherit())
            .output()
            .map_err(io(Path::new("sh")))?;
        if !out.status.success() {
            return Err(err(format!("the demo stopped: `{line}` failed")));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<(), SandboxError> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Platform Team")
        .env("GIT_AUTHOR_EMAIL", "platform@example.com")
        .env("GIT_COMMITTER_NAME", "Platform Team")
        .env("GIT_COMMITTER_EMAIL", "platform@example.com")
        .output()
        .map_err(|e| err(format!("running git (is it installed?): {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Build the GitOps repository and serve it with `git daemon` (push enabled) on 127.0.0.1.
/// A `git daemon` serving every repository under `root` on 127.0.0.1:`port`, pushes enabled.
/// It runs the git-daemon program itself where git has one: `git daemon` starts it as a child
/// process, which killing `git` would leave behind.
pub fn git_daemon_command(root: &Path, port: u16) -> Command {
    let exec_path = Command::new("git")
        .arg("--exec-path")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let daemon = Path::new(&exec_path).join("git-daemon");
    let mut cmd = if daemon.is_file() {
        Command::new(daemon)
    } else {
        let mut c = Command::new("git");
        c.arg("daemon");
        c
    };
    cmd.args([
        "--reuseaddr",
        "--export-all",
        "--enable=receive-pack",
        "--listen=127.0.0.1",
    ])
    .arg(format!("--port={port}"))
    .arg(format!("--base-path={}", root.display()))
    .arg(root);
    cmd
}

fn git_server(dir: &Path) -> Result<(Guard, String), SandboxError> {
    let root = dir.join("git");
    let seed = dir.join("git-seed");
    for (path, text) in [
        (
            "base/kustomization.yaml".to_owned(),
            BASE_KUSTOMIZATION.to_owned(),
        ),
        (
            "base/deployment.yaml".to_owned(),
            BASE_DEPLOYMENT.to_owned(),
        ),
        (
            "env/dev/kustomization.yaml".to_owned(),
            OVERLAY.replace("STAGE", "dev"),
        ),
        (
            "env/test/kustomization.yaml".to_owned(),
            OVERLAY.replace("STAGE", "test"),
        ),
        (
            "env/prod/kustomization.yaml".to_owned(),
            OVERLAY.replace("STAGE", "prod"),
        ),
    ] {
        let p = seed.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&p, text).map_err(io(&p))?;
    }
    git(&seed, &["init", "-q", "-b", "main"])?;
    git(&seed, &["add", "-A"])?;
    git(
        &seed,
        &["commit", "-q", "-m", "guestbook: base and overlays"],
    )?;
    std::fs::create_dir_all(&root).map_err(io(&root))?;
    let bare = root.join("gitops.git");
    git(
        dir,
        &[
            "clone",
            "-q",
            "--bare",
            &seed.display().to_string(),
            &bare.display().to_string(),
        ],
    )?;
    std::fs::remove_dir_all(&seed).map_err(io(&seed))?;
    let port = free_port()?;
    let log = std::fs::File::create(dir.join("git-daemon.log")).map_err(io(dir))?;
    let mut cmd = git_daemon_command(&root, port);
    let child = cmd
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| err(format!("starting git daemon: {e}")))?;
    let guard = Guard(child);
    wait_port(port, "git daemon")?;
    Ok((guard, format!("git://127.0.0.1:{port}/gitops.git")))
}

/// Run the demo. The caller provides the tokio runtime the sandbox serves on; this function blocks
/// (it runs the user's commands) and must not be called from inside that runtime's workers.
pub fn run(rt: &tokio::runtime::Runtime, opts: &DemoOptions) -> Result<(), SandboxError> {
    let dir = std::path::absolute(&opts.dir).map_err(io(&opts.dir))?;
    let marker = dir.join(".promote-demo");
    if dir.exists() && std::fs::read_dir(&dir).map_err(io(&dir))?.next().is_some() {
        if !marker.exists() {
            return Err(err(format!(
                "{} exists and is not an earlier demo directory; pick another with --dir",
                dir.display()
            )));
        }
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    std::fs::write(&marker, "promote-sandbox demo\n").map_err(io(&marker))?;
    let bin_dir = match &opts.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default(),
    };
    let plugin = find_bin(&bin_dir, "kubectl-promote")?;
    let webhook = find_bin(&bin_dir, "promote-webhook")?;
    for tool in ["kubectl", "git"] {
        if Command::new(tool).arg("version").output().is_err() {
            return Err(err(format!(
                "{tool} is not installed (the demo runs the real {tool})"
            )));
        }
    }

    println!("promote demo: a Kargo-style dev -> test -> prod pipeline on a local sandbox cluster");
    println!("(working directory {})", dir.display());
    let (_git, repo) = git_server(&dir)?;
    // Either a sandbox of its own, or the cluster it was given (whose kubeconfig it copies, so
    // that everything the user may go on with is in the demo directory).
    let (sandbox, kubeconfig, kubeconfig_text, webhook_port) = match &opts.cluster {
        None => {
            let webhook_port = free_port()?;
            let sandbox = rt.block_on(Sandbox::start(Options {
                dir: dir.clone(),
                port: 0,
                service_endpoints: [(
                    "promote-webhook.promote-system".to_owned(),
                    SocketAddr::from(([127, 0, 0, 1], webhook_port)),
                )]
                .into_iter()
                .collect(),
                argocd: true,
            }))?;
            println!(
                "sandbox API server: {} (Argo CD simulator running)",
                sandbox.url()
            );
            let (path, text) = (sandbox.kubeconfig_path(), sandbox.kubeconfig());
            (Some(sandbox), path, text, webhook_port)
        }
        Some(c) => {
            let text = std::fs::read_to_string(&c.kubeconfig).map_err(io(&c.kubeconfig))?;
            if !text.contains("current-context: admin") || !text.contains("name: promote-webhook") {
                return Err(err(format!(
                    "{} has no contexts admin (current) and promote-webhook; give the kubeconfig `scripts/kube up` or `promote-sandbox up` wrote",
                    c.kubeconfig.display()
                )));
            }
            let path = dir.join("kubeconfig");
            std::fs::write(&path, &text).map_err(io(&path))?;
            println!(
                "API server: the running cluster of {} (its Argo CD, or simulator, syncs)",
                c.kubeconfig.display()
            );
            (None, path, text, c.webhook_port)
        }
    };
    for (path, text) in shipped_files() {
        let p = dir.join("manifests").join(&path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&p, text).map_err(io(&p))?;
    }
    let image = demo_image(&dir, opts.registry)?;
    let project = dir.join("kargo-demo.yaml");
    std::fs::write(&project, project_yaml(&repo, &image)).map_err(io(&project))?;
    let sa_kubeconfig = dir.join("webhook.kubeconfig");
    std::fs::write(
        &sa_kubeconfig,
        kubeconfig_text.replace("current-context: admin", "current-context: promote-webhook"),
    )
    .map_err(io(&sa_kubeconfig))?;
    let plugin_dir = plugin.parent().map(Path::to_path_buf).unwrap_or_default();
    let path = format!(
        "{}:{}",
        plugin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let sh = Shell {
        dir: dir.clone(),
        env: vec![
            ("KUBECONFIG".into(), kubeconfig.display().to_string()),
            ("PATH".into(), path.clone()),
            (
                "PROMOTE_CACHE_DIR".into(),
                dir.join("cache").display().to_string(),
            ),
        ],
    };
    println!("GitOps repository: {repo} (git daemon; overlays env/dev, env/test, env/prod)");
    println!("export KUBECONFIG={}", kubeconfig.display());

    sh.say(
        "Install promote as a cluster admin: certificates, then the manifests with their caBundle",
    );
    let ca = sh.capture(
        "promote-webhook certs --service promote-webhook --namespace promote-system --out certs",
    )?;
    let ca = ca.trim().to_owned();
    sh.must("kubectl create namespace promote-system")?;
    sh.must("kubectl create secret tls promote-webhook-tls -n promote-system --cert certs/tls.crt --key certs/tls.key")?;
    let sh_ca = Shell {
        dir: dir.clone(),
        env: sh
            .env
            .iter()
            .cloned()
            .chain([("CA_BUNDLE".to_owned(), ca)])
            .collect(),
    };
    println!(
        "# (the cluster has the CRDs from its start and promote-system was just created, so kubectl warns as it adopts them)"
    );
    sh_ca.must(r#"kubectl kustomize manifests/ | sed "s|caBundle: \"\"|caBundle: $CA_BUNDLE|" | kubectl apply -f -"#)?;
    println!(
        "# The cluster runs no Pods: the webhook Deployment's container runs here, as a process on 127.0.0.1:{webhook_port}"
    );
    let metrics_port = free_port()?;
    let log = std::fs::File::create(dir.join("webhook.log")).map_err(io(&dir))?;
    let hook = Command::new(&webhook)
        .args(["serve", "--cert", "certs/tls.crt", "--key", "certs/tls.key"])
        .arg("--kubeconfig")
        .arg(&sa_kubeconfig)
        .args(["--listen", &format!("127.0.0.1:{webhook_port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| err(format!("starting promote-webhook: {e}")))?;
    let _hook = Guard(hook);
    wait_port(webhook_port, "promote-webhook")?;

    sh.say("The platform team's project: Warehouse, Stages dev -> test -> prod, Argo CD Applications, RBAC");
    sh.must("kubectl apply -f kargo-demo.yaml")?;
    let arrive = |tag: &str, alias: &str, created: &str| -> Result<(), SandboxError> {
        match &image.registry {
            Some((_, base)) => {
                println!("# (CI pushes nginx:{tag} to the registry on {})", base.trim_start_matches("http://"));
                rt.block_on(push_image(base, "nginx", tag, created))
                    .map_err(|e| err(format!("pushing nginx:{tag} to the demo registry: {e}")))?;
                sh.must(&format!(
                    "kubectl promote discover warehouse/guestbook -n kargo-demo --alias {alias}"
                ))
            }
            None => sh.must(&format!(
                "kubectl promote freight create -n kargo-demo --warehouse guestbook --image nginx:{tag} --alias {alias}"
            )),
        }
    };
    if image.registry.is_some() {
        sh.say("nginx 1.25.0 arrives in the registry: the Warehouse discovers it as Freight");
    } else {
        if opts.registry {
            println!(
                "# (Debian's docker-registry is not installed, so the Freight is created by hand instead of discovered; apt-get install docker-registry to see discovery)"
            );
        }
        sh.say("nginx 1.25.0 arrives as Freight (created by hand)");
    }
    arrive("1.25.0", "first-light", "2026-03-01T00:00:00Z")?;

    sh.say("alice promotes first-light through dev, test and prod");
    for stage in ["dev", "test", "prod"] {
        sh.must(&format!(
            "kubectl promote stage/{stage} --freight-alias first-light -n kargo-demo --context alice"
        ))?;
    }
    if image.registry.is_some() {
        sh.say("nginx 1.26.0 arrives: discovered as the next Freight");
    } else {
        sh.say("nginx 1.26.0 arrives as the next Freight");
    }
    arrive("1.26.0", "second-wave", "2026-03-02T00:00:00Z")?;
    sh.say("bob may promote dev and test: second-wave goes to dev and test");
    for stage in ["dev", "test"] {
        sh.must(&format!(
            "kubectl promote stage/{stage} --freight-alias second-wave -n kargo-demo --context bob"
        ))?;
    }
    sh.say("bob may not promote prod: the webhook refuses the Promotion");
    if sh
        .run("kubectl promote stage/prod --freight-alias second-wave -n kargo-demo --context bob")?
    {
        return Err(err(
            "bob's promotion to prod was not refused; the webhook is not enforcing",
        ));
    }
    sh.say("Where things stand");
    sh.must("kubectl promote get stages -n kargo-demo")?;
    sh.must("kubectl promote get freight -n kargo-demo")?;
    sh.must("git --git-dir git/gitops.git --no-pager log --oneline main")?;

    println!("\nThe demo is done. Go on by hand:");
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  export PATH={}:$PATH", plugin_dir.display());
    println!(
        "  kubectl promote stage/prod --freight-alias second-wave -n kargo-demo --context alice"
    );
    println!("  kubectl promote history stage/prod -n kargo-demo");
    if opts.exit {
        if let Some(sandbox) = sandbox {
            rt.block_on(sandbox.stop());
        }
        return Ok(());
    }
    match sandbox {
        Some(_) => {
            println!("The sandbox, the webhook and the Git server keep running; Ctrl-C stops them.")
        }
        None => println!(
            "The webhook and the Git server keep running; Ctrl-C stops them (the cluster is yours to stop)."
        ),
    }
    // Ctrl-C, SIGTERM or a closed terminal: stop, and take the webhook and git-daemon along.
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let (term, hup) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        );
        let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = wait(term) => {}
            _ = wait(hup) => {}
        }
    });
    if let Some(sandbox) = sandbox {
        rt.block_on(sandbox.stop());
    }
    Ok(())
}
