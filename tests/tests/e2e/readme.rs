//! Every command in README.md is run by a test. This test reads the README, runs its commands
//! verbatim (taken from the README text itself, in worlds built the way the README describes), and
//! fails when the README holds a command that neither it runs nor an entry of `ELSEWHERE` names
//! the test that does.
//!
//! Commands are the lines of ```sh blocks and the `$ ` lines of output blocks; ```text blocks are
//! synopses, not commands.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use promote_tests::{bin, workspace_root};

use crate::backend::Kind;
use crate::real::RealKube;
use serde_json::json;

/// README commands run by other tests (or by CI itself), with where.
const ELSEWHERE: &[(&str, &str)] = &[
    (
        "kubectl apply -k manifests/discovery/",
        "real::real_control_plane_decides_through_the_manifests applies it (discover::discovery_job_is_least_privilege)",
    ),
    (
        "kubectl create rolebinding promote-discovery-syncs -n argocd --clusterrole=promote-argocd-syncer --serviceaccount=kargo-demo:promote-discovery",
        "discover::discovery_job_is_least_privilege runs it on the real API server and checks the grant",
    ),
    (
        "cargo build --release --workspace --bins",
        "scripts/test builds the same binaries (debug profile) before the tests run",
    ),
    (
        "cargo build --release -p kubectl-promote",
        "scripts/test builds the same binary (debug profile)",
    ),
    (
        "cargo install --path kubectl-promote",
        "installs the binary scripts/test builds; the tests run that binary",
    ),
    (
        "scripts/test",
        "CI (.ci/run) runs it; this test runs inside it",
    ),
    (
        "cargo run -p promote-api --bin crdgen            # regenerate",
        "api crd tests generate the CRDs and compare them with manifests/crds",
    ),
    (
        "cargo run -p promote-api --bin crdgen -- --check # exit 1 if they are stale (a test does this too)",
        "binaries::crdgen_check_passes_on_a_clean_tree runs crdgen --check",
    ),
];

/// A README code block: its language and lines.
struct Block {
    lang: String,
    lines: Vec<String>,
}

fn blocks(readme: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut cur: Option<Block> = None;
    for line in readme.lines() {
        if let Some(rest) = line.strip_prefix("```") {
            match cur.take() {
                Some(b) => out.push(b),
                None => {
                    cur = Some(Block {
                        lang: rest.trim().to_owned(),
                        lines: vec![],
                    })
                }
            }
        } else if let Some(b) = cur.as_mut() {
            b.lines.push(line.to_owned());
        }
    }
    out
}

fn commands(readme: &str) -> Vec<String> {
    let mut out = Vec::new();
    for b in blocks(readme) {
        match b.lang.as_str() {
            "sh" => out.extend(b.lines.iter().filter(|l| !l.trim().is_empty()).cloned()),
            "" => out.extend(
                b.lines
                    .iter()
                    .filter_map(|l| l.strip_prefix("$ "))
                    .map(str::to_owned),
            ),
            _ => {}
        }
    }
    out
}

/// The ```sh block whose first line starts with `first`.
fn script(readme: &str, first: &str) -> Vec<String> {
    blocks(readme)
        .into_iter()
        .find(|b| b.lang == "sh" && b.lines.first().is_some_and(|l| l.starts_with(first)))
        .unwrap_or_else(|| panic!("README has no sh block starting with {first:?}"))
        .lines
}

/// The `$ ` lines of the output block whose first `$ ` line starts with `$ {first}`.
fn dollar_lines(readme: &str, first: &str) -> Vec<String> {
    blocks(readme)
        .into_iter()
        .find(|b| {
            b.lang.is_empty()
                && b.lines
                    .iter()
                    .find(|l| l.starts_with("$ "))
                    .is_some_and(|l| l.starts_with(&format!("$ {first}")))
        })
        .unwrap_or_else(|| panic!("README has no output block starting with $ {first:?}"))
        .lines
        .iter()
        .filter_map(|l| l.strip_prefix("$ "))
        .map(str::to_owned)
        .collect()
}

