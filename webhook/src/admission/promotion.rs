//! Promotions: who may promote, what a Promotion runs, and that it never changes afterwards.
//!
//! Mutating (CREATE): steps and vars are derived from the Stage's template (whatever the client
//! sent), the name follows Kargo's `<stage>.<ulid>.<freight[:7]>` unless it already does, the
//! `create-actor` annotation names the authenticated user, the Stage label/annotation and an owner
//! reference to the Stage are set. Mutating (UPDATE): the `create-actor` annotation is restored.
//!
//! Validating: CREATE, UPDATE and DELETE need the `promote` verb on `stages/<stage>`
//! (SubjectAccessReview); CREATE needs an existing Stage with steps and a Freight available to it,
//! and steps/vars equal to the derived ones; UPDATE may not change `spec`.

use promote_api::availability::{self, Availability};
use promote_api::keys::{CREATE_ACTOR, SHARD, STAGE};
use promote_api::types::{Promotion, Stage};
use promote_api::{naming, template, validation};
use serde_json::{Value, json};

use super::{
    Facts, Hook, Operation, Policy, Request, Verdict, child_of, diff, parse_object, promote_denied,
    set_meta,
};
use crate::cluster::Cluster;

fn stage_name(v: &Value) -> &str {
    v.pointer("/spec/stage")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn project<'a>(req: &'a Request, v: &'a Value) -> &'a str {
    let ns = v
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if req.namespace.is_empty() {
        ns
    } else {
        &req.namespace
    }
}

fn uses_tasks(stage: &Stage) -> bool {
    stage.template_steps().iter().any(|s| s.task.is_some())
}

pub(super) async fn gather<C: Cluster>(
    hook: Hook,
    req: &Request,
    cluster: &C,
) -> Result<Facts, String> {
    let mut facts = Facts::default();
    let Some(cur) = req.current() else {
        return Ok(facts);
    };
    let ns = project(req, cur);
    let stage = stage_name(cur);
    if ns.is_empty() || stage.is_empty() {
        return Ok(facts);
    }
    if hook == Hook::ValidatePromotion {
        facts.access = Some(cluster.may_promote(&req.user_info, ns, stage).await);
    }
    // Only a CREATE reads the Stage: the mutating hook derives steps, labels and the owner from
    // it, the validating hook checks it; an UPDATE only restores an annotation or compares specs.
    if req.operation != Operation::Create {
        return Ok(facts);
    }
    facts.stage = cluster.stage(ns, stage).await?.map(Box::new);
    if let Some(s) = &facts.stage {
        if promote_api::legacy::is_legacy(s) {
            facts.stages = cluster.stages(ns).await?;
        }
        if uses_tasks(s) {
            facts.tasks = cluster.tasks(ns).await?;
        }
    }
    if hook == Hook::ValidatePromotion {
        let freight = cur
            .pointer("/spec/freight")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !freight.is_empty() {
            facts.freight = cluster.freight(ns, freight).await?.map(Box::new);
        }
    }
    Ok(facts)
}

/// The `kargo.akuity.io/stage` label value: the Stage name, cut to a valid label value.
pub fn stage_label(stage: &str) -> String {
    naming::stage_label(stage)
}

/// Whether `name` is already a Kargo Promotion name for this Stage and Freight.
fn is_kargo_name(name: &str, stage: &str, freight: &str) -> bool {
    naming::ulid_of(name)
        .and_then(|id| naming::promotion_name(stage, freight, id).ok())
        .is_some_and(|n| n == name)
}

/// Mutating: see the module documentation.
pub fn mutate(req: &Request, facts: &Facts, policy: &Policy) -> Verdict {
    let Some(obj) = &req.object else {
        return Verdict::allow();
    };
    let mut m = obj.clone();
    match req.operation {
        Operation::Create => {
            let p: Promotion = match parse_object("Promotion", obj) {
                Ok(p) => p,
                Err(v) => return v,
            };
            // Without the Stage nothing can be derived; the validating hook says why.
            let Some(stage) = &facts.stage else {
                return Verdict::allow();
            };
            if let Ok((steps, vars)) = template::promotion_steps(stage, &facts.stages, &facts.tasks)
                && let Some(spec) = child_of(&mut m, "spec")
            {
                spec.insert("steps".into(), json!(steps));
                if vars.is_empty() {
                    spec.remove("vars");
                } else {
                    spec.insert("vars".into(), json!(vars));
                }
            }
            let name = p.name();
            if !p.spec.freight.is_empty()
                && !is_kargo_name(name, &p.spec.stage, &p.spec.freight)
                && let Ok(n) = naming::promotion_name(&p.spec.stage, &p.spec.freight, policy.ulid)
                && let Some(meta) = child_of(&mut m, "metadata")
            {
                meta.insert("name".into(), json!(n));
                meta.remove("generateName");
            }
            if !req.user_info.username.is_empty() {
                set_meta(
                    &mut m,
                    "annotations",
                    CREATE_ACTOR,
                    &format!("kubernetes:{}", req.user_info.username),
                );
            }
            set_meta(&mut m, "annotations", STAGE, stage.name());
            set_meta(&mut m, "labels", STAGE, &stage_label(stage.name()));
            if !stage.spec.shard.is_empty() {
                set_meta(&mut m, "labels", SHARD, &stage.spec.shard);
            }
            if let Some(uid) = &stage.metadata.uid
                && let Some(meta) = child_of(&mut m, "metadata")
            {
                meta.insert(
                    "ownerReferences".into(),
                    json!([{
                        "apiVersion": promote_api::API_VERSION,
                        "kind": "Stage",
                        "name": stage.name(),
                        "uid": uid,
                        "controller": true,
                    }]),
                );
            }
        }
        Operation::Update => {
            let old_actor = req
                .old_object
                .as_ref()
                .and_then(|o| o.pointer("/metadata/annotations"))
                .and_then(|a| a.get(CREATE_ACTOR));
            let new_actor = obj
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(CREATE_ACTOR));
            if old_actor != new_actor {
                match old_actor.and_then(Value::as_str) {
                    Some(a) => set_meta(&mut m, "annotations", CREATE_ACTOR, a),
                    None => {
                        if let Some(a) = m
                            .pointer_mut("/metadata/annotations")
                            .and_then(Value::as_object_mut)
                        {
                            a.remove(CREATE_ACTOR);
                        }
                    }
                }
            }
        }
        _ => {}
    }
    Verdict::patch(diff(obj, &m))
}

