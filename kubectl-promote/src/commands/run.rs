//! `kubectl promote run --pending`: Promotions as data. Under Kargo a Promotion created with
//! `kubectl create` (by CI, by a person, by auto-promotion) is run by the controller; here the
//! same job runs it (the discovery CronJob in `manifests/discovery/`, or anyone with the
//! rights): every unfinished Promotion of the project that no live runner holds, oldest first,
//! through the one promotion loop (`Start::Resume`: a never-started one starts, an interrupted
//! one continues without a second push).

use promote_api::types::Promotion;

use super::{Ctx, list_typed};
use crate::cli::{RunArgs, default_cache_dir};
use crate::error::Error;
use crate::output::Summary;
use crate::promotion::lease::Lease;
use crate::promotion::{Identity, Start};

/// Run every Promotion nobody runs; their summaries.
pub fn pending(c: &Ctx<'_>, args: &RunArgs, quiet: bool) -> Result<Vec<Summary>, Error> {
    let (kube, ns) = (&c.kube, c.ns.as_str());
    let now = jiff::Timestamp::now();
    let mut waiting: Vec<Promotion> = list_typed::<Promotion>(kube, "promotions", Some(ns))?
        .into_iter()
        .filter(|p| !p.phase().is_terminal() && !Lease::of(p).live(now))
        .collect();
    waiting.sort_by(|a, b| {
        let t = |p: &Promotion| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        t(a).cmp(&t(b)).then_with(|| a.name().cmp(b.name()))
    });
    if waiting.is_empty() {
        if !quiet {
            eprintln!("no Promotion in project {ns:?} is waiting for a runner");
        }
        return Ok(Vec::new());
    }
    crate::interrupt::install(kube);
    let identity = Identity::ask(kube, super::promote::actor(args.actor.clone()))?;
    let source = crate::promotion::source::Cluster::new(kube, ns.to_owned(), quiet);
    let settings = super::promote::settings_for(
        quiet,
        args.cache_dir.clone().unwrap_or_else(default_cache_dir),
        false,
        args.timeout,
        false,
    );
    let mut out = Vec::new();
    let mut first_error = None;
    for p in &waiting {
        if !quiet {
            eprintln!(
                "running Promotion {} (Freight {} to Stage {})",
                p.name(),
                promote_api::naming::short_name(&p.spec.freight),
                p.spec.stage
            );
        }
        let start = Start::Resume {
            promotion: p.name(),
        };
        match super::promote::through_cluster(&source, &identity, &settings, start) {
            Ok(s) => out.push(s),
            // Someone else took it, or its Stage is busy: the next run looks again.
            Err(e @ (Error::PromotionState { .. } | Error::StageBusy { .. })) => {
                eprintln!("skipping Promotion {}: {e}", p.name());
            }
            Err(e) => {
                eprintln!("Promotion {}: {e}", p.name());
                first_error.get_or_insert(e);
            }
        }
    }
    match (out.is_empty(), first_error) {
        (true, Some(e)) => Err(e),
        _ => Ok(out),
    }
}
