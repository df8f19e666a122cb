//! Kargo's `kargo.akuity.io/v1alpha1` kinds, field for field as in Kargo v1.11
//! (`api/v1alpha1/*_types.go` upstream). JSON names, `omitempty` behaviour and open JSON parts
//! follow Kargo so that existing manifests load, and re-serialize, unchanged.
//!
//! Open parts (step `config`, `status.state`, Freight `metadata`, Warehouse subscriptions) are kept
//! as `serde_json::Value` and marked `x-kubernetes-preserve-unknown-fields` in the CRDs.
//!
//! Zero values (`false`, `0`, `""`, empty lists) are omitted on output exactly like Go's
//! `omitempty` in Kargo's types, so an explicit `continueOnError: false` written by hand does not
//! survive a trip through these types (it does not through Kargo's either). Writers therefore send
//! patches, never whole objects rebuilt from these types.

mod freight;
pub mod legacy;
mod project;
mod promotion;
mod promotion_task;
mod stage;
mod warehouse;

pub use freight::*;
pub use project::*;
pub use promotion::*;
pub use promotion_task::*;
pub use stage::*;
pub use warehouse::*;

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Schema of `metadata` in the spec-less kinds (Freight, Project): an object the API server
/// fills in, as kube-derive writes it for the others.
pub(crate) fn object_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object" })
}

/// `apiVersion` of every Kargo kind, for the spec-less kinds' serde defaults.
pub(crate) fn default_api_version() -> String {
    crate::API_VERSION.to_owned()
}

/// Schema for an open JSON value: anything goes, and the API server keeps it whole.
pub(crate) fn any_json(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// Schema for a map of open JSON values.
pub(crate) fn any_json_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": { "x-kubernetes-preserve-unknown-fields": true }
    })
}

/// Schema for a list of open JSON objects.
pub(crate) fn any_json_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
    })
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

pub(crate) fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

pub(crate) fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// Where a piece of Freight came from. Kargo knows one kind: `Warehouse`.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub struct FreightOrigin {
    /// Kind of the origin. The only supported kind is `Warehouse`.
    #[schemars(extend("enum" = ["Warehouse"]))]
    pub kind: String,
    /// Name of the origin (the Warehouse's name).
    pub name: String,
}

impl FreightOrigin {
    /// The `Warehouse/<name>` origin.
    pub fn warehouse(name: impl Into<String>) -> Self {
        Self {
            kind: FREIGHT_ORIGIN_WAREHOUSE.to_owned(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for FreightOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// The one origin kind Kargo supports.
pub const FREIGHT_ORIGIN_WAREHOUSE: &str = "Warehouse";

/// A specific commit of a Git repository.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitCommit {
    /// URL of the Git repository.
    #[serde(rename = "repoURL", default, skip_serializing_if = "String::is_empty")]
    pub repo_url: String,
    /// ID (SHA) of the commit.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Branch on which the commit was found.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub branch: String,
    /// Tag that resolved to this commit.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    /// Message of the commit (first line).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Author of the commit.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// Committer of the commit.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub committer: String,
}

/// A specific version of a container image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// URL of the image repository.
    #[serde(rename = "repoURL", default, skip_serializing_if = "String::is_empty")]
    pub repo_url: String,
    /// Tag of the image.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    /// Digest of the image.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
    /// Annotations of the image manifest.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// A specific version of a Helm chart.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Chart {
    /// URL of the chart repository (`https://` or `oci://`).
    #[serde(rename = "repoURL", default, skip_serializing_if = "String::is_empty")]
    pub repo_url: String,
    /// Name of the chart (HTTP repositories only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Version of the chart.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
}

/// A version of an artifact found by a generic subscription.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactReference {
    /// Type of the artifact.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub artifact_type: String,
    /// Name of the subscription that found it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subscription_name: String,
    /// Version of the artifact.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Free-form metadata of the artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_json")]
    pub metadata: Option<serde_json::Value>,
}

/// A named variable usable in expressions (`${{ vars.name }}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExpressionVariable {
    /// Name of the variable.
    #[schemars(regex(pattern = r"^[a-zA-Z_]\w*$"))]
    pub name: String,
    /// Value of the variable; may itself contain expressions.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
}