/// Runs README lines with sh in a directory and environment, recording what ran.
struct Runner {
    ran: BTreeSet<String>,
    path: String,
}

impl Runner {
    fn sh(&mut self, dir: &Path, lines: &[String], env: &[(&str, String)]) -> String {
        let script = format!("set -e\n{}\n", lines.join("\n"));
        let out = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .current_dir(dir)
            .env("PATH", &self.path)
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "README commands failed:\n{script}\n--- stdout\n{stdout}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.ran.extend(lines.iter().cloned());
        stdout
    }

    /// Start a README block in the background, in its own process group (killed on drop).
    /// A runner whose PATH starts with the binaries the tests run.
    fn new() -> Self {
        let bins = bin("kubectl-promote").unwrap();
        Runner {
            ran: BTreeSet::new(),
            path: format!(
                "{}:{}",
                bins.parent().unwrap().display(),
                std::env::var("PATH").unwrap()
            ),
        }
    }

    fn background(&mut self, dir: &Path, lines: &[String], env: &[(&str, String)]) -> Group {
        let child = Command::new("sh")
            .arg("-c")
            .arg(lines.join("\n"))
            .current_dir(dir)
            .env("PATH", &self.path)
            .env_remove("KUBECONFIG")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        self.ran.extend(lines.iter().cloned());
        Group(child)
    }
}

/// A process group started from a README block; the whole group is killed on drop.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

fn symlink(target: &Path, link: &Path) {
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, link).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A minimal cert-manager CRD, so the cert-manager component applies to the sandbox.
fn cert_manager_crd(kind: &str) -> String {
    let plural = format!("{}s", kind.to_lowercase());
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{ name: {plural}.cert-manager.io }}\nspec:\n  group: cert-manager.io\n  scope: Namespaced\n  names: {{ kind: {kind}, plural: {plural}, singular: {}, listKind: {kind}List }}\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema: {{ openAPIV3Schema: {{ type: object, x-kubernetes-preserve-unknown-fields: true }} }}\n",
        kind.to_lowercase()
    )
}

