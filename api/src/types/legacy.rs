//! Kargo's legacy Stage format (`spec.subscriptions` + `spec.promotionMechanisms`, Kargo v0.x):
//! its types, which a Stage carries; the crate's `legacy` module translates them into steps.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{FreightOrigin, is_false};

/// Legacy: where a Stage gets Freight from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscriptions {
    /// Warehouse to take Freight from directly.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub warehouse: String,
    /// UpstreamStages to take Freight from once verified there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstream_stages: Vec<StageSubscription>,
}

/// Legacy: an upstream Stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StageSubscription {
    /// Name of the upstream Stage.
    pub name: String,
}

/// Legacy: how to promote into a Stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionMechanisms {
    /// Origin the mechanisms apply to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<FreightOrigin>,
    /// GitRepoUpdates: Git repositories to update.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub git_repo_updates: Vec<GitRepoUpdate>,
    /// ArgoCDAppUpdates: Argo CD Applications to sync.
    #[serde(
        rename = "argoCDAppUpdates",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub argocd_app_updates: Vec<ArgoCDAppUpdate>,
}

/// Legacy: one Git repository update.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRepoUpdate {
    /// URL of the repository.
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    /// Origin of the Freight used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<FreightOrigin>,
    /// InsecureSkipTLSVerify disables TLS verification.
    #[serde(
        rename = "insecureSkipTLSVerify",
        default,
        skip_serializing_if = "is_false"
    )]
    pub insecure_skip_tls_verify: bool,
    /// ReadBranch to read from (default: writeBranch).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub read_branch: String,
    /// WriteBranch to commit to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub write_branch: String,
    /// PullRequest: open a pull request instead of pushing to writeBranch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequestMechanism>,
    /// Render: Kargo Render (not supported by promote; rejected at translation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::types::any_json")]
    pub render: Option<Value>,
    /// Kustomize image updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<KustomizeMechanism>,
    /// Helm image (and chart) updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmMechanism>,
}

/// Legacy: pull request options.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PullRequestMechanism {
    /// GitHub pull request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::types::any_json")]
    pub github: Option<Value>,
    /// GitLab merge request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::types::any_json")]
    pub gitlab: Option<Value>,
}

/// Legacy: Kustomize image updates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KustomizeMechanism {
    /// Images to set.
    #[serde(default)]
    pub images: Vec<KustomizeImageUpdate>,
    /// Origin of the images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<FreightOrigin>,
}

/// Legacy: one Kustomize image update.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KustomizeImageUpdate {
    /// Image repository.
    pub image: String,
    /// Origin of the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<FreightOrigin>,
    /// Path of the kustomization directory.
    pub path: String,
    /// UseDigest pins the digest instead of the tag.
    #[serde(default, skip_serializing_if = "is_false")]
    pub use_digest: bool,
}

/// Legacy: Helm updates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HelmMechanism {
    /// Images to set in values files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<HelmImageUpdate>,
    /// Chart dependencies to update (not supported by promote; rejected at translation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::types::any_json_list")]
    pub charts: Vec<Value>,
    /// Origin of the images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<FreightOrigin>,
}

/// Legacy: one Helm values image update.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmImageUpdate {
    /// Image repository.
    pub image: String,
    /// Origin of the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<FreightOrigin>,
    /// ValuesFilePath: the values file to edit.
    pub values_file_path: String,
    /// Key: dot-path of the value to set.
    pub key: String,
    /// Value: `ImageAndTag`, `Tag`, `ImageAndDigest` or `Digest`.
    #[schemars(extend("enum" = ["ImageAndTag", "Tag", "ImageAndDigest", "Digest"]))]
    pub value: String,
}

/// Legacy: one Argo CD Application to update.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArgoCDAppUpdate {
    /// Name of the Application.
    pub app_name: String,
    /// Namespace of the Application (default `argocd`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub app_namespace: String,
    /// Origin of the Freight used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<FreightOrigin>,
    /// SourceUpdates to apply to the Application's sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_updates: Vec<ArgoCDSourceUpdate>,
}

/// Legacy: one Application source update.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArgoCDSourceUpdate {
    /// RepoURL of the source.
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    /// Chart of the source.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub chart: String,
    /// Origin of the Freight used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<FreightOrigin>,
    /// UpdateTargetRevision sets the source's targetRevision from the Freight.
    #[serde(default, skip_serializing_if = "is_false")]
    pub update_target_revision: bool,
    /// Kustomize image overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<ArgoCDKustomize>,
    /// Helm image parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<ArgoCDHelm>,
}

/// Legacy: Kustomize image overrides on an Application.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArgoCDKustomize {
    /// Images to override.
    #[serde(default)]
    pub images: Vec<ArgoCDKustomizeImageUpdate>,
}

/// Legacy: one Kustomize image override.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArgoCDKustomizeImageUpdate {
    /// Image repository.
    pub image: String,
    /// UseDigest pins the digest instead of the tag.
    #[serde(default, skip_serializing_if = "is_false")]
    pub use_digest: bool,
}

/// Legacy: Helm parameters on an Application.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArgoCDHelm {
    /// Images to set as parameters.
    #[serde(default)]
    pub images: Vec<ArgoCDHelmImageUpdate>,
}

/// Legacy: one Helm image parameter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArgoCDHelmImageUpdate {
    /// Image repository.
    pub image: String,
    /// Key of the Helm parameter.
    pub key: String,
    /// Value: `ImageAndTag`, `Tag`, `ImageAndDigest` or `Digest`.
    #[schemars(extend("enum" = ["ImageAndTag", "Tag", "ImageAndDigest", "Digest"]))]
    pub value: String,
}
