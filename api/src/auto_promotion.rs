//! Auto-promotion, as Kargo v1.11 decides it: whether a project's `ProjectConfig` enables it for a
//! Stage (`pkg/api/auto_promotion.go`: the first promotion policy whose selector matches, by name
//! pattern, by labels, or by the deprecated `stage` field), which Freight is the candidate for
//! each requested origin (the newest available, by `discoveredAt`, then name; none under
//! `selectionPolicy: MatchUpstream` while more than one is available), and whether a Promotion
//! of it should be created now (`regular_stages.go` `autoPromoteFreight`: not when the Stage
//! already has it or is promoting it, when an unprocessed Promotion of it exists, when the newest
//! finished one did not succeed, or when the origin is held).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::Value;

use crate::availability;
use crate::types::{Freight, ProjectConfig, Promotion, PromotionPhase, Stage};

/// Kargo's name patterns (`pattern.ParseNamePattern`): `glob:`, `regex:`/`regexp:`, else exact.
fn name_matches(pattern: &str, name: &str) -> Result<bool, String> {
    if let Some(g) = pattern.strip_prefix("glob:") {
        let m = globset::Glob::new(g)
            .map_err(|e| format!("error parsing PromotionPolicy name pattern {pattern:?}: {e}"))?
            .compile_matcher();
        return Ok(m.is_match(name));
    }
    if let Some(r) = pattern
        .strip_prefix("regex:")
        .or_else(|| pattern.strip_prefix("regexp:"))
    {
        let re = regex::Regex::new(r)
            .map_err(|e| format!("error parsing PromotionPolicy name pattern {pattern:?}: {e}"))?;
        return Ok(re.is_match(name));
    }
    Ok(pattern == name)
}

/// A Kubernetes label selector (`matchLabels`, `matchExpressions` with In, NotIn, Exists,
/// DoesNotExist) against labels.
pub fn labels_match(selector: &Value, labels: &BTreeMap<String, String>) -> Result<bool, String> {
    if let Some(m) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            if labels.get(k).map(String::as_str) != v.as_str() {
                return Ok(false);
            }
        }
    }
    for e in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let have = labels.get(key).map(String::as_str);
        let ok = match e
            .get("operator")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "In" => have.is_some_and(|h| values.contains(&h)),
            "NotIn" => have.is_none_or(|h| !values.contains(&h)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            other => {
                return Err(format!(
                    "label selector operator {other:?} is not In, NotIn, Exists or DoesNotExist"
                ));
            }
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether the project's ProjectConfig enables auto-promotion for the Stage.
pub fn enabled(config: Option<&ProjectConfig>, stage: &Stage) -> Result<bool, String> {
    let Some(cfg) = config else {
        return Ok(false);
    };
    let labels = stage.metadata.labels.clone().unwrap_or_default();
    for p in &cfg.spec.promotion_policies {
        let selector = p.stage_selector.clone().unwrap_or(Value::Null);
        let name = selector
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| p.stage.clone());
        if !name.is_empty() && !name_matches(&name, stage.name())? {
            continue;
        }
        if let Some(ls) = selector.get("labelSelector")
            && !labels_match(ls, &labels)?
        {
            continue;
        }
        return Ok(p.auto_promotion_enabled);
    }
    Ok(false)
}

fn discovered(f: &Freight) -> Timestamp {
    f.discovered_at
        .as_ref()
        .map(|t| t.0)
        .or_else(|| f.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The candidate Freight per requested origin (`Warehouse/<name>` → Freight).
pub fn candidates<'f>(
    stage: &Stage,
    freight: &'f [Freight],
    now: Timestamp,
) -> BTreeMap<String, &'f Freight> {
    let mut out = BTreeMap::new();
    for req in &stage.spec.requested_freight {
        let mut available: Vec<&Freight> = freight
            .iter()
            .filter(|f| f.origin == req.origin && availability::check(stage, f, now).is_available())
            .collect();
        if available.is_empty() {
            continue;
        }
        let match_upstream = req
            .sources
            .auto_promotion_options
            .as_ref()
            .is_some_and(|o| o.selection_policy == "MatchUpstream");
        if match_upstream && available.len() > 1 {
            continue;
        }
        available.sort_by(|a, b| {
            discovered(b)
                .cmp(&discovered(a))
                .then_with(|| b.name().cmp(a.name()))
        });
        out.insert(req.origin.to_string(), available[0]);
    }
    out
}

/// What to do about one candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Create (and run) a Promotion of it.
    Promote,
    /// Leave it; the reason is Kargo's.
    Skip(String),
}