/// Wait until the README's `promote-sandbox up ... > sb.log &` says it serves.
fn wait_ready(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(dir.join("sb.log")).is_ok_and(|l| l.contains("ready")) {
        assert!(Instant::now() < deadline, "the sandbox never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_readme_command_runs() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let bins = bin("kubectl-promote")
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let tmp = tempfile::tempdir().unwrap();
    let mut r = Runner::new();

    // The Quick start, from a checkout: target/release holds the binaries, examples/ is there.
    let w = tmp.path().join("checkout");
    symlink(&bins, &w.join("target/release"));
    symlink(&root.join("examples"), &w.join("examples"));
    let quick = script(&readme, "cargo build --release --workspace --bins");
    let demo_line = quick
        .iter()
        .find(|l| l.contains("promote-sandbox demo"))
        .unwrap()
        .clone();
    let mut demo = r.background(&w, &[demo_line], &[]);
    let mut demo_out = String::new();
    let stdout = demo.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            Instant::now() < deadline,
            "the demo never finished:\n{demo_out}"
        );
        let Some(Ok(line)) = lines.next() else {
            panic!("the demo stopped early:\n{demo_out}");
        };
        demo_out.push_str(&line);
        demo_out.push('\n');
        if line.contains("keep running") {
            break;
        }
    }
    // The Quick start's output block: each `$` line is a command the demo ran.
    for cmd in dollar_lines(&readme, "promote-webhook certs") {
        assert!(
            demo_out.contains(&format!("$ {cmd}")),
            "the README shows `{cmd}` but the demo did not run it:\n{demo_out}"
        );
        r.ran.insert(cmd);
    }
    let kubeconfig = w.join("promote-demo/kubeconfig").display().to_string();
    let cache = tmp.path().join("cache").display().to_string();
    let demo_env = [
        ("KUBECONFIG", kubeconfig.clone()),
        ("PROMOTE_CACHE_DIR", cache.clone()),
    ];
    // "Go on by hand", verbatim (it exports KUBECONFIG and PATH itself).
    r.sh(
        &w,
        &script(&readme, "export KUBECONFIG=$PWD/promote-demo/kubeconfig"),
        &[("PROMOTE_CACHE_DIR", cache.clone())],
    );
    // Promote: the examples, their output blocks' commands, the permissions.
    r.sh(
        &w,
        &script(
            &readme,
            "kubectl promote stage/dev --freight-alias first-light",
        ),
        &demo_env,
    );
    r.sh(
        &w,
        &dollar_lines(
            &readme,
            "kubectl promote stage/dev --freight-alias first-light",
        ),
        &demo_env,
    );
    let out = r.sh(
        &w,
        &dollar_lines(&readme, "kubectl promote get stages -n kargo-demo"),
        &demo_env,
    );
    assert!(
        out.contains("Healthy") && out.contains("first-light"),
        "{out}"
    );
    r.sh(
        &w,
        &script(&readme, "kubectl create rolebinding carol-promotes"),
        &demo_env,
    );
    r.sh(
        &w,
        &script(&readme, "kubectl create rolebinding owner-authorizes"),
        &demo_env,
    );
    // Without a cluster: the quick start script.
    let out = r.sh(
        &w,
        &script(&readme, "cargo build --release -p kubectl-promote")[1..],
        &[("PROMOTE_CACHE_DIR", cache.clone())],
    );
    assert!(out.contains("The commit it pushed"), "{out}");
    drop(demo);

    let helm = install_sections(&mut r, &readme, tmp.path(), Kind::Sandbox);

    // Everything in the README ran here or is run elsewhere.
    let mut elsewhere: BTreeSet<&str> = ELSEWHERE.iter().map(|(c, _)| *c).collect();
    if helm.is_none() {
        eprintln!(
            "note: PROMOTE_HELM is not set (scripts/test builds helm when Go is present): the Helm install commands were not run"
        );
        elsewhere.insert(
            "helm install promote charts/promote --namespace promote-system --create-namespace",
        );
        elsewhere.insert("helm install promote charts/promote --namespace promote-system --create-namespace --set certManager.enabled=true");
    }
    let missing: Vec<String> = commands(&readme)
        .into_iter()
        .filter(|c| !r.ran.contains(c) && !elsewhere.contains(c.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "README commands no test runs (run them here or name the test in ELSEWHERE):\n{}",
        missing.join("\n")
    );
    let stale: Vec<&&str> = elsewhere
        .iter()
        .filter(|c| !commands(&readme).iter().any(|x| x == **c))
        .collect();
    assert!(
        stale.is_empty(),
        "ELSEWHERE names commands the README no longer has: {stale:?}"
    );
}

/// A cluster for one of the README's install sections, and its kubeconfig: a sandbox started by
/// the README's own `promote-sandbox up` block, or the real control plane (`scripts/kube up`).
fn cluster(r: &mut Runner, readme: &str, w: &Path, kind: Kind) -> (Box<dyn std::any::Any>, String) {
    match kind {
        Kind::Sandbox => {
            let g = r.background(w, &script(readme, "promote-sandbox up --dir ./sb"), &[]);
            wait_ready(w);
            (Box::new(g), w.join("sb/kubeconfig").display().to_string())
        }
        Kind::Real => {
            // At sb/, where the README's commands look for the kubeconfig.
            let kube = RealKube::up(&w.join("sb"), &[]).expect("the real tier is enabled");
            let kc = kube.kubeconfig().display().to_string();
            (Box::new(kube), kc)
        }
    }
}

/// The README's install sections (kustomize with and without cert-manager, the offline and
/// cluster-backed reviews, the Helm chart both ways), each on a cluster of its own of `kind`.
/// Returns the helm binary when the Helm sections ran.
fn install_sections(
    r: &mut Runner,
    readme: &str,
    tmp: &Path,
    kind: Kind,
) -> Option<std::path::PathBuf> {
    let root = workspace_root();
    // Installing on a cluster with cert-manager.
    let w2 = tmp.join("with-cert-manager");
    copy_dir(&root.join("manifests"), &w2.join("manifests"));
    let kust = w2.join("manifests/kustomization.yaml");
    let text = std::fs::read_to_string(&kust).unwrap();
    assert!(text.contains("# components:\n#   - components/cert-manager"));
    std::fs::write(
        &kust,
        text.replace(
            "# components:\n#   - components/cert-manager",
            "components:\n  - components/cert-manager",
        ),
    )
    .unwrap();
    let (sb2, kc2) = cluster(r, readme, &w2, kind);
    let mut c = Command::new("kubectl");
    c.env("KUBECONFIG", &kc2)
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            format!(
                "{}---\n{}",
                cert_manager_crd("Issuer"),
                cert_manager_crd("Certificate")
            )
            .as_bytes(),
        )
        .unwrap();
    assert!(child.wait().unwrap().success());
    let out = r.sh(
        &w2,
        &script(readme, "kubectl apply -k manifests/"),
        &[("KUBECONFIG", kc2.clone())],
    );
    assert!(
        out.contains("certificate.cert-manager.io/promote-webhook created"),
        "{out}"
    );
    drop(sb2);

    // Installing without cert-manager, then the offline and cluster-backed reviews.
    let w3 = tmp.join("without-cert-manager");
    std::fs::create_dir_all(&w3).unwrap();
    symlink(&root.join("manifests"), &w3.join("manifests"));
    let (_sb3, kc3) = cluster(r, readme, &w3, kind);
    let out = r.sh(
        &w3,
        &script(readme, "promote-webhook certs"),
        &[("KUBECONFIG", kc3.clone())],
    );
    assert!(
        out.contains(
            "validatingwebhookconfiguration.admissionregistration.k8s.io/promote-webhook created"
        ),
        "{out}"
    );
    std::fs::create_dir_all(w3.join("kargo")).unwrap();
    // New Freight's Warehouse must exist (Kargo's check): in the directory, and in the cluster.
    let warehouse = "apiVersion: v1\nkind: Namespace\nmetadata: {name: kargo-demo, labels: {kargo.akuity.io/project: \"true\"}}\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {name: guestbook, namespace: kargo-demo}\nspec:\n  subscriptions:\n  - image: {repoURL: nginx}\n";
    std::fs::write(w3.join("kargo/warehouse.yaml"), warehouse).unwrap();
    let applied = Command::new("kubectl")
        .args(["--kubeconfig", &kc3, "apply", "-f"])
        .arg(w3.join("kargo/warehouse.yaml"))
        .output()
        .unwrap();
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let name = "e3d59cb45cc4ec5848dcce9cfd79e57b9d467b59"; // the content hash of nginx:1.25.0
    let freight = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Freight",
        "metadata": {"name": name, "namespace": "kargo-demo"},
        "origin": {"kind": "Warehouse", "name": "guestbook"},
        "images": [{"repoURL": "nginx", "tag": "1.25.0"}]});
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u-1", "kind": {"group": "kargo.akuity.io", "version": "v1alpha1", "kind": "Freight"},
        "resource": {"group": "kargo.akuity.io", "version": "v1alpha1", "resource": "freights"},
        "operation": "CREATE", "userInfo": {"username": "alice"}, "namespace": "kargo-demo", "name": name,
        "object": freight}});
    std::fs::write(w3.join("review.json"), review.to_string()).unwrap();
    let out = r.sh(
        &w3,
        &script(readme, "promote-webhook review -f review.json"),
        &[("KUBECONFIG", kc3.clone())],
    );
    assert_eq!(out.matches("\"allowed\": true").count(), 3, "{out}");

    // Installing with the Helm chart, each way into a sandbox of its own (cert-manager's kinds
    // known for the second); upgrading keeps the generated certificate.
    let helm = crate::quickstart::helm();
    if let Some(helm) = &helm {
        let path = format!(
            "{}:{}",
            helm.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        for (name, first, cert_manager) in [
            (
                "helm",
                "helm install promote charts/promote --namespace promote-system --create-namespace\n",
                false,
            ),
            (
                "helm-cert-manager",
                "helm install promote charts/promote --namespace promote-system --create-namespace --set",
                true,
            ),
        ] {
            let w = tmp.join(name);
            std::fs::create_dir_all(&w).unwrap();
            symlink(&root.join("charts"), &w.join("charts"));
            let (_sb, kc) = cluster(r, readme, &w, kind);
            if cert_manager {
                let mut c = Command::new("kubectl");
                c.env("KUBECONFIG", &kc)
                    .args(["apply", "-f", "-"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null());
                let mut child = c.spawn().unwrap();
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(
                        format!(
                            "{}---\n{}",
                            cert_manager_crd("Issuer"),
                            cert_manager_crd("Certificate")
                        )
                        .as_bytes(),
                    )
                    .unwrap();
                assert!(child.wait().unwrap().success());
            }
            let block: Vec<String> = script(readme, first.trim_end_matches('\n'))
                .into_iter()
                .filter(|l| cert_manager || !l.contains("--set"))
                .collect();
            let env = [("KUBECONFIG", kc.clone()), ("PATH", path.clone())];
            let out = r.sh(&w, &block, &env);
            assert!(out.contains("STATUS: deployed"), "{out}");
            let ca = |w: &Path| {
                r#"kubectl get validatingwebhookconfiguration promote-webhook -o jsonpath='{.webhooks[0].clientConfig.caBundle}'"#
                    .to_owned()
                    + &format!(" > {}", w.join("ca").display())
            };
            if !cert_manager {
                let _ = Command::new("sh")
                    .arg("-c")
                    .arg(ca(&w))
                    .env("KUBECONFIG", &kc)
                    .status();
                let before = std::fs::read_to_string(w.join("ca")).unwrap();
                assert!(!before.is_empty(), "the chart filled in the caBundle");
                let up = Command::new(helm)
                    .args([
                        "upgrade",
                        "promote",
                        "charts/promote",
                        "--namespace",
                        "promote-system",
                    ])
                    .current_dir(&w)
                    .env("KUBECONFIG", &kc)
                    .output()
                    .unwrap();
                assert!(
                    up.status.success(),
                    "{}",
                    String::from_utf8_lossy(&up.stderr)
                );
                let _ = Command::new("sh")
                    .arg("-c")
                    .arg(ca(&w))
                    .env("KUBECONFIG", &kc)
                    .status();
                assert_eq!(
                    std::fs::read_to_string(w.join("ca")).unwrap(),
                    before,
                    "an upgrade keeps the certificate"
                );
            } else {
                let got = Command::new("kubectl")
                    .args([
                        "get",
                        "certificates.cert-manager.io",
                        "promote-webhook",
                        "-n",
                        "promote-system",
                    ])
                    .env("KUBECONFIG", &kc)
                    .output()
                    .unwrap();
                assert!(
                    got.status.success(),
                    "{}",
                    String::from_utf8_lossy(&got.stderr)
                );
            }
        }
    }

    helm
}

/// The install sections again, on the real kube-apiserver: what they apply (CRDs, webhooks with
/// their caBundle, the chart's objects) must be what a real server accepts.
mod install_sections {
    #[test]
    fn real() {
        if !crate::real::RealKube::enabled() {
            return;
        }
        let readme = std::fs::read_to_string(super::workspace_root().join("README.md")).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let mut r = super::Runner::new();
        super::install_sections(&mut r, &readme, tmp.path(), super::Kind::Real);
    }
}
