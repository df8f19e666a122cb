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
//!
//! The lease (annotations `promote.dev/lease-holder` and `-expires`, SECURITY.md): a Promotion is
//! created with a lease only in its creator's name; the lease is renewed only by its holder and
//! taken over only once it has expired, each time in the writer's own name.
//! Status (`promotions/status`): written only by the Promotion's runner (its lease holder, else
//! its creator), except that any promoter of the Stage may close it as `Aborted`; a finished
//! Promotion's status never changes again; what a remote step (`git-push`, `git-open-pr`,
//! `argocd-update`) recorded as Succeeded, its metadata and its outputs, is never rewritten.

use promote_api::availability::{self, Availability};
use promote_api::keys::{CREATE_ACTOR, LEASE_EXPIRES, LEASE_HOLDER, SHARD, STAGE};
use promote_api::trust::holder_user;
use promote_api::types::Promotion;
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
    // The Stage and (validating) the Freight are independent reads: both at once.
    let freight = cur
        .pointer("/spec/freight")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let want_freight = hook == Hook::ValidatePromotion && !freight.is_empty();
    let (got_stage, got_freight) = futures::join!(cluster.stage(ns, stage), async {
        if want_freight {
            cluster.freight(ns, freight).await
        } else {
            Ok(None)
        }
    });
    facts.stage = got_stage?.map(Box::new);
    facts.freight = got_freight?.map(Box::new);
    if let Some(s) = &facts.stage {
        if promote_api::legacy::is_legacy(s) {
            facts.stages = cluster.stages(ns).await?;
        }
        // Each kind of task is listed only when a step references it.
        if s.references_task_kind("PromotionTask") {
            facts.tasks = cluster.tasks(ns).await?;
        }
        if s.references_task_kind("ClusterPromotionTask") {
            facts.tasks.extend(cluster.cluster_tasks().await?);
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
        Operation::Update if req.sub_resource == "status" => "update the status of Promotions",
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
    let writer = req.user_info.username.as_str();
    match req.operation {
        Operation::Create => {
            if let Some(holder) = annotation(cur, LEASE_HOLDER)
                && holder_user(holder) != writer
            {
                return Verdict::forbidden(format!(
                    "Promotion \"{name}\" in namespace \"{ns}\": its lease ({LEASE_HOLDER}: \"{holder}\") must be held by its creator, {}; hint: create Promotions with kubectl promote",
                    super::user_label(&req.user_info)
                ));
            }
            validate_create(cur, facts, policy, ns, name)
        }
        Operation::Update if req.sub_resource == "status" => {
            let Some(old) = &req.old_object else {
                return Verdict::allow();
            };
            validate_status(req, old, cur, ns, name)
        }
        Operation::Update => {
            let old_spec = req.old_object.as_ref().and_then(|o| o.get("spec"));
            if old_spec != cur.get("spec") {
                return Verdict::invalid(format!(
                    "Promotion \"{name}\" in namespace \"{ns}\": spec: Forbidden: spec is immutable; hint: create a new Promotion (kubectl promote stage/{stage} --freight <freight>) instead of editing this one"
                ));
            }
            if let Some(old) = &req.old_object
                && let Some(denied) = lease_denied(req, old, cur, policy, ns, name)
            {
                return denied;
            }
            Verdict::allow()
        }
        _ => Verdict::allow(),
    }
}

fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The refusal of a lease change that is not a renewal by its holder or a takeover of an
/// expired lease in the writer's own name.
fn lease_denied(
    req: &Request,
    old: &Value,
    new: &Value,
    policy: &Policy,
    ns: &str,
    name: &str,
) -> Option<Verdict> {
    let writer = req.user_info.username.as_str();
    let user = super::user_label(&req.user_info);
    let (old_h, new_h) = (annotation(old, LEASE_HOLDER), annotation(new, LEASE_HOLDER));
    let (old_e, new_e) = (
        annotation(old, LEASE_EXPIRES),
        annotation(new, LEASE_EXPIRES),
    );
    if old_h == new_h && old_e == new_e {
        return None;
    }
    if let Some(h) = new_h
        && holder_user(h) != writer
    {
        return Some(Verdict::forbidden(format!(
            "{user} may not set the lease of Promotion \"{name}\" in namespace \"{ns}\" to \"{h}\": a lease is taken in the writer's own name; hint: take it over with kubectl promote resume"
        )));
    }
    let Some(old_h) = old_h else {
        // A Promotion without a lease is run by its creator: only they may take the first one.
        // The annotation as `Promotion::create_actor` reads it (`kubernetes:<user>`).
        let creator = annotation(old, CREATE_ACTOR)
            .map(|v| v.split_once(':').map_or(v, |(_, user)| user))
            .unwrap_or_default();
        return (!creator.is_empty() && creator != writer).then(|| {
            Verdict::forbidden(format!(
                "{user} may not take the lease of Promotion \"{name}\" in namespace \"{ns}\": it has none, so it is run by its creator, user \"{creator}\"; hint: promote with your own Promotion (kubectl promote stage/<stage>)"
            ))
        });
    };
    if holder_user(old_h) == writer {
        return None;
    }
    let expired = old_e
        .and_then(|e| e.parse::<jiff::Timestamp>().ok())
        .is_none_or(|e| e <= policy.now);
    if expired {
        return None;
    }
    Some(Verdict::conflict(format!(
        "Promotion \"{name}\" in namespace \"{ns}\" is run by \"{old_h}\", whose lease runs until {}; {user} may take it over only once that lease has expired; hint: wait, or abort it with kubectl promote abort",
        old_e.unwrap_or_default()
    )))
}

/// Validating `promotions/status`: see the module documentation.
fn validate_status(req: &Request, old: &Value, new: &Value, ns: &str, name: &str) -> Verdict {
    let (old_s, new_s) = (old.get("status"), new.get("status"));
    if old_s == new_s {
        return Verdict::allow();
    }
    let user = super::user_label(&req.user_info);
    let phase = |s: Option<&Value>| {
        s.and_then(|s| s.get("phase"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (old_phase, new_phase) = (phase(old_s), phase(new_s));
    if matches!(
        old_phase.as_str(),
        "Succeeded" | "Failed" | "Errored" | "Aborted"
    ) {
        return Verdict::forbidden(format!(
            "Promotion \"{name}\" in namespace \"{ns}\" is already {old_phase}: a finished Promotion's status is final and cannot be changed by {user}; hint: start a new promotion with kubectl promote stage/<stage>"
        ));
    }
    let field = |s: Option<&Value>, k: &str| s.and_then(|s| s.get(k)).cloned();
    let p: Option<Promotion> = serde_json::from_value(old.clone()).ok();
    let runner = p
        .as_ref()
        .and_then(promote_api::trust::runner)
        .unwrap_or_default()
        .to_owned();
    let writer = req.user_info.username.as_str();
    if runner != writer {
        // Closing a Promotion (an abort, or an abandoned one taken over) is any promoter's right;
        // nothing it recorded may change with it.
        let closes = new_phase == "Aborted"
            && field(old_s, "state") == field(new_s, "state")
            && field(old_s, "stepExecutionMetadata") == field(new_s, "stepExecutionMetadata");
        if !closes {
            return Verdict::forbidden(format!(
                "{user} may not write the status of Promotion \"{name}\" in namespace \"{ns}\": it is run by {}, and only its runner records its progress (other promoters of the Stage may only close it as Aborted); hint: abort it with kubectl promote abort, or take it over with kubectl promote resume once its lease has expired",
                if runner.is_empty() {
                    "nobody".to_owned()
                } else {
                    format!("user \"{runner}\"")
                }
            ));
        }
    }
    // What remote steps recorded as done stays as recorded.
    let meta = |s: Option<&Value>| -> Vec<Value> {
        field(s, "stepExecutionMetadata")
            .and_then(|m| m.as_array().cloned())
            .unwrap_or_default()
    };
    let (old_meta, new_meta) = (meta(old_s), meta(new_s));
    let steps = p.as_ref().map(|p| p.spec.steps.clone()).unwrap_or_default();
    for (i, step) in steps.iter().enumerate() {
        if !promote_api::trust::REMOTE_STEPS.contains(&step.uses.as_str()) {
            continue;
        }
        let alias = step.effective_alias(i);
        let entry = |m: &[Value]| {
            m.iter()
                .find(|e| e.get("alias").and_then(Value::as_str) == Some(alias.as_str()))
                .cloned()
        };
        let Some(recorded) = entry(&old_meta) else {
            continue;
        };
        if recorded.get("status").and_then(Value::as_str) != Some("Succeeded") {
            continue;
        }
        let state = |s: Option<&Value>| field(s, "state").and_then(|st| st.get(&alias).cloned());
        if entry(&new_meta).as_ref() != Some(&recorded) || state(new_s) != state(old_s) {
            return Verdict::forbidden(format!(
                "Promotion \"{name}\" in namespace \"{ns}\": step \"{alias}\" ({}) is recorded as Succeeded, and what a step that changed something outside this cluster recorded is never rewritten; hint: start a new promotion to change it",
                step.uses
            ));
        }
    }
    Verdict::allow()
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
