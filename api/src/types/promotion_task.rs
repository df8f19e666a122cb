//! `PromotionTask`: a reusable list of steps referenced from Stages.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ExpressionVariable, PromotionStep};

/// A PromotionTask is a reusable list of promotion steps with variables (an empty value marks a
/// required input).
// kube-derive takes one `printcolumn(...)` per column; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kargo.akuity.io",
    version = "v1alpha1",
    kind = "PromotionTask",
    doc = "A PromotionTask is a reusable list of promotion steps referenced from Stages.",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    shortname = "promotask",
    shortname = "promotasks",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct PromotionTaskSpec {
    /// Vars are the task's inputs with defaults; an empty value is a required input.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<ExpressionVariable>,
    /// Steps of the task (no nested tasks).
    #[serde(default)]
    pub steps: Vec<PromotionStep>,
}
