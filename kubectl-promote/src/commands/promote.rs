//! `kubectl promote stage/<name>` and `kubectl promote resume PROMOTION`: pick the source and the
//! recorder (`--local`: the manifests and the terminal; `--dry-run`: the cluster and the terminal;
//! else the cluster both ways) and hand them to the one promotion loop, `promotion::run`.
//! `--downstream-from` runs it once per Stage fed by the named one.

use std::time::{Duration, Instant};

use promote_api::types::Stage;

use super::Ctx;
use crate::cli::{Cli, ResumeArgs, default_cache_dir, stage_name};
use crate::error::Error;
use crate::manifests::Manifests;
use crate::output::Summary;
use crate::promotion::lease::DEFAULT_LEASE_TTL;
use crate::promotion::record::{ClusterRecorder, Terminal};
use crate::promotion::source::{Cluster, Files, Source};
use crate::promotion::{self, Identity, Recorder, Settings, Start};

/// How often a queued promotion looks at its Stage again.
const QUEUE_POLL: Duration = Duration::from_millis(500);

fn settings(cli: &Cli, timeout: Duration, dry_run: bool) -> Settings {
    settings_for(
        cli.quiet,
        cli.cache_dir.clone().unwrap_or_else(default_cache_dir),
        cli.wait,
        timeout,
        dry_run,
    )
}

/// Promotion settings for commands that promote without `kubectl promote`'s own flags
/// (`discover --auto-promote`).
pub(crate) fn settings_for(
    quiet: bool,
    cache_dir: std::path::PathBuf,
    wait: bool,
    timeout: Duration,
    dry_run: bool,
) -> Settings {
    let lease_ttl = std::env::var("PROMOTE_LEASE_TTL")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_LEASE_TTL);
    Settings {
        dry_run,
        quiet,
        cache_dir,
        wait,
        timeout,
        deadline: Instant::now() + timeout,
        lease_ttl,
        poll_every: QUEUE_POLL,
        retry_backoff: Duration::from_secs(1),
    }
}

/// The local user, when the cluster cannot say (or there is none).
fn local_actor(cli: &Cli) -> Option<String> {
    actor(cli.actor.clone())
}

/// `--actor`, else $USER.
pub(crate) fn actor(given: Option<String>) -> Option<String> {
    given
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.is_empty())
}

/// One promotion through the cluster: the terminal records a dry run, the cluster a real one.
pub(crate) fn through_cluster(
    source: &Cluster<'_>,
    identity: &Identity,
    settings: &Settings,
    start: Start<'_>,
) -> Result<Summary, Error> {
    let mut recorder: Box<dyn Recorder<'_>> = if settings.dry_run {
        Box::new(Terminal::cluster_dry_run(settings, identity.clone()))
    } else {
        Box::new(ClusterRecorder::new(
            source.api(),
            source.project(),
            settings,
            identity.clone(),
        ))
    };
    promotion::run(source, recorder.as_mut(), start, settings)
}

