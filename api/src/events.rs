//! Kubernetes Events for promotions, as Kargo records them (`pkg/event`): on the Promotion, with
//! Kargo's reasons (`PromotionCreated`, `PromotionSucceeded`, `PromotionFailed`,
//! `PromotionErrored`, `PromotionAborted`), its messages and its `event.kargo.akuity.io/`
//! annotations (project, actor, Promotion, Stage, Freight and its artifacts as JSON, the synced
//! Applications), so `kubectl describe promotion` and `kubectl get events` show what Kargo's
//! would, and Kargo-aware tools read the same annotations.

use serde_json::{Map, Value, json};

use crate::types::Freight;

/// Kargo's annotation prefix of event data.
pub const PREFIX: &str = "event.kargo.akuity.io/";

/// What a promotion event says.
pub struct PromotionEvent<'a> {
    /// Kargo's reason: `PromotionCreated`, `PromotionSucceeded`, ...
    pub reason: &'a str,
    /// The event's message.
    pub message: &'a str,
    /// The project (namespace).
    pub project: &'a str,
    /// The Promotion's name, uid and creation time (RFC 3339).
    pub promotion: &'a str,
    pub uid: &'a str,
    pub created: &'a str,
    pub stage: &'a str,
    pub freight: &'a Freight,
    /// Who did it, Kargo's form (`kubernetes:<user>`).
    pub actor: &'a str,
    /// The Applications the promotion synced: (namespace, name).
    pub applications: &'a [(String, String)],
    /// For a Succeeded promotion: whether the Stage still asks for verification.
    pub verification_pending: Option<bool>,
    /// Now (RFC 3339), and a suffix making the event's name unique.
    pub now: &'a str,
    pub suffix: &'a str,
}

/// The core/v1 Event object.
pub fn promotion_event(e: &PromotionEvent<'_>) -> Value {
    let mut a = Map::new();
    let mut put = |k: &str, v: String| {
        a.insert(format!("{PREFIX}{k}"), Value::String(v));
    };
    put("project", e.project.to_owned());
    put("actor", e.actor.to_owned());
    put("promotion-name", e.promotion.to_owned());
    put("promotion-create-time", e.created.to_owned());
    put("stage-name", e.stage.to_owned());
    put("freight-name", e.freight.name().to_owned());
    if let Some(t) = e.freight.metadata.creation_timestamp.as_ref() {
        put("freight-create-time", t.0.to_string());
    }
    if e.freight.origin.kind == "Warehouse" {
        put("freight-warehouse-name", e.freight.origin.name.clone());
    }
    if let Some(alias) = e.freight.alias() {
        put("freight-alias", alias.to_owned());
    }
    let json_of = |v: serde_json::Result<String>| v.unwrap_or_default();
    if !e.freight.commits.is_empty() {
        put(
            "freight-commits",
            json_of(serde_json::to_string(&e.freight.commits)),
        );
    }
    if !e.freight.images.is_empty() {
        put(
            "freight-images",
            json_of(serde_json::to_string(&e.freight.images)),
        );
    }
    if !e.freight.charts.is_empty() {
        put(
            "freight-charts",
            json_of(serde_json::to_string(&e.freight.charts)),
        );
    }
    if !e.applications.is_empty() {
        let apps: Vec<Value> = e
            .applications
            .iter()
            .map(|(ns, name)| json!({ "Namespace": ns, "Name": name }))
            .collect();
        put("applications", Value::Array(apps).to_string());
    }
    if let Some(p) = e.verification_pending {
        put("verification-pending", p.to_string());
    }
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{}.{}", e.promotion, e.suffix),
            "namespace": e.project,
            "annotations": a,
        },
        "involvedObject": {
            "apiVersion": crate::API_VERSION,
            "kind": "Promotion",
            "namespace": e.project,
            "name": e.promotion,
            "uid": e.uid,
        },
        "reason": e.reason,
        "message": e.message,
        "type": "Normal",
        "source": { "component": "kubectl-promote" },
        "reportingComponent": "kubectl-promote",
        "reportingInstance": "kubectl-promote",
        "firstTimestamp": e.now,
        "lastTimestamp": e.now,
        "count": 1,
    })
}
