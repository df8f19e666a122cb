//! Freight: named by its content hash, immutable artifacts, unique alias, no deletion in use.
//!
//! Mutating: on CREATE the name becomes the Kargo v1.11 Freight ID (whatever the client sent);
//! the `alias` field is mirrored into the `kargo.akuity.io/alias` label (on CREATE a label-only
//! alias is mirrored into the field), and new Freight without any alias gets a generated
//! `adjective-animal` one that is free in the project.
//! Validating: CREATE needs a valid Freight whose name is its content hash; UPDATE may not change
//! `origin`, `commits`, `images`, `charts` or `artifacts`; the alias is unique in the project;
//! DELETE is refused while a Stage's current Freight is this one.

use promote_api::freight_id::freight_id;
use promote_api::keys::ALIAS;
use promote_api::types::Freight;
use promote_api::validation;
use serde_json::{Value, json};

use super::{Facts, Hook, Operation, Policy, Request, Verdict, diff, parse_object, set_meta};
use crate::cluster::Cluster;

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
    match (&req.object, req.operation) {
        (Some(obj), Operation::Create | Operation::Update) => {
            if let Some(alias) = alias_of(obj) {
                facts.same_alias = cluster.freight_by_alias(ns, alias).await?;
            }
        }
        (_, Operation::Delete) => facts.stages = cluster.stages(ns).await?,
        _ => {}
    }
    Ok(facts)
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
