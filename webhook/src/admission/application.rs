//! Argo CD `Application` writes: stage authorization and sync-operation injection.
//!
//! A *promotion write* sets an `operation` whose `info` names a Promotion
//! (`kargo.akuity.io/promotion`) that the old object's operation did not name. It is allowed only
//! when that Promotion exists and is not finished, its Stage is listed in the Application's
//! `kargo.akuity.io/authorized-stage` annotation as it was *before* the request, the requesting
//! user may `promote` the Stage, no other operation is pending or running, and the operation is
//! exactly the one promote derives (the mutating hook writes it). Every other write passes,
//! except changes to an already-authorized promotion operation and, on Applications labelled
//! `promote.dev/lockdown: "true"`, changes to `operation` or sources by anyone but Argo CD.

use promote_api::argocd::{
    self, SyncRequest, annotation, app_name, build_operation, is_promotion_write,
    operation_in_progress, operation_project, operation_promotion,
};
use promote_api::authorized_stage;
use promote_api::keys::{ARGOCD_REFRESH, AUTHORIZED_STAGE, LOCKDOWN};
use promote_api::types::Promotion;
use serde_json::Value;

use super::{Facts, Hook, Operation, Policy, Request, Verdict, diff, promote_denied, set_meta};
use crate::cluster::Cluster;

fn operation(app: Option<&Value>) -> Option<&Value> {
    app?.get("operation").filter(|v| !v.is_null())
}

fn namespace<'a>(req: &'a Request, app: &'a Value) -> &'a str {
    let ns = argocd::app_namespace(app);
    if ns.is_empty() { &req.namespace } else { ns }
}

/// Projects where the Promotion an operation names may live: the project the operation names,
/// else the projects of the (old) authorized-stage annotation.
fn candidate_projects(new: &Value, old: Option<&Value>) -> Vec<String> {
    if let Some(p) = operation_project(operation(Some(new))).filter(|p| !p.is_empty()) {
        return vec![p.to_owned()];
    }
    let mut out: Vec<String> = Vec::new();
    if let Some(value) = old.and_then(|o| annotation(o, AUTHORIZED_STAGE))
        && let Ok(entries) = authorized_stage::parse(value)
    {
        for e in entries {
            if !out.contains(&e.project) {
                out.push(e.project);
            }
        }
    }
    out
}

pub(super) async fn gather<C: Cluster>(
    hook: Hook,
    req: &Request,
    cluster: &C,
) -> Result<Facts, String> {
    let mut facts = Facts::default();
    let Some(new) = &req.object else {
        return Ok(facts);
    };
    let old = req.old_object.as_ref();
    if !is_promotion_write(old, new) || old.is_none() {
        return Ok(facts);
    }
    let Some(name) = operation_promotion(operation(Some(new))) else {
        return Ok(facts);
    };
    for project in candidate_projects(new, old) {
        if let Some(p) = cluster.promotion(&project, name).await? {
            facts.promotion = Some(p);
            break;
        }
    }
    if hook == Hook::ValidateApplication
        && let Some(p) = &facts.promotion
        && !p.phase().is_terminal()
    {
        facts.access = Some(
            cluster
                .may_promote(&req.user_info, p.project(), &p.spec.stage)
                .await,
        );
    }
    Ok(facts)
}

/// The revisions the client asked for, index-aligned with the sources.
fn requested_revisions(app: &Value) -> Vec<String> {
    argocd::revisions(app, operation(Some(app)).and_then(|o| o.get("sync")))
}

/// The operation promote writes for Promotion `p` on `app` (its sources as they will be after the
/// write, the revisions the client requested).
pub fn authoritative_operation(app: &Value, p: &Promotion) -> Value {
    let sources: Vec<Value> = argocd::sources(app).into_iter().cloned().collect();
    build_operation(
        app,
        &sources,
        &requested_revisions(app),
        &SyncRequest {
            promotion: p.name(),
            project: p.project(),
            actor: p.create_actor(),
        },
    )
}

/// Mutating: replace a promotion write's operation with the authoritative one, request a hard
/// refresh and clear the previous `status.operationState`. Idempotent.
pub fn mutate(req: &Request, facts: &Facts) -> Verdict {
    let Some(new) = &req.object else {
        return Verdict::allow();
    };
    if !is_promotion_write(req.old_object.as_ref(), new) {
        return Verdict::allow();
    }
    let Some(p) = facts
        .promotion
        .as_ref()
        .filter(|p| !p.phase().is_terminal())
    else {
        // Nothing to derive from: the validating hook denies the write.
        return Verdict::allow();
    };
    let mut m = new.clone();
    m["operation"] = authoritative_operation(new, p);
    set_meta(&mut m, "annotations", ARGOCD_REFRESH, "hard");
    if let Some(status) = m.get_mut("status").and_then(Value::as_object_mut) {
        status.remove("operationState");
    }
    Verdict::patch(diff(new, &m))
}