/// `kubectl promote stage/<name>` (or `--downstream-from`): one summary per promoted Stage,
/// whatever each promotion's outcome.
pub fn promote(cli: &Cli) -> Result<Vec<Summary>, Error> {
    if cli.freight.is_none() && cli.freight_alias.is_none() {
        return Err(Error::Usage(
            "name the Freight to promote: --freight NAME|PREFIX or --freight-alias ALIAS".into(),
        ));
    }
    let settings = settings(cli, cli.timeout, cli.dry_run);
    let (freight, alias) = (cli.freight.as_deref(), cli.freight_alias.as_deref());
    if let Some(dir) = &cli.local {
        if cli.downstream_from.is_some() {
            return Err(Error::Usage(
                "--downstream-from needs a cluster; with --local, name each Stage".into(),
            ));
        }
        let stage = cli.stage_name().map_err(Error::Usage)?;
        let ns = cli.global.namespace.as_deref();
        let manifests = Manifests::load(dir, ns)?;
        let project = manifests.project(ns)?;
        let source = Files::new(manifests, project);
        let mut recorder = Terminal::local(&settings, local_actor(cli));
        let start = Start::New {
            stage,
            freight,
            alias,
        };
        return Ok(vec![promotion::run(
            &source,
            &mut recorder,
            start,
            &settings,
        )?]);
    }
    // Usage mistakes first, before any connection.
    let named = match &cli.downstream_from {
        Some(up) => stage_name(up).map_err(Error::Usage)?.to_owned(),
        None => cli.stage_name().map_err(Error::Usage)?.to_owned(),
    };
    // The first promotion's overhead includes connecting and asking who we are.
    let mut started = Instant::now();
    let c = Ctx::connect(&cli.global)?;
    crate::interrupt::install(&c.kube);
    let identity = Identity::ask(&c.kube, local_actor(cli))?;
    let source = Cluster::new(&c.kube, c.ns.clone(), cli.quiet);
    let targets = match &cli.downstream_from {
        Some(_) => downstream(&source, &named)?,
        None => vec![named],
    };
    let fan_out = cli.downstream_from.is_some();
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for t in targets {
        let start = Start::New {
            stage: &t,
            freight,
            alias,
        };
        let s = through_cluster(&source, &identity, &settings, start);
        c.kube.report();
        if let Ok(summary) = &s {
            report_timing(started, summary);
        }
        started = Instant::now();
        let s = match s {
            // Fanning out: a downstream Stage that cannot take this Freight yet is skipped, said.
            Err(e @ Error::Unavailable { .. }) if fan_out => {
                eprintln!("skipping Stage {t}: {e}");
                skipped.push(e);
                continue;
            }
            other => other?,
        };
        let ok = s.phase.succeeded();
        out.push(s);
        if !ok {
            break;
        }
    }
    if out.is_empty()
        && let Some(e) = skipped.into_iter().next()
    {
        return Err(e);
    }
    Ok(out)
}

/// `kubectl promote resume PROMOTION`.
pub fn resume(cli: &Cli, args: &ResumeArgs) -> Result<Vec<Summary>, Error> {
    let settings = settings(cli, args.timeout, args.dry_run);
    let c = Ctx::connect(&cli.global)?;
    crate::interrupt::install(&c.kube);
    let identity = Identity::ask(&c.kube, local_actor(cli))?;
    let source = Cluster::new(&c.kube, c.ns.clone(), cli.quiet);
    let start = Start::Resume {
        promotion: &args.promotion,
    };
    let s = through_cluster(&source, &identity, &settings, start);
    c.kube.report();
    Ok(vec![s?])
}

/// Stages that take Freight from `upstream`, in name order.
fn downstream(source: &dyn Source, upstream: &str) -> Result<Vec<String>, Error> {
    let stages: Vec<Stage> = source.stages()?;
    let mut out: Vec<String> = stages
        .iter()
        .filter(|s| {
            s.spec
                .requested_freight
                .iter()
                .any(|r| r.sources.stages.iter().any(|u| u == upstream))
        })
        .map(|s| s.name().to_owned())
        .collect();
    out.sort();
    if out.is_empty() {
        return Err(Error::Usage(format!(
            "no Stage in project \"{}\" takes Freight from Stage \"{upstream}\"",
            source.project()
        )));
    }
    Ok(out)
}

/// With `PROMOTE_REPORT_REQUESTS=1`: how much of a promotion's time was its steps (Git work,
/// Argo CD waits) and how much the plugin's own (resolve, create, claim, records).
fn report_timing(started: Instant, summary: &Summary) {
    if std::env::var_os("PROMOTE_REPORT_REQUESTS").is_some_and(|v| v == "1") {
        let total = started.elapsed().as_millis() as u64;
        let steps: u64 = summary.steps.iter().map(|s| s.duration_ms).sum();
        eprintln!(
            "timing: total {total} ms, steps {steps} ms, overhead {} ms",
            total.saturating_sub(steps)
        );
    }
}
