//! Stages: structural validation (every problem at once, as field paths), with the legacy
//! `promotionMechanisms` format checked through its translation into steps.
//!
//! Status (`stages/status`, SECURITY.md): a Stage's status changes only as the consequence of a
//! Promotion the writer runs, and only by a writer who may `promote` the Stage: a *claim* sets
//! `currentPromotion` to a running Promotion of this Stage whose runner is the writer; a *record*
//! sets `lastPromotion` to a finished Promotion of this Stage the writer ran (its phase as
//! recorded), and only a record of a Succeeded Promotion may put its Freight at the head of
//! `freightHistory`. Every other field changes only with a claim or a record, except
//! `metadata`, which only a running `set-metadata` step writes (`metadata.rs`), and a *refresh*
//! (`kubectl promote refresh`): `health` and the `Healthy` and `Ready` conditions alone, while no
//! Promotion runs, where a health of Healthy must be what every Application it lists shows now
//! (Healthy and Synced); a worse health needs no evidence (it grants nothing).

use std::sync::Arc;

use promote_api::types::{Promotion, Stage};
use promote_api::{legacy, validation};
use serde_json::Value;

use super::{Facts, Operation, Request, Verdict, parse_object, promote_denied};
use crate::cluster::Cluster;

fn promotion_ref<'a>(obj: Option<&'a Value>, field: &str) -> Option<&'a str> {
    obj?.get("status")?
        .get(field)?
        .get("name")?
        .as_str()
        .filter(|n| !n.is_empty())
}

pub(super) async fn gather<C: Cluster>(req: &Request, cluster: &C) -> Result<Facts, String> {
    let mut facts = Facts::default();
    if req.sub_resource != "status" || req.operation != Operation::Update {
        return Ok(facts);
    }
    let (new, old) = (req.object.as_ref(), req.old_object.as_ref());
    if new.and_then(|o| o.get("status")) == old.and_then(|o| o.get("status")) {
        return Ok(facts);
    }
    let ns = req.namespace.as_str();
    if super::metadata::changed(req) {
        facts.metadata_writer = Some(super::metadata::writer(req, cluster, "Stage").await?);
        if only_metadata(req) {
            return Ok(facts);
        }
    }
    facts.access = Some(
        cluster
            .may_promote(&req.user_info, ns, req.object_name())
            .await,
    );
    let names = [
        promotion_ref(new, "currentPromotion"),
        promotion_ref(new, "lastPromotion"),
        promotion_ref(old, "currentPromotion"),
    ];
    for name in names.into_iter().flatten() {
        if facts.referenced.contains_key(name) {
            continue;
        }
        if let Some(p) = cluster.fresh_promotion(ns, name).await? {
            facts.referenced.insert(name.to_owned(), p);
        }
    }
    let health = |o: Option<&Value>| o.and_then(|o| o.pointer("/status/health")).cloned();
    let new_health = health(new);
    // Only for a refresh (a record's health is the Promotion's, checked with the record).
    let last = |o: Option<&Value>| o.and_then(|o| o.pointer("/status/lastPromotion")).cloned();
    if last(new) == last(old)
        && new_health != health(old)
        && new_health
            .as_ref()
            .and_then(|h| h.get("status"))
            .and_then(Value::as_str)
            == Some("Healthy")
    {
        facts.live_health = Some(healthy_now(new_health.as_ref(), cluster).await?);
    }
    Ok(facts)
}

/// Whether every Application a health lists (`output.applicationStatuses`) is Healthy and
/// Synced now; a Healthy with none listed is not evidence.
async fn healthy_now<C: Cluster>(
    health: Option<&Value>,
    cluster: &C,
) -> Result<Result<(), String>, String> {
    let apps: Vec<&Value> = health
        .and_then(|h| h.pointer("/output/applicationStatuses"))
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    if apps.is_empty() {
        return Ok(Err(
            "it lists no Application whose health it reports".to_owned()
        ));
    }
    for a in apps {
        let name = a.get("name").and_then(Value::as_str).unwrap_or_default();
        let ns = a
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or("argocd");
        let Some(app) = cluster.application(ns, name).await? else {
            return Ok(Err(format!(
                "Argo CD Application \"{name}\" in namespace \"{ns}\" does not exist"
            )));
        };
        let (health, sync) = promote_api::argocd::health_and_sync(&app);
        if health != "Healthy" || sync != "Synced" {
            return Ok(Err(format!(
                "Argo CD Application \"{name}\" in namespace \"{ns}\" is {health} and {sync}, not Healthy and Synced"
            )));
        }
    }
    Ok(Ok(()))
}

