//! Freight: named by its content hash, immutable artifacts, unique alias, no deletion in use.
//!
//! Mutating: on CREATE the name becomes the Kargo v1.11 Freight ID (whatever the client sent);
//! the `alias` field is mirrored into the `kargo.akuity.io/alias` label (on CREATE a label-only
//! alias is mirrored into the field), and new Freight without any alias gets a generated
//! `adjective-animal` one that is free in the project.
//! Validating: CREATE needs a valid Freight whose name is its content hash, whose origin Warehouse
//! exists and whose artifacts are one per subscription of it (Kargo's checks); UPDATE may not change
//! `origin`, `commits`, `images`, `charts` or `artifacts`; the alias is unique in the project;
//! DELETE is refused while a Stage's current Freight is this one.
//!
//! Status (`freights/status`, the trust model in SECURITY.md): every Stage whose entry in
//! `approvedFor`, `verifiedIn` or `currentlyIn` a write changes needs the writer to hold
//! `promote` on that Stage (Kargo's rule for approval), and a new or changed `verifiedIn` or
//! `currentlyIn` entry is accepted only as evidence: a Succeeded Promotion of this Freight into
//! that Stage whose Argo CD Applications' own status shows its sync Succeeded. `metadata` changes
//! only by a running `set-metadata` step (`metadata.rs`).

use promote_api::freight_id::freight_id;
use promote_api::keys::ALIAS;
use promote_api::types::{Freight, Promotion};
use promote_api::validation;
use serde_json::{Value, json};

use super::{
    Facts, Grant, Hook, Operation, Policy, Request, Verdict, diff, parse_object, promote_denied,
    set_meta,
};
use crate::cluster::{Cluster, Verb};

pub(super) async fn gather<C: Cluster>(
    hook: Hook,
    req: &Request,
    cluster: &C,
) -> Result<Facts, String> {
    let mut facts = Facts::default();
    let ns = req.namespace.as_str();
    if hook == Hook::MutateFreight {
        // New Freight without an alias gets one, free in the project (Kargo names every Freight).
        if let (Some(obj), Operation::Create) = (&req.object, req.operation)
            && alias_of(obj).is_none()
            && label_alias(obj).is_none()
            && let Ok(f) = serde_json::from_value::<Freight>(obj.clone())
        {
            let id = freight_id(&f);
            for attempt in 0..8 {
                let candidate = promote_api::naming::freight_alias(&id, attempt);
                if cluster.freight_by_alias(ns, &candidate).await?.is_empty() {
                    facts.free_alias = Some(candidate);
                    break;
                }
            }
        }
        return Ok(facts);
    }
    if hook != Hook::ValidateFreight {
        return Ok(facts);
    }
    if req.sub_resource == "status" {
        return gather_status(req, cluster).await;
    }
    match (&req.object, req.operation) {
        (Some(obj), Operation::Create | Operation::Update) => {
            if let Some(alias) = alias_of(obj) {
                facts.same_alias = cluster.freight_by_alias(ns, alias).await?;
            }
            let origin = |k: &str| {
                obj.pointer(&format!("/origin/{k}"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            };
            if req.operation == Operation::Create
                && origin("kind") == "Warehouse"
                && !origin("name").is_empty()
            {
                facts.warehouse = Some(cluster.warehouse(ns, origin("name")).await?.map(Box::new));
            }
        }
        (_, Operation::Delete) => facts.stages = cluster.stages(ns).await?,
        _ => {}
    }
    Ok(facts)
}

/// The status maps a Freight status write may change only with `promote` on the Stage.
const STAGE_MAPS: [&str; 3] = ["approvedFor", "verifiedIn", "currentlyIn"];
/// Of those, the maps that record what happened, accepted only with evidence.
const EVIDENCE_MAPS: [&str; 2] = ["verifiedIn", "currentlyIn"];

fn status_map<'a>(obj: Option<&'a Value>, map: &str) -> Option<&'a serde_json::Map<String, Value>> {
    obj?.get("status")?.get(map)?.as_object()
}

