//! The engine against real repositories on disk (`file://`).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use super::*;

pub(crate) fn sh(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A bare "remote" with one commit on main holding `files`; returns its file:// URL.
pub(crate) fn remote(root: &Path, files: &[(&str, &str)]) -> String {
    let work = root.join("seed");
    std::fs::create_dir_all(&work).unwrap();
    sh(&work, &["init", "-q", "-b", "main"]);
    for (p, c) in files {
        let path = work.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, c).unwrap();
    }
    sh(&work, &["add", "-A"]);
    sh(&work, &["commit", "-q", "-m", "seed"]);
    let bare = root.join("remote.git");
    sh(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    sh(&bare, &["config", "uploadpack.allowFilter", "true"]);
    sh(&bare, &["config", "uploadpack.allowAnySHA1InWant", "true"]);
    format!("file://{}", bare.display())
}

fn mirror(root: &Path, url: &str) -> Arc<Mirror> {
    Arc::new(
        Mirror::open(
            url,
            MirrorOptions {
                cache_root: root.join("cache"),
                ..Default::default()
            },
        )
        .unwrap(),
    )
}

/// Commit a change to `path` in the remote from another clone.
pub(crate) fn commit_elsewhere(root: &Path, url: &str, path: &str, content: &str) {
    let dir = root.join(format!("other-{}", ulid::Ulid::new()));
    sh(root, &["clone", "-q", url, dir.to_str().unwrap()]);
    std::fs::create_dir_all(dir.join(path).parent().unwrap()).unwrap();
    std::fs::write(dir.join(path), content).unwrap();
    sh(&dir, &["add", "-A"]);
    sh(&dir, &["commit", "-q", "-m", "elsewhere"]);
    sh(&dir, &["push", "-q", "origin", "HEAD:main"]);
}

#[test]
fn read_edit_commit_push() {
    let tmp = tempfile::tempdir().unwrap();
    let url = remote(
        tmp.path(),
        &[
            ("a/b/values.yaml", "tag: 1\n"),
            ("a/other.txt", "x\n"),
            ("top.txt", "t\n"),
        ],
    );
    let m = mirror(tmp.path(), &url);
    let mut co = Checkout::start(m.clone(), &RemoteRef::Default).unwrap();
    assert_eq!(co.branch.as_deref(), Some("main"));
    assert_eq!(co.read("a/b/values.yaml").unwrap().unwrap(), b"tag: 1\n");
    assert_eq!(co.read("./a/missing").unwrap(), None);
    assert_eq!(
        co.list_dir("a").unwrap(),
        vec![("b".to_owned(), true), ("other.txt".to_owned(), false)]
    );
    co.write("a/b/values.yaml", b"tag: 2\n".to_vec()).unwrap();
    co.write("a/new/file.txt", b"n\n".to_vec()).unwrap();
    assert!(co.is_dir("a/new").unwrap());
    let commit = co
        .commit("promote", Some(("Promoter", "p@example.com")), None)
        .unwrap()
        .unwrap();
    assert!(
        co.commit("nothing", None, None).unwrap().is_none(),
        "no changes → no commit"
    );
    assert_eq!(m.push(&commit, "main", false).unwrap(), PushOutcome::Pushed);
    let bare = tmp.path().join("remote.git");
    assert_eq!(sh(&bare, &["show", "main:a/b/values.yaml"]), "tag: 2");
    assert_eq!(sh(&bare, &["show", "main:a/other.txt"]), "x");
    assert_eq!(sh(&bare, &["show", "main:a/new/file.txt"]), "n");
    assert_eq!(
        sh(&bare, &["log", "-1", "--format=%an <%ae>|%s", "main"]),
        "Promoter <p@example.com>|promote"
    );
    // The mirror is shallow and blob-less: only what we read was fetched.
    assert!(m.dir().join("shallow").is_file());
}

#[test]
fn rejected_push_is_rebased_and_conflicts_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let url = remote(
        tmp.path(),
        &[
            ("env/test/values.yaml", "a: 1\nb: 1\nc: 1\n"),
            ("env/prod/values.yaml", "x: 1\n"),
        ],
    );
    let m = mirror(tmp.path(), &url);
    let mut co = Checkout::start(m.clone(), &RemoteRef::Branch("main".into())).unwrap();
    co.write("env/test/values.yaml", b"a: 2\nb: 1\nc: 1\n".to_vec())
        .unwrap();
    let commit = co.commit("ours", None, None).unwrap().unwrap();
    // Someone else changes another line of the same file, and another file.
    commit_elsewhere(
        tmp.path(),
        &url,
        "env/test/values.yaml",
        "a: 1\nb: 1\nc: 3\n",
    );
    assert!(matches!(
        m.push(&commit, "main", false).unwrap(),
        PushOutcome::Rejected(_)
    ));
    let tip = m.fetch(&RemoteRef::Branch("main".into())).unwrap();
    co.rebase_onto(&tip, "main", None).unwrap();
    assert_eq!(
        m.push(co.head(), "main", false).unwrap(),
        PushOutcome::Pushed
    );
    let bare = tmp.path().join("remote.git");
    assert_eq!(
        sh(&bare, &["show", "main:env/test/values.yaml"]),
        "a: 2\nb: 1\nc: 3"
    );
    assert_eq!(sh(&bare, &["rev-list", "--count", "main"]), "3");

    // A change to the same line is a real conflict.
    let mut co = Checkout::start(m.clone(), &RemoteRef::Branch("main".into())).unwrap();
    co.write("env/test/values.yaml", b"a: 5\nb: 1\nc: 3\n".to_vec())
        .unwrap();
    co.commit("ours again", None, None).unwrap();
    commit_elsewhere(
        tmp.path(),
        &url,
        "env/test/values.yaml",
        "a: 9\nb: 1\nc: 3\n",
    );
    let tip = m.fetch(&RemoteRef::Branch("main".into())).unwrap();
    let err = co.rebase_onto(&tip, "main", None).unwrap_err().to_string();
    assert!(err.contains("env/test/values.yaml"), "{err}");
}

