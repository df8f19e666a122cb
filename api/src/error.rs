//! The crate's one error type. Messages are lowercase, quote user values, and say what to do.

/// Everything a rule in this crate can refuse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The `authorized-stage` annotation value could not be parsed.
    #[error(
        "unable to parse value of annotation \"kargo.akuity.io/authorized-stage\" ({value:?}) on Argo CD Application \"{app}\" in namespace \"{namespace}\": {reason}"
    )]
    ParseAuthorizedStage {
        value: String,
        app: String,
        namespace: String,
        reason: String,
    },
    /// The Application does not list the Stage in its `authorized-stage` annotation.
    #[error(
        "Argo CD Application \"{app}\" in namespace \"{namespace}\" does not permit mutation by Kargo Stage \"{stage}\" in namespace \"{project}\"; hint: annotate it with kargo.akuity.io/authorized-stage: \"{project}:{stage}\" (add it to a comma-separated list to authorize several Stages)"
    )]
    StageNotAuthorized {
        app: String,
        namespace: String,
        stage: String,
        project: String,
    },
    /// A Go-style duration (`1h30m`) could not be parsed.
    #[error(
        "invalid duration {0:?}: expected a sequence of <number><unit> with units h, m, s, ms, us or ns, e.g. \"1h30m\""
    )]
    ParseDuration(String),
    /// A Promotion name cannot be generated from these inputs.
    #[error("cannot name a Promotion: {0}")]
    PromotionName(String),
    /// The Application object is not usable (not an object, malformed sources, ...).
    #[error("Argo CD Application \"{app}\": {reason}")]
    Application { app: String, reason: String },
    /// A legacy (`promotionMechanisms`) Stage cannot be translated into steps.
    #[error("cannot translate legacy Stage \"{stage}\": {reason}")]
    Legacy { stage: String, reason: String },
    /// The Stage's promotion template cannot produce steps (missing task, missing variable, no
    /// steps at all).
    #[error("Stage \"{stage}\" in project \"{project}\" cannot be promoted: {problem}")]
    Template {
        stage: String,
        project: String,
        problem: String,
    },
    /// Object validation found problems; every one is listed.
    #[error("{0}")]
    Invalid(crate::validation::FieldErrors),
    /// A CRD could not be generated or rendered.
    #[error("cannot render CRD \"{name}\": {reason}")]
    Crd { name: String, reason: String },
}
