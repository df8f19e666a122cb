//! `Stage`: an environment, which Freight it accepts and how to promote into it.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::legacy::{PromotionMechanisms, Subscriptions};
use super::{
    Condition, ExpressionVariable, FreightCollection, FreightOrigin, FreightReference,
    PromotionStatus, PromotionStep, Time, any_json, any_json_map, is_false, is_zero_i64,
};

/// A Stage is an environment: the Freight it requests and the steps that promote Freight into it.
// kube-derive takes one `printcolumn(...)` per column; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kargo.akuity.io",
    version = "v1alpha1",
    kind = "Stage",
    doc = "A Stage is an environment: the Freight it requests (requestedFreight) and how Freight is promoted into it (promotionTemplate).",
    namespaced,
    status = "StageStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(name = "Shard", type_ = "string", json_path = ".spec.shard"),
    printcolumn(
        name = "Current Freight",
        type_ = "string",
        json_path = ".status.freightSummary"
    ),
    printcolumn(name = "Health", type_ = "string", json_path = ".status.health.status"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct StageSpec {
    /// Shard is the name of the shard this Stage belongs to (mirrored in the
    /// `kargo.akuity.io/shard` label).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub shard: String,
    /// Vars are variables usable in expressions anywhere in the Stage's promotion template.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<ExpressionVariable>,
    /// RequestedFreight lists the Freight this Stage needs, one entry per origin, and where that
    /// Freight may come from (directly from its Warehouse, or from upstream Stages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requested_freight: Vec<FreightRequest>,
    /// PromotionTemplate describes how to promote Freight into this Stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_template: Option<PromotionTemplate>,
    /// Verification describes how to verify that the Stage's current Freight is fit for promotion
    /// downstream (Argo Rollouts analysis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// Subscriptions is Kargo's legacy (pre-v0.6) way of saying where Freight comes from.
    /// Accepted and translated into `requestedFreight`; prefer `requestedFreight`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriptions: Option<Subscriptions>,
    /// PromotionMechanisms is Kargo's legacy (pre-v1.0) way of describing a promotion.
    /// Accepted and translated into promotion steps; prefer `promotionTemplate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_mechanisms: Option<PromotionMechanisms>,
}

/// A Stage's need for Freight from one origin.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FreightRequest {
    /// Origin the requested Freight must come from.
    pub origin: FreightOrigin,
    /// Sources the requested Freight may be obtained from.
    #[serde(default)]
    pub sources: FreightSources,
}

/// Where requested Freight may be obtained from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FreightSources {
    /// Direct: Freight may come straight from its origin Warehouse.
    #[serde(default, skip_serializing_if = "is_false")]
    pub direct: bool,
    /// Stages: upstream Stages Freight may come from once verified there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<String>,
    /// RequiredSoakTime: how long Freight must have been in an upstream Stage before it is
    /// available here (e.g. `1h30m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(s|m|h))+$"))]
    pub required_soak_time: Option<String>,
    /// AvailabilityStrategy: `All` upstream Stages must have verified the Freight, or `OneOf`
    /// (the default, also spelled as the empty string).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["All", "OneOf", ""]))]
    pub availability_strategy: String,
    /// AutoPromotionOptions tune auto-promotion (not performed by promote; kept for Kargo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_options: Option<AutoPromotionOptions>,
}

/// Auto-promotion options of a Freight request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoPromotionOptions {
    /// SelectionPolicy: `NewestFreight` (default) or `MatchUpstream`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["NewestFreight", "MatchUpstream"]))]
    pub selection_policy: String,
}

/// Template for the Promotions of a Stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PromotionTemplate {
    /// Spec of the Promotions created from this template.
    pub spec: PromotionTemplateSpec,
}

/// Steps and variables copied into each Promotion of a Stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PromotionTemplateSpec {
    /// Vars are variables usable in the steps' expressions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<ExpressionVariable>,
    /// Steps are the promotion steps, run in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<PromotionStep>,
}

/// How to verify a Stage's Freight (Argo Rollouts AnalysisTemplates).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// AnalysisTemplates to run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analysis_templates: Vec<AnalysisTemplateReference>,
    /// AnalysisRunMetadata: labels and annotations for the AnalysisRuns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_run_metadata: Option<AnalysisRunMetadata>,
    /// Args for the AnalysisTemplates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<AnalysisRunArgument>,
}

/// Reference to an AnalysisTemplate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AnalysisTemplateReference {
    /// Name of the template.
    pub name: String,
    /// Kind: `AnalysisTemplate` or `ClusterAnalysisTemplate`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["AnalysisTemplate", "ClusterAnalysisTemplate"]))]
    pub kind: String,
}