#[test]
fn missing_branch_and_orphan_creation() {
    let tmp = tempfile::tempdir().unwrap();
    let url = remote(tmp.path(), &[("f", "1\n")]);
    let m = mirror(tmp.path(), &url);
    let err = Checkout::start(m.clone(), &RemoteRef::Branch("stage/test".into()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("branch \"stage/test\" does not exist") && err.contains("create: true"),
        "{err}"
    );
    let mut co = Checkout::create_orphan(m.clone(), "stage/test", true).unwrap();
    assert!(co.list_dir("").unwrap().is_empty());
    co.write("manifests.yaml", b"kind: X\n".to_vec()).unwrap();
    let c = co.commit("render", None, None).unwrap().unwrap();
    assert_eq!(
        m.push(&c, "stage/test", false).unwrap(),
        PushOutcome::Pushed
    );
    let bare = tmp.path().join("remote.git");
    assert_eq!(
        sh(&bare, &["log", "--format=%s", "stage/test"]),
        "render\nInitial commit"
    );
}

#[test]
fn warm_fetch_is_incremental_and_commits_resolve() {
    let tmp = tempfile::tempdir().unwrap();
    let url = remote(tmp.path(), &[("f", "1\n")]);
    let m = mirror(tmp.path(), &url);
    let first = m.fetch(&RemoteRef::Branch("main".into())).unwrap();
    commit_elsewhere(tmp.path(), &url, "f", "2\n");
    let second = m.fetch(&RemoteRef::Branch("main".into())).unwrap();
    assert_ne!(first, second);
    let co = Checkout::start(m.clone(), &RemoteRef::Commit(first.clone())).unwrap();
    assert_eq!(co.branch, None);
    assert_eq!(co.read("f").unwrap().unwrap(), b"1\n");
    // A second Mirror on the same cache reuses the objects.
    let again = mirror(tmp.path(), &url);
    assert_eq!(again.dir(), m.dir());
}
