//! `Project`, `ProjectConfig` and `ClusterPromotionTask`, as in Kargo v1.11.
//!
//! A Project is its namespace: creating one creates the namespace of the same name, labelled
//! `kargo.akuity.io/project: "true"` (promote's webhook does it, where Kargo's controller and
//! webhook do). Like Freight it has no `spec`, so its CRD is built by hand (`crd.rs`). The nested
//! parts promote does not read yet (webhook receivers, deep links, rollbacks, stats) are kept as
//! open JSON, so nothing a Kargo manifest says is pruned.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    Condition, ExpressionVariable, ObjectMeta, PromotionStep, any_json, any_json_list,
    default_api_version, object_schema,
};

fn default_kind() -> String {
    "Project".to_owned()
}

/// A Project: a namespace for Kargo objects, and who administers it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    /// APIVersion is `kargo.akuity.io/v1alpha1`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Kind is `Project`.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Standard object metadata; the name is the project's namespace.
    #[schemars(schema_with = "object_schema")]
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Status describes the Project's current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ProjectStatus>,
}

/// The observed state of a Project.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProjectStatus {
    /// Conditions of the Project.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Stats of the project's Warehouses and Stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_json")]
    pub stats: Option<serde_json::Value>,
}

/// A promotion policy of a ProjectConfig: which Stages auto-promote.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionPolicy {
    /// Stage names the policy applies to (deprecated in Kargo in favour of stageSelector).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stage: String,
    /// StageSelector selects the Stages (name, with `regex:`/`glob:` forms, or labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_json")]
    pub stage_selector: Option<serde_json::Value>,
    /// AutoPromotionEnabled lets new Freight be promoted into the selected Stages automatically.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_promotion_enabled: bool,
    /// AutoRollback configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_json")]
    pub auto_rollback: Option<serde_json::Value>,
}

/// A ProjectConfig holds a project's settings; its name is the project's.
// kube-derive takes one `printcolumn(...)` per column; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kargo.akuity.io",
    version = "v1alpha1",
    kind = "ProjectConfig",
    doc = "A ProjectConfig holds a project's settings: promotion policies, webhook receivers, links.",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    status = "ProjectConfigStatus",
    shortname = "projectconfigs",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ProjectConfigSpec {
    /// PromotionPolicies of the project's Stages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promotion_policies: Vec<PromotionPolicy>,
    /// WebhookReceivers that refresh Warehouses when a registry or a Git host calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "any_json_list")]
    pub webhook_receivers: Vec<serde_json::Value>,
    /// FreightLinks shown for the project's Freight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "any_json_list")]
    pub freight_links: Vec<serde_json::Value>,
    /// StageLinks shown for the project's Stages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "any_json_list")]
    pub stage_links: Vec<serde_json::Value>,
}

/// The observed state of a ProjectConfig.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectConfigStatus {
    /// Conditions of the ProjectConfig.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// ObservedGeneration is the last generation the status describes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub observed_generation: i64,
    /// LastHandledRefresh is the last refresh token handled.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_handled_refresh: String,
    /// WebhookReceivers' details (paths, URLs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "any_json_list")]
    pub webhook_receivers: Vec<serde_json::Value>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// A ClusterPromotionTask is a PromotionTask every project can use.
// kube-derive takes one `printcolumn(...)` per column; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kargo.akuity.io",
    version = "v1alpha1",
    kind = "ClusterPromotionTask",
    doc = "A ClusterPromotionTask is a reusable list of promotion steps every project can reference.",
    derive = "PartialEq",
    derive = "Default",
    shortname = "clusterpromotasks",
    shortname = "clusterpromotask",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct ClusterPromotionTaskSpec {
    /// Vars are the task's inputs with defaults; an empty value is a required input.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<ExpressionVariable>,
    /// Steps of the task (no nested tasks).
    #[serde(default)]
    pub steps: Vec<PromotionStep>,
}

impl From<ClusterPromotionTask> for super::PromotionTask {
    /// A ClusterPromotionTask as the PromotionTask it stands for: same name, no namespace (that
    /// is how step inflation tells them apart).
    fn from(t: ClusterPromotionTask) -> Self {
        let mut metadata = t.metadata;
        metadata.namespace = None;
        super::PromotionTask {
            metadata,
            spec: super::PromotionTaskSpec {
                vars: t.spec.vars,
                steps: t.spec.steps,
            },
        }
    }
}
