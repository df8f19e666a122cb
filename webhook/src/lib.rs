//! `promote-webhook`: the validating and mutating admission webhook of promote.
//!
//! On Argo CD `Application` writes it enforces Kargo's `kargo.akuity.io/authorized-stage`
//! annotation and injects the authoritative sync operation; on Kargo's `Promotion`, `Freight` and
//! `Stage` it enforces who may promote and what may change. Decisions live in [`admission`] (pure
//! functions over the request and the facts read from the cluster); [`server`] is the HTTPS side.

pub mod admission;
pub mod cli;
pub mod cluster;
pub mod metrics;
pub mod review;
pub mod server;
pub mod tls;
