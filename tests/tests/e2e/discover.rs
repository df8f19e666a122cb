//! `kubectl promote discover` against real servers on 127.0.0.1: Debian's docker-registry (images
//! pushed through the registry API: plain tags, a multi-arch index, 1,050 tags for pagination,
//! basic auth), Git repositories, a Helm repository served as static files and an OCI chart
//! pushed with the real helm.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use oci_client::client::{ClientConfig, ClientProtocol, ImageLayer};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use promote_tests::{HttpServer, bare_repo, bin, docker_registry, git};
use serde_json::{Value, json};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// bcrypt of `registry-pass-7f3a` (cost 4), for the registry's htpasswd.
const HTPASSWD: &str = "ci-bot:$2b$04$bfPk8MR5CKdKTtjaP905iec/c7q81.1Dpu9CmTEJ9.tzheIFr2eSa\n";
const PASSWORD: &str = "registry-pass-7f3a";

fn digest(data: &[u8]) -> String {
    ImageLayer::new(data.to_vec(), "x".into(), None).sha256_digest()
}

struct Pusher {
    client: Client,
    auth: RegistryAuth,
    registry: String,
}

impl Pusher {
    fn new(port: u16, auth: RegistryAuth) -> Self {
        let registry = format!("127.0.0.1:{port}");
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(vec![registry.clone()]),
            ..Default::default()
        });
        Self {
            client,
            auth,
            registry,
        }
    }

    fn at(&self, repo: &str, reference: &str) -> Reference {
        if reference.starts_with("sha256:") {
            Reference::with_digest(self.registry.clone(), repo.into(), reference.into())
        } else {
            Reference::with_tag(self.registry.clone(), repo.into(), reference.into())
        }
    }

    async fn blob(&self, repo: &str, data: Vec<u8>) -> (String, usize) {
        let d = digest(&data);
        let len = data.len();
        let r = self.at(repo, "latest");
        self.client
            .store_auth_if_needed(r.resolve_registry(), &self.auth)
            .await;
        self.client
            .auth(&r, &self.auth, oci_client::RegistryOperation::Push)
            .await
            .unwrap();
        self.client.push_blob(&r, data, &d).await.unwrap();
        (d, len)
    }

    async fn manifest(&self, repo: &str, reference: &str, media: &str, doc: &Value) -> String {
        let bytes = serde_json::to_vec(doc).unwrap();
        let d = digest(&bytes);
        let r = self.at(repo, reference);
        self.client
            .auth(&r, &self.auth, oci_client::RegistryOperation::Push)
            .await
            .unwrap();
        self.client
            .push_manifest_raw(&r, bytes, media.parse().unwrap())
            .await
            .unwrap();
        d
    }

    /// `n` tags `build-0000`, `build-0001`, ... of one image (one push of blobs, then the same
    /// manifest under each tag).
    /// Returns the manifest's digest.
    async fn builds(&self, repo: &str, n: usize) -> String {
        let (first, _) = self
            .image(repo, "build-0000", "2026-02-01T00:00:00Z", "amd64")
            .await;
        let doc = self
            .client
            .pull_manifest_raw(&self.at(repo, &first), &self.auth, &[OCI_MANIFEST])
            .await
            .unwrap()
            .0;
        let doc: Value = serde_json::from_slice(&doc).unwrap();
        for i in 1..n {
            self.manifest(repo, &format!("build-{i:04}"), OCI_MANIFEST, &doc)
                .await;
        }
        first
    }

    /// A single-platform image built at `created`; returns (digest, size) of its manifest.
    async fn image(
        &self,
        repo: &str,
        reference: &str,
        created: &str,
        arch: &str,
    ) -> (String, usize) {
        let config = json!({
            "architecture": arch, "os": "linux", "created": created,
            "config": {"Labels": {"org.opencontainers.image.source": "https://example.invalid/acme"}},
            "rootfs": {"type": "layers", "diff_ids": []},
        });
        let (cd, cl) = self.blob(repo, serde_json::to_vec(&config).unwrap()).await;
        let (ld, ll) = self
            .blob(repo, format!("layer of {reference} {arch}").into_bytes())
            .await;
        let doc = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cl},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ll}],
            "annotations": {"org.opencontainers.image.revision": reference},
        });
        let size = serde_json::to_vec(&doc).unwrap().len();
        (
            self.manifest(repo, reference, OCI_MANIFEST, &doc).await,
            size,
        )
    }
}

fn plugin(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin("kubectl-promote").unwrap())
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("HOME", "/nonexistent-home")
        .env_remove("DOCKER_CONFIG")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn freight_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("freight-"))
        })
        .collect();
    v.sort();
    v
}

