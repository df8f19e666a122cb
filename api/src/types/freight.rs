//! `Freight`: an immutable set of artifact versions. Unlike the other kinds it has no `spec`: its
//! fields are top-level (Kargo's layout), so it implements `kube::Resource` by hand instead of
//! through the `CustomResource` derive.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::NamespaceResourceScope;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    ArtifactReference, Chart, FreightOrigin, GitCommit, Image, ObjectMeta, Time, any_json_map,
    default_api_version, object_schema,
};

fn default_kind() -> String {
    "Freight".to_owned()
}

/// Freight is an immutable set of artifact versions (commits, images, charts) that moves through
/// Stages together. Its name is the SHA-1 content hash of its origin and artifacts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Freight {
    /// APIVersion defines the versioned schema of this representation of an object.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Kind is a string value representing the REST resource this object represents.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Standard object metadata.
    #[schemars(schema_with = "object_schema")]
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Alias is a human-friendly alias for this Freight, mirrored in the `kargo.akuity.io/alias`
    /// label. It must be unique within the project.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alias: String,
    /// DiscoveredAt is when the Warehouse discovered the artifacts of this Freight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovered_at: Option<Time>,
    /// Origin describes the kind of Freight in terms of its origin (its Warehouse).
    #[serde(default)]
    pub origin: FreightOrigin,
    /// Commits describes specific Git repository commits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commits: Vec<GitCommit>,
    /// Images describes specific versions of specific container images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
    /// Charts describes specific versions of specific Helm charts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<Chart>,
    /// Artifacts describes versions of artifacts found by generic subscriptions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<ArtifactReference>,
    /// Status describes the current state of this Freight.
    #[serde(default, skip_serializing_if = "FreightStatus::is_empty")]
    pub status: FreightStatus,
}

impl kube::Resource for Freight {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Freight".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        crate::GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        crate::VERSION.into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "freights".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl Freight {
    /// A Freight with the given origin and no artifacts yet.
    pub fn new(namespace: &str, origin: FreightOrigin) -> Self {
        Self {
            api_version: default_api_version(),
            kind: default_kind(),
            metadata: ObjectMeta {
                namespace: Some(namespace.to_owned()),
                ..Default::default()
            },
            origin,
            ..Default::default()
        }
    }

    /// The Freight's name (its content hash, once created).
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// The alias: the field, else the `kargo.akuity.io/alias` label.
    pub fn alias(&self) -> Option<&str> {
        if !self.alias.is_empty() {
            return Some(&self.alias);
        }
        self.metadata
            .labels
            .as_ref()?
            .get(crate::keys::ALIAS)
            .map(String::as_str)
    }

    /// Whether the Freight has been verified in `stage`.
    pub fn is_verified_in(&self, stage: &str) -> bool {
        self.status.verified_in.contains_key(stage)
    }

    /// Whether the Freight has been manually approved for `stage`.
    pub fn is_approved_for(&self, stage: &str) -> bool {
        self.status.approved_for.contains_key(stage)
    }

    /// Whether the Freight is currently in use by `stage`.
    pub fn is_currently_in(&self, stage: &str) -> bool {
        self.status.currently_in.contains_key(stage)
    }

    /// The reference to this Freight as Stages and Promotions record it.
    pub fn reference(&self) -> FreightReference {
        FreightReference {
            name: self.name().to_owned(),
            origin: self.origin.clone(),
            commits: self.commits.clone(),
            images: self.images.clone(),
            charts: self.charts.clone(),
            artifacts: self.artifacts.clone(),
        }
    }
}

/// The observed state of Freight.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FreightStatus {
    /// CurrentlyIn lists the Stages in which this Freight is currently in use.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub currently_in: BTreeMap<String, CurrentStage>,
    /// VerifiedIn lists the Stages in which this Freight has been verified.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub verified_in: BTreeMap<String, VerifiedStage>,
    /// ApprovedFor lists the Stages for which this Freight has been manually approved.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub approved_for: BTreeMap<String, ApprovedStage>,
    /// Metadata is free-form data attached to the Freight by promotion steps.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "any_json_map")]
    pub metadata: BTreeMap<String, serde_json::Value>,
}

impl FreightStatus {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// Since when Freight has been in a Stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CurrentStage {
    /// Since is when this Freight entered the Stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
}

/// When Freight was verified in a Stage and how long it soaked there.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedStage {
    /// VerifiedAt is when the Freight was verified in the Stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<Time>,
    /// LongestCompletedSoak is the longest completed period the Freight spent in the Stage
    /// (a Go duration such as `1h30m0s`).
    #[serde(
        rename = "longestSoak",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub longest_completed_soak: Option<String>,
}

/// When Freight was approved for a Stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovedStage {
    /// ApprovedAt is when the Freight was approved for the Stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<Time>,
}

/// A simplified copy of a Freight, as Stages and Promotions record it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FreightReference {
    /// Name of the Freight.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Origin of the Freight.
    #[serde(default)]
    pub origin: FreightOrigin,
    /// Commits of the Freight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commits: Vec<GitCommit>,
    /// Images of the Freight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
    /// Charts of the Freight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<Chart>,
    /// Artifacts of the Freight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<ArtifactReference>,
}

/// The Freight a Stage uses, one per origin.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FreightCollection {
    /// ID: SHA-1 of the sorted Freight names joined by `,`.
    #[serde(default)]
    pub id: String,
    /// Items maps `Warehouse/<name>` origins to Freight references.
    #[serde(rename = "items", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub freight: BTreeMap<String, FreightReference>,
    /// VerificationHistory is the stack of verifications of this collection, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verification_history: Vec<super::VerificationInfo>,
}

impl FreightCollection {
    /// Kargo's collection ID: SHA-1 hex of the sorted Freight names joined by `,`.
    pub fn compute_id(&self) -> String {
        use sha1::{Digest, Sha1};
        let mut names: Vec<&str> = self.freight.values().map(|f| f.name.as_str()).collect();
        names.sort_unstable();
        format!("{:x}", Sha1::digest(names.join(",").as_bytes()))
    }

    /// A collection holding one Freight, with its ID computed.
    pub fn single(freight: FreightReference) -> Self {
        let mut c = Self::default();
        c.freight.insert(freight.origin.to_string(), freight);
        c.id = c.compute_id();
        c
    }
}
