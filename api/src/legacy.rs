//! Kargo's legacy Stage format (`spec.subscriptions` + `spec.promotionMechanisms`, Kargo v0.x) and
//! its translation into `requestedFreight` and promotion steps, following Kargo's own migration
//! guidance: each `gitRepoUpdates` entry becomes git-clone → edits → git-commit → git-push
//! (→ git-open-pr), each `argoCDAppUpdates` entry becomes one argocd-update app.

use serde_json::{Value, json};

use crate::Error;
use crate::types::{FreightOrigin, FreightRequest, FreightSources, PromotionStep, Stage};

pub use crate::types::legacy::*;

/// Whether the Stage uses the legacy format (and no modern promotion template).
pub fn is_legacy(stage: &Stage) -> bool {
    stage.spec.promotion_template.is_none()
        && (stage.spec.promotion_mechanisms.is_some() || stage.spec.subscriptions.is_some())
}

/// The expression yielding one image field of the Freight, as Kargo's migration guide writes it.
fn image_expr(image: &str, value: &str) -> Result<String, String> {
    let repo = serde_json::to_string(image).map_err(|e| e.to_string())?;
    Ok(match value {
        "ImageAndTag" => {
            format!("${{{{ imageFrom({repo}).RepoURL }}}}:${{{{ imageFrom({repo}).Tag }}}}")
        }
        "Tag" => format!("${{{{ imageFrom({repo}).Tag }}}}"),
        "ImageAndDigest" => {
            format!("${{{{ imageFrom({repo}).RepoURL }}}}@${{{{ imageFrom({repo}).Digest }}}}")
        }
        "Digest" => format!("${{{{ imageFrom({repo}).Digest }}}}"),
        other => {
            return Err(format!(
                "helm image value {other:?} is not one of ImageAndTag, Tag, ImageAndDigest, Digest"
            ));
        }
    })
}

fn step(uses: &str, alias: String, config: Value) -> PromotionStep {
    PromotionStep {
        uses: uses.to_owned(),
        alias,
        config: Some(config),
        ..Default::default()
    }
}

