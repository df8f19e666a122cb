//! `Warehouse`: where artifacts come from. Subscriptions stay open JSON (Kargo stores them as raw
//! JSON too) and are parsed on demand, so unknown subscription types survive untouched.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, any_json, any_json_list, is_zero_i64};

/// A Warehouse subscribes to Git repositories, image repositories and Helm charts and produces
/// Freight from what it finds.
// kube-derive takes one `printcolumn(...)` per column; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kargo.akuity.io",
    version = "v1alpha1",
    kind = "Warehouse",
    doc = "A Warehouse subscribes to Git repositories, container images and Helm charts and produces Freight from what it finds.",
    namespaced,
    status = "WarehouseStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(name = "Shard", type_ = "string", json_path = ".spec.shard"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct WarehouseSpec {
    /// Shard is the name of the shard this Warehouse belongs to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub shard: String,
    /// Interval between discoveries (Go duration, default `5m0s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "5m0s"), regex(pattern = r"^([0-9]+(\.[0-9]+)?(s|m|h))+$"))]
    pub interval: Option<String>,
    /// FreightCreationPolicy: `Automatic` (default) or `Manual`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Automatic", "enum" = ["Automatic", "Manual"]))]
    pub freight_creation_policy: Option<String>,
    /// Subscriptions: each entry has exactly one of `git`, `image`, `chart` (or a generic
    /// `subscription`) plus an optional `name`.
    #[serde(default)]
    #[schemars(schema_with = "any_json_list")]
    pub subscriptions: Vec<serde_json::Value>,
    /// FreightCreationCriteria filters which discovered artifacts become Freight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freight_creation_criteria: Option<FreightCreationCriteria>,
}

/// Criteria for automatic Freight creation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FreightCreationCriteria {
    /// Expression that must evaluate to true for Freight to be created.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub expression: String,
}

/// The observed state of a Warehouse.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WarehouseStatus {
    /// Conditions of the Warehouse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// LastHandledRefresh is the last refresh token handled.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_handled_refresh: String,
    /// ObservedGeneration is the generation last reconciled.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub observed_generation: i64,
    /// LastFreightID is the name of the last Freight produced.
    #[serde(
        rename = "lastFreightID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub last_freight_id: String,
    /// DiscoveredArtifacts holds the artifacts found by the last discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_json")]
    pub discovered_artifacts: Option<serde_json::Value>,
}

/// A parsed Warehouse subscription.
#[derive(Clone, Debug, PartialEq)]
pub enum Subscription {
    /// A Git repository.
    Git(GitSubscription),
    /// A container image repository.
    Image(ImageSubscription),
    /// A Helm chart.
    Chart(ChartSubscription),
    /// A generic subscription (`subscriptionType`, `name`, `config`).
    Generic(serde_json::Value),
    /// Anything else: kept as is.
    Unknown(serde_json::Value),
}

/// A Git repository subscription (the fields promote reads; the rest stays in the raw JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitSubscription {
    /// URL of the repository.
    #[serde(rename = "repoURL", default)]
    pub repo_url: String,
    /// Branch to follow.
    #[serde(default)]
    pub branch: String,
    /// How commits are selected.
    #[serde(default)]
    pub commit_selection_strategy: String,
}

/// An image repository subscription.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSubscription {
    /// URL of the image repository.
    #[serde(rename = "repoURL", default)]
    pub repo_url: String,
    /// How images are selected.
    #[serde(default)]
    pub image_selection_strategy: String,
}

/// A Helm chart subscription.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartSubscription {
    /// URL of the chart repository.
    #[serde(rename = "repoURL", default)]
    pub repo_url: String,
    /// Name of the chart (HTTP repositories).
    #[serde(default)]
    pub name: String,
}

impl Subscription {
    /// Parse one raw subscription entry. Malformed known types become `Unknown` rather than
    /// failing: validation reports them with a field path.
    pub fn parse(raw: &serde_json::Value) -> Self {
        let field = |key: &str| raw.get(key).cloned();
        if let Some(v) = field("git").and_then(|v| serde_json::from_value(v).ok()) {
            return Self::Git(v);
        }
        if let Some(v) = field("image").and_then(|v| serde_json::from_value(v).ok()) {
            return Self::Image(v);
        }
        if let Some(v) = field("chart").and_then(|v| serde_json::from_value(v).ok()) {
            return Self::Chart(v);
        }
        if let Some(v) = field("subscription") {
            return Self::Generic(v);
        }
        Self::Unknown(raw.clone())
    }
}

impl Warehouse {
    /// The parsed subscriptions, in order.
    pub fn parsed_subscriptions(&self) -> Vec<Subscription> {
        self.spec
            .subscriptions
            .iter()
            .map(Subscription::parse)
            .collect()
    }
}