fn commit_file(seed: &Path, path: &str, content: &str, message: &str) -> String {
    let p = seed.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, content).unwrap();
    git(seed, &["add", "-A"]);
    git(seed, &["commit", "-q", "-m", message]);
    git(seed, &["rev-parse", "HEAD"]).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_finds_the_newest_images_commits_and_charts_and_makes_freight() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = docker_registry(&tmp.path().join("registry"), None).unwrap();
    let host = format!("127.0.0.1:{}", reg.port);
    let push = Pusher::new(reg.port, RegistryAuth::Anonymous);

    // acme/api: SemVer among non-semver and non-strict tags.
    for (tag, day) in [
        ("1.0.0", "01"),
        ("1.2.0", "02"),
        ("v1.10.0", "03"),
        ("1.10.0-rc.1", "04"),
        ("2.0.0", "05"),
        ("latest", "06"),
        ("1.3", "07"),
    ] {
        push.image(
            "acme/api",
            tag,
            &format!("2026-03-{day}T00:00:00Z"),
            "amd64",
        )
        .await;
    }
    // acme/multi: an index (amd64 + arm64 + an attestation) that is older than a newer
    // single-platform image; with platform linux/arm64, NewestBuild must pick the index.
    let (amd, amd_size) = push
        .image(
            "acme/multi",
            "sha256-unused-amd",
            "2026-01-01T00:00:00Z",
            "amd64",
        )
        .await;
    let (arm, arm_size) = push
        .image(
            "acme/multi",
            "sha256-unused-arm",
            "2026-01-02T00:00:00Z",
            "arm64",
        )
        .await;
    let index = json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": amd, "size": amd_size, "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": OCI_MANIFEST, "digest": arm, "size": arm_size, "platform": {"os": "linux", "architecture": "arm64"},
             "annotations": {"com.example.platform-note": "arm"}},
            {"mediaType": OCI_MANIFEST, "digest": amd, "size": amd_size, "platform": {"os": "unknown", "architecture": "unknown"}},
        ],
        "annotations": {"org.opencontainers.image.version": "multi-1"},
    });
    let index_digest = push
        .manifest("acme/multi", "multi-1", OCI_INDEX, &index)
        .await;
    push.image("acme/multi", "single-2", "2026-06-01T00:00:00Z", "amd64")
        .await;
    // acme/many: 1,050 tags of one manifest, more than one page of the tag list.
    let many = push.builds("acme/many", 1050).await;

    // Git: the newest commit touching apps/api is not the branch head.
    let root = tmp.path();
    let bare = bare_repo(root, "app", &[("apps/api/main.go", "package main\n")]);
    let seed = root.join("app-seed");
    let wanted = commit_file(&seed, "apps/api/main.go", "package main // v2\n", "api: v2");
    commit_file(&seed, "docs/readme.md", "docs\n", "docs only");
    git(&seed, &["push", "-q", bare.to_str().unwrap(), "main"]);
    let git_url = format!("file://{}", bare.display());

    // A Helm repository as static files.
    let index_yaml = "apiVersion: v1\nentries:\n  podinfo:\n  - version: 1.0.0\n  - version: 1.5.0\n  - version: 2.0.0-beta.1\n  - version: not-a-version\n  other:\n  - version: 9.9.9\n";
    let charts = HttpServer::start(move |req| {
        if req.target == "/index.yaml" {
            ("200 OK".into(), vec![], index_yaml.as_bytes().to_vec())
        } else {
            ("404 Not Found".into(), vec![], Vec::new())
        }
    });

    let dir = root.join("kargo");
    std::fs::create_dir_all(&dir).unwrap();
    let warehouse = format!(
        r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {{ name: app, namespace: demo }}
spec:
  subscriptions:
    - image: {{ repoURL: {host}/acme/api, constraint: ^1.0, discoveryLimit: 2 }}
    - image: {{ repoURL: {host}/acme/multi, imageSelectionStrategy: NewestBuild, platform: linux/arm64 }}
    - image: {{ repoURL: {host}/acme/many, imageSelectionStrategy: Lexical, allowTagsRegexes: ["^build-"], discoveryLimit: 1 }}
    - git: {{ repoURL: "{git_url}", includePaths: [apps/api] }}
    - chart: {{ repoURL: "http://127.0.0.1:{}", name: podinfo, semverConstraint: "<2" }}
"#,
        charts.port
    );
    std::fs::write(dir.join("warehouse.yaml"), &warehouse).unwrap();
    let cache = root.join("cache");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["discover", "warehouse/app", "-n", "demo", "--local"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.push(dir.display().to_string());
        v.push("--cache-dir".into());
        v.push(cache.display().to_string());
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        plugin(&refs, &[])
    };

    // A dry run shows the Freight and writes nothing.
    let dry = run(&["--dry-run", "-o", "json"]);
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(freight_files(&dir).is_empty());
    let f: Value = serde_json::from_slice(&dry.stdout).unwrap();
    let images = f["images"].as_array().unwrap();
    assert_eq!(images[0]["repoURL"], format!("{host}/acme/api"));
    assert_eq!(
        images[0]["tag"], "v1.10.0",
        "SemVer: newest under ^1.0, strict, v allowed"
    );
    assert_eq!(
        images[1]["tag"], "multi-1",
        "NewestBuild with platform picks the index"
    );
    assert_eq!(images[1]["digest"], index_digest.as_str());
    assert_eq!(images[1]["annotations"]["com.example.platform-note"], "arm");
    assert_eq!(
        images[1]["annotations"]["org.opencontainers.image.version"],
        "multi-1"
    );
    assert_eq!(
        images[2]["tag"], "build-1049",
        "Lexical over every page of tags"
    );
    assert_eq!(images[2]["digest"], many.as_str());
    assert_eq!(
        f["commits"][0]["id"],
        wanted.as_str(),
        "includePaths skips the docs commit"
    );
    assert_eq!(f["commits"][0]["message"], "api: v2");
    assert_eq!(f["charts"][0]["version"], "1.5.0");
    assert_eq!(f["origin"], json!({"kind": "Warehouse", "name": "app"}));
    assert!(f["discoveredAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    let typed: promote_api::types::Freight = serde_json::from_value(f.clone()).unwrap();
    assert_eq!(
        f["metadata"]["name"],
        promote_api::freight_id::freight_id(&typed).as_str(),
        "named by Kargo's content hash"
    );

    // For real: one file, and the promotion path can read it back.
    let first = run(&[]);
    assert!(first.status.success(), "{}", text(&first));
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.starts_with("WAREHOUSE"), "{stdout}");
    assert!(stdout.contains("created"), "{stdout}");
    let files = freight_files(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let written: Value =
        serde_yaml::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(written["metadata"]["name"], f["metadata"]["name"]);
    let alias = written["alias"].as_str().unwrap().to_owned();
    assert_eq!(
        written["metadata"]["labels"]["kargo.akuity.io/alias"],
        alias.as_str()
    );

    // Nothing new: the same Freight, no second file.
    let again = run(&[]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("exists"));
    assert_eq!(freight_files(&dir).len(), 1);

    // A new image version: new Freight, another alias.
    push.image("acme/api", "1.11.0", "2026-04-01T00:00:00Z", "amd64")
        .await;
    let third = run(&["-o", "yaml"]);
    assert!(third.status.success(), "{}", text(&third));
    let f3: Value = serde_yaml::from_slice(&third.stdout).unwrap();
    assert_eq!(f3["images"][0]["tag"], "1.11.0");
    assert_ne!(f3["alias"].as_str(), Some(alias.as_str()));
    assert_eq!(freight_files(&dir).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_refuses_clearly_and_sends_credentials_only_where_they_belong() {
    let tmp = tempfile::tempdir().unwrap();
    let htpasswd = tmp.path().join("htpasswd");
    std::fs::write(&htpasswd, HTPASSWD).unwrap();
    let reg = docker_registry(&tmp.path().join("registry"), Some(&htpasswd)).unwrap();
    let host = format!("127.0.0.1:{}", reg.port);
    let push = Pusher::new(
        reg.port,
        RegistryAuth::Basic("ci-bot".into(), PASSWORD.into()),
    );
    push.image("team/private", "0.1.0", "2026-05-01T00:00:00Z", "amd64")
        .await;

    let dir = tmp.path().join("kargo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("w.yaml"),
        format!(
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{ name: private, namespace: demo }}\nspec:\n  subscriptions:\n    - image: {{ repoURL: {host}/team/private }}\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{ name: old-fields, namespace: demo }}\nspec:\n  subscriptions:\n    - image: {{ repoURL: {host}/team/private, allowTags: \"^v\" }}\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{ name: bad-constraint, namespace: demo }}\nspec:\n  subscriptions:\n    - image: {{ repoURL: {host}/team/private, constraint: \">= banana\" }}\n"
        ),
    )
    .unwrap();
    let d = dir.display().to_string();
    let cache = tmp.path().join("cache").display().to_string();
    let run = |w: &str, env: &[(&str, &str)]| {
        plugin(
            &[
                "discover",
                w,
                "-n",
                "demo",
                "--local",
                &d,
                "--cache-dir",
                &cache,
                "--dry-run",
                "-o",
                "json",
            ],
            env,
        )
    };

    // No credentials: the registry's 401, with the ways to give them.
    let anon = run("warehouse/private", &[]);
    assert_eq!(anon.status.code(), Some(1), "{}", text(&anon));
    let err = String::from_utf8_lossy(&anon.stderr);
    assert!(err.contains("discovering Warehouse \"private\""), "{err}");
    assert!(err.contains("PROMOTE_REGISTRY_USERNAME"), "{err}");

    // Credentials in the environment go only to hosts the user listed.
    let env = [
        ("PROMOTE_REGISTRY_USERNAME", "ci-bot"),
        ("PROMOTE_REGISTRY_PASSWORD", PASSWORD),
    ];
    let unlisted = run("warehouse/private", &env);
    assert_eq!(unlisted.status.code(), Some(1), "{}", text(&unlisted));
    let listed = run(
        "warehouse/private",
        &[env[0], env[1], ("PROMOTE_TOKEN_HOSTS", host.as_str())],
    );
    assert!(listed.status.success(), "{}", text(&listed));
    let f: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(f["images"][0]["tag"], "0.1.0");
    // From a Docker config file too.
    let docker = tmp.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let auth = promote_tests::base64(format!("ci-bot:{PASSWORD}").as_bytes());
    std::fs::write(
        docker.join("config.json"),
        json!({"auths": {host.clone(): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let from_config = run(
        "warehouse/private",
        &[("DOCKER_CONFIG", docker.to_str().unwrap())],
    );
    assert!(from_config.status.success(), "{}", text(&from_config));
    for o in [&anon, &unlisted, &listed, &from_config] {
        let all = text(o);
        assert!(
            !all.contains(PASSWORD) && !all.contains(&auth),
            "a credential leaked:\n{all}"
        );
    }

    // Kargo's refusals, with Kargo's words.
    let old = run("warehouse/old-fields", &[]);
    assert_eq!(old.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&old.stderr).contains(
            "AllowTags is deprecated and unsupported as of v1.11.0; use AllowTagsRegexes instead"
        ),
        "{}",
        text(&old)
    );
    let bad = run("warehouse/bad-constraint", &[]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("banana"),
        "{}",
        text(&bad)
    );
    let missing = run("warehouse/nope", &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("Warehouse \"nope\" not found"),
        "{}",
        text(&missing)
    );
    // The oci steps meet the same registry: without a login, oci-push fails at once (a 401 is
    // not transient) with the ways to log in; with one from the environment it copies.
    let stage = format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: copy, namespace: demo}}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w}}\n    sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps:\n      - uses: oci-push\n        config: {{srcRef: \"{host}/team/private:0.1.0\", destRef: \"{host}/team/private:stable\"}}\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {{namespace: demo}}\nalias: one\norigin: {{kind: Warehouse, name: w}}\nimages: [{{repoURL: \"{host}/team/private\", tag: 0.1.0}}]\n"
    );
    let sdir = tmp.path().join("stage");
    std::fs::create_dir_all(&sdir).unwrap();
    std::fs::write(sdir.join("s.yaml"), stage).unwrap();
    let sd = sdir.display().to_string();
    let promote = |env: &[(&str, &str)]| {
        plugin(
            &[
                "stage/copy",
                "--freight-alias",
                "one",
                "-n",
                "demo",
                "--local",
                &sd,
                "--cache-dir",
                &cache,
            ],
            env,
        )
    };
    let refused = promote(&[]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("docker login"),
        "{}",
        text(&refused)
    );
    assert!(
        !text(&refused).contains("attempts)"),
        "a 401 is not retried:\n{}",
        text(&refused)
    );
    let copied = promote(&[env[0], env[1], ("PROMOTE_TOKEN_HOSTS", host.as_str())]);
    assert!(copied.status.success(), "{}", text(&copied));
    assert!(!text(&copied).contains(PASSWORD));
}

/// Discovery through a cluster (the sandbox, and the real control plane in `real.rs`): bob holds
/// promote-discoverer in project `demo` and creates the Freight; the Warehouse's status says what
/// was found; alice, without the role, is refused and nothing is created.
pub(crate) async fn discover_in_cluster(kc: &Path, tmp: &Path) {
    use crate::sandbox::{k, ok};
    // A registry that needs a login: bob's discovery gets it from the project's Kargo credential
    // Secret (he holds promote-credentials-reader), never from his machine.
    let htpasswd = tmp.join("htpasswd");
    std::fs::write(&htpasswd, HTPASSWD).unwrap();
    let reg = docker_registry(&tmp.join("registry"), Some(&htpasswd)).unwrap();
    let host = format!("127.0.0.1:{}", reg.port);
    let push = Pusher::new(
        reg.port,
        RegistryAuth::Basic("ci-bot".into(), PASSWORD.into()),
    );
    push.image("acme/web", "1.0.0", "2026-03-01T00:00:00Z", "amd64")
        .await;
    let (newest, _) = push
        .image("acme/web", "1.2.0", "2026-03-02T00:00:00Z", "amd64")
        .await;
    let roles = promote_tests::workspace_root().join("manifests/rbac/roles.yaml");
    ok(kc, &["apply", "-f", &roles.display().to_string()]).await;
    let setup = format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{ name: disco, labels: {{ kargo.akuity.io/project: "true" }} }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: bob-discovers, namespace: disco }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: promote-discoverer }}
subjects: [{{ kind: User, name: bob, apiGroup: rbac.authorization.k8s.io }}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: bob-reads-credentials, namespace: disco }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: promote-credentials-reader }}
subjects: [{{ kind: User, name: bob, apiGroup: rbac.authorization.k8s.io }}]
---
apiVersion: v1
kind: Secret
metadata:
  name: registry-login
  namespace: disco
  labels: {{ kargo.akuity.io/cred-type: image }}
