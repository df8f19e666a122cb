//! `Promotion`: one request to move one Freight into one Stage.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    ExpressionVariable, FreightCollection, FreightOrigin, FreightReference, Time, any_json,
    is_false, is_zero_i64, is_zero_u32,
};

/// A Promotion requests that one Freight be promoted into one Stage. Its name is
/// `<stage>.<ulid>.<freight[:7]>`, so names sort in creation order.
// kube-derive takes one `printcolumn(...)` per column; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kargo.akuity.io",
    version = "v1alpha1",
    kind = "Promotion",
    doc = "A Promotion requests that one Freight be promoted into one Stage by running the Stage's promotion steps.",
    namespaced,
    status = "PromotionStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "promo",
    shortname = "promos",
    printcolumn(
        name = "Shard",
        type_ = "string",
        json_path = ".metadata.labels.kargo\\.akuity\\.io/shard"
    ),
    printcolumn(name = "Stage", type_ = "string", json_path = ".spec.stage"),
    printcolumn(name = "Freight", type_ = "string", json_path = ".spec.freight"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PromotionSpec {
    /// Stage is the name of the Stage to promote into.
    #[schemars(regex(
        pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
    ))]
    pub stage: String,
    /// Freight is the name of the Freight to promote. Exactly one of freight or origin is set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(regex(
        pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
    ))]
    pub freight: String,
    /// Origin asks for the auto-promotion candidate of this origin instead of a named Freight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<FreightOrigin>,
    /// Vars are variables usable in the steps' expressions (copied from the Stage).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<ExpressionVariable>,
    /// Steps are the promotion steps, copied from the Stage's promotion template.
    #[serde(default)]
    pub steps: Vec<PromotionStep>,
}

/// One step of a promotion.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionStep {
    /// Uses names the step kind (`git-clone`, `kustomize-set-image`, `argocd-update`, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uses: String,
    /// Task references a PromotionTask to inflate in place of this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<PromotionTaskReference>,
    /// As is the step's alias; its outputs are `outputs.<alias>`. Aliases matching
    /// `step-<n>` / `task-<n>` are reserved for defaults.
    #[serde(rename = "as", default, skip_serializing_if = "String::is_empty")]
    pub alias: String,
    /// If is an expression deciding whether the step runs.
    #[serde(rename = "if", default, skip_serializing_if = "String::is_empty")]
    pub if_: String,
    /// ContinueOnError: a failure of this step does not fail the Promotion.
    #[serde(default, skip_serializing_if = "is_false")]
    pub continue_on_error: bool,
    /// Retry policy of the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<PromotionStepRetry>,
    /// Vars are step-level variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<ExpressionVariable>,
    /// Config is the step's configuration; any string in it may contain `${{ }}` expressions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_json")]
    pub config: Option<serde_json::Value>,
}

impl PromotionStep {
    /// The alias the step's outputs are stored under: `as`, else `step-<index+1>`.
    pub fn effective_alias(&self, index: usize) -> String {
        if !self.alias.is_empty() {
            return self.alias.clone();
        }
        if self.task.is_some() {
            format!("task-{}", index + 1)
        } else {
            format!("step-{}", index + 1)
        }
    }
}

/// Reference to a (Cluster)PromotionTask.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PromotionTaskReference {
    /// Name of the task.
    pub name: String,
    /// Kind: `PromotionTask` (default) or `ClusterPromotionTask`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("enum" = ["PromotionTask", "ClusterPromotionTask"]))]
    pub kind: String,
}

/// Retry policy of a step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionStepRetry {
    /// Timeout is the soft maximum time the step may keep retrying (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// ErrorThreshold is the number of consecutive errors that fail the step (default 1).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub error_threshold: u32,
}

/// Phase of a Promotion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PromotionPhase {
    /// Queued: waiting for its turn on the Stage.
    Pending,
    /// Executing steps (possibly waiting on external state).
    Running,
    /// Finished successfully.
    Succeeded,
    /// Finished with a non-technical failure.
    Failed,
    /// Finished with a technical failure.
    Errored,
    /// Stopped by a user.
    Aborted,
}

impl PromotionPhase {
    /// Whether the phase is final.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Errored | Self::Aborted
        )
    }
}

impl std::fmt::Display for PromotionPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Errored => "Errored",
            Self::Aborted => "Aborted",
        })
    }
}

/// Status of one executed step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PromotionStepStatus {
    /// The step is running (or waiting).
    Running,
    /// The step succeeded.
    Succeeded,
    /// The step failed.
    Failed,
    /// The step errored.
    Errored,
    /// The step was aborted.
    Aborted,
    /// The step was skipped (its `if` was false, or it had nothing to do).
    Skipped,
}

/// The observed state of a Promotion.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromotionStatus {
    /// LastHandledRefresh is the last refresh token handled.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_handled_refresh: String,
    /// Phase of the Promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<PromotionPhase>,
    /// Message explains the phase.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Freight being promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freight: Option<FreightReference>,
    /// FreightCollection the Stage will use after this Promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freight_collection: Option<FreightCollection>,
    /// HealthChecks registered by steps, evaluated after the Promotion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<HealthCheckStep>,
    /// StartedAt is when the Promotion started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// FinishedAt is when the Promotion reached a terminal phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// CurrentStep is the index of the step being (or to be) executed.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub current_step: i64,
    /// StepExecutionMetadata records each executed step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_execution_metadata: Vec<StepExecutionMetadata>,
    /// State holds step outputs by alias, persisted so a resumed run continues where it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_json")]
    pub state: Option<serde_json::Value>,
}

/// A health check registered by a step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HealthCheckStep {
    /// Uses names the health checker.
    pub uses: String,
    /// Config of the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_json")]
    pub config: Option<serde_json::Value>,
}

/// Execution record of one step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepExecutionMetadata {
    /// Alias of the step.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alias: String,
    /// StartedAt is when the step started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// FinishedAt is when the step finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// ErrorCount is the number of consecutive errors.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub error_count: u32,
    /// Status of the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PromotionStepStatus>,
    /// Message about the step.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// ContinueOnError copied from the step.
    #[serde(default, skip_serializing_if = "is_false")]
    pub continue_on_error: bool,
}

impl Promotion {
    /// The Promotion's phase, `Pending` when unset.
    pub fn phase(&self) -> PromotionPhase {
        self.status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or(PromotionPhase::Pending)
    }

    /// The Promotion's name.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// The Promotion's namespace (project).
    pub fn project(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or_default()
    }

    /// The user from the `create-actor` annotation, with its `kubernetes:`/`email:`/... prefix
    /// stripped as Kargo's `CreateActorAnnotationValue` does; `None` for auto-promotions.
    pub fn create_actor(&self) -> Option<&str> {
        let value = self
            .metadata
            .annotations
            .as_ref()?
            .get(crate::keys::CREATE_ACTOR)?;
        let value = value.as_str();
        let user = value.split_once(':').map_or(value, |(_, rest)| rest);
        (!user.is_empty()).then_some(user)
    }
}
