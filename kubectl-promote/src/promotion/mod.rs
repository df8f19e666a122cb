//! One promotion, however it runs. [`run`] is the only loop: it resolves a [`plan`] from a
//! [`source::Source`] (manifests on disk, or the API server), lets a [`record::Recorder`] begin
//! it (nothing, or create the Promotion and claim the Stage), runs the steps (`runner`, with the
//! lease renewed beside them), and lets the recorder record the result. `--local`, `--dry-run`,
//! a cluster promotion and `kubectl promote resume` differ only in the source and recorder
//! `commands::promote` picks.
//!
//! | module | owns |
//! |---|---|
//! | `plan` | resolving the Stage, the Freight, the steps and the name; checks before any write |
//! | `preflight` | what can be known before the first write: `argocd-update`'s Applications authorize the Stage |
//! | `source` | where inputs come from: `Files` (`--local`) or `Cluster` |
//! | `lease` | leases, resume and takeover, claiming the Stage and queueing (`--wait`) |
//! | `record` | where progress and results go: `Terminal` or `ClusterRecorder`; every status write |
//! | `summary` | the summary printed at the end; `resume --dry-run`'s plan |

pub mod lease;
pub mod plan;
pub mod preflight;
pub mod record;
pub mod source;
pub mod summary;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::git::MirrorOptions;
use crate::kube::Api;
use crate::output::Summary;
use crate::runner;
use crate::steps::{PromotionContext, Runtime};

pub use plan::Plan;
pub use record::Recorder;
pub use source::Source;

/// How promotions run, from the command line.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Show what would happen; write and push nothing.
    pub dry_run: bool,
    /// No progress on stderr.
    pub quiet: bool,
    /// Git mirror cache.
    pub cache_dir: PathBuf,
    /// Queue behind a running Promotion instead of failing fast.
    pub wait: bool,
    /// The budget (`--timeout`) for queueing and waiting for Argo CD.
    pub timeout: Duration,
    /// When that budget ends (one for every promotion of a command).
    pub deadline: Instant,
    /// Lease length (`PROMOTE_LEASE_TTL` seconds overrides the default).
    pub lease_ttl: Duration,
    /// How often a queued promotion looks at the Stage again.
    pub poll_every: Duration,
    /// The first wait before a step that errored is tried again (doubled each time).
    pub retry_backoff: Duration,
}

/// Who runs the promotions of this command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The user the API server says we are (else `--actor` / `$USER`).
    pub actor: Option<String>,
    /// The lease holder id (`user@host/pid`).
    pub holder: String,
}

impl Identity {
    /// Ask the API server who we are (one SelfSubjectReview); `fallback` when it cannot say.
    pub fn ask(api: &dyn Api, fallback: Option<String>) -> Result<Self, Error> {
        let actor = api
            .whoami()
            .map_err(crate::error::context("asking the API server who you are"))?
            .or(fallback);
        Ok(Self {
            holder: lease::holder_id(actor.as_deref()),
            actor,
        })
    }
}

/// What to promote.
#[derive(Clone, Copy, Debug)]
pub enum Start<'a> {
    /// Freight (by name, prefix or alias) into a Stage, as a new Promotion.
    New {
        /// The Stage's name.
        stage: &'a str,
        /// `--freight`.
        freight: Option<&'a str>,
        /// `--freight-alias`.
        alias: Option<&'a str>,
    },
    /// An interrupted Promotion, continued where it stopped.
    Resume {
        /// Its name.
        promotion: &'a str,
    },
}

/// Run one promotion: plan, begin, steps, record.
pub fn run<'k>(
    source: &dyn Source,
    recorder: &mut dyn Recorder<'k>,
    start: Start<'_>,
    settings: &Settings,
) -> Result<Summary, Error> {
    let now = jiff::Timestamp::now();
    let plan = match start {
        Start::New {
            stage,
            freight,
            alias,
        } => plan::resolve(source, stage, freight, alias, now)?,
        Start::Resume { promotion } => plan::resumed(source, promotion, now)?,
    };
    if let (true, Some(p)) = (settings.dry_run, &plan.resumed) {
        return Ok(summary::resume_plan(p));
    }
    // Before any write: could this promotion deliver what it pushes?
    let early = PromotionContext {
        project: plan.project.clone(),
        stage: plan.stage.name().to_owned(),
        promotion: plan.name.clone(),
        target_freight: plan.freight.clone(),
        collection: plan.collection.clone(),
        actor: None,
    };
    preflight::check(source, &plan, &early)?;
    let begun = recorder.begin(&plan)?;
    let ctx = PromotionContext {
        project: plan.project.clone(),
        stage: plan.stage.name().to_owned(),
        promotion: begun.name.clone(),
        target_freight: plan.freight.clone(),
        collection: plan.collection.clone(),
        actor: begun.actor.clone(),
    };
    let mut rt = Runtime::new(
        &ctx,
        MirrorOptions {
            cache_root: settings.cache_dir.clone(),
            ..Default::default()
        },
        settings.dry_run,
    );
    rt.quiet = settings.quiet;
    rt.retry_backoff = settings.retry_backoff;
    rt.deadline = Some(settings.deadline);
    rt.recorded = begun.recorded.clone();
    source.equip(&mut rt, settings.deadline, settings.timeout);
    let renewal = recorder.lease();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let result = std::thread::scope(|scope| {
        if let Some(renewal) = renewal {
            scope.spawn(move || renewal.run(stop_rx));
        }
        let r = runner::run_steps(
            plan.stage.name(),
            &begun.steps,
            &begun.vars,
            &mut rt,
            &mut *recorder,
        );
        drop(stop_tx);
        r
    });
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            recorder.abandon(&plan, &begun, &e)?;
            return Err(e);
        }
    };
    let mut summary = summary::of(&rt, &result, &plan, &begun)?;
    recorder.close(&plan, &begun, &result, &rt, &mut summary)?;
    Ok(summary)
}
