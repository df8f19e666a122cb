//! The plugin's one error type. Each error says what was wrong and, where it helps, a `hint:` with
//! what to do. Exit codes: 2 for usage mistakes, 1 for everything else (see `main.rs`).

use promote_api::availability::Unavailable;

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),
    /// A manifest file could not be read or parsed.
    #[error("cannot load {path}: {reason}")]
    Load { path: String, reason: String },
    /// An object failed validation.
    #[error("{kind} \"{name}\" is invalid: {source}")]
    Invalid {
        kind: &'static str,
        name: String,
        #[source]
        source: Box<promote_api::Error>,
    },
    /// The Stage does not exist.
    #[error("Stage \"{stage}\" not found in project \"{project}\"")]
    StageNotFound {
        stage: String,
        project: String,
        available: Vec<String>,
    },
    /// No Freight matches.
    #[error("no Freight {what} in project \"{project}\"")]
    FreightNotFound {
        what: String,
        project: String,
        available: Vec<String>,
    },
    /// Several Freight match a prefix.
    #[error("Freight prefix \"{prefix}\" is ambiguous: it matches {}", .candidates.join(", "))]
    FreightAmbiguous {
        prefix: String,
        candidates: Vec<String>,
    },
    /// The Freight may not be promoted to the Stage yet.
    #[error("Freight \"{freight}\" is not available to Stage \"{stage}\": {reason}")]
    Unavailable {
        freight: String,
        stage: String,
        reason: Unavailable,
    },
    /// A rule of the api crate refused (legacy translation, naming).
    #[error(transparent)]
    Api(Box<promote_api::Error>),
    /// The Stage's steps are wrong (found before anything ran).
    #[error("Stage \"{stage}\" has invalid steps:\n  {}", .problems.join("\n  "))]
    Steps {
        stage: String,
        problems: Vec<String>,
    },
    /// The promotion ran and did not succeed (already reported step by step).
    #[error("promotion {promotion} {phase}: {message}")]
    PromotionFailed {
        promotion: String,
        phase: String,
        message: String,
    },
    /// Output could not be encoded or written.
    #[error("cannot write output: {0}")]
    Output(String),
    /// No connection to a cluster could be set up.
    #[error(transparent)]
    Connect(#[from] crate::kube::ConnectError),
    /// An object the API server returned is not what its kind should be.
    #[error("cannot read {what}: {reason}")]
    Decode { what: String, reason: String },
    /// A Warehouse's discovery failed (its status says so too).
    #[error("discovering Warehouse \"{warehouse}\": {reason}")]
    Discovery { warehouse: String, reason: String },
    /// An object named on the command line does not exist.
    #[error("{kind} \"{name}\" not found in project \"{project}\"")]
    NotFound {
        kind: &'static str,
        name: String,
        project: String,
    },
    /// `--wait` queued behind another Promotion for longer than `--timeout`.
    #[error("timed out after {waited_s}s waiting for Promotion {running} to free Stage {stage}")]
    QueueTimeout {
        stage: String,
        running: String,
        waited_s: u64,
    },
    /// Ctrl-C (or an abort) while the command waited, before anything ran.
    #[error("interrupted while {during}")]
    Interrupted { during: String },
    /// A step would not be able to deliver what the promotion pushes (found before any write).
    #[error("step {step} cannot deliver this promotion: {reason}")]
    Undeliverable { step: String, reason: String },
    /// Git failed outside a step (the dry run's diff).
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    /// The API server refused or failed a request.
    #[error("{action}: {failure}")]
    Kube {
        action: String,
        failure: crate::kube::ApiFailure,
    },
    /// Another Promotion holds the Stage.
    #[error(
        "Stage \"{stage}\" in project \"{project}\" is busy: Promotion \"{running}\" is {phase} ({holder})"
    )]
    StageBusy {
        stage: String,
        project: String,
        running: String,
        phase: String,
        holder: String,
    },
    /// A Promotion cannot do what was asked in its state.
    #[error("Promotion \"{promotion}\" {problem}")]
    PromotionState {
        promotion: String,
        problem: String,
        hint: String,
    },
}

impl From<promote_api::Error> for Error {
    fn from(e: promote_api::Error) -> Self {
        Self::Api(Box::new(e))
    }
}

/// Turn an API failure into the command's error, saying what was being done.
pub fn context(action: impl Into<String>) -> impl FnOnce(crate::kube::ApiFailure) -> Error {
    let action = action.into();
    move |failure| Error::Kube { action, failure }
}

/// Read an API object as its typed kind.
pub fn decode<T: serde::de::DeserializeOwned>(
    v: serde_json::Value,
    what: impl Into<String>,
) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|e| Error::Decode {
        what: what.into(),
        reason: e.to_string(),
    })
}

impl Error {
    /// What to do about it, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::StageNotFound { available, .. } if !available.is_empty() => {
                Some(format!("Stages in this project: {}", available.join(", ")))
            }
            Self::StageNotFound { .. } => {
                Some("check -n/--namespace (the project) and the manifests directory".into())
            }
            Self::FreightNotFound { available, .. } if !available.is_empty() => {
                Some(format!("Freight in this project: {}", available.join(", ")))
            }
            Self::FreightAmbiguous { .. } => {
                Some("give more characters of the name, or use --freight-alias".into())
            }
            Self::Unavailable {
                reason: Unavailable::NeedsUpstream { .. },
                ..
            } => Some(
                "promote it through the upstream Stages first, or approve it for this Stage".into(),
            ),
            Self::Steps { .. } => {
                Some("fix the Stage's promotionTemplate; nothing was changed".into())
            }
            Self::Invalid { kind: "Stage", .. } => {
                Some("fix the Stage (the field named above); nothing was changed".into())
            }
            Self::StageBusy { running, .. } => Some(format!(
                "wait for it with --wait (promotions queue), or stop it with kubectl promote abort {running}"
            )),
            Self::PromotionState { hint, .. } if !hint.is_empty() => Some(hint.clone()),
            // A webhook's denial carries its own hint.
            Self::Kube { failure, .. } if failure.message.contains("admission webhook") => None,
            Self::Kube { failure, .. } if failure.code == 403 => Some(
                "ask a cluster admin for the promote-promoter role in this project (and promote-argocd-syncer in Argo CD's namespace); see kubectl auth can-i --list"
                    .into(),
            ),
            Self::Kube { failure, .. } if failure.code == 401 => {
                Some("your credentials were refused; log in again or check --kubeconfig/--context".into())
            }
            Self::Kube { failure, .. } if failure.code == 0 => {
                Some("check that the cluster is reachable (kubectl cluster-info)".into())
            }
            Self::Connect(_) => Some(
                "point at a cluster with --kubeconfig/--context (or $KUBECONFIG), or promote without one using --local DIR"
                    .into(),
            ),
            Self::Decode { .. } => Some(
                "the cluster's Kargo CRDs may be from another version: kubectl apply --server-side -k manifests/crds"
                    .into(),
            ),
            Self::NotFound { kind, .. } => Some(format!(
                "list them with kubectl promote get {}",
                kind.to_lowercase()
            )),
            Self::QueueTimeout { running, .. } => Some(format!(
                "give it longer with --timeout, or stop it with kubectl promote abort {running}"
            )),
            Self::Interrupted { .. } => Some("nothing was changed; run the command again".into()),
            Self::Undeliverable { .. } => Some(
                "nothing was written or pushed; fix the Application (or the step) and promote again"
                    .into(),
            ),
            _ => None,
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            _ => 1,
        }
    }
}