stringData: {{ repoURL: "{host}/acme/web", username: ci-bot, password: "{PASSWORD}" }}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {{ name: web, namespace: disco }}
spec:
  subscriptions:
    - image: {{ repoURL: {host}/acme/web }}
"#
    );
    let (good, out, err) = k(kc, &["apply", "-f", "-"], Some(&setup)).await;
    assert!(good, "{err}\n{out}");
    let kc_s = kc.display().to_string();
    let cache = tmp.join("cache").display().to_string();
    let run = |user: &str| {
        plugin(
            &[
                "--kubeconfig",
                &kc_s,
                "--context",
                user,
                "discover",
                "warehouse/web",
                "-n",
                "disco",
                "--cache-dir",
                &cache,
            ],
            &[],
        )
    };
    let denied = run("alice");
    assert_eq!(denied.status.code(), Some(1), "{}", text(&denied));
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("forbidden")
            || String::from_utf8_lossy(&denied.stderr).contains("403"),
        "{}",
        text(&denied)
    );
    let created = run("bob");
    assert!(created.status.success(), "{}", text(&created));
    assert!(
        !text(&created).contains(PASSWORD),
        "a credential leaked:\n{}",
        text(&created)
    );
    let out = String::from_utf8_lossy(&created.stdout).into_owned();
    assert!(
        out.contains("created") && out.contains(&format!("{host}/acme/web:1.2.0")),
        "{out}"
    );
    let freight: Value =
        serde_json::from_str(&ok(kc, &["get", "freight", "-n", "disco", "-o", "json"]).await)
            .unwrap();
    let items = freight["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{freight}");
    assert_eq!(items[0]["images"][0]["digest"], newest.as_str());
    let name = items[0]["metadata"]["name"].as_str().unwrap().to_owned();
    let w: Value = serde_json::from_str(
        &ok(
            kc,
            &["get", "warehouse", "web", "-n", "disco", "-o", "json"],
        )
        .await,
    )
    .unwrap();
    assert_eq!(w["status"]["lastFreightID"], name.as_str(), "{w}");
    let refs = &w["status"]["discoveredArtifacts"]["images"][0]["references"];
    assert_eq!(refs[0]["tag"], "1.2.0");
    assert_eq!(refs[1]["tag"], "1.0.0");
    let ready = w["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True", "{w}");
    assert_eq!(ready["reason"], "ArtifactsDiscovered");
    // The table says what the last discovery found (-o wide).
    let table = plugin(
        &[
            "--kubeconfig",
            &kc_s,
            "--context",
            "bob",
            "get",
            "warehouses",
            "-n",
            "disco",
            "-o",
            "wide",
        ],
        &[],
    );
    let table_out = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(table_out.starts_with("NAME"), "{}", text(&table));
    assert!(
        table_out.contains("True (ArtifactsDiscovered)") && table_out.contains(&name[..7]),
        "{table_out}"
    );
    // Once more: nothing new, the same Freight.
    let again = run("bob");
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("exists"),
        "{}",
        text(&again)
    );
    let w: Value = serde_json::from_str(
        &ok(
            kc,
            &["get", "warehouse", "web", "-n", "disco", "-o", "json"],
        )
        .await,
    )
    .unwrap();
    let created_cond = w["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "FreightCreated")
        .unwrap();
    assert_eq!(created_cond["reason"], "AlreadyExists", "{w}");
    // `--all` keeps the interval (default 5m0s): just discovered, so not due; a refresh token
    // makes it due once, and is recorded as handled.
    let all = || {
        plugin(
            &[
                "--kubeconfig",
                &kc_s,
                "--context",
                "bob",
                "discover",
                "--all",
                "-n",
                "disco",
                "--cache-dir",
                &cache,
            ],
            &[],
        )
    };
    let skipped = all();
    assert!(skipped.status.success(), "{}", text(&skipped));
    assert!(
        String::from_utf8_lossy(&skipped.stdout).contains("not due (interval 5m0s; next at "),
        "{}",
        text(&skipped)
    );
    ok(
        kc,
        &[
            "annotate",
            "warehouse",
            "web",
            "-n",
            "disco",
            "kargo.akuity.io/refresh=token-1",
        ],
    )
    .await;
    let refreshed = all();
    assert!(
        refreshed.status.success() && String::from_utf8_lossy(&refreshed.stdout).contains("exists"),
        "{}",
        text(&refreshed)
    );
    let w: Value = serde_json::from_str(
        &ok(
            kc,
            &["get", "warehouse", "web", "-n", "disco", "-o", "json"],
        )
        .await,
    )
    .unwrap();
    assert_eq!(w["status"]["lastHandledRefresh"], "token-1", "{w}");
    let handled = all();
    assert!(
        String::from_utf8_lossy(&handled.stdout).contains("not due"),
        "{}",
        text(&handled)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_through_the_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let sb = crate::sandbox::start(&tmp.path().join("sb"), &[]).await;
    discover_in_cluster(&sb.kubeconfig_path(), tmp.path()).await;
}

/// OCI charts pushed with the real helm (Helm writes `+` in a version as `_` in the tag).
#[test]
fn discover_reads_oci_charts_pushed_by_the_real_helm() {
    let helm = match std::env::var("PROMOTE_HELM") {
        Ok(p) => PathBuf::from(p),
        Err(_) if std::env::var("PROMOTE_REAL_KUBE_REQUIRED").is_ok_and(|v| v == "1") => {
            panic!(
                "PROMOTE_HELM is not set: scripts/test builds helm with scripts/kube-build --helm"
            )
        }
        Err(_) => {
            eprintln!(
                "skipped: PROMOTE_HELM is not set (scripts/test builds helm when Go is installed)"
            );
            return;
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let reg = docker_registry(&tmp.path().join("registry"), None).unwrap();
    let host = format!("127.0.0.1:{}", reg.port);
    let helm_env = |c: &mut Command| {
        c.env("HELM_CACHE_HOME", tmp.path().join("helm/cache"))
            .env("HELM_CONFIG_HOME", tmp.path().join("helm/config"))
            .env("HELM_DATA_HOME", tmp.path().join("helm/data"))
            .current_dir(tmp.path());
    };
    for version in ["0.3.0", "0.4.0+build.1", "0.5.0-rc.1"] {
        let chart = tmp.path().join(format!("podinfo-{version}"));
        std::fs::create_dir_all(chart.join("templates")).unwrap();
        std::fs::write(
            chart.join("Chart.yaml"),
            format!("apiVersion: v2\nname: podinfo\nversion: {version}\n"),
        )
        .unwrap();
        let mut package = Command::new(&helm);
        helm_env(&mut package);
        let out = package.arg("package").arg(&chart).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let mut push = Command::new(&helm);
        helm_env(&mut push);
        let out = push
            .args([
                "push",
                &format!("podinfo-{version}.tgz"),
                &format!("oci://{host}/charts"),
                "--plain-http",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    let dir = tmp.path().join("kargo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("w.yaml"),
        format!("apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{ name: charts, namespace: demo }}\nspec:\n  subscriptions:\n    - chart: {{ repoURL: \"oci://{host}/charts/podinfo\" }}\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{ name: stable, namespace: demo }}\nspec:\n  subscriptions:\n    - chart: {{ repoURL: \"oci://{host}/charts/podinfo\", semverConstraint: \"<0.5.0\" }}\n"),
    )
    .unwrap();
    let d = dir.display().to_string();
    let cache = tmp.path().join("cache").display().to_string();
    let discover = |w: &str| {
        let out = plugin(
            &[
                "discover",
                w,
                "-n",
                "demo",
                "--local",
                &d,
                "--cache-dir",
                &cache,
                "--dry-run",
                "-o",
                "json",
            ],
            &[],
        );
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let f = discover("warehouse/charts");
    assert_eq!(
        f["charts"][0]["repoURL"],
        format!("oci://{host}/charts/podinfo")
    );
    // No constraint: every version counts, pre-releases too (Kargo's chart selection).
    assert_eq!(f["charts"][0]["version"], "0.5.0-rc.1");
    // The tag 0.4.0_build.1 is the version 0.4.0+build.1.
    let f = discover("warehouse/stable");
    assert_eq!(f["charts"][0]["version"], "0.4.0+build.1");
}

/// Git tags: SemVer (annotated and lightweight tags, strict versions), Lexical, NewestTag,
/// an expression filter (expr-lang) and ignore patterns.
#[test]
fn discover_selects_git_tags_as_kargo_does() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let bare = bare_repo(root, "tags", &[("a.txt", "0\n")]);
    let seed = root.join("tags-seed");
    let mut ids = std::collections::BTreeMap::new();
    for (i, tag) in ["v1.2.0", "v1.10.0", "1.3", "zeta", "v2.0.0-rc.1", "v1.9.0"]
        .iter()
        .enumerate()
    {
        // Distinct creator dates, in this order (a lightweight tag's is its commit's).
        let date = format!("2026-0{}-01T00:00:00Z", i + 1);
        std::fs::write(seed.join("a.txt"), format!("{}\n", i + 1)).unwrap();
        let out = Command::new("git")
            .current_dir(&seed)
            .env("GIT_COMMITTER_DATE", &date)
            .env("GIT_AUTHOR_DATE", &date)
            .args(["commit", "-q", "-am", &format!("release {tag}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let id = git(&seed, &["rev-parse", "HEAD"]).trim().to_owned();
        if i % 2 == 0 {
            let out = Command::new("git")
                .current_dir(&seed)
                .env("GIT_COMMITTER_DATE", &date)
                .args(["tag", "-a", tag, "-m", &format!("annotated {tag}")])
                .output()
                .unwrap();
            assert!(out.status.success());
        } else {
            git(&seed, &["tag", tag]);
        }
        ids.insert(tag.to_string(), id);
    }
    git(
        &seed,
        &["push", "-q", "--tags", bare.to_str().unwrap(), "main"],
    );
    let url = format!("file://{}", bare.display());
    let dir = root.join("kargo");
    std::fs::create_dir_all(&dir).unwrap();
    let w = |name: &str, extra: &str| {
        format!(
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{ name: {name}, namespace: demo }}\nspec:\n  subscriptions:\n    - git: {{ repoURL: \"{url}\", {extra} }}\n"
        )
    };
    let docs = [
        w("semver", "commitSelectionStrategy: SemVer"),
        w(
            "semver-lt",
            "commitSelectionStrategy: SemVer, semverConstraint: \"<1.10\"",
        ),
        w(
            "lexical",
            "commitSelectionStrategy: Lexical, ignoreTagsRegexes: [\"^zeta$\"]",
        ),
        w("newest", "commitSelectionStrategy: NewestTag"),
        w(
            "expr",
            "commitSelectionStrategy: NewestTag, expressionFilter: \"tag startsWith 'v1.'\"",
        ),
    ];
    std::fs::write(dir.join("w.yaml"), docs.join("---\n")).unwrap();
    let d = dir.display().to_string();
    let cache = root.join("cache").display().to_string();
    let tag_of = |name: &str| {
        let out = plugin(
            &[
                "discover",
                &format!("warehouse/{name}"),
                "-n",
                "demo",
                "--local",
                &d,
                "--cache-dir",
                &cache,
                "--dry-run",
                "-o",
                "json",
            ],
            &[],
        );
        assert!(out.status.success(), "{}", text(&out));
        let f: Value = serde_json::from_slice(&out.stdout).unwrap();
        let c = &f["commits"][0];
        assert_eq!(
            c["id"],
            ids[c["tag"].as_str().unwrap()].as_str(),
            "the tag's commit: {f}"
        );
        c["tag"].as_str().unwrap().to_owned()
    };
    // Strict SemVer: 1.3 is not a version; v2.0.0-rc.1 is newer than every release.
    assert_eq!(tag_of("semver"), "v2.0.0-rc.1");
    assert_eq!(tag_of("semver-lt"), "v1.9.0");
    assert_eq!(tag_of("lexical"), "v2.0.0-rc.1");
    // NewestTag: the newest creator date (the last tag made).
    assert_eq!(tag_of("newest"), "v1.9.0");
    assert_eq!(tag_of("expr"), "v1.9.0");

    // freightCreationCriteria over what was discovered, as Kargo evaluates it.
    let criteria = |name: &str, expression: &str| {
        format!(
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{ name: {name}, namespace: demo }}\nspec:\n  freightCreationCriteria: {{ expression: {expression:?} }}\n  subscriptions:\n    - git: {{ repoURL: \"{url}\", commitSelectionStrategy: NewestTag }}\n"
        )
    };
    std::fs::write(
        dir.join("criteria.yaml"),
        [
            criteria("yes", &format!("commitFrom('{url}').Tag == 'v1.9.0'")),
            criteria(
                "no",
                &format!("semverDiff(commitFrom('{url}').Tag, 'v1.9.5') == 'Major'"),
            ),
            criteria("broken", &format!("commitFrom('{url}').Tag")),
        ]
        .join("---\n"),
    )
    .unwrap();
    let discover = |name: &str| {
        plugin(
            &[
                "discover",
                &format!("warehouse/{name}"),
                "-n",
                "demo",
                "--local",
                &d,
                "--cache-dir",
                &cache,
                "--dry-run",
            ],
            &[],
        )
    };
    let yes = discover("yes");
    assert!(yes.status.success(), "{}", text(&yes));
    assert!(
        text(&yes).contains("would create (dry run)"),
        "{}",
        text(&yes)
    );
    let no = discover("no");
    assert!(no.status.success(), "{}", text(&no));
    assert!(
        text(&no).contains("freightCreationCriteria not satisfied"),
        "{}",
        text(&no)
    );
    let broken = discover("broken");
    assert!(!broken.status.success());
    assert!(
        text(&broken).contains(
            "failed to parse freight creation criteria expression result \"v1.9.0\" as bool"
        ),
        "{}",
        text(&broken)
    );
}

/// `discover --auto-promote` through the sandbox and the webhook: a new image in the registry
/// becomes Freight and is promoted into dev, then into test once dev verified it (the
/// ProjectConfig enables both), never into prod (not enabled); a second run promotes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn discover_auto_promotes_where_the_project_config_allows() {
    use crate::sandbox::{k, ok};
    let w = crate::cluster::World::new(true).await;
    let reg = docker_registry(&w.tmp.path().join("registry"), None).unwrap();
    let host = format!("127.0.0.1:{}", reg.port);
    let push = Pusher::new(reg.port, RegistryAuth::Anonymous);
    push.image("nginx", "1.25.0", "2026-03-01T00:00:00Z", "amd64")
        .await;
    let url = w.repo_url();
    let mut docs = vec![format!(
        r#"apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata: {{ name: web, namespace: demo }}
spec:
  subscriptions:
    - image: {{ repoURL: {host}/nginx }}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata: {{ name: demo, namespace: demo }}
spec:
  promotionPolicies:
    - stageSelector: {{ name: "regex:^(dev|test)$" }}
      autoPromotionEnabled: true
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: alice-discovers, namespace: demo }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: promote-discoverer }}
subjects: [{{ kind: User, name: alice, apiGroup: rbac.authorization.k8s.io }}]
"#
    )];
    for s in ["dev", "test", "prod"] {
        docs.push(crate::cluster::stage_yaml(s, &url).replace(
            "images: [{ image: nginx, tag: \"${{ imageFrom('nginx').Tag }}\" }]",
            &format!("images: [{{ image: {host}/nginx, tag: \"${{{{ imageFrom('{host}/nginx').Tag }}}}\" }}]"),
        ));
    }
    let roles = promote_tests::workspace_root().join("manifests/rbac/roles.yaml");
    ok(&w.kc, &["apply", "-f", &roles.display().to_string()]).await;
    let (good, out, err) = k(&w.kc, &["apply", "-f", "-"], Some(&docs.join("\n---\n"))).await;
    assert!(good, "{err}\n{out}");

    let (code, out, err) = w
        .plugin(
            "alice",
            &[
                "discover",
                "warehouse/web",
                "--auto-promote",
                "--timeout",
                "60s",
            ],
        )
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("created"), "{out}");
    let freight: Value =
        serde_json::from_str(&ok(&w.kc, &["get", "freight", "-n", "demo", "-o", "json"]).await)
            .unwrap();
    let name = freight["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let current = |stage: &str| {
        let kc = w.kc.clone();
        let stage = stage.to_owned();
        async move {
            let s: Value = serde_json::from_str(
                &ok(&kc, &["get", "stage", &stage, "-n", "demo", "-o", "json"]).await,
            )
            .unwrap();
            s["status"]["freightHistory"][0]["items"]["Warehouse/web"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    assert_eq!(current("dev").await, name, "{out}\n{err}");
    assert_eq!(
        current("test").await,
        name,
        "test once dev verified it:\n{err}"
    );
    assert_eq!(current("prod").await, "", "prod is not auto-promoted");
    let promotions: Value =
        serde_json::from_str(&ok(&w.kc, &["get", "promotions", "-n", "demo", "-o", "json"]).await)
            .unwrap();
    let phases: Vec<(String, String)> = promotions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["spec"]["stage"].as_str().unwrap().to_owned(),
                p["status"]["phase"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(phases.len(), 2, "{phases:?}");
    assert!(phases.iter().all(|(_, ph)| ph == "Succeeded"), "{phases:?}");
    // Nothing new: nothing promoted again.
    let (code, out, err) = w
        .plugin("alice", &["discover", "warehouse/web", "--auto-promote"])
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("exists"), "{out}");
    let promotions: Value =
        serde_json::from_str(&ok(&w.kc, &["get", "promotions", "-n", "demo", "-o", "json"]).await)
            .unwrap();
    assert_eq!(promotions["items"].as_array().unwrap().len(), 2);
}

/// Promotions as data: a Promotion created with plain `kubectl create` (as CI would) is run by
/// `kubectl promote run --pending`, with promote's mutating webhook (it derived the steps) and
/// without it (the run derives them, as the webhook would); a second run finds nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_pending_runs_promotions_created_as_data() {
    use crate::sandbox::{k, ok};
    for webhook in [true, false] {
        let w = crate::cluster::World::new(webhook).await;
        let freight = w.freight("1.25.0", "ci-made").await;
        let promotion = format!(
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: Promotion\nmetadata: {{ name: dev-from-ci, namespace: demo }}\nspec: {{ stage: dev, freight: {freight} }}\n"
        );
        let (good, out, err) = k(
            &w.kc,
            &["--context", "alice", "create", "-o", "name", "-f", "-"],
            Some(&promotion),
        )
        .await;
        assert!(good, "{err}\n{out}");
        // The mutating webhook names Promotions as Kargo does; without it the name stays.
        let name = out
            .trim()
            .trim_start_matches("promotion.kargo.akuity.io/")
            .to_owned();
        let (code, out, err) = w
            .plugin("alice", &["run", "--pending", "--timeout", "60s"])
            .await;
        assert_eq!(code, 0, "webhook: {webhook}\n{out}\n{err}");
        let got = ok(&w.kc, &["get", "promotions", "-n", "demo", "-o", "json"]).await;
        let list: Value = serde_json::from_str(&got).unwrap();
        let p = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["metadata"]["name"] == name.as_str())
            .cloned()
            .unwrap_or_else(|| {
                panic!("no Promotion {name} (webhook: {webhook}):\n{got}\n{out}\n{err}")
            });
        assert_eq!(
            p["status"]["phase"], "Succeeded",
            "webhook: {webhook}\n{p}\n{err}"
        );
        let s: Value = serde_json::from_str(
            &ok(&w.kc, &["get", "stage", "dev", "-n", "demo", "-o", "json"]).await,
        )
        .unwrap();
        assert_eq!(
            s["status"]["freightHistory"][0]["items"]["Warehouse/web"]["name"],
            freight.as_str()
        );
        let (code, _, err) = w.plugin("alice", &["run", "--pending"]).await;
        assert_eq!(code, 0, "{err}");
    }
}

/// `kubectl auth can-i --as USER ...` says yes.
async fn can_i(kc: &Path, user: &str, args: &[&str]) -> bool {
    let mut a = vec!["auth", "can-i", "--as", user];
    a.extend_from_slice(args);
    let (_, out, _) = crate::sandbox::k(kc, &a, None).await;
    out.trim() == "yes"
}

/// `manifests/discovery/` on the real API server: the CronJob and its ServiceAccount apply, and
/// the ServiceAccount may do what discovery, auto-promotion and `run --pending` need in its
/// project and nothing else (real RBAC, asked with `kubectl auth can-i`).
pub(crate) async fn discovery_job_is_least_privilege(kc: &Path) {
    use crate::sandbox::ok;
    let dir = promote_tests::workspace_root().join("manifests/discovery");
    let out = ok(kc, &["apply", "-k", &dir.display().to_string()]).await;
    assert!(
        out.contains("cronjob.batch/promote-discovery created"),
        "{out}"
    );
    // The README's second command, verbatim.
    let readme =
        std::fs::read_to_string(promote_tests::workspace_root().join("README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.starts_with("kubectl create rolebinding promote-discovery-syncs"))
        .unwrap();
    let args: Vec<&str> = line.split_whitespace().skip(1).collect();
    ok(kc, &args).await;
    let sa = "system:serviceaccount:kargo-demo:promote-discovery";
    assert!(
        can_i(
            kc,
            sa,
            &["patch", "applications.argoproj.io", "-n", "argocd"]
        )
        .await
    );
    for allowed in [
        &["get", "warehouses.kargo.akuity.io", "-n", "kargo-demo"][..],
        &["list", "stages.kargo.akuity.io", "-n", "kargo-demo"],
        &["create", "freights.kargo.akuity.io", "-n", "kargo-demo"],
        &[
            "patch",
            "warehouses.kargo.akuity.io",
            "--subresource=status",
            "-n",
            "kargo-demo",
        ],
        &["get", "projectconfigs.kargo.akuity.io", "-n", "kargo-demo"],
        &["list", "secrets", "-n", "kargo-demo"],
        &["create", "promotions.kargo.akuity.io", "-n", "kargo-demo"],
        &["promote", "stages.kargo.akuity.io", "-n", "kargo-demo"],
    ] {
        assert!(
            can_i(kc, sa, allowed).await,
            "the discovery job may not {allowed:?}"
        );
    }
    for denied in [
        &["create", "warehouses.kargo.akuity.io", "-n", "kargo-demo"][..],
        &["patch", "warehouses.kargo.akuity.io", "-n", "kargo-demo"],
        &["patch", "stages.kargo.akuity.io", "-n", "kargo-demo"],
        &["delete", "freights.kargo.akuity.io", "-n", "kargo-demo"],
        &["create", "secrets", "-n", "kargo-demo"],
        &["list", "secrets", "-n", "kube-system"],
        &["create", "freights.kargo.akuity.io", "-n", "default"],
        &["create", "pods", "-n", "kargo-demo"],
        &["authorize", "stages.kargo.akuity.io", "-n", "kargo-demo"],
    ] {
        assert!(
            !can_i(kc, sa, denied).await,
            "the discovery job may {denied:?}"
        );
    }
}

/// The Digest strategy follows a mutable tag: the Freight is the tag's current digest, and a
/// re-pushed tag makes new Freight; a tag that does not exist discovers nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_follows_a_mutable_tag_by_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = docker_registry(&tmp.path().join("registry"), None).unwrap();
    let host = format!("127.0.0.1:{}", reg.port);
    let push = Pusher::new(reg.port, RegistryAuth::Anonymous);
    let (first, _) = push
        .image("team/app", "latest", "2026-05-01T00:00:00Z", "amd64")
        .await;
    let dir = tmp.path().join("kargo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("w.yaml"),
        format!("apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{ name: rolling, namespace: demo }}\nspec:\n  subscriptions:\n    - image: {{ repoURL: {host}/team/app, imageSelectionStrategy: Digest, constraint: latest }}\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{ name: absent, namespace: demo }}\nspec:\n  subscriptions:\n    - image: {{ repoURL: {host}/team/app, imageSelectionStrategy: Digest, constraint: nightly }}\n"),
    )
    .unwrap();
    let d = dir.display().to_string();
    let cache = tmp.path().join("cache").display().to_string();
    let run = |w: &str| {
        plugin(
            &[
                "discover",
                w,
                "-n",
                "demo",
                "--local",
                &d,
                "--cache-dir",
                &cache,
                "-o",
                "json",
            ],
            &[],
        )
    };
    let one = run("warehouse/rolling");
    assert!(one.status.success(), "{}", text(&one));
    let f1: Value = serde_json::from_slice(&one.stdout).unwrap();
    assert_eq!(f1["images"][0]["tag"], "latest");
    assert_eq!(f1["images"][0]["digest"], first.as_str());
    let (second, _) = push
        .image("team/app", "latest", "2026-05-02T00:00:00Z", "amd64")
        .await;
    assert_ne!(first, second);
    let two = run("warehouse/rolling");
    assert!(two.status.success(), "{}", text(&two));
    let f2: Value = serde_json::from_slice(&two.stdout).unwrap();
    assert_eq!(f2["images"][0]["digest"], second.as_str());
    assert_ne!(f1["metadata"]["name"], f2["metadata"]["name"]);
    assert_eq!(freight_files(&dir).len(), 2);
    // No such tag: nothing discovered, Kargo's "no images discovered", no Freight.
    let none = run("warehouse/absent");
    assert_eq!(none.status.code(), Some(1), "{}", text(&none));
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("no images discovered for repository"),
        "{}",
        text(&none)
    );
    assert_eq!(freight_files(&dir).len(), 2);
}

/// A manifest (or index) and the digest the registry names it by.
async fn read_manifest(p: &Pusher, repo: &str, reference: &str) -> (String, Value) {
    let (bytes, d) = p
        .client
        .pull_manifest_raw(
            &p.at(repo, reference),
            &RegistryAuth::Anonymous,
            &[OCI_INDEX, OCI_MANIFEST],
        )
        .await
        .unwrap();
    (d, serde_json::from_slice::<Value>(&bytes).unwrap())
}

/// `oci-push` between two registries on 127.0.0.1: a multi-arch index is copied whole with its
/// digest kept, retagged in place, and copied with annotations (a new digest; children and
/// index annotated as asked), through a `--local` promotion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_push_copies_and_retags_artifacts() {
    let tmp = tempfile::tempdir().unwrap();
    let a = docker_registry(&tmp.path().join("a"), None).unwrap();
    let b = docker_registry(&tmp.path().join("b"), None).unwrap();
    let (ha, hb) = (
        format!("127.0.0.1:{}", a.port),
        format!("127.0.0.1:{}", b.port),
    );
    let push = Pusher::new(a.port, RegistryAuth::Anonymous);
    let (amd, amd_size) = push
        .image("team/app", "amd", "2026-01-01T00:00:00Z", "amd64")
        .await;
    let (arm, arm_size) = push
        .image("team/app", "arm", "2026-01-01T00:00:00Z", "arm64")
        .await;
    let index = json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": amd, "size": amd_size, "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": OCI_MANIFEST, "digest": arm, "size": arm_size, "platform": {"os": "linux", "architecture": "arm64"}},
        ],
    });
    let digest = push.manifest("team/app", "1.0.0", OCI_INDEX, &index).await;
    let bare = bare_repo(tmp.path(), "files", &[("README.md", "files\n")]);
    let git_url = format!("file://{}", bare.display());
    let dir = tmp.path().join("kargo");
    std::fs::create_dir_all(&dir).unwrap();
    let stage = format!(
        "apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{name: release, namespace: demo}}\nspec:\n  requestedFreight:\n  - origin: {{kind: Warehouse, name: w}}\n    sources: {{direct: true}}\n  promotionTemplate:\n    spec:\n      steps:\n      - uses: oci-push\n        as: copy\n        config: {{srcRef: \"{ha}/team/app@${{{{ imageFrom('{ha}/team/app').Digest }}}}\", destRef: \"{hb}/prod/app:${{{{ imageFrom('{ha}/team/app').Tag }}}}\"}}\n      - uses: oci-push\n        config: {{srcRef: \"{ha}/team/app:1.0.0\", destRef: \"oci://{ha}/team/app:stable\"}}\n      - uses: git-clone\n        config: {{repoURL: \"{git_url}\", checkout: [{{branch: main, path: ./src}}]}}\n      - uses: oci-download\n        config: {{imageRef: \"oci://{ha}/team/app@{amd}\", outPath: ./src/layer.tar, mediaType: application/vnd.oci.image.layer.v1.tar}}\n      - uses: git-commit\n        config: {{path: ./src, message: layer}}\n      - uses: git-push\n        config: {{path: ./src}}\n      - uses: oci-push\n        as: annotated\n        config: {{srcRef: \"${{{{ outputs.copy.image }}}}\", destRef: \"{hb}/prod/app:annotated\", annotations: {{\"index:org.example.release\": r1, \"manifest:org.example.tier\": prod}}}}\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Freight\nmetadata: {{namespace: demo}}\nalias: one\norigin: {{kind: Warehouse, name: w}}\nimages: [{{repoURL: \"{ha}/team/app\", tag: 1.0.0, digest: \"{digest}\"}}]\n"
    );
    std::fs::write(dir.join("stage.yaml"), stage).unwrap();
    let cache = tmp.path().join("cache").display().to_string();
    let d = dir.display().to_string();
    let out = plugin(
        &[
            "stage/release",
            "--freight-alias",
            "one",
            "-n",
            "demo",
            "--local",
            &d,
            "--cache-dir",
            &cache,
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("pushed as {hb}/prod/app:1.0.0 ({digest})")),
        "{stdout}"
    );
    let to = Pusher::new(b.port, RegistryAuth::Anonymous);
    // oci-download wrote the layer into the commit.
    assert_eq!(
        git(&bare, &["show", "main:layer.tar"]),
        "layer of amd amd64"
    );
    let (copied, _) = read_manifest(&to, "prod/app", "1.0.0").await;
    assert_eq!(copied, digest, "the index is copied byte for byte");
    let (child, _) = read_manifest(&to, "prod/app", &arm).await;
    assert_eq!(child, arm, "its manifests too");
    let (retagged, _) = read_manifest(&push, "team/app", "stable").await;
    assert_eq!(retagged, digest);
    let (annotated, doc) = read_manifest(&to, "prod/app", "annotated").await;
    assert_ne!(annotated, digest);
    assert_eq!(doc["annotations"]["org.example.release"], "r1");
    let child = doc["manifests"][1]["digest"].as_str().unwrap().to_owned();
    assert_ne!(child, arm);
    let (_, child_doc) = read_manifest(&to, "prod/app", &child).await;
    assert_eq!(child_doc["annotations"]["org.example.tier"], "prod");
    assert_eq!(
        child_doc["annotations"]["org.opencontainers.image.revision"], "arm",
        "existing annotations kept"
    );
}

/// `set-freight-alias` through the sandbox and the webhook: a promoter who may patch Freight
/// renames the promoted Freight (field and label); one who may not gets the verb to ask for, and
/// the alias stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn set_freight_alias_renames_the_promoted_freight() {
    use crate::sandbox::{k, ok};
    let w = crate::cluster::World::new(true).await;
    let freight = w.freight("1.25.0", "first").await;
    let setup = "apiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: { name: release, namespace: demo }\nspec:\n  requestedFreight:\n    - origin: { kind: Warehouse, name: web }\n      sources: { direct: true }\n  promotionTemplate:\n    spec:\n      steps:\n        - uses: set-freight-alias\n          config: { name: \"${{ ctx.targetFreight.name }}\", alias: \"released-${{ ctx.stage }}\" }\n";
    let (good, out, err) = k(&w.kc, &["apply", "-f", "-"], Some(setup)).await;
    assert!(good, "{err}\n{out}");
    // bob may patch Freight (the world's promotion-writer role) but not promote: give him the
    // promoter role too. alice is a promoter only.
    let bind = "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: { name: bob-promoter, namespace: demo }\nroleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: promote-promoter }\nsubjects: [{ kind: User, name: bob, apiGroup: rbac.authorization.k8s.io }]\n";
    let (good, out, err) = k(&w.kc, &["apply", "-f", "-"], Some(bind)).await;
    assert!(good, "{err}\n{out}");
    let (code, out, err) = w
        .plugin("alice", &["stage/release", "--freight-alias", "first"])
        .await;
    assert_ne!(code, 0, "{out}\n{err}");
    assert!(
        format!("{out}{err}").contains("needs verb \"patch\" on resource \"freights\""),
        "{out}\n{err}"
    );
    let f: Value = serde_json::from_str(
        &ok(
            &w.kc,
            &["get", "freight", &freight, "-n", "demo", "-o", "json"],
        )
        .await,
    )
    .unwrap();
    assert_eq!(f["alias"], "first");
    let (code, out, err) = w
        .plugin("bob", &["stage/release", "--freight-alias", "first"])
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let f: Value = serde_json::from_str(
        &ok(
            &w.kc,
            &["get", "freight", &freight, "-n", "demo", "-o", "json"],
        )
        .await,
    )
    .unwrap();
    assert_eq!(f["alias"], "released-release", "{f}");
    assert_eq!(
        f["metadata"]["labels"]["kargo.akuity.io/alias"],
        "released-release"
    );
}

/// Against a cluster, the oci steps log in with the project's Kargo credential Secret
/// (`cred-type: image`), read through promote-credentials-reader when the step runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oci_push_logs_in_with_the_projects_credential_secret() {
    use crate::sandbox::k;
    let w = crate::cluster::World::new(true).await;
    let htpasswd = w.tmp.path().join("htpasswd");
    std::fs::write(&htpasswd, HTPASSWD).unwrap();
    let reg = docker_registry(&w.tmp.path().join("registry"), Some(&htpasswd)).unwrap();
    let host = format!("127.0.0.1:{}", reg.port);
    let push = Pusher::new(
        reg.port,
        RegistryAuth::Basic("ci-bot".into(), PASSWORD.into()),
    );
    let (digest, _) = push
        .image("team/private", "0.1.0", "2026-05-01T00:00:00Z", "amd64")
        .await;
    w.freight("1.25.0", "first").await;
    let setup = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{ name: registry, namespace: demo, labels: {{ kargo.akuity.io/cred-type: image }} }}\nstringData: {{ repoURL: \"^{host}/.*\", repoURLIsRegex: \"true\", username: ci-bot, password: \"{PASSWORD}\" }}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{ name: alice-reads-credentials, namespace: demo }}\nroleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: promote-credentials-reader }}\nsubjects: [{{ kind: User, name: alice, apiGroup: rbac.authorization.k8s.io }}]\n---\napiVersion: kargo.akuity.io/v1alpha1\nkind: Stage\nmetadata: {{ name: release, namespace: demo }}\nspec:\n  requestedFreight:\n    - origin: {{ kind: Warehouse, name: web }}\n      sources: {{ direct: true }}\n  promotionTemplate:\n    spec:\n      steps:\n        - uses: oci-push\n          config: {{ srcRef: \"{host}/team/private:0.1.0\", destRef: \"{host}/team/released:0.1.0\" }}\n"
    );
    let (good, out, err) = k(&w.kc, &["apply", "-f", "-"], Some(&setup)).await;
    assert!(good, "{err}\n{out}");
    let (code, out, err) = w
        .plugin("alice", &["stage/release", "--freight-alias", "first"])
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        !format!("{out}{err}").contains(PASSWORD),
        "a credential leaked"
    );
    let (copied, _) = read_manifest_as(&push, "team/released", "0.1.0").await;
    assert_eq!(copied, digest);
}

