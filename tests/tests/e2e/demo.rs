//! The whole system as a platform team meets it: `promote-sandbox demo` (the README's quick start)
//! and a webhook certificate rotation in the middle of promotions.

use std::process::Command;
use std::time::Duration;

use base64::Engine;
use promote_tests::bin;
use serde_json::Value;

use crate::backend::{Backend, Kind};
use crate::cluster::World;
use crate::sandbox::k;
use crate::webhook::certs;

crate::backend::both!(the_demo_tells_the_whole_story);
/// The README's quick start, on a sandbox it starts, or (`--cluster`) on the real control plane
/// `scripts/kube up` runs with the webhook's Service mapped to a local port.
async fn the_demo_tells_the_whole_story(kind: Kind) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("promote-demo");
    let mut demo = Command::new(bin("promote-sandbox").unwrap());
    demo.args(["demo", "--exit", "--dir"])
        .arg(&dir)
        .env_remove("KUBECONFIG");
    let cluster = match kind {
        Kind::Sandbox => None,
        Kind::Real => {
            let port = promote_tests::free_port();
            let Some(cluster) = Backend::start(
                kind,
                &tmp.path().join("kube"),
                &[("promote-webhook.promote-system", port)],
            )
            .await
            else {
                return;
            };
            demo.arg("--cluster")
                .arg(cluster.kubeconfig())
                .args(["--webhook-port", &port.to_string()]);
            Some(cluster)
        }
    };
    let out = tokio::task::spawn_blocking(move || demo.output())
        .await
        .unwrap()
        .unwrap();
    if let Some(cluster) = cluster {
        cluster.stop().await;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // Installed as the README says, through the real kubectl.
    for line in [
        "$ promote-webhook certs --service promote-webhook --namespace promote-system --out certs",
        "$ kubectl kustomize manifests/ | sed \"s|caBundle: \\\"\\\"|caBundle: $CA_BUNDLE|\" | kubectl apply -f -",
        "validatingwebhookconfiguration.admissionregistration.k8s.io/promote-webhook created",
        "$ kubectl promote stage/prod --freight-alias first-light -n kargo-demo --context alice",
        "$ kubectl promote stage/test --freight-alias second-wave -n kargo-demo --context bob",
        "$ kubectl promote get stages -n kargo-demo",
        // scripts/test installs Debian's docker-registry: the Warehouse discovers both images.
        "$ kubectl promote discover warehouse/guestbook -n kargo-demo --alias first-light",
        "$ kubectl promote discover warehouse/guestbook -n kargo-demo --alias second-wave",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    assert!(stdout.matches("/nginx:1.2").count() >= 2, "{stdout}");
    assert!(!stdout.contains("freight create"), "{stdout}");
    assert_eq!(
        stdout.matches("PHASE      Succeeded").count(),
        5,
        "{stdout}"
    );
    // bob is refused prod by the webhook, with its message.
    assert!(
        stderr.contains("admission webhook \"promotion.validate.promote.dev\" denied the request: user \"bob\" is not permitted to create Promotions for Stage \"prod\""),
        "{stderr}"
    );
    let stages = stdout
        .split("$ kubectl promote get stages -n kargo-demo\n")
        .nth(1)
        .unwrap();
    let row = |s: &str| {
        stages
            .lines()
            .find(|l| l.starts_with(s))
            .unwrap()
            .to_owned()
    };
    assert!(
        row("prod ").contains("Healthy") && row("test ").contains("Healthy"),
        "{stages}"
    );
    assert_ne!(
        row("prod ").split_whitespace().nth(1),
        row("test ").split_whitespace().nth(1),
        "prod keeps first-light, test has second-wave:\n{stages}"
    );
    // The user can go on by hand: the kubeconfig is left behind.
    assert!(dir.join("kubeconfig").is_file());
    assert!(stdout.contains(&format!(
        "export KUBECONFIG={}",
        dir.join("kubeconfig").display()
    )));
}

/// Without a registry (`--no-registry`, or docker-registry not installed) the same story runs on
/// Freight created by hand.
#[test]
fn the_demo_without_a_registry_creates_the_freight_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("promote-demo");
    let out = Command::new(bin("promote-sandbox").unwrap())
        .args(["demo", "--exit", "--no-registry", "--dir"])
        .arg(&dir)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("$ kubectl promote freight create -n kargo-demo --warehouse guestbook --image nginx:1.25.0 --alias first-light"), "{stdout}");
    assert!(!stdout.contains("promote discover"), "{stdout}");
    assert_eq!(
        stdout.matches("PHASE      Succeeded").count(),
        5,
        "{stdout}"
    );
}

crate::backend::both!(webhook_certificate_rotation_during_promotions);
async fn webhook_certificate_rotation_during_promotions(kind: crate::backend::Kind) {
    let Some(w) = World::on(kind, true).await else {
        return;
    };
    for (i, tag) in ["1.25.0", "1.26.0", "1.27.0", "1.28.0"].iter().enumerate() {
        w.freight(tag, &format!("v{i}")).await;
    }
    // Rotation as an operator does it: trust the new CA next to the old one, then swap the pair.
    let old = w.tmp.path().join("certs");
    let new = w.tmp.path().join("certs-next");
    certs(&new);
    let mut bundle = std::fs::read(old.join("ca.crt")).unwrap();
    bundle.extend(std::fs::read(new.join("ca.crt")).unwrap());
    let bundle = base64::engine::general_purpose::STANDARD.encode(bundle);
    for kind in [
        "mutatingwebhookconfiguration",
        "validatingwebhookconfiguration",
    ] {
        let (good, out, err) =
            k(&w.kc, &["get", kind, "promote-webhook", "-o", "json"], None).await;
        assert!(good, "{err}");
        let mut cfg: Value = serde_json::from_str(&out).unwrap();
        for hook in cfg["webhooks"].as_array_mut().unwrap() {
            hook["clientConfig"]["caBundle"] = Value::String(bundle.clone());
        }
        let (good, _, err) = k(&w.kc, &["replace", "-f", "-"], Some(&cfg.to_string())).await;
        assert!(good, "{err}");
    }
    let runs: Vec<_> = (0..4)
        .map(|i| {
            let c = w.spawn(
                "alice",
                &["stage/dev", "--freight-alias", &format!("v{i}"), "--wait"],
                &[],
            );
            std::thread::sleep(Duration::from_millis(150));
            c
        })
        .collect();
    // Swap the serving pair (each file replaced by rename, as a kubelet Secret update lands).
    for f in ["tls.key", "tls.crt"] {
        std::fs::copy(new.join(f), old.join(format!("{f}.next"))).unwrap();
        std::fs::rename(old.join(format!("{f}.next")), old.join(f)).unwrap();
    }
    let outs = tokio::task::spawn_blocking(move || {
        runs.into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for o in &outs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let hook = w.hook.as_ref().unwrap();
    let metrics = hook.ops("/metrics").unwrap().1;
    assert!(
        metrics.contains("promote_webhook_certificate_reloads_total{result=\"ok\"}"),
        "{metrics}\n{}",
        hook.logs()
    );
    // After the swap, promotion writes are decided over the new certificate.
    let (code, _, err) = w
        .plugin("alice", &["stage/dev", "--freight-alias", "v0"])
        .await;
    assert_eq!(code, 0, "{err}");
}