/// Validating: see the module documentation.
pub fn validate(req: &Request, facts: &Facts, policy: &Policy) -> Verdict {
    let Some(cur) = req.current() else {
        return Verdict::allow();
    };
    if req.operation == Operation::Delete
        && policy.trusted_deleters.contains(&req.user_info.username)
    {
        return Verdict::allow();
    }
    let ns = project(req, cur);
    let stage = stage_name(cur);
    let name = req.object_name();
    let verb = match req.operation {
        Operation::Create => "create Promotions",
        Operation::Update => "update Promotions",
        Operation::Delete => "delete Promotions",
        Operation::Connect => return Verdict::allow(),
    };
    if stage.is_empty() {
        return Verdict::invalid(format!(
            "Promotion \"{name}\" in namespace \"{ns}\": spec.stage: Required value: name the Stage to promote to"
        ));
    }
    if let Some(denied) = promote_denied(
        facts.access.as_ref(),
        &req.user_info,
        || verb.to_owned(),
        ns,
        stage,
    ) {
        return denied;
    }
    if let Some(e) = &facts.error {
        return Verdict::internal(format!(
            "cannot check Promotion \"{name}\" in namespace \"{ns}\": {e}"
        ));
    }
    match req.operation {
        Operation::Create => validate_create(cur, facts, policy, ns, name),
        Operation::Update => {
            let old_spec = req.old_object.as_ref().and_then(|o| o.get("spec"));
            if old_spec != cur.get("spec") {
                return Verdict::invalid(format!(
                    "Promotion \"{name}\" in namespace \"{ns}\": spec: Forbidden: spec is immutable; hint: create a new Promotion (kubectl promote stage/{stage} --freight <freight>) instead of editing this one"
                ));
            }
            Verdict::allow()
        }
        _ => Verdict::allow(),
    }
}

fn validate_create(cur: &Value, facts: &Facts, policy: &Policy, ns: &str, name: &str) -> Verdict {
    let p: Promotion = match parse_object("Promotion", cur) {
        Ok(p) => p,
        Err(v) => return v,
    };
    let stage_name = p.spec.stage.as_str();
    let Some(stage) = &facts.stage else {
        return Verdict::invalid(format!(
            "Promotion \"{name}\" in namespace \"{ns}\": spec.stage: Not found: Stage \"{stage_name}\" does not exist in project \"{ns}\"; hint: kubectl get stages -n {ns}"
        ));
    };
    if p.spec.origin.is_some() {
        return Verdict::invalid(format!(
            "Promotion \"{name}\" in namespace \"{ns}\": spec.origin: Forbidden: promoting an origin's auto-promotion candidate needs Kargo's controller; name the Freight in spec.freight"
        ));
    }
    let (steps, vars) = match template::promotion_steps(stage, &facts.stages, &facts.tasks) {
        Ok(sv) => sv,
        Err(e) => {
            return Verdict::invalid(format!(
                "Promotion \"{name}\" in namespace \"{ns}\": {e}; hint: fix the Stage's promotionTemplate"
            ));
        }
    };
    if p.spec.steps != steps || p.spec.vars != vars {
        return Verdict::invalid(format!(
            "Promotion \"{name}\" in namespace \"{ns}\": spec.steps: Forbidden: a Promotion's steps and vars must be exactly those of Stage \"{stage_name}\"'s promotionTemplate; hint: install promote's mutating webhook, or create Promotions with kubectl promote"
        ));
    }
    if let Err(e) = validation::validate_promotion(&p) {
        return Verdict::invalid(format!("Promotion \"{name}\" in namespace \"{ns}\": {e}"));
    }
    let freight_name = p.spec.freight.as_str();
    let Some(freight) = &facts.freight else {
        return Verdict::invalid(format!(
            "Promotion \"{name}\" in namespace \"{ns}\": spec.freight: Not found: Freight \"{freight_name}\" does not exist in project \"{ns}\"; hint: kubectl promote get freight -n {ns}"
        ));
    };
    let effective = match template::effective_stage(stage, &facts.stages) {
        Ok(s) => s,
        Err(e) => return Verdict::invalid(format!("Promotion \"{name}\": {e}")),
    };
    match availability::check(&effective, freight, policy.now) {
        Availability::Unavailable(reason) => Verdict::invalid(format!(
            "Promotion \"{name}\" in namespace \"{ns}\": spec.freight: Invalid value: Freight \"{freight_name}\" is not available to Stage \"{stage_name}\": {reason}"
        )),
        _ => Verdict::allow(),
    }
}
