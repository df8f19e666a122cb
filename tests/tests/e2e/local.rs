//! `kubectl promote --local` end to end: the real binary, real Git servers on 127.0.0.1
//! (`file://`, `git daemon`, smart HTTP with basic auth, sshd), real `kubectl kustomize`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use promote_tests::{HttpServer, bare_repo, bin, git, git_daemon, git_http, sshd, workspace_root};
use serde_json::{Value, json};

const KUSTOMIZATION: &str = "# overlay\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../../base\nimages:\n- name: nginx\n  newTag: \"1.24.0\" # promoted\n";
const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.24.0\n";

/// A GitOps repository with overlays `env/<stage>` and a manifests directory.
pub(crate) struct Demo {
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) bare: PathBuf,
    manifests: PathBuf,
}

pub(crate) fn stage(name: &str, repo: &str, sources: Value) -> Value {
    json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
        "metadata": { "name": name, "namespace": "demo" },
        "spec": {
            "requestedFreight": [{ "origin": { "kind": "Warehouse", "name": "w" }, "sources": sources }],
            "promotionTemplate": { "spec": { "steps": [
                { "uses": "git-clone", "config": { "repoURL": repo, "checkout": [{ "branch": "main", "path": "./src" }] } },
                { "uses": "kustomize-set-image", "as": "image", "config": { "path": format!("./src/env/{name}"), "images": [{ "image": "nginx", "tag": "${{ imageFrom('nginx').Tag }}" }] } },
                { "uses": "git-commit", "as": "commit", "config": { "path": "./src", "message": "${{ outputs.image.commitMessage }}" } },
                { "uses": "git-push", "as": "push", "config": { "path": "./src" } }
            ]}}
        }
    })
}

impl Demo {
    pub(crate) fn new(stages: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut files: Vec<(String, String)> = vec![
            (
                "base/kustomization.yaml".into(),
                "resources:\n- deployment.yaml\n".into(),
            ),
            ("base/deployment.yaml".into(), DEPLOYMENT.into()),
        ];
        for s in stages {
            files.push((format!("env/{s}/kustomization.yaml"), KUSTOMIZATION.into()));
        }
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let bare = bare_repo(tmp.path(), "gitops", &refs);
        let manifests = tmp.path().join("kargo");
        std::fs::create_dir_all(&manifests).unwrap();
        Self {
            tmp,
            bare,
            manifests,
        }
    }

    pub(crate) fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// Write the manifests: Warehouse, one Freight (nginx 1.25.0, alias `candidate`), the Stages.
    pub(crate) fn write(&self, stages: &[Value]) {
        let mut docs = vec![
            json!({ "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Warehouse", "metadata": { "name": "w", "namespace": "demo" }, "spec": { "subscriptions": [{ "image": { "repoURL": "nginx" } }] } }),
            json!({ "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Freight", "metadata": { "namespace": "demo" }, "alias": "candidate", "origin": { "kind": "Warehouse", "name": "w" }, "images": [{ "repoURL": "nginx", "tag": "1.25.0" }] }),
        ];
        docs.extend(stages.iter().cloned());
        let text: Vec<String> = docs
            .iter()
            .map(|d| serde_yaml::to_string(d).unwrap())
            .collect();
        std::fs::write(self.manifests.join("all.yaml"), text.join("---\n")).unwrap();
    }

