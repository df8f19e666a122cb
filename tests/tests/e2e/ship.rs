//! Shipping: the webhook's container image (`scripts/image`) is reproducible, travels through a
//! real registry (Debian's docker-registry) with skopeo, and its unpacked root file system runs
//! the webhook as the image's user, answering `/healthz` and `/readyz` against a cluster.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use promote_tests::{bin, free_port, workspace_root};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn image(binary: &Path, out: &Path) -> String {
    run(Command::new(workspace_root().join("scripts/image"))
        .arg("--binary")
        .arg(binary)
        .arg("--out")
        .arg(out)
        .args(["--version", "0.1.0", "--revision", "test"]))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> std::path::PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, out.split_once("\r\n\r\n")?.1.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_webhook_image_is_reproducible_and_runs_unpacked_as_its_user() {
    // Unpacking an image with its owners and running it under chroot needs root, as a container
    // runtime does; CI runs as root.
    let uid = run(Command::new("id").arg("-u"));
    assert_eq!(
        uid, "0",
        "this test unpacks an image and runs it under chroot, which needs root; run the tests as root (CI does)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let binary = bin("promote-webhook").unwrap();
    let (a, b) = (root.join("a"), root.join("b"));
    let digest = image(&binary, &a);
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert_eq!(
        image(&binary, &b),
        digest,
        "the same inputs give the same digest"
    );
    assert_eq!(
        std::fs::read(a.join("index.json")).unwrap(),
        std::fs::read(b.join("index.json")).unwrap()
    );

    // Through a registry with skopeo, digest kept.
    let registry = promote_tests::docker_registry(&root.join("registry"), None).unwrap();
    let reference = format!("docker://127.0.0.1:{}/promote-webhook:0.1.0", registry.port);
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:0.1.0", a.display()))
        .arg(&reference));
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(&reference)
        .output()
        .unwrap()
        .stdout;
    use sha2::Digest;
    assert_eq!(
        format!(
            "sha256:{}",
            sha2::Sha256::digest(&raw)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ),
        digest,
        "the registry serves the manifest byte for byte"
    );
    let pulled = root.join("pulled");
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(&reference)
        .arg(format!("oci:{}:pulled", pulled.display())));

    // Unpack what came back.
    let index = json(&pulled.join("index.json"));
    let manifest = json(&blob(
        &pulled,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let config = json(&blob(
        &pulled,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/promote-webhook"])
    );
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.version"],
        "0.1.0"
    );
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.revision"],
        "test"
    );
    let rootfs = root.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        run(Command::new("tar")
            .arg("-xzf")
            .arg(blob(&pulled, layer["digest"].as_str().unwrap()))
            .arg("-C")
            .arg(&rootfs));
    }
    let version = run(Command::new("chroot")
        .args(["--userspec=65532:65532"])
        .arg(&rootfs)
        .args(["/usr/local/bin/promote-webhook", "--version"]));
    assert!(
        version.starts_with("promote-webhook 0.1.0 (commit "),
        "{version}"
    );

    // Serve from the unpacked image, as its user, against a cluster.
    let sb = crate::sandbox::start(&root.join("sb"), &[]).await;
    let tls = rootfs.join("etc/promote-webhook/tls");
    crate::webhook::certs(&tls);
    for f in ["tls.crt", "tls.key"] {
        run(Command::new("chown").arg("65532:65532").arg(tls.join(f)));
    }
    std::fs::copy(sb.kubeconfig_path(), rootfs.join("home/nonroot/kubeconfig")).unwrap();
    run(Command::new("chown")
        .arg("65532:65532")
        .arg(rootfs.join("home/nonroot/kubeconfig")));
    let (port, metrics) = (free_port(), free_port());
    // The image's environment only: the chroot binary is named by its path.
    let chroot = ["/usr/sbin/chroot", "/usr/bin/chroot"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap();
    let mut child = Command::new(chroot)
        .arg("--userspec=65532:65532")
        .arg(&rootfs)
        .args([
            "/usr/local/bin/promote-webhook",
            "serve",
            "--log-format",
            "text",
        ])
        .args(["--kubeconfig", "/home/nonroot/kubeconfig"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
        .env_clear()
        .envs(
            config["config"]["Env"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| e.as_str()?.split_once('=')),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ready = None;
    while Instant::now() < deadline {
        if let Some((200, _)) = http_get(metrics, "/readyz") {
            ready = http_get(metrics, "/healthz");
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("the webhook in the image exited ({status}):\n{err}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        ready,
        Some((200, "ok\n".to_owned())),
        "healthz from the image"
    );
    // chroot execs the webhook in place: the process is the image's user.
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.contains("65532")),
        "{status}"
    );
}

/// Objects of a multi-document YAML stream, by (kind, namespace, name).
fn objects(yaml: &str) -> std::collections::BTreeMap<(String, String, String), serde_json::Value> {
    let mut out = std::collections::BTreeMap::new();
    let mut docs = vec![String::new()];
    for line in yaml.lines() {
        if line == "---" {
            docs.push(String::new());
        } else if let Some(d) = docs.last_mut() {
            d.push_str(line);
            d.push('\n');
        }
    }
    for doc in docs {
        let v: serde_json::Value = serde_yaml::from_str(&doc).unwrap();
        if v.is_null() {
            continue;
        }
        let f = |p: &str| {
            v.pointer(p)
                .and_then(|x| x.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let key = (f("/kind"), f("/metadata/namespace"), f("/metadata/name"));
        out.insert(key, numbers(v));
    }
    out
}

/// Numbers as values (kustomize writes `0.0` as `0`).
fn numbers(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => serde_json::json!(f as i64),
            _ => serde_json::Value::Number(n),
        },
        serde_json::Value::Array(a) => a.into_iter().map(numbers).collect(),
        serde_json::Value::Object(m) => m.into_iter().map(|(k, v)| (k, numbers(v))).collect(),
        other => other,
    }
}

/// Every caBundle emptied (the chart generates one; manifests/ leave it to the installer).
fn without_ca_bundles(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(hooks) = v.get_mut("webhooks").and_then(|w| w.as_array_mut()) {
        for h in hooks {
            h["clientConfig"]["caBundle"] = serde_json::json!("");
        }
    }
    v
}

/// The Helm chart is generated from `manifests/` and installs the same objects: `helm template`
/// with the defaults equals `kubectl kustomize manifests/` object by object (but the Namespace,
/// which `helm install --create-namespace` makes, the generated TLS Secret and the caBundle it
/// fills in), with cert-manager it equals the kustomization with its cert-manager component, and
/// `helm lint` is clean. Values change what they name and nothing else.
#[test]
fn the_helm_chart_installs_what_manifests_install() {
    let Some(helm) = crate::quickstart::helm() else {
        eprintln!(
            "note: PROMOTE_HELM is not set (scripts/test builds helm); the chart is checked by CI"
        );
        return;
    };
    let root = workspace_root();
    run(Command::new(root.join("scripts/chart")).arg("--check"));
    let lint = run(Command::new(&helm)
        .args(["lint", "--strict"])
        .arg(root.join("charts/promote")));
    assert!(lint.contains("0 chart(s) failed"), "{lint}");
    let template = |set: &[&str]| {
        let mut c = Command::new(&helm);
        c.args([
            "template",
            "promote",
            "--namespace",
            "promote-system",
            "--include-crds",
        ])
        .arg(root.join("charts/promote"));
        for s in set {
            c.args(["--set", s]);
        }
        objects(&run(&mut c))
    };
    let kustomize = |dir: &Path| objects(&run(Command::new("kubectl").arg("kustomize").arg(dir)));
    let tmp = tempfile::tempdir().unwrap();
    for (set, component) in [(vec![], false), (vec!["certManager.enabled=true"], true)] {
        let dir = tmp.path().join(if component { "cm" } else { "plain" });
        std::fs::create_dir_all(&dir).unwrap();
        // Kustomize roots are relative: a copy of manifests/ next to the kustomization.
        run(Command::new("cp")
            .arg("-r")
            .arg(root.join("manifests"))
            .arg(dir.join("manifests")));
        let mut k = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - manifests\n".to_owned();
        if component {
            k += "components:\n  - manifests/components/cert-manager\n";
        }
        std::fs::write(dir.join("kustomization.yaml"), k).unwrap();
        let mut want = kustomize(&dir);
        let mut got = template(&set);
        want.retain(|(kind, _, _), _| kind != "Namespace");
        if !component {
            let secret = got
                .remove(&(
                    "Secret".into(),
                    "promote-system".into(),
                    "promote-webhook-tls".into(),
                ))
                .expect("the chart generates the TLS Secret");
            assert!(
                secret["data"]["ca.crt"]
                    .as_str()
                    .is_some_and(|c| !c.is_empty())
            );
            for ((kind, _, _), v) in got.iter_mut() {
                if kind.ends_with("WebhookConfiguration") {
                    assert!(
                        v["webhooks"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .all(|h| h["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]),
                        "every webhook trusts the generated CA"
                    );
                    *v = without_ca_bundles(v.clone());
                }
            }
        }
        let (wk, gk): (Vec<_>, Vec<_>) = (want.keys().collect(), got.keys().collect());
        assert_eq!(gk, wk, "the same objects ({set:?})");
        for (key, w) in &want {
            assert_eq!(&got[key], w, "{key:?} ({set:?})");
        }
    }
    // Values change what they name.
    let custom = template(&[
        "image.digest=sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "replicas=3",
        "failurePolicy=Ignore",
        "logFormat=text",
        "lockdownAllow={system:serviceaccount:gitops:argocd-application-controller}",
        "createNamespace=true",
    ]);
    let deploy = &custom[&(
        "Deployment".into(),
        "promote-system".into(),
        "promote-webhook".into(),
    )];
    assert_eq!(deploy["spec"]["replicas"], 3);
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["image"],
        "ghcr.io/promote-dev/promote-webhook@sha256:0000000000000000000000000000000000000000000000000000000000000000"
    );
    let env: Vec<(String, String)> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        env.contains(&("PROMOTE_WEBHOOK_LOG_FORMAT".into(), "text".into())),
        "{env:?}"
    );
    assert!(env.contains(&(
        "PROMOTE_WEBHOOK_LOCKDOWN_ALLOW".into(),
        "system:serviceaccount:gitops:argocd-application-controller".into()
    )));
    let hooks = &custom[&(
        "ValidatingWebhookConfiguration".into(),
        String::new(),
        "promote-webhook".into(),
    )];
    assert!(
        hooks["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["failurePolicy"] == "Ignore")
    );
    assert!(
        hooks
            .to_string()
            .contains("'system:serviceaccount:gitops:argocd-application-controller']")
    );
    assert!(custom.contains_key(&("Namespace".into(), String::new(), "promote-system".into())));
}

/// `scripts/release`: twice from the same binaries, the same bytes (archive, manifests, chart,
/// image digest); the krew manifest passes krew's own validator, and krew installs the plugin
/// from the archive so that `kubectl promote --version` answers; the manifests bundle and the
/// chart pin the image's digest; the checksums hold.
#[test]
fn a_release_is_reproducible_and_krew_installs_it() {
    let krew = match std::env::var("PROMOTE_KREW") {
        Ok(k) => std::path::PathBuf::from(k),
        Err(_) if std::env::var("PROMOTE_REAL_KUBE_REQUIRED").is_ok_and(|v| v == "1") => {
            panic!(
                "PROMOTE_KREW is not set: scripts/test builds krew with scripts/kube-build --krew"
            )
        }
        Err(_) => {
            eprintln!(
                "note: PROMOTE_KREW is not set (scripts/test builds krew); the release is checked by CI"
            );
            return;
        }
    };
    let root = workspace_root();
    let tmp = tempfile::tempdir().unwrap();
    let binaries = bin("kubectl-promote").unwrap().parent().unwrap().to_owned();
    let release = |out: &Path| {
        run(Command::new(root.join("scripts/release"))
            .args(["0.1.0", "--binaries"])
            .arg(&binaries)
            .arg("--out")
            .arg(out))
    };
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let printed = release(&a);
    release(&b);
    let sums = std::fs::read_to_string(a.join("SHA256SUMS")).unwrap();
    assert_eq!(
        sums,
        std::fs::read_to_string(b.join("SHA256SUMS")).unwrap(),
        "reproducible"
    );
    for image in ["promote-webhook", "kubectl-promote"] {
        let index =
            |d: &Path| std::fs::read(d.join("images").join(image).join("index.json")).unwrap();
        assert_eq!(index(&a), index(&b), "{image}'s digest is stable");
    }
    let archive = "kubectl-promote-0.1.0-x86_64-unknown-linux-gnu.tar.gz";
    for f in [
        archive,
        "promote.yaml",
        "promote-manifests-0.1.0.yaml",
        "promote-discovery-0.1.0.yaml",
        "promote-0.1.0.tgz",
    ] {
        use sha2::Digest;
        let hex: String = sha2::Sha256::digest(std::fs::read(a.join(f)).unwrap())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(sums.contains(&format!("{hex}  {f}")), "{f}: {sums}");
    }
    let listing = run(Command::new("tar").arg("-tzf").arg(a.join(archive)));
    assert_eq!(
        listing,
        "LICENSE\nREADME.md\nkubectl-promote\nkubectl_complete-promote"
    );

    // krew's validator and krew itself.
    let validated = Command::new(krew.join("validate-krew-manifest"))
        .arg("-manifest")
        .arg(a.join("promote.yaml"))
        .arg("-skip-install")
        .output()
        .unwrap();
    assert!(
        validated.status.success(),
        "{}",
        String::from_utf8_lossy(&validated.stderr)
    );
    let krew_root = tmp.path().join("krew");
    let installed = Command::new(krew.join("krew"))
        .arg("install")
        .arg(format!("--manifest={}", a.join("promote.yaml").display()))
        .arg(format!("--archive={}", a.join(archive).display()))
        .env("KREW_ROOT", &krew_root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        installed.status.success(),
        "{}",
        String::from_utf8_lossy(&installed.stderr)
    );
    let path = format!(
        "{}:{}",
        krew_root.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let version = run(Command::new("kubectl")
        .args(["promote", "--version"])
        .env("PATH", &path));
    assert!(
        version.starts_with("kubectl-promote 0.1.0 (commit "),
        "{version}"
    );

    // The image's digest, pinned where the release installs it.
    let digest = printed
        .lines()
        .find_map(|l| l.strip_prefix("image "))
        .and_then(|r| r.split_once('@'))
        .map(|(_, d)| d.to_owned())
        .unwrap();
    let index = json(&a.join("images/promote-webhook/index.json"));
    assert_eq!(index["manifests"][0]["digest"], digest);
    let bundle = std::fs::read_to_string(a.join("promote-manifests-0.1.0.yaml")).unwrap();
    assert!(
        bundle.contains(&format!(
            "image: ghcr.io/promote-dev/promote-webhook:0.1.0@{digest}"
        )),
        "the bundle pins the image"
    );
    if a.join("promote-0.1.0.tgz").exists() {
        let values = run(Command::new("tar")
            .arg("-xzOf")
            .arg(a.join("promote-0.1.0.tgz"))
            .arg("promote/values.yaml"));
        assert!(
            values.contains(&format!("digest: \"{digest}\"")),
            "{values}"
        );
    }
}

/// The plugin's image (`scripts/image --git`, what the discovery CronJob runs): unpacked, it
/// runs a promotion as its user under chroot, its Git engine using the image's own git against a
/// git daemon on 127.0.0.1 (clone, edit, commit, push). The device nodes a container runtime
/// provides (/dev/null, /dev/urandom, ...) are made by hand.
#[test]
fn the_plugin_image_promotes_with_its_own_git() {
    let uid = run(Command::new("id").arg("-u"));
    assert_eq!(
        uid, "0",
        "this test runs an unpacked image under chroot, which needs root (CI runs as root)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let layout = root.join("image");
    run(Command::new(workspace_root().join("scripts/image"))
        .arg("--binary")
        .arg(bin("kubectl-promote").unwrap())
        .arg("--out")
        .arg(&layout)
        .arg("--git"));
    let index = json(&layout.join("index.json"));
    let manifest = json(&blob(
        &layout,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let rootfs = root.join("rootfs");
    std::fs::create_dir_all(rootfs.join("dev")).unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        run(Command::new("tar")
            .arg("-xzf")
            .arg(blob(&layout, layer["digest"].as_str().unwrap()))
            .arg("-C")
            .arg(&rootfs));
    }
    // The device nodes every container runtime provides.
    for (name, minor) in [
        ("null", "3"),
        ("zero", "5"),
        ("full", "7"),
        ("random", "8"),
        ("urandom", "9"),
    ] {
        run(Command::new("mknod")
            .args(["-m", "666"])
            .arg(rootfs.join("dev").join(name))
            .args(["c", "1", minor]));
    }
    let served = root.join("served");
    let bare = promote_tests::bare_repo(&served, "app", &[("values.yaml", "tag: \"1\"\n")]);
    let daemon = promote_tests::git_daemon(&served);
    let kargo = rootfs.join("home/nonroot/kargo");
    std::fs::create_dir_all(&kargo).unwrap();
    std::fs::write(
        kargo.join("stage.yaml"),
        format!("apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: test, namespace: demo}}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w}}\n    sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps:\n      - uses: git-clone\n        config: {{repoURL: \"git://127.0.0.1:{}/app.git\", checkout: [{{branch: main, path: ./src}}]}}\n      - uses: yaml-update\n        config: {{path: ./src/values.yaml, updates: [{{key: tag, value: \"2\"}}]}}\n      - uses: git-commit\n        config: {{path: ./src, message: from the image}}\n      - uses: git-push\n        config: {{path: ./src}}\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {{namespace: demo}}\nalias: a\norigin: {{kind: Warehouse, name: w}}\nimages: [{{repoURL: nginx, tag: 1.27.3}}]\n", daemon.port),
    )
    .unwrap();
    run(Command::new("chown")
        .args(["-R", "65532:65532"])
        .arg(rootfs.join("home/nonroot")));
    let chroot = ["/usr/sbin/chroot", "/usr/bin/chroot"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap();
    let out = Command::new(chroot)
        .arg("--userspec=65532:65532")
        .arg(&rootfs)
        .args([
            "/usr/local/bin/kubectl-promote",
            "stage/test",
            "--freight-alias",
            "a",
            "-n",
            "demo",
        ])
        .args(["--local", "/home/nonroot/kargo"])
        .env_clear()
        .envs([
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("HOME", "/home/nonroot"),
            ("GIT_TERMINAL_PROMPT", "0"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        promote_tests::git(&bare, &["show", "main:values.yaml"]),
        "tag: \"2\""
    );
    assert_eq!(
        promote_tests::git(&bare, &["log", "-1", "--format=%s", "main"]),
        "from the image"
    );
}