/// `(map, stage, added_or_changed)` for every Stage entry a status write changes.
fn stage_changes(req: &Request) -> Vec<(&'static str, String, bool)> {
    let (new, old) = (req.object.as_ref(), req.old_object.as_ref());
    let mut out = Vec::new();
    for map in STAGE_MAPS {
        let (n, o) = (status_map(new, map), status_map(old, map));
        let keys: std::collections::BTreeSet<&String> = n
            .into_iter()
            .flat_map(|m| m.keys())
            .chain(o.into_iter().flat_map(|m| m.keys()))
            .collect();
        for k in keys {
            let (nv, ov) = (n.and_then(|m| m.get(k)), o.and_then(|m| m.get(k)));
            if nv != ov {
                out.push((map, k.clone(), nv.is_some()));
            }
        }
    }
    out
}

async fn gather_status<C: Cluster>(req: &Request, cluster: &C) -> Result<Facts, String> {
    let mut facts = Facts::default();
    let ns = req.namespace.as_str();
    let name = req.object_name();
    if super::metadata::changed(req) {
        facts.metadata_writer = Some(super::metadata::writer(req, cluster, "Freight").await?);
    }
    let changes = stage_changes(req);
    for (_, stage, _) in &changes {
        if facts.grant(Verb::Promote, ns, stage).is_none() {
            let access = cluster.may_promote(&req.user_info, ns, stage).await;
            facts.grants.push(Grant {
                verb: Verb::Promote,
                project: ns.to_owned(),
                stage: stage.clone(),
                access,
            });
        }
    }
    for (_, stage, _) in changes
        .iter()
        .filter(|(map, _, added)| *added && *map == "verifiedIn")
    {
        if let Some(s) = cluster.stage(ns, stage).await?
            && promote_api::stage_status::asks_verification(&s)
        {
            facts.unverifiable.insert(
                stage.clone(),
                format!("Stage \"{stage}\" asks for verification (spec.verification), which a promotion does not satisfy and promote does not run"),
            );
        }
    }
    let wanted: Vec<&String> = changes
        .iter()
        .filter(|(map, _, added)| *added && EVIDENCE_MAPS.contains(map))
        .map(|(_, stage, _)| stage)
        .collect();
    if wanted.is_empty() {
        return Ok(facts);
    }
    // The cached list first; a refusal is checked again against the API server, because the
    // runner records its Promotion Succeeded a moment before it writes this status, and the
    // watch cache may not have seen that yet.
    let cached = cluster.promotions(ns).await?;
    facts.evidence = evidence(&wanted, name, &cached, cluster).await?;
    if facts.evidence.values().any(Result::is_err) {
        let fresh = cluster.fresh_promotions(ns).await?;
        facts.evidence = evidence(&wanted, name, &fresh, cluster).await?;
    }
    Ok(facts)
}

/// For each Stage in `stages`, the Succeeded Promotion of Freight `name` into it that Argo CD
/// confirms (`Ok(its name)`), or why there is none.
async fn evidence<C: Cluster>(
    stages: &[&String],
    name: &str,
    promotions: &[std::sync::Arc<Promotion>],
    cluster: &C,
) -> Result<std::collections::BTreeMap<String, Result<String, String>>, String> {
    let mut out = std::collections::BTreeMap::new();
    for stage in stages {
        if out.contains_key(stage.as_str()) {
            continue;
        }
        let mut verdict = Err(format!(
            "no Succeeded Promotion of Freight \"{name}\" into Stage \"{stage}\" exists"
        ));
        for p in promotions.iter().filter(|p| {
            p.spec.stage == **stage && p.spec.freight == name && promote_api::trust::succeeded(p)
        }) {
            verdict = confirmed_by_argocd(p, cluster).await?;
            if verdict.is_ok() {
                break;
            }
        }
        out.insert((*stage).clone(), verdict);
    }
    Ok(out)
}