    pub(crate) fn promote(&self, stage: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(bin("kubectl-promote").unwrap());
        cmd.arg(format!("stage/{stage}"))
            .args(["--freight-alias", "candidate", "--local"])
            .arg(&self.manifests)
            .args(["-n", "demo"]);
        if !extra.contains(&"--cache-dir") {
            cmd.arg("--cache-dir").arg(self.root().join("cache"));
        }
        cmd.args(extra);
        cmd.env_remove("PROMOTE_GIT_PASSWORD")
            .env_remove("PROMOTE_GIT_TOKEN")
            .env("GIT_TERMINAL_PROMPT", "0");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn remote_file(&self, path: &str) -> String {
        git(&self.bare, &["show", &format!("main:{path}")])
    }

    /// `kubectl kustomize` of an overlay at the remote's main.
    fn kustomize(&self, overlay: &str) -> String {
        let co = self.root().join(format!("co-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&co);
        git(
            self.root(),
            &[
                "clone",
                "-q",
                self.bare.to_str().unwrap(),
                co.to_str().unwrap(),
            ],
        );
        let out = Command::new("kubectl")
            .arg("kustomize")
            .arg(co.join(overlay))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl kustomize: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

pub(crate) fn ok(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

pub(crate) fn check_promoted(demo: &Demo, result: &Value, stage: &str) {
    assert_eq!(result["phase"], "Succeeded");
    let head = git(&demo.bare, &["rev-parse", "main"]);
    assert_eq!(result["commits"][0]["commit"], head.as_str());
    assert_eq!(
        result["commits"][0]["files"],
        json!([format!("env/{stage}/kustomization.yaml")])
    );
    // Only the tag changed, comments and quoting kept.
    assert_eq!(
        demo.remote_file(&format!("env/{stage}/kustomization.yaml")),
        KUSTOMIZATION.replace("1.24.0", "1.25.0").trim_end()
    );
    assert!(
        demo.kustomize(&format!("env/{stage}"))
            .contains("image: nginx:1.25.0")
    );
}

#[test]
fn promotes_over_file_git_daemon_http_and_ssh() {
    let demo = Demo::new(&["file", "daemon", "http", "ssh"]);
    let daemon = git_daemon(demo.root());
    let http = git_http(demo.root(), Some(("promoter", "s3cret-pass")));
    let (ssh_server, ssh_cmd) = sshd(&demo.root().join("ssh")).unwrap();
    let file_url = format!("file://{}", demo.bare.display());
    let daemon_url = format!("git://127.0.0.1:{}/gitops.git", daemon.port);
    let http_url = format!("http://127.0.0.1:{}/gitops.git", http.port);
    let ssh_url = format!(
        "ssh://root@127.0.0.1:{}{}",
        ssh_server.port,
        demo.bare.display()
    );
    demo.write(&[
        stage("file", &file_url, json!({ "direct": true })),
        stage("daemon", &daemon_url, json!({ "direct": true })),
        stage("http", &http_url, json!({ "direct": true })),
        stage("ssh", &ssh_url, json!({ "direct": true })),
    ]);
    check_promoted(
        &demo,
        &ok(&demo.promote("file", &["-o", "json"], &[])),
        "file",
    );
    check_promoted(
        &demo,
        &ok(&demo.promote("daemon", &["-o", "json"], &[])),
        "daemon",
    );
    let out = demo.promote("http", &["-o", "json"], &[]);
    assert!(!out.status.success(), "no credentials → refused");
    // Credentials from the environment go only to the hosts listed for them.
    let creds = [
        ("PROMOTE_GIT_USERNAME", "promoter"),
        ("PROMOTE_GIT_PASSWORD", "s3cret-pass"),
    ];
    let out = demo.promote("http", &["-o", "json"], &creds);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("are not sent to 127.0.0.1:")
            && err.contains("PROMOTE_TOKEN_HOSTS=127.0.0.1:"),
        "{err}"
    );
    let authority = format!("127.0.0.1:{}", http.port);
    let listed = [
        creds[0],
        creds[1],
        ("PROMOTE_TOKEN_HOSTS", authority.as_str()),
    ];
    check_promoted(
        &demo,
        &ok(&demo.promote("http", &["-o", "json"], &listed)),
        "http",
    );
    check_promoted(
        &demo,
        &ok(&demo.promote("ssh", &["-o", "json"], &[("GIT_SSH_COMMAND", &ssh_cmd)])),
        "ssh",
    );
    // A second promotion of the same Freight changes nothing and pushes nothing.
    let again = ok(&demo.promote("file", &["-o", "json"], &[]));
    assert_eq!(again["steps"][2]["status"], "Skipped");
    assert_eq!(git(&demo.bare, &["rev-list", "--count", "main"]), "5");
}

#[test]
fn dry_run_shows_the_diff_and_pushes_nothing() {
    let demo = Demo::new(&["dev"]);
    let url = format!("file://{}", demo.bare.display());
    demo.write(&[stage("dev", &url, json!({ "direct": true }))]);
    let before = git(&demo.bare, &["rev-parse", "main"]);
    let out = demo.promote("dev", &["--dry-run"], &[]);
    ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("-  newTag: \"1.24.0\" # promoted\n+  newTag: \"1.25.0\" # promoted"),
        "{stdout}"
    );
    assert!(
        stdout.contains("--- a/src/env/dev/kustomization.yaml"),
        "{stdout}"
    );
    assert_eq!(git(&demo.bare, &["rev-parse", "main"]), before);
}

#[test]
fn unavailable_freight_and_bad_input_are_refused_before_anything_changes() {
    let demo = Demo::new(&["dev", "test"]);
    let url = format!("file://{}", demo.bare.display());
    let mut bad = stage("dev", &url, json!({ "direct": true }));
    bad["spec"]["promotionTemplate"]["spec"]["steps"][0]["config"]["reopURL"] = json!("typo");
    demo.write(&[bad, stage("test", &url, json!({ "stages": ["dev"] }))]);
    let before = git(&demo.bare, &["rev-parse", "main"]);

    let out = demo.promote("test", &[], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not available to Stage \"test\": it must first be verified in \"dev\""),
        "{err}"
    );

    let out = demo.promote("dev", &[], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "spec.promotionTemplate.spec.steps[0].config.reopURL: Invalid value: unknown field"
        ),
        "{err}"
    );
    assert!(
        err.contains("hint: fix the Stage (the field named above); nothing was changed"),
        "{err}"
    );

    let out = demo.promote("prod", &[], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("hint: Stages in this project: dev, test")
    );

    let out = Command::new(bin("kubectl-promote").unwrap())
        .args(["stage/dev", "--local"])
        .arg(&demo.manifests)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "missing --freight is a usage error"
    );
    assert_eq!(git(&demo.bare, &["rev-parse", "main"]), before);
}

#[test]
fn twenty_concurrent_promotions_to_one_branch_all_land() {
    let names: Vec<String> = (0..20).map(|i| format!("s{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let demo = Demo::new(&refs);
    let url = format!("file://{}", demo.bare.display());
    demo.write(
        &names
            .iter()
            .map(|n| stage(n, &url, json!({ "direct": true })))
            .collect::<Vec<_>>(),
    );
    // Separate caches: like twenty machines, so pushes race and must be retried.
    let children: Vec<_> = names
        .iter()
        .map(|n| {
            Command::new(bin("kubectl-promote").unwrap())
                .arg(format!("stage/{n}"))
                .args([
                    "--freight-alias",
                    "candidate",
                    "-q",
                    "-o",
                    "json",
                    "-n",
                    "demo",
                    "--local",
                ])
                .arg(&demo.manifests)
                .arg("--cache-dir")
                .arg(demo.root().join(format!("cache-{n}")))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut retried = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        let v = ok(&out);
        if v["steps"][3]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("retr")
        {
            retried += 1;
        }
    }
    assert_eq!(git(&demo.bare, &["rev-list", "--count", "main"]), "21");
    for n in &names {
        assert!(
            demo.remote_file(&format!("env/{n}/kustomization.yaml"))
                .contains("newTag: \"1.25.0\""),
            "{n} lost"
        );
    }
    eprintln!("{retried} of 20 pushes were retried");
}

#[test]
fn credentials_never_appear_in_output() {
    const CANARY: &str = "CANARY-7f3a9c-token";
    let demo = Demo::new(&["dev"]);
    let http = git_http(demo.root(), Some(("promoter", CANARY)));
    let url = format!(
        "http://promoter:{CANARY}@127.0.0.1:{}/gitops.git",
        http.port
    );
    demo.write(&[stage("dev", &url, json!({ "direct": true }))]);
    for format in ["table", "json", "yaml"] {
        let out = demo.promote("dev", &["-o", format], &[]);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{all}");
        assert!(
            !all.contains(CANARY),
            "canary leaked in -o {format}:\n{all}"
        );
        assert!(!all.contains("promoter:"), "userinfo leaked:\n{all}");
    }
    // A wrong password through the environment: the failure is reported without the secret.
    let url = format!("http://127.0.0.1:{}/gitops.git", http.port);
    demo.write(&[stage("dev", &url, json!({ "direct": true }))]);
    let wrong = "WRONG-canary-secret";
    let listed = format!("127.0.0.1:{}", http.port);
    let out = demo.promote(
        "dev",
        &[],
        &[
            ("PROMOTE_GIT_PASSWORD", wrong),
            ("PROMOTE_TOKEN_HOSTS", &listed),
        ],
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success());
    assert!(!all.contains(wrong) && !all.contains(CANARY), "{all}");
    // And the mirror's config on disk holds no credentials either.
    let configs: Vec<String> = std::fs::read_dir(demo.root().join("cache"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("config")).ok())
        .collect();
    assert!(!configs.is_empty() && configs.iter().all(|c| !c.contains(CANARY)));
}

#[test]
fn commits_are_signed_with_the_users_ssh_key() {
    let demo = Demo::new(&["dev"]);
    let key = demo.root().join("signing_key");
    assert!(
        Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "promoter@example.com",
                "-f"
            ])
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );
    let url = format!("file://{}", demo.bare.display());
    let mut s = stage("dev", &url, json!({ "direct": true }));
    s["spec"]["promotionTemplate"]["spec"]["steps"][0]["config"]["author"] = json!({ "name": "Promoter", "email": "promoter@example.com", "signingKey": key.display().to_string() });
    demo.write(&[s]);
    let key_s = key.display().to_string();
    ok(&demo.promote(
        "dev",
        &["-o", "json"],
        &[
            ("GIT_CONFIG_COUNT", "1"),
            ("GIT_CONFIG_KEY_0", "gpg.format"),
            ("GIT_CONFIG_VALUE_0", "ssh"),
        ],
    ));
    let pubkey = std::fs::read_to_string(format!("{key_s}.pub")).unwrap();
    let signers = demo.root().join("allowed_signers");
    std::fs::write(
        &signers,
        format!(
            "promoter@example.com {}",
            pubkey
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        ),
    )
    .unwrap();
    let out = Command::new("git")
        .arg("-C")
        .arg(&demo.bare)
        .args(["-c", "gpg.format=ssh", "-c"])
        .arg(format!("gpg.ssh.allowedSignersFile={}", signers.display()))
        .args(["verify-commit", "main"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        git(&demo.bare, &["log", "-1", "--format=%an <%ae>", "main"]),
        "Promoter <promoter@example.com>"
    );
}

#[test]
fn legacy_stage_and_yaml_update_promote() {
    let demo = Demo::new(&["dev"]);
    let url = format!("file://{}", demo.bare.display());
    let legacy = json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
        "metadata": { "name": "dev", "namespace": "demo" },
        "spec": {
            "subscriptions": { "warehouse": "w" },
            "promotionMechanisms": { "gitRepoUpdates": [{ "repoURL": url, "writeBranch": "main", "kustomize": { "images": [{ "image": "nginx", "path": "env/dev" }] } }] }
        }
    });
    demo.write(&[legacy]);
    let v = ok(&demo.promote("dev", &["-o", "json"], &[]));
    check_promoted(&demo, &v, "dev");
}

/// A fake provider API: answers list calls with what was created so far.
fn fake_provider(kind: &'static str) -> HttpServer {
    let created = std::sync::Arc::new(std::sync::Mutex::new(false));
    HttpServer::start(move |req| {
        let mut made = created.lock().unwrap();
        let pr = match kind {
            "gitlab" => json!({ "iid": 7, "web_url": "http://fake/mr/7" }),
            _ => {
                json!({ "number": 7, "html_url": "http://fake/pull/7", "head": { "ref": "kargo/promotion/x" }, "base": { "ref": "main" } })
            }
        };
        let body = match req.method.as_str() {
            "GET" if *made => json!([pr]),
            "GET" => json!([]),
            _ => {
                *made = true;
                pr
            }
        };
        (
            "200 OK".into(),
            vec![("Content-Type".into(), "application/json".into())],
            body.to_string().into_bytes(),
        )
    })
}

#[test]
fn git_open_pr_against_fake_github_gitlab_and_gitea() {
    for (provider, api) in [
        ("github", "/api/v3/repos/org/gitops/pulls"),
        ("gitlab", "/api/v4/projects/org%2Fgitops/merge_requests"),
        ("gitea", "/api/v1/repos/org/gitops/pulls"),
    ] {
        let demo = Demo::new(&["dev"]);
        let fake = fake_provider(provider);
        let url = format!("file://{}", demo.bare.display());
        let mut s = stage("dev", &url, json!({ "direct": true }));
        let steps = s["spec"]["promotionTemplate"]["spec"]["steps"]
            .as_array_mut()
            .unwrap();
        steps[3]["config"]["generateTargetBranch"] = json!(true);
        steps.push(json!({ "uses": "git-open-pr", "as": "pr", "config": {
            "repoURL": format!("http://127.0.0.1:{}/org/gitops.git", fake.port), "provider": provider,
            "sourceBranch": "${{ outputs.push.branch }}", "targetBranch": "main", "labels": ["kargo"] } }));
        demo.write(&[s]);
        let tokens = [
            ("GITHUB_TOKEN", "gh-tok"),
            ("GITLAB_TOKEN", "gl-tok"),
            ("GITEA_TOKEN", "gt-tok"),
        ];
        // A provider's token is not sent to a host that is not the provider's, unless listed.
        let out = demo.promote("dev", &["-o", "json"], &tokens);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("PROMOTE_TOKEN_HOSTS="),
            "{provider}: {err}"
        );
        assert!(
            fake.requests
                .lock()
                .unwrap()
                .iter()
                .all(|r| !r.headers.contains_key("authorization")),
            "{provider}: a token went out"
        );
        let authority = format!("127.0.0.1:{}", fake.port);
        let mut env = tokens.to_vec();
        env.push(("PROMOTE_TOKEN_HOSTS", authority.as_str()));
        let v = ok(&demo.promote("dev", &["-o", "json"], &env));
        assert_eq!(v["steps"][4]["status"], "Succeeded", "{v}");
        let branch = v["commits"][0]["branch"].as_str().unwrap().to_owned();
        assert!(branch.starts_with("kargo/promotion/dev."), "{branch}");
        assert_eq!(
            git(&demo.bare, &["rev-parse", &branch]),
            v["commits"][0]["commit"].as_str().unwrap()
        );
        let reqs = fake.requests.lock().unwrap().clone();
        let post = reqs
            .iter()
            .find(|r| r.method == "POST" && r.target.starts_with(api))
            .unwrap_or_else(|| panic!("{provider}: no create call in {reqs:?}"));
        let body: Value = serde_json::from_slice(&post.body).unwrap();
        let (src, dst) = if provider == "gitlab" {
            ("source_branch", "target_branch")
        } else {
            ("head", "base")
        };
        assert_eq!(body[src], branch.as_str());
        assert_eq!(body[dst], "main");
        let auth = post
            .headers
            .get("authorization")
            .cloned()
            .unwrap_or_default();
        assert!(auth.ends_with("-tok"), "{provider}: {auth}");
        assert!(!String::from_utf8_lossy(&demo.promote("dev", &[], &[]).stderr).contains("-tok"));
    }
}

/// The README's quick start, as written.
#[test]
fn quickstart_script_promotes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(workspace_root().join("examples/quickstart/run.sh"))
        .arg(tmp.path().join("qs"))
        .env("KUBECTL_PROMOTE", bin("kubectl-promote").unwrap())
        .env("XDG_CACHE_HOME", tmp.path().join("cache"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("[4/5] git-push             Succeeded pushed"),
        "{stderr}"
    );
    assert!(stdout.contains("The commit it pushed:"), "{stdout}");
    assert!(
        stdout.contains("env/dev/kustomization.yaml | 2 +-"),
        "{stdout}"
    );
}
