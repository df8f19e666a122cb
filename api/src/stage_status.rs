//! A Stage's summary fields as Kargo v1.11's controller writes them (`pkg/controller/stages`):
//! `freightSummary` and the `Promoting`, `Healthy`, `Verified` and `Ready` conditions, which
//! Kargo's printer columns (`kubectl get stages`: CURRENT FREIGHT, READY, STATUS) read. Without a
//! controller, the runner writes them when it claims the Stage and when it records the result;
//! the reasons and messages are Kargo's.

use serde_json::{Value, json};

use crate::types::{FreightCollection, Stage};

/// Kargo's `buildFreightSummary`: the Freight's name when the Stage requests one origin and has
/// it, else `<have>/<requested> Fulfilled`.
pub fn freight_summary(requested: usize, current: Option<&FreightCollection>) -> String {
    match current {
        None => format!("0/{requested} Fulfilled"),
        Some(c) if requested == 1 && c.freight.len() == 1 => c
            .freight
            .values()
            .next()
            .map(|f| f.name.clone())
            .unwrap_or_default(),
        Some(c) => format!("{}/{requested} Fulfilled", c.freight.len()),
    }
}

/// One condition (`metav1.Condition`), its `lastTransitionTime` kept from `previous` when its
/// status did not change, as Kargo's `conditions.Set` keeps it.
pub fn condition(
    previous: &[Value],
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: i64,
    now: &str,
) -> Value {
    let since = previous
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(now));
    let mut c = json!({
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    });
    if generation > 0 {
        c["observedGeneration"] = json!(generation);
    }
    c
}

/// Typed conditions as the JSON `condition` compares with (their `lastTransitionTime` kept).
pub fn as_values(conditions: &[crate::types::Condition]) -> Vec<Value> {
    conditions
        .iter()
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect()
}

fn previous(stage: &Stage) -> Vec<Value> {
    stage
        .status
        .as_ref()
        .map(|s| as_values(&s.conditions))
        .unwrap_or_default()
}

fn generation(stage: &Stage) -> i64 {
    stage.metadata.generation.unwrap_or_default()
}

/// The conditions while Promotion `name` runs: Promoting, Healthy unknown, not Ready.
pub fn while_promoting(stage: &Stage, name: &str, phase: &str, now: &str) -> Vec<Value> {
    let (prev, g) = (previous(stage), generation(stage));
    let message = format!("Promotion \"{name}\" is currently {phase}");
    vec![
        condition(
            &prev,
            "Promoting",
            "True",
            "ActivePromotion",
            &message,
            g,
            now,
        ),
        condition(
            &prev,
            "Healthy",
            "Unknown",
            "ActivePromotion",
            "Stage has a Promotion in progress",
            g,
            now,
        ),
        condition(&prev, "Ready", "False", "ActivePromotion", &message, g, now),
    ]
}

/// What a finished promotion leaves: its phase and message, and for a Succeeded one the health
/// the argocd steps observed (`None`: none observed) and whether its Freight is verified.
pub struct Outcome<'a> {
    /// The Promotion's final phase (`Succeeded`, `Failed`, `Errored`, `Aborted`).
    pub phase: &'a str,
    /// Its message.
    pub message: &'a str,
    /// Healthy Applications of how many, when health was observed.
    pub health: Option<(usize, usize)>,
    /// Whether the Freight was marked verified in the Stage.
    pub verified: bool,
}

/// Whether the Stage asks for verification (`spec.verification` with AnalysisTemplates), which
/// promote does not run: a promotion alone never verifies its Freight there.
pub fn asks_verification(stage: &Stage) -> bool {
    stage
        .spec
        .verification
        .as_ref()
        .is_some_and(|v| !v.analysis_templates.is_empty())
}

/// Why a Stage that asks for verification is not verified by a promotion (the Verified
/// condition's message, and the promotion's note).
pub const VERIFICATION_NOT_RUN: &str = "the Stage asks for verification (spec.verification), which promote does not run (no AnalysisRuns): the Freight is not verified here, so downstream Stages need it approved (kubectl promote approve) once you have verified it";