/// Whether the conditions change in types other than `Healthy` and `Ready`.
fn other_conditions_change(new: Option<&Value>, old: Option<&Value>) -> bool {
    let others = |o: Option<&Value>| -> Vec<Value> {
        o.and_then(|s| s.get("conditions"))
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter(|c| {
                        !matches!(
                            c.get("type").and_then(Value::as_str),
                            Some("Healthy" | "Ready")
                        )
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    others(new) != others(old)
}

/// Whether `status.metadata` is the only status field the write changes.
fn only_metadata(req: &Request) -> bool {
    let status = |o: Option<&Value>| {
        o.and_then(|o| o.get("status"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.as_str() != "metadata")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<serde_json::Map<_, _>>()
            })
            .unwrap_or_default()
    };
    status(req.object.as_ref()) == status(req.old_object.as_ref())
}

/// Validating `stages/status`: see the module documentation.
fn validate_status(req: &Request, facts: &Facts) -> Verdict {
    let (new, old) = (req.object.as_ref(), req.old_object.as_ref());
    let status = |o: Option<&Value>| o.and_then(|o| o.get("status")).cloned();
    let (new_s, old_s) = (status(new), status(old));
    if new_s == old_s {
        return Verdict::allow();
    }
    let (stage, ns) = (req.object_name(), req.namespace.as_str());
    if let Some(e) = &facts.error {
        return Verdict::internal(format!(
            "cannot check the status of Stage \"{stage}\" in namespace \"{ns}\": {e}"
        ));
    }
    if super::metadata::changed(req) {
        match &facts.metadata_writer {
            Some(Ok(_)) => {}
            Some(Err(why)) => return super::metadata::refusal(req, "Stage", why),
            None => {
                return Verdict::internal(format!(
                    "cannot check the metadata writer of Stage \"{stage}\" in namespace \"{ns}\""
                ));
            }
        }
        if only_metadata(req) {
            return Verdict::allow();
        }
    }
    if let Some(denied) = promote_denied(
        facts.access.as_ref(),
        &req.user_info,
        || "write the status of the Stage".to_owned(),
        ns,
        stage,
    ) {
        return denied;
    }
    let writer = req.user_info.username.as_str();
    let user = super::user_label(&req.user_info);
    let field = |s: &Option<Value>, k: &str| s.as_ref().and_then(|s| s.get(k)).cloned();
    let changed = |k: &str| field(&new_s, k) != field(&old_s, k);
    let deny = |what: String| {
        Verdict::forbidden(format!(
            "{user} may not write the status of Stage \"{stage}\" in namespace \"{ns}\": {what}; a Stage's status changes only as the consequence of a Promotion its writer runs; hint: promote with kubectl promote stage/{stage} --freight <freight>"
        ))
    };
    let held = |name: &str, running: bool| -> Result<&Arc<Promotion>, String> {
        let Some(p) = facts.referenced.get(name) else {
            return Err(format!("Promotion \"{name}\" does not exist"));
        };
        if p.spec.stage != stage {
            return Err(format!(
                "Promotion \"{name}\" is for Stage \"{}\"",
                p.spec.stage
            ));
        }
        if p.phase().is_terminal() == running {
            return Err(format!("Promotion \"{name}\" is {}", p.phase()));
        }
        match promote_api::trust::runner(p) {
            Some(r) if r == writer => Ok(p),
            Some(r) => Err(format!("Promotion \"{name}\" is run by user \"{r}\"")),
            None => Err(format!("Promotion \"{name}\" names no runner")),
        }
    };
    let claim = promotion_ref(new, "currentPromotion")
        .filter(|n| Some(*n) != promotion_ref(old, "currentPromotion"));
    if let Some(name) = claim
        && let Err(why) = held(name, true)
    {
        return deny(format!("it claims the Stage for {why}"));
    }
    let mut record = None;
    if changed("lastPromotion") {
        let Some(name) = promotion_ref(new, "lastPromotion") else {
            return deny("it removes lastPromotion".to_owned());
        };
        let p = match held(name, false) {
            Ok(p) => p,
            Err(why) => return deny(format!("it records {why}")),
        };
        let recorded = new_s
            .as_ref()
            .and_then(|s| s.pointer("/lastPromotion/status/phase"))
            .and_then(Value::as_str);
        if recorded.is_some_and(|r| r != p.phase().to_string()) {
            return deny(format!(
                "it records Promotion \"{name}\" as {} but it is {}",
                recorded.unwrap_or_default(),
                p.phase()
            ));
        }
        record = Some(p);
    }
    if changed("freightHistory") {
        let head_has = |freight: &str| {
            new_s
                .as_ref()
                .and_then(|s| s.pointer("/freightHistory/0/items"))
                .and_then(Value::as_object)
                .is_some_and(|items| {
                    items
                        .values()
                        .any(|r| r.get("name").and_then(Value::as_str) == Some(freight))
                })
        };
        match record {
            Some(p) if promote_api::trust::succeeded(p) && head_has(&p.spec.freight) => {}
            _ => {
                return deny(
                    "it changes freightHistory without recording a Succeeded Promotion of the Freight at its head".to_owned(),
                );
            }
        }
    }
    if claim.is_none() && record.is_none() {
        if changed("currentPromotion") {
            // Clearing a Stage whose current Promotion is no longer running is housekeeping.
            let running = promotion_ref(old, "currentPromotion")
                .and_then(|n| facts.referenced.get(n))
                .is_some_and(|p| !p.phase().is_terminal());
            if running {
                return deny("it clears currentPromotion while that Promotion runs".to_owned());
            }
        }
        let others: Vec<String> = new_s
            .iter()
            .chain(old_s.iter())
            .filter_map(Value::as_object)
            .flat_map(|m| m.keys().cloned())
            .filter(|k| k != "currentPromotion" && k != "metadata" && changed(k))
            .collect();
        // A refresh: health and its conditions, recorded from the Applications as they are.
        let refresh = !others.is_empty()
            && others.iter().all(|k| k == "health" || k == "conditions")
            && !other_conditions_change(new_s.as_ref(), old_s.as_ref());
        if refresh {
            let running = promotion_ref(new, "currentPromotion")
                .or(promotion_ref(old, "currentPromotion"))
                .and_then(|n| facts.referenced.get(n))
                .is_some_and(|p| !p.phase().is_terminal());
            if running {
                return deny(
                    "it records the Stage's health while a Promotion runs (the Promotion records it when it ends)".to_owned(),
                );
            }
            if let Some(Err(why)) = &facts.live_health {
                return deny(format!("it records the Stage as Healthy but {why}"));
            }
            return Verdict::allow();
        }
        if let Some(k) = others.first() {
            return deny(format!(
                "it changes status.{k} without claiming the Stage or recording a Promotion"
            ));
        }
    }
    Verdict::allow()
}

/// Validating: CREATE and UPDATE must leave a valid Stage; status writes as above.
pub fn validate(req: &Request, facts: &Facts) -> Verdict {
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Verdict::allow();
    }
    if req.sub_resource == "status" {
        return validate_status(req, facts);
    }
    let Some(obj) = &req.object else {
        return Verdict::allow();
    };
    let name = req.object_name();
    let ns = req.namespace.as_str();
    let stage: Stage = match parse_object("Stage", obj) {
        Ok(s) => s,
        Err(v) => return v,
    };
    if let Err(e) = validation::validate_stage(&stage) {
        return Verdict::invalid(format!("Stage \"{name}\" in namespace \"{ns}\": {e}"));
    }
    if legacy::is_legacy(&stage)
        && let Err(e) = legacy::translate(&stage, |_| None)
        && !matches!(&e, promote_api::Error::Legacy { reason, .. } if reason.contains("upstream"))
    {
        return Verdict::invalid(format!("Stage \"{name}\" in namespace \"{ns}\": {e}"));
    }
    Verdict::allow()
}

/// Validating PromotionTasks and ClusterPromotionTasks: CREATE and UPDATE must leave valid steps
/// (kinds, config shapes, aliases, variables), so a typo fails at `kubectl apply`.
pub fn validate_task(req: &Request) -> Verdict {
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Verdict::allow();
    }
    let Some(obj) = &req.object else {
        return Verdict::allow();
    };
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("PromotionTask");
    let task: promote_api::types::PromotionTask = if kind == "ClusterPromotionTask" {
        match parse_object::<promote_api::types::ClusterPromotionTask>(kind, obj) {
            Ok(t) => t.into(),
            Err(v) => return v,
        }
    } else {
        match parse_object(kind, obj) {
            Ok(t) => t,
            Err(v) => return v,
        }
    };
    match validation::validate_promotion_task(&task) {
        Ok(()) => Verdict::allow(),
        Err(e) => {
            let place = if req.namespace.is_empty() {
                String::new()
            } else {
                format!(" in namespace \"{}\"", req.namespace)
            };
            Verdict::invalid(format!("{kind} \"{}\"{place}: {e}", req.object_name()))
        }
    }
}
