//! The fixture corpus (`api/tests/fixtures`): realistic Kargo manifests, each of which must
//! deserialize, validate, and re-serialize with no field lost (compared as JSON).

use std::path::PathBuf;

use pretty_assertions::assert_eq;
use serde_json::Value;

use crate::types::{Freight, Promotion, PromotionTask, Stage, Warehouse};
use crate::validation;

fn fixtures() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let v: Value = serde_yaml::from_str(&text).unwrap();
            (p.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(
    name: &str,
    original: &Value,
) -> T {
    let typed: T =
        serde_json::from_value(original.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(&back, original, "{name}: re-serialized JSON differs");
    typed
}

#[test]
fn corpus_round_trips_and_validates() {
    let all = fixtures();
    assert!(
        all.len() >= 12,
        "the corpus needs at least 12 manifests, has {}",
        all.len()
    );
    let mut kinds = std::collections::BTreeSet::new();
    for (name, v) in &all {
        let kind = v["kind"].as_str().unwrap_or_default();
        kinds.insert(kind.to_owned());
        let result = match kind {
            "Stage" => validation::validate_stage(&round_trip::<Stage>(name, v)),
            "Freight" => validation::validate_freight(&round_trip::<Freight>(name, v)),
            "Promotion" => validation::validate_promotion(&round_trip::<Promotion>(name, v)),
            "PromotionTask" => {
                validation::validate_promotion_task(&round_trip::<PromotionTask>(name, v))
            }
            "Warehouse" => validation::validate_warehouse(&round_trip::<Warehouse>(name, v)),
            other => panic!("{name}: unexpected kind {other:?}"),
        };
        if let Err(e) = result {
            panic!("{name}: {e}");
        }
    }
    assert_eq!(kinds.len(), 5, "every kind is represented: {kinds:?}");
}

fn stage(file: &str) -> Stage {
    let (_, v) = fixtures().into_iter().find(|(n, _)| n == file).unwrap();
    serde_json::from_value(v).unwrap()
}

#[test]
fn legacy_stage_translates_into_steps() {
    let s = stage("stage-legacy.yaml");
    assert!(crate::legacy::is_legacy(&s));
    let (requested, steps) = crate::legacy::translate(&s, |_| None).unwrap();
    assert_eq!(requested.len(), 1);
    assert!(requested[0].sources.direct);
    assert_eq!(requested[0].origin.to_string(), "Warehouse/kargo-demo");
    let uses: Vec<&str> = steps.iter().map(|s| s.uses.as_str()).collect();
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
    assert_eq!(
        steps[1].config.as_ref().unwrap(),
        &serde_json::json!({
            "path": "./repo-1/stages/test",
            "images": [{ "image": "nginx", "tag": "${{ imageFrom(\"nginx\").Tag }}" }]
        })
    );
    assert_eq!(
        steps[4].config.as_ref().unwrap()["apps"][0],
        serde_json::json!({
            "name": "kargo-demo-test",
            "namespace": "argocd",
            "sources": [{
                "repoURL": "https://github.com/example/kargo-demo.git",
                "updateTargetRevision": true,
                "desiredRevision": "${{ commitFrom(\"https://github.com/example/kargo-demo.git\").ID }}",
                "kustomize": { "images": [{ "repoURL": "nginx", "digest": "${{ imageFrom(\"nginx\").Digest }}" }] }
            }]
        })
    );
    // The translated steps are a valid Stage template.
    let mut modern = s.clone();
    modern.spec.requested_freight = requested;
    modern.spec.subscriptions = None;
    modern.spec.promotion_mechanisms = None;
    modern.spec.promotion_template = Some(crate::types::PromotionTemplate {
        spec: crate::types::PromotionTemplateSpec {
            vars: vec![],
            steps,
        },
    });
    validation::validate_stage(&modern).unwrap();
}

#[test]
fn legacy_upstream_stage_with_pull_request_and_helm() {
    let s = stage("stage-legacy-upstream.yaml");
    let (requested, steps) = crate::legacy::translate(&s, |_| None).unwrap();
    assert_eq!(requested[0].sources.stages, ["uat"]);
    assert_eq!(requested[0].origin.name, "kargo-demo");
    let uses: Vec<&str> = steps.iter().map(|s| s.uses.as_str()).collect();
    assert_eq!(
        uses,
        [
            "git-clone",
            "yaml-update",
            "git-commit",
            "git-push",
            "git-open-pr",
            "argocd-update"
        ]
    );
    assert_eq!(
        steps[0].config.as_ref().unwrap()["checkout"][0]["branch"],
        "main"
    );
    assert_eq!(
        steps[1].config.as_ref().unwrap()["updates"][0]["value"],
        "${{ imageFrom(\"nginx\").Tag }}"
    );
    assert_eq!(
        steps[3].config.as_ref().unwrap()["generateTargetBranch"],
        true
    );
    assert_eq!(
        steps[4].config.as_ref().unwrap()["targetBranch"],
        "env/prod"
    );

    // Without an origin, upstream-only legacy Stages need the resolver.
    let mut no_origin = s.clone();
    if let Some(m) = no_origin.spec.promotion_mechanisms.as_mut() {
        m.origin = None;
    }
    let err = crate::legacy::translate(&no_origin, |_| None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("promotionMechanisms.origin"), "{err}");
    let (req, _) = crate::legacy::translate(&no_origin, |up| {
        (up == "uat").then(|| crate::types::FreightOrigin::warehouse("w"))
    })
    .unwrap();
    assert_eq!(req[0].origin.name, "w");
}
