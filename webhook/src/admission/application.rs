//! Argo CD `Application` writes: stage authorization and sync-operation injection.
//!
//! A *promotion write* sets an `operation` whose `info` names a Promotion
//! (`kargo.akuity.io/promotion`) that the old object's operation did not name. It is allowed only
//! when that Promotion exists and is not finished, its Stage is listed in the Application's
//! `kargo.akuity.io/authorized-stage` annotation as it was *before* the request, the requesting
//! user runs the Promotion and may `promote` the Stage, no other operation is pending or running,
//! the write's sources are the ones the Promotion recorded in its sync plan and nothing else
//! changes, and the operation is exactly the one promote derives (the mutating hook writes it,
//! revisions from the plan, `initiatedBy` the writer).
//!
//! The trust model (SECURITY.md) adds, for every other write: changing the annotation needs the
//! `authorize` verb on each Stage added or removed; on Applications that authorize a Stage or are
//! locked down, status is Argo CD's alone; on locked-down Applications (`promote.dev/lockdown:
//! "true"`) nothing but Argo CD and promotion writes changes anything. Changes to an already
//! authorized promotion operation are refused.
//!
//! The decisions read [`AppView`]s of the objects (see [`super::view`]), never their JSON trees.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, RemoveOperation, ReplaceOperation};
use promote_api::argocd::{SyncOperation, SyncRequest, sync_operation};
use promote_api::authorized_stage;
use promote_api::keys::{ARGOCD_REFRESH, AUTHORIZED_STAGE, LOCKDOWN};
use promote_api::trust::SyncPlan;
use promote_api::types::Promotion;
use serde_json::{Value, json};

use super::view::{Annotations, AppView, OperationView, RawJson, is_promotion_write};
use super::{
    Access, Facts, Grant, Hook, Operation, Policy, Request, Verdict, diff, promote_denied,
};
use crate::cluster::{Cluster, Verb};

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

/// The `project:stage` entries of an annotation value (none when absent or malformed).
fn entries(value: Option<&str>) -> Vec<(String, String)> {
    value
        .and_then(|v| authorized_stage::parse(v).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.project, e.stage))
        .collect()
}