/// Translate a legacy Stage into the modern `requestedFreight` and promotion steps.
///
/// `upstream_origin` resolves the origin of Freight coming from an upstream Stage (legacy
/// `upstreamStages` did not name a Warehouse); it is only called for such Stages.
pub fn translate(
    stage: &Stage,
    upstream_origin: impl Fn(&str) -> Option<FreightOrigin>,
) -> Result<(Vec<FreightRequest>, Vec<PromotionStep>), Error> {
    let fail = |reason: String| Error::Legacy {
        stage: stage.name().to_owned(),
        reason,
    };
    let requested = match &stage.spec.subscriptions {
        None => stage.spec.requested_freight.clone(),
        Some(subs) if !subs.warehouse.is_empty() => vec![FreightRequest {
            origin: FreightOrigin::warehouse(&subs.warehouse),
            sources: FreightSources {
                direct: true,
                ..Default::default()
            },
        }],
        Some(subs) if !subs.upstream_stages.is_empty() => {
            let names: Vec<String> = subs
                .upstream_stages
                .iter()
                .map(|s| s.name.clone())
                .collect();
            let origin = stage
                .spec
                .promotion_mechanisms
                .as_ref()
                .and_then(|m| m.origin.clone())
                .or_else(|| names.iter().find_map(|n| upstream_origin(n)))
                .ok_or_else(|| {
                    fail(format!(
                        "cannot tell which Warehouse the Freight from upstream Stages {names:?} comes from; set spec.promotionMechanisms.origin or spec.requestedFreight"
                    ))
                })?;
            vec![FreightRequest {
                origin,
                sources: FreightSources {
                    stages: names,
                    ..Default::default()
                },
            }]
        }
        Some(_) => {
            return Err(fail(
                "spec.subscriptions names neither a warehouse nor upstreamStages".to_owned(),
            ));
        }
    };

    let mut steps = Vec::new();
    let Some(mech) = &stage.spec.promotion_mechanisms else {
        return Ok((requested, steps));
    };
    for (i, update) in mech.git_repo_updates.iter().enumerate() {
        if update.render.is_some() {
            return Err(fail(format!(
                "spec.promotionMechanisms.gitRepoUpdates[{i}].render (Kargo Render) is not supported; rewrite the Stage with promotionTemplate steps"
            )));
        }
        if update.helm.as_ref().is_some_and(|h| !h.charts.is_empty()) {
            return Err(fail(format!(
                "spec.promotionMechanisms.gitRepoUpdates[{i}].helm.charts is not supported; rewrite the Stage with promotionTemplate steps"
            )));
        }
        if update.write_branch.is_empty() {
            return Err(fail(format!(
                "spec.promotionMechanisms.gitRepoUpdates[{i}].writeBranch is required"
            )));
        }
        let n = i + 1;
        let dir = format!("./repo-{n}");
        let read_branch = if update.read_branch.is_empty() {
            &update.write_branch
        } else {
            &update.read_branch
        };
        let mut clone = json!({
            "repoURL": update.repo_url,
            "checkout": [{ "branch": read_branch, "path": dir }],
        });
        if update.insecure_skip_tls_verify {
            clone["insecureSkipTLSVerify"] = json!(true);
        }
        steps.push(step("git-clone", format!("legacy-clone-{n}"), clone));
        if let Some(k) = &update.kustomize {
            for (j, img) in k.images.iter().enumerate() {
                let mut image = json!({ "image": img.image });
                if img.use_digest {
                    image["digest"] = json!(image_expr(&img.image, "Digest").map_err(fail)?);
                } else {
                    image["tag"] = json!(image_expr(&img.image, "Tag").map_err(fail)?);
                }
                steps.push(step(
                    "kustomize-set-image",
                    format!("legacy-kustomize-{n}-{}", j + 1),
                    json!({ "path": format!("{dir}/{}", img.path.trim_start_matches("./")), "images": [image] }),
                ));
            }
        }
        if let Some(h) = &update.helm {
            for (j, img) in h.images.iter().enumerate() {
                steps.push(step(
                    "yaml-update",
                    format!("legacy-helm-{n}-{}", j + 1),
                    json!({
                        "path": format!("{dir}/{}", img.values_file_path.trim_start_matches("./")),
                        "updates": [{ "key": img.key, "value": image_expr(&img.image, &img.value).map_err(fail)? }],
                    }),
                ));
            }
        }
        steps.push(step(
            "git-commit",
            format!("legacy-commit-{n}"),
            json!({ "path": dir, "message": "Promote ${{ ctx.targetFreight.name }} to ${{ ctx.stage }}" }),
        ));
        if update.pull_request.is_some() {
            steps.push(step(
                "git-push",
                format!("legacy-push-{n}"),
                json!({ "path": dir, "generateTargetBranch": true }),
            ));
            let mut pr = json!({
                "repoURL": update.repo_url,
                "sourceBranch": format!("${{{{ outputs['legacy-push-{n}'].branch }}}}"),
                "targetBranch": update.write_branch,
            });
            if update
                .pull_request
                .as_ref()
                .is_some_and(|p| p.gitlab.is_some())
            {
                pr["provider"] = json!("gitlab");
            } else {
                pr["provider"] = json!("github");
            }
            steps.push(step("git-open-pr", format!("legacy-pr-{n}"), pr));
        } else {
            let mut push = json!({ "path": dir });
            if update.read_branch != update.write_branch && !update.read_branch.is_empty() {
                push["targetBranch"] = json!(update.write_branch);
            }
            steps.push(step("git-push", format!("legacy-push-{n}"), push));
        }
    }

    if !mech.argocd_app_updates.is_empty() {
        let mut apps = Vec::new();
        for app in &mech.argocd_app_updates {
            let mut sources = Vec::new();
            for su in &app.source_updates {
                let mut s = json!({ "repoURL": su.repo_url });
                if !su.chart.is_empty() {
                    s["chart"] = json!(su.chart);
                }
                if su.update_target_revision {
                    s["updateTargetRevision"] = json!(true);
                    let repo =
                        serde_json::to_string(&su.repo_url).map_err(|e| fail(e.to_string()))?;
                    s["desiredRevision"] = if su.chart.is_empty() {
                        json!(format!("${{{{ commitFrom({repo}).ID }}}}"))
                    } else {
                        let chart =
                            serde_json::to_string(&su.chart).map_err(|e| fail(e.to_string()))?;
                        json!(format!("${{{{ chartFrom({repo}, {chart}).Version }}}}"))
                    };
                }
                if let Some(k) = &su.kustomize {
                    let images: Vec<Value> = k
                        .images
                        .iter()
                        .map(|i| {
                            let (field, value) = if i.use_digest {
                                ("digest", "Digest")
                            } else {
                                ("tag", "Tag")
                            };
                            image_expr(&i.image, value)
                                .map(|e| json!({ "repoURL": i.image, field: e }))
                        })
                        .collect::<Result<_, _>>()
                        .map_err(fail)?;
                    s["kustomize"] = json!({ "images": images });
                }
                if let Some(h) = &su.helm {
                    let images: Vec<Value> = h
                        .images
                        .iter()
                        .map(|i| {
                            image_expr(&i.image, &i.value)
                                .map(|e| json!({ "key": i.key, "value": e }))
                        })
                        .collect::<Result<_, _>>()
                        .map_err(fail)?;
                    s["helm"] = json!({ "images": images });
                }
                sources.push(s);
            }
            let mut a = json!({ "name": app.app_name });
            if !app.app_namespace.is_empty() {
                a["namespace"] = json!(app.app_namespace);
            }
            if !sources.is_empty() {
                a["sources"] = json!(sources);
            }
            apps.push(a);
        }
        steps.push(step(
            "argocd-update",
            "legacy-argocd-update".to_owned(),
            json!({ "apps": apps }),
        ));
    }
    Ok((requested, steps))
}