/// Labels and annotations for AnalysisRuns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AnalysisRunMetadata {
    /// Labels to set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations to set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An argument for an AnalysisTemplate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AnalysisRunArgument {
    /// Name of the argument.
    pub name: String,
    /// Value of the argument.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
}

/// The observed state of a Stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageStatus {
    /// Conditions (`Ready`, `Healthy`, `Promoting`, `Verified`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// LastHandledRefresh is the last refresh token handled.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_handled_refresh: String,
    /// FreightHistory: the Freight collections this Stage has used, newest first (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freight_history: Vec<FreightCollection>,
    /// FreightSummary: the current Freight's name, or `N/M Fulfilled` for multi-origin Stages.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub freight_summary: String,
    /// Health of the Stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// ObservedGeneration is the generation last reconciled.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub observed_generation: i64,
    /// CurrentPromotion is the Promotion running for this Stage, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_promotion: Option<PromotionReference>,
    /// LastPromotion is the most recently finished Promotion of this Stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_promotion: Option<PromotionReference>,
    /// AutoPromotionEnabled mirrors the project's auto-promotion policy for this Stage.
    #[serde(default, skip_serializing_if = "is_false")]
    pub auto_promotion_enabled: bool,
    /// Metadata is free-form data attached to the Stage by promotion steps.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "any_json_map")]
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// AutoPromotionHolds are auto-promotion holds per origin.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub auto_promotion_holds: BTreeMap<String, AutoPromotionHold>,
    /// EffectiveAutoPromotionHolds are the holds in effect.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub effective_auto_promotion_holds: BTreeMap<String, AutoPromotionHold>,
}

/// A hold on auto-promotion for one origin.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoPromotionHold {
    /// FreightName that caused the hold.
    pub freight_name: String,
    /// Origin held.
    pub origin: FreightOrigin,
    /// PromotionName that caused the hold.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub promotion_name: String,
    /// Actor that caused the hold.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub actor: String,
    /// CreatedAt is when the hold was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
}

/// Health of a Stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    /// Status: `Healthy`, `Unhealthy`, `Progressing`, `Unknown` or `NotApplicable`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// Issues found while assessing health.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issues: Vec<String>,
    /// Config of the health checks that produced this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_json")]
    pub config: Option<serde_json::Value>,
    /// Output of the health checks (e.g. Argo CD Application statuses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_json")]
    pub output: Option<serde_json::Value>,
}

/// A reference to a Promotion, as a Stage records it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionReference {
    /// Name of the Promotion.
    pub name: String,
    /// Freight being promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freight: Option<FreightReference>,
    /// Status of the Promotion (a copy, for the last Promotion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PromotionStatus>,
    /// FinishedAt is when the Promotion finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
}

/// One verification of a Freight collection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationInfo {
    /// ID of the verification.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Actor that requested it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub actor: String,
    /// StartTime of the verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// Phase of the verification (`Successful`, `Failed`, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    /// Message about the verification.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// AnalysisRun that performed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_run: Option<AnalysisRunReference>,
    /// FinishTime of the verification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,
}

/// Reference to an AnalysisRun.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AnalysisRunReference {
    /// Namespace of the run.
    pub namespace: String,
    /// Name of the run.
    pub name: String,
    /// Phase of the run.
    pub phase: String,
}

impl Stage {
    /// The Stage's namespace (its project).
    pub fn project(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or_default()
    }

    /// The Stage's name.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// The template steps (empty for a control-flow Stage).
    pub fn template_steps(&self) -> &[PromotionStep] {
        self.spec
            .promotion_template
            .as_ref()
            .map(|t| t.spec.steps.as_slice())
            .unwrap_or_default()
    }

    /// Whether a template step references a task of `kind` (`PromotionTask` or
    /// `ClusterPromotionTask`): what a reader of the Stage must list to inflate its steps.
    pub fn references_task_kind(&self, kind: &str) -> bool {
        self.template_steps().iter().any(|s| {
            s.task.as_ref().is_some_and(|t| {
                let k = if t.kind.is_empty() {
                    "PromotionTask"
                } else {
                    t.kind.as_str()
                };
                k == kind
            })
        })
    }

    /// Whether the Stage requests Freight from `origin`.
    pub fn requests_origin(&self, origin: &FreightOrigin) -> bool {
        self.spec
            .requested_freight
            .iter()
            .any(|r| &r.origin == origin)
    }
}