async fn read_manifest_as(p: &Pusher, repo: &str, reference: &str) -> (String, Value) {
    let (bytes, d) = p
        .client
        .pull_manifest_raw(&p.at(repo, reference), &p.auth, &[OCI_INDEX, OCI_MANIFEST])
        .await
        .unwrap();
    (d, serde_json::from_slice::<Value>(&bytes).unwrap())
}

/// A JWT the distribution registry's token auth accepts: ES256 with the signing certificate in
/// `x5c`, `access` granting what the scope asks for.
fn registry_token(key: &rcgen::KeyPair, cert_der: &[u8], scope: &str) -> String {
    use base64::Engine;
    use rcgen::SigningKey;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let std = base64::engine::general_purpose::STANDARD;
    let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [std.encode(cert_der)]});
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let access: Vec<Value> = scope
        .split(' ')
        .filter_map(|s| {
            let mut p = s.splitn(3, ':');
            let (t, n, a) = (p.next()?, p.next()?, p.next()?);
            Some(json!({"type": t, "name": n, "actions": a.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    let claims = json!({
        "iss": "promote-test", "sub": "ci-bot", "aud": "promote-registry",
        "exp": now + 600, "nbf": now - 30, "iat": now - 30, "jti": format!("{now}"),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        url.encode(header.to_string()),
        url.encode(claims.to_string())
    );
    // ring signs ECDSA as ASN.1 DER; JWS wants r || s, 32 bytes each.
    let der = key.sign(signing_input.as_bytes()).unwrap();
    let (r, rest) = der_integer(&der[2..]);
    let (s, _) = der_integer(rest);
    let mut raw = Vec::new();
    for part in [r, s] {
        let trimmed: &[u8] = &part[part.len().saturating_sub(32)..];
        raw.extend(std::iter::repeat_n(0u8, 32 - trimmed.len()));
        raw.extend_from_slice(trimmed);
    }
    format!("{signing_input}.{}", url.encode(raw))
}

fn der_integer(b: &[u8]) -> (&[u8], &[u8]) {
    assert_eq!(b[0], 0x02, "an ASN.1 INTEGER");
    let len = b[1] as usize;
    (&b[2..2 + len], &b[2 + len..])
}

/// Token auth, as Docker Hub, GHCR and Harbor do it: the registry answers 401 with a Bearer
/// challenge; the client gets a token from the realm with its basic login and retries. Discovery
/// logs in this way with a login from the environment, and without one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_logs_in_through_a_token_server() {
    let tmp = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["promote-test".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let bundle = tmp.path().join("token-root.pem");
    std::fs::write(&bundle, cert.pem()).unwrap();
    let cert_der = cert.der().to_vec();
    let expected = format!(
        "Basic {}",
        promote_tests::base64(format!("ci-bot:{PASSWORD}").as_bytes())
    );
    let tokens = HttpServer::start(move |req| {
        let authorized = req
            .headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("authorization") && *v == expected);
        if !req.target.starts_with("/token") || !authorized {
            return ("401 Unauthorized".into(), vec![], b"{}".to_vec());
        }
        let query = req
            .target
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or_default();
        let scope: String = query
            .split('&')
            .filter_map(|kv| kv.strip_prefix("scope="))
            .map(|s| {
                s.replace("%3A", ":")
                    .replace("%2C", ",")
                    .replace("%2F", "/")
                    .replace('+', " ")
            })
            .collect::<Vec<_>>()
            .join(" ");
        let token = registry_token(&key, &cert_der, &scope);
        (
            "200 OK".into(),
            vec![("Content-Type".into(), "application/json".into())],
            json!({"token": token, "access_token": token, "expires_in": 600})
                .to_string()
                .into_bytes(),
        )
    });
    let auth = format!(
        "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: promote-registry\n    issuer: promote-test\n    rootcertbundle: {}\n",
        tokens.port,
        bundle.display()
    );
    let reg = promote_tests::docker_registry_with(&tmp.path().join("registry"), &auth).unwrap();
    let host = format!("127.0.0.1:{}", reg.port);
    let push = Pusher::new(
        reg.port,
        RegistryAuth::Basic("ci-bot".into(), PASSWORD.into()),
    );
    let (digest, _) = push
        .image("team/app", "2.0.0", "2026-05-01T00:00:00Z", "amd64")
        .await;
    let dir = tmp.path().join("kargo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("w.yaml"),
        format!("apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{ name: app, namespace: demo }}\nspec:\n  subscriptions:\n    - image: {{ repoURL: {host}/team/app }}\n"),
    )
    .unwrap();
    let d = dir.display().to_string();
    let cache = tmp.path().join("cache").display().to_string();
    let run = |env: &[(&str, &str)]| {
        plugin(
            &[
                "discover",
                "warehouse/app",
                "-n",
                "demo",
                "--local",
                &d,
                "--cache-dir",
                &cache,
                "--dry-run",
                "-o",
                "json",
            ],
            env,
        )
    };
    let refused = run(&[]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let ok = run(&[
        ("PROMOTE_REGISTRY_USERNAME", "ci-bot"),
        ("PROMOTE_REGISTRY_PASSWORD", PASSWORD),
        ("PROMOTE_TOKEN_HOSTS", host.as_str()),
    ]);
    assert!(ok.status.success(), "{}", text(&ok));
    let f: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(f["images"][0]["digest"], digest.as_str());
    assert!(!text(&ok).contains(PASSWORD) && !text(&refused).contains(PASSWORD));
    let asked = tokens.requests.lock().unwrap().len();
    assert!(asked >= 2, "the token server was asked ({asked} requests)");
}

/// A registry on 127.0.0.1 serving HTTPS with a self-signed certificate: spoken to over HTTPS (as
/// go-containerregistry does, HTTPS first, plain HTTP only when HTTPS does not answer), refused
/// with a hint while the certificate is not trusted, read once `insecureSkipTLSVerify` is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_speaks_https_to_a_tls_registry_and_skips_verification_only_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    // Images are pushed over plain HTTP; a second registry serves the same storage over TLS.
    let plain = docker_registry(&tmp.path().join("registry"), None).unwrap();
    let push = Pusher::new(plain.port, RegistryAuth::Anonymous);
    let (pushed, _) = push
        .image("team/app", "1.2.0", "2026-05-01T00:00:00Z", "amd64")
        .await;
    let tls_dir = tmp.path().join("registry-tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("registry/data"), tls_dir.join("data")).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    std::fs::write(tls_dir.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(tls_dir.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let tls = promote_tests::docker_registry_with(
        &tls_dir,
        &format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            tls_dir.join("cert.pem").display(),
            tls_dir.join("key.pem").display()
        ),
    )
    .unwrap();
    let host = format!("127.0.0.1:{}", tls.port);
    let dir = tmp.path().join("kargo");
    std::fs::create_dir_all(&dir).unwrap();
    let warehouse = |name: &str, skip: bool| {
        format!(
            "apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{ name: {name}, namespace: demo }}\nspec:\n  subscriptions:\n    - image: {{ repoURL: {host}/team/app, insecureSkipTLSVerify: {skip} }}\n"
        )
    };
    std::fs::write(
        dir.join("w.yaml"),
        format!(
            "{}---\n{}",
            warehouse("verified", false),
            warehouse("unverified", true)
        ),
    )
    .unwrap();
    let d = dir.display().to_string();
    let cache = tmp.path().join("cache").display().to_string();
    let run = |w: &str| {
        plugin(
            &[
                "discover",
                w,
                "-n",
                "demo",
                "--local",
                &d,
                "--cache-dir",
                &cache,
                "-o",
                "json",
            ],
            &[],
        )
    };
    let refused = run("warehouse/verified");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        err.contains(&format!("registry {host} does not answer over HTTPS"))
            && err.contains("TLS certificate is not trusted")
            && err.contains("set insecureSkipTLSVerify: true"),
        "{err}"
    );
    assert!(freight_files(&dir).is_empty(), "nothing is created");
    let read = run("warehouse/unverified");
    assert!(read.status.success(), "{}", text(&read));
    let f: Value = serde_json::from_slice(&read.stdout).unwrap();
    assert_eq!(f["images"][0]["repoURL"], format!("{host}/team/app"));
    assert_eq!(f["images"][0]["tag"], "1.2.0");
    assert_eq!(f["images"][0]["digest"], pushed.as_str());
    assert_eq!(freight_files(&dir).len(), 1);
    drop(plain);
}

/// Tag lists paged by a registry that honours `n` and `last` (distribution v3; Debian's 2.8
/// answers every tag at once): 2,050 tags are three pages (1,000, 1,000 and 50), and the lexically greatest
/// tags are on the last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_pages_through_a_registry_that_honours_n_and_last() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = match promote_tests::registry_v3(&tmp.path().join("registry")) {
        Some(r) => r.unwrap(),
        None if std::env::var("PROMOTE_REAL_KUBE_REQUIRED").is_ok_and(|v| v == "1") => {
            panic!(
                "PROMOTE_REGISTRY_V3 is not set: scripts/test builds it with scripts/kube-build --registry"
            )
        }
        None => {
            eprintln!(
                "skipped: PROMOTE_REGISTRY_V3 is not set (scripts/test builds distribution v3 when Go is installed)"
            );
            return;
        }
    };
    let host = format!("127.0.0.1:{}", reg.port);
    let push = Pusher::new(reg.port, RegistryAuth::Anonymous);
    push.builds("acme/paged", 2050).await;
    // The registry does page: a first page of 1,000 ends before the greatest tag.
    let page = push
        .client
        .list_tags(
            &push.at("acme/paged", "latest"),
            &RegistryAuth::Anonymous,
            Some(1000),
            None,
        )
        .await
        .unwrap()
        .tags;
    assert_eq!(page.len(), 1000);
    assert_eq!(page.last().map(String::as_str), Some("build-0999"));
    let dir = tmp.path().join("kargo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("w.yaml"),
        format!("apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\nmetadata: {{ name: paged, namespace: demo }}\nspec:\n  subscriptions:\n    - image: {{ repoURL: {host}/acme/paged, imageSelectionStrategy: Lexical, discoveryLimit: 3 }}\n"),
    )
    .unwrap();
    let d = dir.display().to_string();
    let out = plugin(
        &[
            "discover",
            "warehouse/paged",
            "-n",
            "demo",
            "--local",
            &d,
            "--dry-run",
            "-o",
            "json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    // The Freight of the newest tag, which only the third page holds.
    let f: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(f["images"][0]["tag"], "build-2049", "{f:#}");
}
