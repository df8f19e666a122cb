//! Every binary builds and answers --help.

use std::process::Command;

use promote_tests::bin;

#[test]
fn every_binary_answers_help_and_version() {
    for (name, needle) in [
        ("kubectl-promote", "Usage: kubectl promote"),
        ("promote-webhook", "Usage: promote-webhook"),
        ("promote-sandbox", "Usage: promote-sandbox"),
        ("crdgen", "usage: crdgen"),
    ] {
        let path = bin(name).unwrap();
        let out = Command::new(&path).arg("--help").output().unwrap();
        assert!(
            out.status.success(),
            "{name} --help failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(needle), "{name} --help printed:\n{text}");
        if name != "crdgen" {
            let out = Command::new(&path).arg("--version").output().unwrap();
            let version = String::from_utf8_lossy(&out.stdout);
            assert!(
                version.contains(env!("CARGO_PKG_VERSION")),
                "{name} --version printed {version:?}"
            );
        }
    }
}

#[test]
fn crdgen_check_passes_on_a_clean_tree() {
    let out = Command::new(bin("crdgen").unwrap())
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kubectl_promote_usage_errors_exit_2() {
    for (args, needle) in [
        (
            &["stage/dev", "get", "stages"][..],
            "give either a Stage to promote or a command, not both",
        ),
        (&["stage/dev"][..], "name the Freight to promote"),
        (
            &["warehouse/w", "--freight", "abc"][..],
            "only Stages can be promoted to",
        ),
    ] {
        let out = Command::new(bin("kubectl-promote").unwrap())
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
