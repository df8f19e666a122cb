//! Projects. A Project is its namespace, as in Kargo: admitting a Project's CREATE creates the
//! namespace of its name labelled `kargo.akuity.io/project: "true"` (not on a dry run: the hook is
//! registered with `sideEffects: NoneOnDryRun`), so a file holding a Project and then objects in
//! its namespace applies in one `kubectl apply -f`. Kargo's refusals: a namespace of that name
//! that is not labelled as a project, or that is being deleted, is a 409. Unlike Kargo no
//! finalizer is put on the namespace (no controller would remove it) and no role is bound to the
//! creator (promote's roles are bound by the cluster admin, README "Permissions").

use serde_json::Value;

use super::{Facts, Operation, Request, Verdict};
use crate::cluster::Cluster;

pub(super) async fn gather<C: Cluster>(req: &Request, cluster: &C) -> Result<Facts, String> {
    let mut facts = Facts::default();
    if req.operation == Operation::Create {
        facts.namespace = cluster.namespace(req.object_name()).await?;
    }
    Ok(facts)
}

/// Validating: Kargo's checks of the Project's namespace.
pub fn validate(req: &Request, facts: &Facts) -> Verdict {
    if req.operation != Operation::Create {
        return Verdict::allow();
    }
    let name = req.object_name();
    if let Some(e) = &facts.error {
        return Verdict::internal(format!(
            "cannot check the namespace of Project \"{name}\": {e}"
        ));
    }
    let Some(ns) = &facts.namespace else {
        return Verdict::allow();
    };
    let labelled = ns
        .pointer("/metadata/labels")
        .and_then(|l| l.get(promote_api::keys::PROJECT_LABEL))
        .and_then(Value::as_str)
        == Some("true");
    if !labelled {
        return Verdict::conflict(format!(
            "failed to initialize Project \"{name}\" because namespace \"{name}\" already exists and is not labeled as a Project namespace; hint: label it with kubectl label namespace {name} kargo.akuity.io/project=true, or choose another name"
        ));
    }
    if ns.pointer("/metadata/deletionTimestamp").is_some() {
        return Verdict::conflict(format!(
            "failed to initialize Project \"{name}\" because namespace \"{name}\" is still being terminated; please try again after the namespace has been fully deleted"
        ));
    }
    Verdict::allow()
}

/// The side effect of an admitted CREATE: the namespace, when it does not exist yet.
pub(super) async fn effect<C: Cluster>(
    req: &Request,
    facts: &Facts,
    cluster: &C,
) -> Result<(), String> {
    if req.operation != Operation::Create || req.dry_run || facts.namespace.is_some() {
        return Ok(());
    }
    cluster
        .create_project_namespace(req.object_name())
        .await
        .map_err(|e| {
            format!(
                "cannot create the namespace of Project \"{}\": {e}",
                req.object_name()
            )
        })
}
