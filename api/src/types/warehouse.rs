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
    pub discovered_artifacts: Option<DiscoveredArtifacts>,
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

/// A Git repository subscription: every field of Kargo v1.11's `GitSubscription`. Defaults
/// (Kargo's subscription schema, `pkg/subscription/schemas/git.json`) are applied by the methods,
/// so an object read back is the object written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitSubscription {
    /// URL of the repository.
    #[serde(rename = "repoURL", default)]
    pub repo_url: String,
    /// Branch to follow (NewestFromBranch; default: the remote's `main` or `master`, by HEAD).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub branch: String,
    /// `NewestFromBranch` (default), `SemVer`, `Lexical` or `NewestTag`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub commit_selection_strategy: String,
    /// Only tags that parse as strict semantic versions count (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_semvers: Option<bool>,
    /// Semver constraint for the SemVer strategy.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub semver_constraint: String,
    /// Deprecated; refused as Kargo v1.11 refuses it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub allow_tags: String,
    /// Regular expressions a tag must match (any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_tags_regexes: Vec<String>,
    /// Deprecated; refused as Kargo v1.11 refuses it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_tags: Vec<String>,
    /// Regular expressions that exclude a tag.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_tags_regexes: Vec<String>,
    /// An expression selecting commits or tags.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub expression_filter: String,
    /// Skip TLS verification of the Git server.
    #[serde(
        rename = "insecureSkipTLSVerify",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub insecure_skip_tls_verify: bool,
    /// Fetch without blobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blobless: Option<bool>,
    /// Paths a commit must touch (base directories, `glob:`, `regex:`, `regexp:`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_paths: Vec<String>,
    /// Paths that do not count as a change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_paths: Vec<String>,
    /// How many commits to discover (1..100, default 20).
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub discovery_limit: i64,
    /// Ignore commits older than this (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// An image repository subscription: every field of Kargo v1.11's `ImageSubscription`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSubscription {
    /// The image repository (`registry/path`, no tag).
    #[serde(rename = "repoURL", default)]
    pub repo_url: String,
    /// `SemVer` (default), `Lexical`, `NewestBuild` or `Digest`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_selection_strategy: String,
    /// Only tags that parse as strict semantic versions count (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_semvers: Option<bool>,
    /// Semver constraint (SemVer), or the mutable tag to follow (Digest).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub constraint: String,
    /// Deprecated; refused as Kargo v1.11 refuses it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub allow_tags: String,
    /// Regular expressions a tag must match (any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_tags_regexes: Vec<String>,
    /// Deprecated; refused as Kargo v1.11 refuses it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_tags: Vec<String>,
    /// Regular expressions that exclude a tag.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_tags_regexes: Vec<String>,
    /// `os/arch[/variant]` an image must be built for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub platform: String,
    /// Skip TLS verification of the registry.
    #[serde(
        rename = "insecureSkipTLSVerify",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub insecure_skip_tls_verify: bool,
    /// How many images to discover (1..100, default 20).
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub discovery_limit: i64,
    /// Cache image metadata by tag (tags are immutable).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cache_by_tag: bool,
}

/// A Helm chart subscription: every field of Kargo v1.11's `ChartSubscription`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartSubscription {
    /// `https://` repository (with `name`) or `oci://registry/path/chart`.
    #[serde(rename = "repoURL", default)]
    pub repo_url: String,
    /// Name of the chart (HTTP repositories).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Semver constraint the versions must satisfy.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub semver_constraint: String,
    /// How many versions to discover (1..100, default 20).
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub discovery_limit: i64,
    /// Skip TLS verification of the repository.
    #[serde(
        rename = "insecureSkipTLSVerify",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub insecure_skip_tls_verify: bool,
}

/// Kargo's default discovery limit, and its bounds.
pub const DEFAULT_DISCOVERY_LIMIT: usize = 20;

fn limit(v: i64) -> usize {
    match v {
        1..=100 => v as usize,
        _ => DEFAULT_DISCOVERY_LIMIT,
    }
}

impl GitSubscription {
    /// The strategy, defaulted.
    pub fn strategy(&self) -> &str {
        if self.commit_selection_strategy.is_empty() {
            "NewestFromBranch"
        } else {
            &self.commit_selection_strategy
        }
    }
    /// `strictSemvers`, defaulted.
    pub fn strict(&self) -> bool {
        self.strict_semvers.unwrap_or(true)
    }
    /// `discoveryLimit`, defaulted.
    pub fn limit(&self) -> usize {
        limit(self.discovery_limit)
    }
}

impl ImageSubscription {
    /// The strategy, defaulted.
    pub fn strategy(&self) -> &str {
        if self.image_selection_strategy.is_empty() {
            "SemVer"
        } else {
            &self.image_selection_strategy
        }
    }
    /// `strictSemvers`, defaulted.
    pub fn strict(&self) -> bool {
        self.strict_semvers.unwrap_or(true)
    }
    /// `discoveryLimit`, defaulted.
    pub fn limit(&self) -> usize {
        limit(self.discovery_limit)
    }
}

impl ChartSubscription {
    /// `discoveryLimit`, defaulted.
    pub fn limit(&self) -> usize {
        limit(self.discovery_limit)
    }
}

/// What the last discovery found (`status.discoveredArtifacts`), newest first in each list.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredArtifacts {
    /// When the discovery ran.
    #[serde(default)]
    pub discovered_at: String,
    /// One result per Git subscription.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub git: Vec<GitDiscoveryResult>,
    /// One result per image subscription.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageDiscoveryResult>,
    /// One result per chart subscription.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<ChartDiscoveryResult>,
    /// Generic subscriptions' results (kept as found).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<serde_json::Value>,
}

/// Commits found in one repository.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GitDiscoveryResult {
    /// The repository.
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    /// Newest first.
    #[serde(default)]
    pub commits: Vec<DiscoveredCommit>,
}

/// One discovered commit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredCommit {
    /// Commit ID.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Branch it was found on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub branch: String,
    /// Tag it was found by.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
    /// Subject, shortened to 80 characters as Kargo does.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// `Name <email>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// `Name <email>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub committer: String,
    /// Commit (or tag) date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator_date: Option<String>,
}

/// Images found in one repository.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageDiscoveryResult {
    /// The repository, as subscribed.
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    /// The platform constraint, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub platform: String,
    /// Newest first.
    #[serde(default)]
    pub references: Vec<DiscoveredImageReference>,
}

/// One discovered image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredImageReference {
    /// Tag.
    pub tag: String,
    /// Digest of the manifest (or index) the tag names.
    pub digest: String,
    /// Annotations of the manifest (and of the platform's entry).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
    /// Build time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// Versions found for one chart.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartDiscoveryResult {
    /// The repository.
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    /// The chart (HTTP repositories).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The constraint used.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub semver_constraint: String,
    /// Newest first.
    #[serde(default)]
    pub versions: Vec<String>,
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