/// The conditions after a promotion finished, summarized into Ready as Kargo's
/// `summarizeConditions` does.
pub fn after(stage: &Stage, o: &Outcome<'_>, now: &str) -> Vec<Value> {
    let (prev, g) = (previous(stage), generation(stage));
    let mut out = Vec::new();
    if o.phase != "Succeeded" {
        let reason = format!("LastPromotion{}", o.phase);
        out.push(condition(
            &prev,
            "Healthy",
            "Unknown",
            &reason,
            "Cannot assess health because last Promotion did not succeed",
            g,
            now,
        ));
        out.push(condition(
            &prev, "Ready", "False", &reason, o.message, g, now,
        ));
        return out;
    }
    let healthy = match o.health {
        Some((ok, n)) if ok == n => {
            let m = format!("Stage is healthy (performed {n} health checks)");
            out.push(condition(&prev, "Healthy", "True", "Healthy", &m, g, now));
            true
        }
        Some((ok, n)) => {
            let m = format!(
                "Stage is unhealthy ({} issues in {n} health checks)",
                n - ok
            );
            out.push(condition(
                &prev,
                "Healthy",
                "False",
                "Unhealthy",
                &m,
                g,
                now,
            ));
            let ready = condition(&prev, "Ready", "False", "Unhealthy", &m, g, now);
            out.push(ready);
            return out;
        }
        None => {
            out.push(condition(
                &prev,
                "Healthy",
                "Unknown",
                "Unknown",
                "no argocd-update or argocd-wait step: health not observed",
                g,
                now,
            ));
            false
        }
    };
    if o.verified {
        out.push(condition(
            &prev,
            "Verified",
            "True",
            "Verified",
            "Freight has been verified",
            g,
            now,
        ));
    } else if asks_verification(stage) {
        out.push(condition(
            &prev,
            "Verified",
            "False",
            "VerificationNotRun",
            VERIFICATION_NOT_RUN,
            g,
            now,
        ));
    }
    if !healthy {
        out.push(condition(
            &prev,
            "Ready",
            "False",
            "Unknown",
            "no argocd-update or argocd-wait step: health not observed",
            g,
            now,
        ));
    } else if o.verified {
        out.push(condition(
            &prev,
            "Ready",
            "True",
            "Verified",
            "Freight has been verified",
            g,
            now,
        ));
    } else {
        let message = if asks_verification(stage) {
            "Stage is not verified: promote does not run its verification (spec.verification)"
        } else {
            "Stage is not verified"
        };
        out.push(condition(
            &prev,
            "Ready",
            "False",
            "PendingVerification",
            message,
            g,
            now,
        ));
    }
    out
}

/// The Stage's conditions with `new` set (same types replaced, in Kargo's order of appearance)
/// and the types in `drop` removed: the whole list a merge patch writes.
pub fn merged(stage: &Stage, new: Vec<Value>, drop: &[&str]) -> Vec<Value> {
    let kind = |c: &Value| {
        c.get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut out: Vec<Value> = previous(stage)
        .into_iter()
        .filter(|c| {
            let k = kind(c);
            !drop.contains(&k.as_str()) && !new.iter().any(|n| kind(n) == k)
        })
        .collect();
    out.extend(new);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{FreightOrigin, FreightReference};

    fn stage() -> Stage {
        serde_json::from_value(json!({
            "metadata": {"name": "dev", "namespace": "p", "generation": 3},
            "spec": {},
            "status": {"conditions": [{"type": "Healthy", "status": "True", "reason": "Healthy", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
        }))
        .unwrap()
    }

    #[test]
    fn the_freight_summary_is_kargos() {
        let mut c = FreightCollection::default();
        assert_eq!(freight_summary(1, None), "0/1 Fulfilled");
        c.freight.insert(
            "Warehouse/w".into(),
            FreightReference {
                name: "abc".into(),
                origin: FreightOrigin::warehouse("w"),
                ..Default::default()
            },
        );
        assert_eq!(freight_summary(1, Some(&c)), "abc");
        assert_eq!(freight_summary(2, Some(&c)), "1/2 Fulfilled");
    }

    #[test]
    fn conditions_summarize_into_ready_as_kargos_do() {
        let s = stage();
        let kinds = |v: &[Value]| -> Vec<(String, String, String)> {
            v.iter()
                .map(|c| {
                    let f = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
                    (f("type"), f("status"), f("reason"))
                })
                .collect()
        };
        let ok = Outcome {
            phase: "Succeeded",
            message: "all steps completed",
            health: Some((1, 1)),
            verified: true,
        };
        let after_ok = after(&s, &ok, "2026-12-02T00:00:00Z");
        assert_eq!(
            kinds(&after_ok).last().cloned().unwrap(),
            ("Ready".into(), "True".into(), "Verified".into())
        );
        // An unchanged status keeps its transition time; observedGeneration is the Stage's.
        assert_eq!(after_ok[0]["lastTransitionTime"], "2026-01-01T00:00:00Z");
        assert_eq!(after_ok[0]["observedGeneration"], 3);
        let failed = Outcome {
            phase: "Failed",
            message: "step 2 failed",
            health: None,
            verified: false,
        };
        let f = after(&s, &failed, "now");
        assert_eq!(
            kinds(&f),
            [
                (
                    "Healthy".into(),
                    "Unknown".into(),
                    "LastPromotionFailed".into()
                ),
                ("Ready".into(), "False".into(), "LastPromotionFailed".into())
            ]
        );
        assert_eq!(f[1]["message"], "step 2 failed");
        let sick = Outcome {
            phase: "Succeeded",
            message: "",
            health: Some((0, 2)),
            verified: false,
        };
        assert_eq!(after(&s, &sick, "now")[1]["reason"], "Unhealthy");
        let running = while_promoting(&s, "dev.x", "Running", "now");
        assert_eq!(
            running[2]["message"],
            "Promotion \"dev.x\" is currently Running"
        );
    }
}