/// Validating: see the module documentation.
pub fn validate(req: &Request, facts: &Facts, policy: &Policy) -> Verdict {
    let Some(new) = &req.object else {
        return Verdict::allow();
    };
    let old = req.old_object.as_ref();
    if is_promotion_write(old, new) {
        return validate_promotion_write(req, new, old, facts);
    }
    let app = app_name(new);
    let ns = namespace(req, new);
    let (new_op, old_op) = (operation(Some(new)), operation(old));
    if let (Some(n), Some(o)) = (new_op, old_op)
        && let Some(promo) = operation_promotion(Some(n))
        && operation_promotion(Some(o)) == Some(promo)
        && n != o
    {
        return Verdict::forbidden(format!(
            "the sync operation of Promotion \"{promo}\" on Argo CD Application \"{app}\" in namespace \"{ns}\" was authorized when it was written and cannot be changed; hint: wait for Argo CD to finish it, then promote again"
        ));
    }
    let locked = label(old.unwrap_or(new), LOCKDOWN) == Some("true");
    if locked && !policy.lockdown_allow.contains(&req.user_info.username) {
        let what = if new_op != old_op {
            Some("its sync operation")
        } else if sources_of(new) != old.map(sources_of).unwrap_or_default() {
            Some("its sources")
        } else {
            None
        };
        if let Some(what) = what {
            return Verdict::forbidden(format!(
                "Argo CD Application \"{app}\" in namespace \"{ns}\" is locked down (label {LOCKDOWN}: \"true\"): {what} may change only through a promotion, and {} is not one of Argo CD's service accounts; hint: promote with kubectl promote stage/<stage> --freight <freight>, or remove the label",
                super::user_label(&req.user_info)
            ));
        }
    }
    Verdict::allow()
}

fn label<'a>(app: &'a Value, key: &str) -> Option<&'a str> {
    app.pointer("/metadata/labels")?.get(key)?.as_str()
}

fn sources_of(app: &Value) -> (Option<&Value>, Option<&Value>) {
    (
        app.pointer("/spec/source").filter(|v| !v.is_null()),
        app.pointer("/spec/sources").filter(|v| !v.is_null()),
    )
}

fn validate_promotion_write(
    req: &Request,
    new: &Value,
    old: Option<&Value>,
    facts: &Facts,
) -> Verdict {
    let app = app_name(new);
    let ns = namespace(req, new);
    let promo = operation_promotion(operation(Some(new))).unwrap_or_default();
    let Some(old) = old.filter(|_| req.operation != Operation::Create) else {
        return Verdict::forbidden(format!(
            "Argo CD Application \"{app}\" in namespace \"{ns}\" cannot be created with the sync operation of Promotion \"{promo}\": stage authorization is read from the Application as it was before the request; hint: create the Application (with its kargo.akuity.io/authorized-stage annotation) first, then promote"
        ));
    };
    if let Some(e) = &facts.error {
        return Verdict::internal(format!(
            "cannot authorize the sync of Argo CD Application \"{app}\" in namespace \"{ns}\" for Promotion \"{promo}\": {e}"
        ));
    }
    let Some(p) = &facts.promotion else {
        let projects = candidate_projects(new, Some(old));
        let place = if projects.is_empty() {
            "and neither the operation (info kargo.akuity.io/project) nor the Application's kargo.akuity.io/authorized-stage annotation names a project to look in".to_owned()
        } else {
            format!(
                "in project(s) {}",
                projects
                    .iter()
                    .map(|p| format!("\"{p}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Verdict::forbidden(format!(
            "Argo CD Application \"{app}\" in namespace \"{ns}\": the sync operation names Promotion \"{promo}\", which does not exist {place}; hint: syncs for promotions are written by kubectl promote for a Promotion that exists"
        ));
    };
    let (project, stage) = (p.project(), p.spec.stage.as_str());
    let phase = p.phase();
    if phase.is_terminal() {
        return Verdict::forbidden(format!(
            "Promotion \"{promo}\" in project \"{project}\" is already {phase}; a finished Promotion cannot sync Argo CD Application \"{app}\" in namespace \"{ns}\" (a replayed operation?); hint: start a new promotion with kubectl promote stage/{stage}"
        ));
    }
    if let Err(e) =
        authorized_stage::authorize(annotation(old, AUTHORIZED_STAGE), app, ns, project, stage)
    {
        let mut message = e.to_string();
        if authorized_stage::authorize(annotation(new, AUTHORIZED_STAGE), app, ns, project, stage)
            .is_ok()
        {
            message.push_str(
                "; the annotation is added by this same request, but a request cannot authorize itself: write the annotation first, then promote",
            );
        }
        return Verdict::forbidden(message);
    }
    if let Some(denied) = promote_denied(
        facts.access.as_ref(),
        &req.user_info,
        &format!("sync Argo CD Application \"{app}\" in namespace \"{ns}\""),
        project,
        stage,
    ) {
        return denied;
    }
    if operation_in_progress(old) {
        let running = operation_promotion(
            old.pointer("/status/operationState/operation")
                .filter(|v| !v.is_null()),
        )
        .map(|p| format!(" (Promotion \"{p}\")"))
        .unwrap_or_default();
        return Verdict::conflict(format!(
            "another operation{running} is already in progress on Argo CD Application \"{app}\" in namespace \"{ns}\"; hint: wait for it to finish (kubectl promote waits and retries), or terminate it with argocd app terminate-op {ns}/{app}"
        ));
    }
    if let Some(pending) = operation(Some(old)) {
        let who = pending
            .pointer("/initiatedBy/username")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .map(|u| format!(" initiated by \"{u}\""))
            .unwrap_or_default();
        return Verdict::conflict(format!(
            "Argo CD Application \"{app}\" in namespace \"{ns}\" already has a pending operation{who} that Argo CD has not started yet; hint: wait for Argo CD to run it, then promote again"
        ));
    }
    let expected = authoritative_operation(new, p);
    if operation(Some(new)) != Some(&expected) {
        return Verdict::forbidden(format!(
            "the sync operation written to Argo CD Application \"{app}\" in namespace \"{ns}\" is not the one promote derives for Promotion \"{promo}\" (initiatedBy, info, revisions, syncOptions and retry are set from the Promotion and the Application, and nothing else may be added); hint: install promote's mutating webhook, or let kubectl promote write the operation"
        ));
    }
    Verdict::allow()
}
