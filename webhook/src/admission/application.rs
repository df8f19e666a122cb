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
//!
//! The decisions read [`AppView`]s of the objects (see [`super::view`]), never their JSON trees.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, RemoveOperation, ReplaceOperation};
use promote_api::argocd::{SyncOperation, SyncRequest, sync_operation};
use promote_api::authorized_stage;
use promote_api::keys::{ARGOCD_REFRESH, LOCKDOWN};
use promote_api::types::Promotion;
use serde_json::{Value, json};

use super::view::{Annotations, AppView, OperationView, RawJson, is_promotion_write};
use super::{Facts, Hook, Operation, Policy, Request, Verdict, diff, promote_denied};
use crate::cluster::Cluster;

fn namespace<'a>(req: &'a Request, app: &'a AppView) -> &'a str {
    if app.namespace.is_empty() {
        &req.namespace
    } else {
        &app.namespace
    }
}

/// Projects where the Promotion an operation names may live: the project the operation names,
/// else the projects of the (old) authorized-stage annotation.
fn candidate_projects(new: &AppView, old: Option<&AppView>) -> Vec<String> {
    if let Some(p) = new
        .operation
        .as_ref()
        .and_then(|o| o.project.as_deref())
        .filter(|p| !p.is_empty())
    {
        return vec![p.to_owned()];
    }
    let mut out: Vec<String> = Vec::new();
    if let Some(value) = old.and_then(AppView::authorized_stage)
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
    let Some(new) = &req.app else {
        return Ok(facts);
    };
    let old = req.old_app.as_deref();
    if !is_promotion_write(old, new) || old.is_none() {
        return Ok(facts);
    }
    let Some(name) = new.promotion() else {
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

/// Call `f` with the operation promote writes for Promotion `p` on `app` (its sources as they
/// will be after the write, the revisions the client requested).
fn with_authoritative<R>(
    app: &AppView,
    p: &Promotion,
    f: impl FnOnce(&SyncOperation<'_>) -> R,
) -> R {
    let sources = app.multi_sources();
    let requested = app
        .operation
        .as_ref()
        .map(|o| o.requested_revisions(app.multi_source))
        .unwrap_or_default();
    let req = SyncRequest {
        promotion: p.name(),
        project: p.project(),
        actor: p.create_actor(),
    };
    f(&sync_operation(app.basis(), &sources, &requested, &req))
}

/// The operation promote writes for Promotion `p` on `app`.
pub fn authoritative_operation(app: &AppView, p: &Promotion) -> Value {
    with_authoritative(app, p, |op| op.to_value())
}

/// Whether `sent` is `expected`: the same bytes as the API server writes it (the usual case, no
/// JSON tree built), or else the same value.
fn is_expected(sent: &OperationView, expected: &SyncOperation<'_>) -> bool {
    expected.is_api_json(sent.raw.text().as_bytes())
        || sent.raw.value() == Some(expected.to_value())
}

fn pointer(tokens: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(tokens.iter().copied())
}

/// Mutating: replace a promotion write's operation with the authoritative one, request a hard
/// refresh and clear the previous `status.operationState`. Idempotent.
pub fn mutate(req: &Request, facts: &Facts) -> Verdict {
    let Some(new) = &req.app else {
        return Verdict::allow();
    };
    if !is_promotion_write(req.old_app.as_deref(), new) {
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
    let mut patch = Vec::new();
    // The refresh annotation, as setting it on the object and diffing would write it.
    let hard = || Value::String("hard".to_owned());
    let annotations = ["metadata", "annotations"];
    let refresh = ["metadata", "annotations", ARGOCD_REFRESH];
    match &new.annotations {
        Annotations::Missing => patch.push(PatchOperation::Add(AddOperation {
            path: pointer(&annotations),
            value: json!({ ARGOCD_REFRESH: "hard" }),
        })),
        Annotations::NotAnObject => patch.push(PatchOperation::Replace(ReplaceOperation {
            path: pointer(&annotations),
            value: json!({ ARGOCD_REFRESH: "hard" }),
        })),
        Annotations::Map { refresh: None, .. } => patch.push(PatchOperation::Add(AddOperation {
            path: pointer(&refresh),
            value: hard(),
        })),
        Annotations::Map {
            refresh: Some(value),
            ..
        } if value.as_deref() != Some("hard") => {
            patch.push(PatchOperation::Replace(ReplaceOperation {
                path: pointer(&refresh),
                value: hard(),
            }))
        }
        Annotations::Map { .. } => {}
    }
    if new.operation_state.is_some() {
        patch.push(PatchOperation::Remove(RemoveOperation {
            path: pointer(&["status", "operationState"]),
        }));
    }
    if let Some(sent) = &new.operation {
        with_authoritative(new, p, |expected| {
            if !is_expected(sent, expected) {
                patch.extend(diff(
                    &json!({ "operation": sent.raw.value() }),
                    &json!({ "operation": expected.to_value() }),
                ));
            }
        });
    }
    Verdict::patch(patch)
}

/// Validating: see the module documentation.
pub fn validate(req: &Request, facts: &Facts, policy: &Policy) -> Verdict {
    let Some(new) = &req.app else {
        return Verdict::allow();
    };
    let old = req.old_app.as_deref();
    if is_promotion_write(old, new) {
        return validate_promotion_write(req, new, old, facts);
    }
    let app = &new.name;
    let ns = namespace(req, new);
    fn operation(a: &AppView) -> Option<&RawJson> {
        a.operation.as_ref().map(|o| &o.raw)
    }
    let (new_op, old_op) = (operation(new), old.and_then(operation));
    if let (Some(n), Some(o)) = (new_op, old_op)
        && let Some(promo) = new.promotion()
        && old.and_then(AppView::promotion) == Some(promo)
        && n != o
    {
        return Verdict::forbidden(format!(
            "the sync operation of Promotion \"{promo}\" on Argo CD Application \"{app}\" in namespace \"{ns}\" was authorized when it was written and cannot be changed; hint: wait for Argo CD to finish it, then promote again"
        ));
    }
    let locked = old.unwrap_or(new).locked();
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

fn sources_of(app: &AppView) -> (Option<&RawJson>, Option<&RawJson>) {
    (app.source.as_ref(), app.sources.as_ref())
}

fn validate_promotion_write(
    req: &Request,
    new: &AppView,
    old: Option<&AppView>,
    facts: &Facts,
) -> Verdict {
    let app = &new.name;
    let ns = namespace(req, new);
    let promo = new.promotion().unwrap_or_default();
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
    if let Err(e) = authorized_stage::authorize(old.authorized_stage(), app, ns, project, stage) {
        let mut message = e.to_string();
        if authorized_stage::authorize(new.authorized_stage(), app, ns, project, stage).is_ok() {
            message.push_str(
                "; the annotation is added by this same request, but a request cannot authorize itself: write the annotation first, then promote",
            );
        }
        return Verdict::forbidden(message);
    }
    if let Some(denied) = promote_denied(
        facts.access.as_ref(),
        &req.user_info,
        || format!("sync Argo CD Application \"{app}\" in namespace \"{ns}\""),
        project,
        stage,
    ) {
        return denied;
    }
    if old.operation_in_progress() {
        let running = old
            .operation_state
            .as_ref()
            .and_then(|s| s.promotion.as_deref())
            .map(|p| format!(" (Promotion \"{p}\")"))
            .unwrap_or_default();
        return Verdict::conflict(format!(
            "another operation{running} is already in progress on Argo CD Application \"{app}\" in namespace \"{ns}\"; hint: wait for it to finish (kubectl promote waits and retries), or terminate it with argocd app terminate-op {ns}/{app}"
        ));
    }
    if let Some(pending) = &old.operation {
        let who = pending
            .raw
            .value()
            .as_ref()
            .and_then(|v| v.pointer("/initiatedBy/username"))
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .map(|u| format!(" initiated by \"{u}\""))
            .unwrap_or_default();
        return Verdict::conflict(format!(
            "Argo CD Application \"{app}\" in namespace \"{ns}\" already has a pending operation{who} that Argo CD has not started yet; hint: wait for Argo CD to run it, then promote again"
        ));
    }
    if !new
        .operation
        .as_ref()
        .is_some_and(|sent| with_authoritative(new, p, |expected| is_expected(sent, expected)))
    {
        return Verdict::forbidden(format!(
            "the sync operation written to Argo CD Application \"{app}\" in namespace \"{ns}\" is not the one promote derives for Promotion \"{promo}\" (initiatedBy, info, revisions, syncOptions and retry are set from the Promotion and the Application, and nothing else may be added); hint: install promote's mutating webhook, or let kubectl promote write the operation"
        ));
    }
    Verdict::allow()
}
