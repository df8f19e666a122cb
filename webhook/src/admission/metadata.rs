//! `status.metadata` of Stages and Freight (SECURITY.md): what `stageMetadata()` and
//! `freightMetadata()` read in later promotions, written by the `set-metadata` step. A status
//! write that changes it is admitted only while its writer runs a Promotion of the project whose
//! steps (derived from its Stage's template when it was created) hold a `set-metadata` update of
//! this object: its kind and name as written, or given by an expression, which only the running
//! step can evaluate. Any other change of `status.metadata` is refused.

use serde_json::Value;

use super::Request;
use crate::cluster::Cluster;

/// Whether the write changes `status.metadata`.
pub(super) fn changed(req: &Request) -> bool {
    let meta = |o: Option<&Value>| o.and_then(|o| o.pointer("/status/metadata")).cloned();
    let empty = |v: Option<Value>| v.filter(|m| m.as_object().is_none_or(|m| !m.is_empty()));
    empty(meta(req.object.as_ref())) != empty(meta(req.old_object.as_ref()))
}

/// Whether a step config's `updates` name the object (`kind`, `name`).
fn names(config: Option<&Value>, kind: &str, name: &str) -> bool {
    config
        .and_then(|c| c.get("updates"))
        .and_then(Value::as_array)
        .is_some_and(|updates| {
            updates.iter().any(|u| {
                let field = |k: &str| u.get(k).and_then(Value::as_str).unwrap_or_default();
                (field("kind") == kind || promote_api::step_config::has_expression(field("kind")))
                    && (field("name") == name
                        || promote_api::step_config::has_expression(field("name")))
            })
        })
}

/// `Ok(promotion)`: the running Promotion whose `set-metadata` step accounts for the write;
/// `Err(why)`: none does.
pub(super) async fn writer<C: Cluster>(
    req: &Request,
    cluster: &C,
    kind: &str,
) -> Result<Result<String, String>, String> {
    let (ns, name) = (req.namespace.as_str(), req.object_name());
    let writer = req.user_info.username.as_str();
    let accounts = |p: &&std::sync::Arc<promote_api::types::Promotion>| {
        !p.phase().is_terminal()
            && promote_api::trust::runner(p) == Some(writer)
            && p.spec
                .steps
                .iter()
                .any(|s| s.uses == "set-metadata" && names(s.config.as_ref(), kind, name))
    };
    let cached = cluster.promotions(ns).await?;
    let mut found = cached
        .iter()
        .find(accounts)
        .and_then(|p| p.metadata.name.clone());
    if found.is_none() {
        // The runner's claim may be newer than the watch cache: ask the API server.
        let fresh = cluster.fresh_promotions(ns).await?;
        found = fresh
            .iter()
            .find(accounts)
            .and_then(|p| p.metadata.name.clone());
    }
    Ok(match found {
        Some(p) => Ok(p),
        None => Err(format!(
            "no running Promotion of user \"{writer}\" in namespace \"{ns}\" has a set-metadata step for {kind} \"{name}\""
        )),
    })
}

/// The refusal of a metadata change that no running `set-metadata` step accounts for.
pub(super) fn refusal(req: &Request, kind: &str, why: &str) -> super::Verdict {
    let user = super::user_label(&req.user_info);
    super::Verdict::forbidden(format!(
        "{user} may not change status.metadata of {kind} \"{}\" in namespace \"{}\": it is written only by a set-metadata step of a Promotion its writer runs, and {why}; hint: add a set-metadata step to the Stage's promotion template and promote",
        req.object_name(),
        req.namespace
    ))
}