/// The Stages a write adds to or removes from the `authorized-stage` annotation.
fn annotation_changes(new: &AppView, old: Option<&AppView>) -> Vec<(String, String)> {
    let before = old.and_then(AppView::authorized_stage);
    let after = new.authorized_stage();
    if before == after {
        return Vec::new();
    }
    let (b, a) = (entries(before), entries(after));
    let mut out: Vec<(String, String)> = Vec::new();
    for e in b
        .iter()
        .filter(|e| !a.contains(e))
        .chain(a.iter().filter(|e| !b.contains(e)))
    {
        if !out.contains(e) {
            out.push(e.clone());
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
    if hook == Hook::ValidateApplication {
        for (project, stage) in annotation_changes(new, old) {
            let access = cluster
                .may(&req.user_info, &project, Verb::Authorize, &stage)
                .await;
            facts.grants.push(Grant {
                verb: Verb::Authorize,
                project,
                stage,
                access,
            });
        }
    }
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
    let ns = namespace(req, new).to_owned();
    if let Some(p) = facts.promotion.clone() {
        facts.plan = promote_api::trust::sync_plan(&p, &ns, &new.name);
        // The runner records the plan a moment before the write; a watch-fed cache may not
        // have it yet.
        if facts.plan.is_none()
            && let Some(fresh) = cluster.fresh_promotion(p.project(), p.name()).await?
        {
            facts.plan = promote_api::trust::sync_plan(&fresh, &ns, &new.name);
            facts.promotion = Some(fresh);
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

/// Call `f` with the operation promote writes for Promotion `p` on `app`, written by `writer`:
/// its sources as they will be after the write, the revisions the Promotion's recorded plan
/// names (the client's own request only when there is no plan, which the validating hook
/// refuses), and the writer as `initiatedBy`, so Argo CD's history names who synced.
fn with_authoritative<R>(
    app: &AppView,
    p: &Promotion,
    plan: Option<&SyncPlan>,
    writer: &str,
    f: impl FnOnce(&SyncOperation<'_>) -> R,
) -> R {
    let sources = app.multi_sources();
    let requested = match plan {
        Some(plan) => plan.revisions.clone(),
        None => app
            .operation
            .as_ref()
            .map(|o| o.requested_revisions(app.multi_source))
            .unwrap_or_default(),
    };
    let req = SyncRequest {
        promotion: p.name(),
        project: p.project(),
        actor: Some(writer).filter(|w| !w.is_empty()),
    };
    f(&sync_operation(app.basis(), &sources, &requested, &req))
}

/// The operation promote writes for Promotion `p` on `app` when `writer` writes it.
pub fn authoritative_operation(
    app: &AppView,
    p: &Promotion,
    plan: Option<&SyncPlan>,
    writer: &str,
) -> Value {
    with_authoritative(app, p, plan, writer, |op| op.to_value())
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
        let writer = req.user_info.username.as_str();
        with_authoritative(new, p, facts.plan.as_ref(), writer, |expected| {
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
    let app = &new.name;
    let ns = namespace(req, new);
    if let Some(denied) = annotation_denied(req, new, old, facts) {
        return denied;
    }
    if is_promotion_write(old, new) {
        return validate_promotion_write(req, new, old, facts);
    }
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
    if policy.lockdown_allow.contains(&req.user_info.username) {
        return Verdict::allow();
    }
    let user = super::user_label(&req.user_info);
    let locked = old.unwrap_or(new).locked();
    if locked {
        let what = if new_op != old_op {
            Some("its sync operation")
        } else if sources_of(new) != old.map(sources_of).unwrap_or_default() {
            Some("its sources")
        } else if let Some(old) = old
            && let Some(what) = old.rest_changed(new)
        {
            Some(what)
        } else if req.app_status_changed {
            Some("its status")
        } else {
            None
        };
        if let Some(what) = what {
            return Verdict::forbidden(format!(
                "Argo CD Application \"{app}\" in namespace \"{ns}\" is locked down (label {LOCKDOWN}: \"true\"): {what} may change only through a promotion, and {user} is not one of Argo CD's service accounts; lockdown covers the whole Application, its own label included; hint: promote with kubectl promote stage/<stage> --freight <freight>; other changes (unlocking included) go through Argo CD, whose service accounts (--lockdown-allow) may make them"
            ));
        }
    }
    if req.app_status_changed && old.is_some_and(under_control) {
        return Verdict::forbidden(format!(
            "Argo CD Application \"{app}\" in namespace \"{ns}\" is under promotion control ({AUTHORIZED_STAGE} or {LOCKDOWN}): its status (sync, health, history, reconciledAt, operationState) is written only by Argo CD's service accounts, and {user} is not one; promotions read it as Argo CD's evidence; hint: leave status to Argo CD (kubectl apply and patch of spec and metadata do not touch it; kubectl replace without status would)"
        ));
    }
    Verdict::allow()
}

/// Whether promotions rely on the Application: it authorizes some Stage, or is locked down.
fn under_control(app: &AppView) -> bool {
    app.locked() || app.authorized_stage().is_some_and(|v| !v.trim().is_empty())
}

/// The refusal of a write that changes the `authorized-stage` annotation without the
/// `authorize` verb on every Stage it adds or removes.
fn annotation_denied(
    req: &Request,
    new: &AppView,
    old: Option<&AppView>,
    facts: &Facts,
) -> Option<Verdict> {
    let after = new.authorized_stage();
    if old.and_then(AppView::authorized_stage) == after {
        return None;
    }
    let (app, ns) = (&new.name, namespace(req, new));
    if let Some(value) = after
        && let Err(e) = authorized_stage::parse(value)
    {
        return Some(Verdict::invalid(format!(
            "Argo CD Application \"{app}\" in namespace \"{ns}\": metadata.annotations[{AUTHORIZED_STAGE}]: {e}"
        )));
    }
    let user = super::user_label(&req.user_info);
    for (project, stage) in annotation_changes(new, old) {
        let why = match facts.grant(Verb::Authorize, &project, &stage) {
            Some(Access::Allowed) => continue,
            Some(Access::Denied(r)) if r.is_empty() => String::new(),
            Some(Access::Denied(r)) => format!(" ({r})"),
            Some(Access::Error(e)) => format!(" (SubjectAccessReview failed: {e})"),
            None => " (not checked)".to_owned(),
        };
        let verb = promote_api::trust::AUTHORIZE_VERB;
        return Some(Verdict::forbidden(format!(
            "{user} may not change which Stages Argo CD Application \"{app}\" in namespace \"{ns}\" authorizes: adding or removing \"{project}:{stage}\" in {AUTHORIZED_STAGE} needs the \"{verb}\" verb on stages/{stage} in project \"{project}\", which is not granted{why} (the patch right on Applications is not enough); hint: ask the project's owner, or bind a Role in namespace \"{project}\" granting verb \"{verb}\" on resource \"stages\" (apiGroup kargo.akuity.io), e.g. kubectl create role stage-authorizer -n {project} --verb={verb} --resource=stages.kargo.akuity.io --resource-name={stage}"
        )));
    }
    None
}

fn sources_of(app: &AppView) -> (Option<&RawJson>, Option<&RawJson>) {
    (app.source.as_ref(), app.sources.as_ref())
}

/// Whether the Application's sources after the write are the ones the plan recorded.
fn plan_matches(new: &AppView, plan: &SyncPlan) -> bool {
    if new.multi_source {
        new.sources.as_ref().and_then(RawJson::value) == Some(Value::Array(plan.sources.clone()))
    } else {
        plan.sources.len() == 1
            && new.source.as_ref().and_then(RawJson::value).as_ref() == plan.sources.first()
    }
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
    let writer = req.user_info.username.as_str();
    if let Some(runner) = promote_api::trust::runner(p)
        && runner != writer
    {
        return Verdict::forbidden(format!(
            "{} may not sync Argo CD Application \"{app}\" in namespace \"{ns}\" for Promotion \"{promo}\": that Promotion is run by user \"{runner}\", and a promotion's sync is written by its runner; hint: promote with your own Promotion (kubectl promote stage/{stage} --freight <freight>), or take this one over with kubectl promote resume once its lease has expired",
            super::user_label(&req.user_info)
        ));
    }
    let Some(plan) = &facts.plan else {
        return Verdict::forbidden(format!(
            "Promotion \"{promo}\" has not recorded a sync plan for Argo CD Application \"{app}\" in namespace \"{ns}\" (status.state[\"{}\"]), so the revisions of this write cannot be checked; hint: syncs for promotions are written by kubectl promote, which records the plan on the Promotion first",
            promote_api::trust::SYNC_PLAN
        ));
    };
    if !plan_matches(new, plan) {
        return Verdict::forbidden(format!(
            "the sources written to Argo CD Application \"{app}\" in namespace \"{ns}\" are not the ones Promotion \"{promo}\" recorded in its sync plan; a promotion write may change only what its argocd-update step sets; hint: let kubectl promote write the sync"
        ));
    }
    if let Some(what) = old.rest_changed(new) {
        return Verdict::forbidden(format!(
            "a promotion write to Argo CD Application \"{app}\" in namespace \"{ns}\" may change only its sources, its sync operation and the refresh annotation, but this one also changes {what}; hint: make other changes in a separate write (and, on locked-down Applications, through an Argo CD administrator)"
        ));
    }
    if req.app_status_changed {
        return Verdict::forbidden(format!(
            "a promotion write to Argo CD Application \"{app}\" in namespace \"{ns}\" may clear status.operationState but change nothing else of its status; hint: leave status to Argo CD"
        ));
    }
    if !new.operation.as_ref().is_some_and(|sent| {
        with_authoritative(new, p, Some(plan), writer, |expected| {
            is_expected(sent, expected)
        })
    }) {
        return Verdict::forbidden(format!(
            "the sync operation written to Argo CD Application \"{app}\" in namespace \"{ns}\" is not the one promote derives for Promotion \"{promo}\" (initiatedBy, info, revisions, syncOptions and retry are set from the Promotion and the Application, and nothing else may be added); hint: install promote's mutating webhook, or let kubectl promote write the operation"
        ));
    }
    Verdict::allow()
}