/// Decide for one origin's candidate, given the project's Promotions.
pub fn decide(
    stage: &Stage,
    origin: &str,
    candidate: &Freight,
    promotions: &[Promotion],
) -> Decision {
    let status = stage.status.as_ref();
    if status.is_some_and(|s| {
        s.effective_auto_promotion_holds.contains_key(origin)
            || s.auto_promotion_holds.contains_key(origin)
    }) {
        return Decision::Skip(format!("auto-promotion of origin {origin} is held"));
    }
    let current = status.and_then(|s| s.freight_history.first());
    if current.is_some_and(|c| {
        c.freight
            .get(origin)
            .is_some_and(|f| f.name == candidate.name())
    }) {
        return Decision::Skip("the Stage already has it".into());
    }
    if status
        .and_then(|s| s.current_promotion.as_ref())
        .and_then(|p| p.freight.as_ref())
        .is_some_and(|f| f.name == candidate.name() && f.origin.to_string() == origin)
    {
        return Decision::Skip("the Stage is already being promoted to it".into());
    }
    let last = status
        .and_then(|s| s.last_promotion.as_ref())
        .map(|p| p.name.as_str());
    let mine: Vec<&Promotion> = promotions
        .iter()
        .filter(|p| p.spec.stage == stage.name() && p.spec.freight == candidate.name())
        .collect();
    let phase = |p: &Promotion| {
        p.status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or(PromotionPhase::Pending)
    };
    let name = |p: &Promotion| p.metadata.name.clone().unwrap_or_default();
    if mine.iter().any(|p| {
        !phase(p).is_terminal()
            || (phase(p) == PromotionPhase::Succeeded && last.is_none_or(|l| name(p).as_str() > l))
    }) {
        return Decision::Skip("an unprocessed Promotion of it exists".into());
    }
    let newest_terminal = mine
        .iter()
        .filter(|p| phase(p).is_terminal())
        .max_by(|a, b| {
            let t = |p: &Promotion| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            t(a).cmp(&t(b)).then_with(|| name(a).cmp(&name(b)))
        });
    if let Some(p) = newest_terminal
        && phase(p) != PromotionPhase::Succeeded
    {
        return Decision::Skip(format!(
            "its newest Promotion {} ended {:?}; not retried automatically (Kargo avoids the loop)",
            name(p),
            phase(p)
        ));
    }
    Decision::Promote
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stage(extra: Value) -> Stage {
        let mut s = json!({
            "metadata": {"name": "dev", "namespace": "p", "labels": {"tier": "dev"}},
            "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"}, "sources": {"direct": true}}]},
        });
        if let (Some(a), Some(b)) = (s.as_object_mut(), extra.as_object()) {
            for (k, v) in b {
                a.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(s).unwrap()
    }

    fn freight(name: &str, at: &str) -> Freight {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "p"},
            "origin": {"kind": "Warehouse", "name": "w"},
            "discoveredAt": at,
        }))
        .unwrap()
    }

    fn config(policies: Value) -> ProjectConfig {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "p"}, "spec": {"promotionPolicies": policies}})).unwrap()
    }

    fn promotion(name: &str, freight: &str, phase: &str) -> Promotion {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "p", "creationTimestamp": "2026-12-01T00:00:00Z"},
            "spec": {"stage": "dev", "freight": freight},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn the_first_matching_policy_decides() {
        let s = stage(json!({}));
        assert!(!enabled(None, &s).unwrap());
        assert!(
            enabled(
                Some(&config(
                    json!([{"stage": "dev", "autoPromotionEnabled": true}])
                )),
                &s
            )
            .unwrap()
        );
        assert!(
            enabled(
                Some(&config(
                    json!([{"stageSelector": {"name": "glob:d*"}, "autoPromotionEnabled": true}])
                )),
                &s
            )
            .unwrap()
        );
        assert!(!enabled(Some(&config(json!([{"stageSelector": {"name": "regex:^prod"}, "autoPromotionEnabled": true}]))), &s).unwrap());
        let by_label = config(json!([
            {"stageSelector": {"labelSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["dev"]}]}}, "autoPromotionEnabled": false},
            {"stage": "dev", "autoPromotionEnabled": true},
        ]));
        assert!(
            !enabled(Some(&by_label), &s).unwrap(),
            "the first match wins"
        );
        assert!(
            enabled(
                Some(&config(json!([{"stageSelector": {"name": "regex:("}}]))),
                &s
            )
            .is_err()
        );
    }

    #[test]
    fn the_newest_available_freight_is_the_candidate() {
        let s = stage(json!({}));
        let all = [
            freight("aaa", "2026-12-01T00:00:00Z"),
            freight("bbb", "2026-12-02T00:00:00Z"),
            freight("ccc", "2026-12-02T00:00:00Z"),
        ];
        let c = candidates(&s, &all, Timestamp::now());
        assert_eq!(
            c["Warehouse/w"].name(),
            "ccc",
            "same time: the name decides"
        );
        let upstream = stage(
            json!({"spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"}, "sources": {"direct": true, "autoPromotionOptions": {"selectionPolicy": "MatchUpstream"}}}]}}),
        );
        assert!(candidates(&upstream, &all, Timestamp::now()).is_empty());
    }

    #[test]
    fn promotions_already_made_or_failed_stop_a_new_one() {
        let s = stage(json!({}));
        let f = freight("bbb", "2026-12-02T00:00:00Z");
        assert_eq!(decide(&s, "Warehouse/w", &f, &[]), Decision::Promote);
        assert!(matches!(
            decide(
                &s,
                "Warehouse/w",
                &f,
                &[promotion("dev.1.bbb", "bbb", "Running")]
            ),
            Decision::Skip(_)
        ));
        assert!(
            matches!(decide(&s, "Warehouse/w", &f, &[promotion("dev.1.bbb", "bbb", "Failed")]), Decision::Skip(m) if m.contains("not retried"))
        );
        let has = stage(
            json!({"status": {"freightHistory": [{"id": "x", "items": {"Warehouse/w": {"name": "bbb", "origin": {"kind": "Warehouse", "name": "w"}}}}], "lastPromotion": {"name": "dev.1.bbb"}}}),
        );
        assert!(
            matches!(decide(&has, "Warehouse/w", &f, &[promotion("dev.1.bbb", "bbb", "Succeeded")]), Decision::Skip(m) if m.contains("already has"))
        );
        let held = stage(
            json!({"status": {"autoPromotionHolds": {"Warehouse/w": {"freightName": "aaa", "origin": {"kind": "Warehouse", "name": "w"}}}}}),
        );
        assert!(
            matches!(decide(&held, "Warehouse/w", &f, &[]), Decision::Skip(m) if m.contains("held"))
        );
    }
}
