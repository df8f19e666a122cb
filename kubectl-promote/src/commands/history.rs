//! `kubectl promote history stage/NAME`: the Stage's Promotions, newest first; `*` marks the
//! newest successful one of the Freight the Stage has now.

use promote_api::types::{PromotionPhase, Stage};
use serde_json::{Value, json};

use super::{Ctx, list_raw, phase_of, print, print_patch, render, s};
use crate::cli::{HistoryArgs, stage_name};
use crate::error::{Error, context, decode};
use crate::kube::{Api, kargo_path};

/// Run `history`.
pub fn run(c: &Ctx<'_>, args: &HistoryArgs) -> Result<(), Error> {
    let (kube, ns) = (&c.kube, c.ns.as_str());
    let stage_name = stage_name(&args.target).map_err(Error::Usage)?;
    let Some(v) = kube
        .get(&kargo_path("stages", ns, stage_name))
        .map_err(context(format!("reading Stage {stage_name}")))?
    else {
        return Err(Error::StageNotFound {
            stage: stage_name.to_owned(),
            project: ns.to_owned(),
            available: vec![],
        });
    };
    let stage: Stage = decode(v, format!("Stage {stage_name}"))?;
    let label = promote_api::naming::stage_label(stage_name);
    let mut promos = list_raw(
        kube,
        "promotions",
        Some(ns),
        Some(&format!("{}={label}", promote_api::keys::STAGE)),
    )?;
    promos.retain(|p| s(p, "/spec/stage") == stage_name);
    // Newest first: Promotion names embed a ULID, so the name order is the creation order.
    promos.sort_by(|a, b| {
        let key = |p: &Value| promote_api::naming::ulid_of(s(p, "/metadata/name"));
        key(b).cmp(&key(a))
    });
    let history = stage.status.map(|s| s.freight_history).unwrap_or_default();
    match c.global.output {
        f if f.is_data() => {
            let doc = json!({"stage": stage_name, "freightHistory": history, "promotions": promos});
            print_patch(c.global, &doc, "")
        }
        _ => {
            let current: Vec<String> = history
                .first()
                .map(|c| c.freight.values().map(|f| f.name.clone()).collect())
                .unwrap_or_default();
            // `*` marks the newest successful Promotion of the Freight the Stage has now.
            let mut marked = false;
            let rows: Vec<Vec<String>> = promos
                .iter()
                .map(|p| {
                    let f = s(p, "/spec/freight");
                    let current_here = !marked
                        && current.iter().any(|c| c == f)
                        && phase_of(p) == PromotionPhase::Succeeded;
                    marked |= current_here;
                    vec![
                        if current_here {
                            "*".to_owned()
                        } else {
                            String::new()
                        },
                        s(p, "/metadata/name").to_owned(),
                        promote_api::naming::short_name(f).to_owned(),
                        phase_of(p).to_string(),
                        s(p, "/metadata/annotations/kargo.akuity.io~1create-actor")
                            .trim_start_matches("kubernetes:")
                            .to_owned(),
                        s(p, "/status/finishedAt").to_owned(),
                    ]
                })
                .collect();
            if rows.is_empty() {
                eprintln!("Stage {stage_name} has no Promotions yet.");
                return Ok(());
            }
            print(&render(
                &[
                    "CURRENT",
                    "PROMOTION",
                    "FREIGHT",
                    "PHASE",
                    "ACTOR",
                    "FINISHED",
                ],
                &rows,
                false,
            ))
        }
    }
}
