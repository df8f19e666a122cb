//! The trust model's shared rules (SECURITY.md): what the plugin records so the webhook can check
//! it, and how both read it. Without a controller the plugin runs as the user, so everything the
//! webhook later trusts is either written by Argo CD or checked by the webhook when it is written;
//! these helpers are the parts both sides must agree on byte for byte.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::types::{Promotion, PromotionPhase};

/// Steps that change something outside the promoter's machine. Once recorded as `Succeeded` they
/// are never run again on resume, and their recorded outputs are never rewritten.
pub const REMOTE_STEPS: &[&str] = &[
    "git-push",
    "github-push",
    "git-open-pr",
    "git-merge-pr",
    "argocd-update",
    "oci-push",
];

/// Key in `Promotion.status.state` under which the runner records, before it writes an Argo CD
/// Application, the sources and revisions that write will set (`SyncPlan` by `<namespace>/<name>`).
/// The webhook admits a promotion write only when it matches this plan, so the revisions come from
/// the Promotion's runner-written state, never from the text of the write. Not a valid step alias,
/// so it cannot collide with step outputs.
pub const SYNC_PLAN: &str = "promote.dev/argocd-update";

/// The RBAC verb on `stages` (group `kargo.akuity.io`) that lets a user add or remove the Stage in
/// an Application's `kargo.akuity.io/authorized-stage` annotation.
pub const AUTHORIZE_VERB: &str = "authorize";

/// What one promotion write to an Application sets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncPlan {
    /// The Application's sources after the write (`spec.source` as a one-element list for a
    /// single-source Application).
    #[serde(default)]
    pub sources: Vec<Value>,
    /// The desired revisions, index-aligned with `sources` (`""`: none desired).
    #[serde(default)]
    pub revisions: Vec<String>,
}

/// `<namespace>/<name>`, the key of an Application in a [`SYNC_PLAN`] map.
pub fn app_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// The plan Promotion `p` recorded for Application `namespace/name`, if any.
pub fn sync_plan(p: &Promotion, namespace: &str, name: &str) -> Option<SyncPlan> {
    let plan = p
        .status
        .as_ref()?
        .state
        .as_ref()?
        .get(SYNC_PLAN)?
        .get(app_key(namespace, name))?;
    // Read in place: no copy of the recorded sources beyond the plan itself.
    let sources = plan.get("sources")?.as_array()?.clone();
    let revisions = plan
        .get("revisions")?
        .as_array()?
        .iter()
        .map(|r| r.as_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()?;
    Some(SyncPlan { sources, revisions })
}

/// The user part of a lease holder (`user@host/pid`): everything before the last `@` (user names
/// may contain `@`, host names cannot).
pub fn holder_user(holder: &str) -> &str {
    holder.rsplit_once('@').map(|(u, _)| u).unwrap_or(holder)
}

/// Who runs Promotion `p`: the user of its lease holder, else its creator.
pub fn runner(p: &Promotion) -> Option<&str> {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(crate::keys::LEASE_HOLDER))
        .map(|h| holder_user(h))
        .filter(|u| !u.is_empty())
        .or_else(|| p.create_actor())
}

/// Whether `p` ended as `Succeeded`.
pub fn succeeded(p: &Promotion) -> bool {
    p.phase() == PromotionPhase::Succeeded
}

/// Replace ASCII control characters (other than newline and tab) and Unicode bidirectional
/// controls with `?`, so text taken from Freight or other user-written objects cannot forge
/// lines or hide text in commit messages and terminals.
pub fn sanitize(text: &str) -> std::borrow::Cow<'_, str> {
    fn bad(c: char) -> bool {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
    }
    if text.chars().any(bad) {
        std::borrow::Cow::Owned(text.chars().map(|c| if bad(c) { '?' } else { c }).collect())
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn holder_user_takes_everything_before_the_host() {
        assert_eq!(holder_user("alice@laptop/42"), "alice");
        assert_eq!(
            holder_user("alice@example.com@laptop/42"),
            "alice@example.com"
        );
        assert_eq!(holder_user("nohost"), "nohost");
    }

    #[test]
    fn plans_are_read_by_application() {
        let p: Promotion = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "proj",
                "annotations": {"kargo.akuity.io/create-actor": "kubernetes:alice"}},
            "spec": {"stage": "test", "freight": "f"},
            "status": {"state": {SYNC_PLAN: {"argocd/app": {
                "sources": [{"repoURL": "r", "targetRevision": "abc"}], "revisions": ["abc"]}}}}
        }))
        .unwrap();
        let plan = sync_plan(&p, "argocd", "app").unwrap();
        assert_eq!(plan.revisions, vec!["abc".to_owned()]);
        assert!(sync_plan(&p, "argocd", "other").is_none());
        assert_eq!(runner(&p), Some("alice"));
    }

    #[test]
    fn control_characters_never_pass() {
        assert_eq!(sanitize("v1.2\x1b[31m"), "v1.2?[31m");
        assert_eq!(sanitize("a\u{202E}b"), "a?b");
        assert_eq!(sanitize("plain\nline"), "plain\nline");
    }
}