/// Whether Argo CD's own status confirms Promotion `p`: each Application its `argocd-update`
/// health check names shows `p`'s sync Succeeded. A Promotion that synced no Application has
/// nothing for Argo CD to confirm; its record is its runner's, whose writes the Promotion
/// hooks check.
async fn confirmed_by_argocd<C: Cluster>(
    p: &Promotion,
    cluster: &C,
) -> Result<Result<String, String>, String> {
    let apps = p
        .status
        .iter()
        .flat_map(|s| &s.health_checks)
        .filter(|h| h.uses == "argocd-update")
        .filter_map(|h| h.config.as_ref())
        .filter_map(|c| c.get("apps").and_then(Value::as_array))
        .flatten()
        .map(|a| {
            let field = |k: &str| {
                a.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            (field("namespace"), field("name"))
        })
        .collect::<Vec<_>>();
    for (ns, name) in apps {
        let ns = if ns.is_empty() {
            "argocd".to_owned()
        } else {
            ns
        };
        let Some(app) = cluster.application(&ns, &name).await? else {
            return Ok(Err(format!(
                "Argo CD Application \"{name}\" in namespace \"{ns}\", synced by Promotion \"{}\", does not exist",
                p.name()
            )));
        };
        let state = app.pointer("/status/operationState");
        let ours = promote_api::argocd::operation_promotion(state.and_then(|s| s.get("operation")))
            == Some(p.name());
        let phase = state
            .and_then(|s| s.get("phase"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !ours || phase != "Succeeded" {
            return Ok(Err(format!(
                "Argo CD's status of Application \"{name}\" in namespace \"{ns}\" does not show Promotion \"{}\"'s sync Succeeded",
                p.name()
            )));
        }
    }
    Ok(Ok(p.name().to_owned()))
}

/// Validating `freights/status`: see the module documentation.
fn validate_status(req: &Request, facts: &Facts) -> Verdict {
    let (name, ns) = (req.object_name(), req.namespace.as_str());
    let user = super::user_label(&req.user_info);
    if super::metadata::changed(req) {
        match &facts.metadata_writer {
            Some(Ok(_)) => {}
            Some(Err(why)) => return super::metadata::refusal(req, "Freight", why),
            None => {
                return Verdict::internal(format!(
                    "cannot check the metadata writer of Freight \"{name}\" in namespace \"{ns}\""
                ));
            }
        }
    }
    for (map, stage, added) in stage_changes(req) {
        if let Some(denied) = promote_denied(
            facts.grant(Verb::Promote, ns, &stage),
            &req.user_info,
            || format!("change status.{map} of Freight \"{name}\""),
            ns,
            &stage,
        ) {
            return denied;
        }
        if added
            && map == "verifiedIn"
            && let Some(why) = facts.unverifiable.get(&stage)
        {
            return Verdict::forbidden(format!(
                "{user} may not record Freight \"{name}\" in namespace \"{ns}\" as verified in Stage \"{stage}\": {why}; hint: approve it for the downstream Stages with kubectl promote approve once you have verified it"
            ));
        }
        if added && EVIDENCE_MAPS.contains(&map) {
            match facts.evidence.get(&stage) {
                Some(Ok(_)) => {}
                Some(Err(why)) => {
                    return Verdict::forbidden(format!(
                        "{user} may not record Freight \"{name}\" in namespace \"{ns}\" as {} Stage \"{stage}\": status.{map} is evidence, accepted only after a Succeeded promotion of this Freight into that Stage that Argo CD confirms, and {why}; hint: promote it with kubectl promote stage/{stage} --freight {}, or approve it for the Stage with kubectl promote approve",
                        if map == "verifiedIn" {
                            "verified in"
                        } else {
                            "current in"
                        },
                        promote_api::naming::short_name(name)
                    ));
                }
                None => {
                    return Verdict::internal(format!(
                        "cannot check the evidence for Freight \"{name}\" in Stage \"{stage}\""
                    ));
                }
            }
        }
    }
    Verdict::allow()
}

fn alias_of(v: &Value) -> Option<&str> {
    v.get("alias")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
        .or_else(|| {
            v.pointer("/metadata/labels")
                .and_then(|l| l.get(ALIAS))
                .and_then(Value::as_str)
        })
        .filter(|a| !a.is_empty())
}

/// Mutating: see the module documentation.
fn label_alias(v: &Value) -> Option<&str> {
    v.pointer("/metadata/labels")
        .and_then(|l| l.get(ALIAS))
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
}

pub fn mutate(req: &Request, facts: &Facts) -> Verdict {
    let Some(obj) = &req.object else {
        return Verdict::allow();
    };
    let f: Freight = match parse_object("Freight", obj) {
        Ok(f) => f,
        Err(v) => return v,
    };
    let mut m = obj.clone();
    if req.operation == Operation::Create
        && (!f.commits.is_empty()
            || !f.images.is_empty()
            || !f.charts.is_empty()
            || !f.artifacts.is_empty())
    {
        let id = freight_id(&f);
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("name".into(), json!(id));
            meta.remove("generateName");
        }
    }
    if !f.alias.is_empty() {
        set_meta(&mut m, "labels", ALIAS, &f.alias);
    } else if let (Some(label), Operation::Create) = (label_alias(obj), req.operation) {
        m["alias"] = json!(label);
    } else if let Some(alias) = &facts.free_alias {
        m["alias"] = json!(alias);
        set_meta(&mut m, "labels", ALIAS, alias);
    }
    Verdict::patch(diff(obj, &m))
}

const IMMUTABLE: [&str; 5] = ["origin", "commits", "images", "charts", "artifacts"];

/// Validating: see the module documentation.
pub fn validate(req: &Request, facts: &Facts, policy: &Policy) -> Verdict {
    let name = req.object_name();
    let ns = req.namespace.as_str();
    if let Some(e) = &facts.error {
        return Verdict::internal(format!(
            "cannot check Freight \"{name}\" in namespace \"{ns}\": {e}"
        ));
    }
    if req.sub_resource == "status" {
        return match req.operation {
            Operation::Update => validate_status(req, facts),
            _ => Verdict::allow(),
        };
    }
    match req.operation {
        Operation::Delete => {
            if policy.trusted_deleters.contains(&req.user_info.username) {
                return Verdict::allow();
            }
            let in_use: Vec<String> = facts
                .stages
                .iter()
                .filter(|s| {
                    s.status
                        .as_ref()
                        .and_then(|st| st.freight_history.first())
                        .is_some_and(|c| c.freight.values().any(|f| f.name == name))
                })
                .map(|s| format!("\"{}\"", s.name()))
                .collect();
            if in_use.is_empty() {
                Verdict::allow()
            } else {
                Verdict::forbidden(format!(
                    "Freight \"{name}\" in namespace \"{ns}\" is in use by Stage(s) {}; hint: promote other Freight to them first",
                    in_use.join(", ")
                ))
            }
        }
        Operation::Create | Operation::Update => {
            let Some(obj) = &req.object else {
                return Verdict::allow();
            };
            let f: Freight = match parse_object("Freight", obj) {
                Ok(f) => f,
                Err(v) => return v,
            };
            if req.operation == Operation::Create {
                if let Err(e) = validation::validate_freight(&f) {
                    return Verdict::invalid(format!(
                        "Freight \"{name}\" in namespace \"{ns}\": {e}"
                    ));
                }
                // Kargo's checks against the origin Warehouse: it exists, and the Freight holds
                // one artifact for each of its subscriptions and nothing else.
                match &facts.warehouse {
                    Some(None) => {
                        return Verdict::invalid(format!(
                            "Freight \"{name}\" in namespace \"{ns}\": origin.name: Invalid value: {:?}: warehouse does not exist; hint: create the Warehouse first (kubectl apply), or name an existing one",
                            f.origin.name
                        ));
                    }
                    Some(Some(w)) => {
                        if let Err(e) = validation::validate_freight_artifacts(&f, w) {
                            return Verdict::invalid(format!(
                                "Freight \"{name}\" in namespace \"{ns}\": {e}; hint: Freight holds exactly one artifact per subscription of its Warehouse"
                            ));
                        }
                    }
                    None => {}
                }
            } else if let Some(old) = &req.old_object {
                let changed: Vec<&str> = IMMUTABLE
                    .into_iter()
                    .filter(|k| old.get(*k) != obj.get(*k))
                    .collect();
                if !changed.is_empty() {
                    return Verdict::invalid(format!(
                        "Freight \"{name}\" in namespace \"{ns}\": Forbidden: Freight is immutable ({} changed); hint: create new Freight for new artifacts",
                        changed.join(", ")
                    ));
                }
            }
            if let Some(alias) = alias_of(obj)
                && let Some(other) = facts.same_alias.iter().find(|o| o.name() != f.name())
            {
                return Verdict::conflict(format!(
                    "Freight \"{name}\" in namespace \"{ns}\": alias \"{alias}\" is already used by Freight \"{}\"; hint: choose another alias",
                    other.name()
                ));
            }
            Verdict::allow()
        }
        Operation::Connect => Verdict::allow(),
    }
}
