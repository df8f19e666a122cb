//! `promote-api`: the Kargo-compatible API types (`kargo.akuity.io/v1alpha1`) and the pure rules
//! every other crate shares.
//!
//! This crate owns what a promotion *means*: Freight content hashes, availability of Freight to a
//! Stage, the `authorized-stage` annotation, Promotion names, the Argo CD sync operation and
//! field-path validation. It does no I/O: no network, no files, no clocks it was not handed
//! (functions that need "now" take it as an argument), so the plugin and the webhook agree byte for
//! byte and every rule is unit-testable.

pub mod argocd;
pub mod authorized_stage;
pub mod auto_promotion;
pub mod availability;
pub mod crd;
pub mod duration;
pub mod error;
pub mod events;
pub mod freight_id;
mod gourl;
pub mod legacy;
pub mod naming;
pub mod stage_status;
pub mod step_config;
pub mod template;
pub mod trust;
pub mod types;
pub mod urls;
pub mod validation;

pub use error::Error;
pub use types::*;

/// API group of every Kargo kind.
pub const GROUP: &str = "kargo.akuity.io";
/// The only served version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every Kargo kind.
pub const API_VERSION: &str = "kargo.akuity.io/v1alpha1";

/// Well-known label and annotation keys (Kargo's `api/v1alpha1/labels.go` and `annotations.go`).
pub mod keys {
    /// Annotation on an Argo CD Application: comma-separated `<project>:<stage>` entries.
    pub const AUTHORIZED_STAGE: &str = "kargo.akuity.io/authorized-stage";
    /// Label on Freight carrying its human alias.
    pub const ALIAS: &str = "kargo.akuity.io/alias";
    /// Label (shortened) and annotation (full) on a Promotion naming its Stage.
    pub const STAGE: &str = "kargo.akuity.io/stage";
    /// Label mirroring `spec.shard`.
    pub const SHARD: &str = "kargo.akuity.io/shard";
    /// Annotation on a Promotion: who created it (`kubernetes:<user>`).
    pub const CREATE_ACTOR: &str = "kargo.akuity.io/create-actor";
    /// Annotation requesting that a Promotion be aborted (`terminate`).
    pub const ABORT: &str = "kargo.akuity.io/abort";
    /// `operation.info` name carrying the Promotion that initiated an Argo CD sync.
    pub const PROMOTION_INFO: &str = "kargo.akuity.io/promotion";
    /// `operation.info` name carrying the project of that Promotion (promote extension).
    pub const PROJECT_INFO: &str = "kargo.akuity.io/project";
    /// Label marking a namespace as a Kargo project.
    pub const PROJECT_LABEL: &str = "kargo.akuity.io/project";
    /// Label on Secrets holding credentials (`git`, `helm`, `image`, `generic`).
    pub const CRED_TYPE: &str = "kargo.akuity.io/cred-type";
    /// Argo CD's refresh annotation.
    pub const ARGOCD_REFRESH: &str = "argocd.argoproj.io/refresh";
    /// promote's per-Application lockdown label.
    pub const LOCKDOWN: &str = "promote.dev/lockdown";
    /// Annotation on a running Promotion: who runs it (`user@host/pid`).
    pub const LEASE_HOLDER: &str = "promote.dev/lease-holder";
    /// Annotation on a running Promotion: when its runner's lease ends unless renewed (RFC 3339).
    pub const LEASE_EXPIRES: &str = "promote.dev/lease-expires";
}

#[cfg(test)]
mod corpus_tests;
