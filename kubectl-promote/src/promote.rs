//! The `kubectl promote stage/<name>` command: with `--local DIR` from manifests on disk, else
//! through the cluster (`cluster`).

use std::time::Duration;

use promote_api::types::PromotionPhase;

use crate::cli::{Cli, default_cache_dir, stage_name};
use crate::cluster::{self, DEFAULT_LEASE_TTL, Session};
use crate::error::Error;
use crate::git::MirrorOptions;
use crate::kube::Kube;
use crate::local::{self, Manifests};
use crate::output::{AppPatch, StderrProgress, Summary, file_diff};
use crate::runner::{self, RunResult};
use crate::steps::{PromotionContext, PushedCommit, Runtime};

/// Run the command: one summary per promoted Stage, whatever each promotion's outcome.
pub fn run(cli: &Cli) -> Result<Vec<Summary>, Error> {
    if cli.freight.is_none() && cli.freight_alias.is_none() {
        return Err(Error::Usage(
            "name the Freight to promote: --freight NAME|PREFIX or --freight-alias ALIAS".into(),
        ));
    }
    if let Some(dir) = &cli.local {
        if cli.downstream_from.is_some() {
            return Err(Error::Usage(
                "--downstream-from needs a cluster; with --local, name each Stage".into(),
            ));
        }
        let stage = cli.stage_name().map_err(Error::Usage)?;
        return Ok(vec![run_local(cli, dir, stage)?]);
    }
    // Usage mistakes first, before any connection.
    let named = match &cli.downstream_from {
        Some(up) => stage_name(up).map_err(Error::Usage)?.to_owned(),
        None => cli.stage_name().map_err(Error::Usage)?.to_owned(),
    };
    // The first promotion's overhead includes connecting and asking who we are.
    let mut started = std::time::Instant::now();
    let kube = Kube::connect(
        cli.global.kubeconfig.as_deref(),
        cli.global.context.as_deref(),
    )?;
    cluster::install_interrupt(&kube);
    let session = session(cli, &kube, cli.timeout)?;
    let targets: Vec<String> = match &cli.downstream_from {
        Some(_) => downstream(&session, &named)?,
        None => vec![named],
    };
    let fan_out = cli.downstream_from.is_some();
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for t in targets {
        let s = session.promote(&t, cli.freight.as_deref(), cli.freight_alias.as_deref());
        kube.report();
        if let Ok(summary) = &s {
            report_timing(started, summary);
        }
        started = std::time::Instant::now();
        let s = match s {
            // Fanning out: a downstream Stage that cannot take this Freight yet is skipped, said.
            Err(e @ Error::Unavailable { .. }) if fan_out => {
                eprintln!("skipping Stage {t}: {e}");
                skipped.push(e);
                continue;
            }
            other => other?,
        };
        let ok = s.phase == "Succeeded";
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

/// With `PROMOTE_REPORT_REQUESTS=1`: how much of a promotion's time was its steps (Git work,
/// Argo CD waits) and how much the plugin's own (resolve, create, claim, records).
fn report_timing(started: std::time::Instant, summary: &Summary) {
    if std::env::var_os("PROMOTE_REPORT_REQUESTS").is_some_and(|v| v == "1") {
        let total = started.elapsed().as_millis() as u64;
        let steps: u64 = summary.steps.iter().map(|s| s.duration_ms).sum();
        eprintln!(
            "timing: total {total} ms, steps {steps} ms, overhead {} ms",
            total.saturating_sub(steps)
        );
    }
}

/// A cluster session from the command line.
pub fn session<'k>(cli: &Cli, kube: &'k Kube, timeout: Duration) -> Result<Session<'k>, Error> {
    let lease_ttl = std::env::var("PROMOTE_LEASE_TTL")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_LEASE_TTL);
    Session::new(
        kube,
        cluster::Options {
            namespace: cli
                .global
                .namespace
                .clone()
                .unwrap_or_else(|| kube.namespace.clone()),
            wait: cli.wait,
            timeout,
            dry_run: cli.dry_run,
            cache_dir: cli.cache_dir.clone().unwrap_or_else(default_cache_dir),
            quiet: cli.quiet,
            lease_ttl,
            actor_fallback: actor(cli),
        },
    )
}

fn actor(cli: &Cli) -> Option<String> {
    cli.actor
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.is_empty())
}

/// Stages that take Freight from `upstream`, in name order.
fn downstream(session: &Session<'_>, upstream: &str) -> Result<Vec<String>, Error> {
    let stages = crate::commands::list_typed::<promote_api::types::Stage>(
        session.kube,
        "stages",
        Some(&session.opts.namespace),
    )?;
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
            session.opts.namespace
        )));
    }
    Ok(out)
}

fn run_local(cli: &Cli, dir: &std::path::Path, stage_name: &str) -> Result<Summary, Error> {
    let ns = cli.global.namespace.as_deref();
    let manifests = Manifests::load(dir, ns)?;
    let project = manifests.project(ns)?;
    let (stage, freight) = local::prepare(
        &manifests,
        &project,
        stage_name,
        cli.freight.as_deref(),
        cli.freight_alias.as_deref(),
        jiff::Timestamp::now(),
    )?;
    let (steps, vars) = local::stage_steps(stage, &manifests.stages, &manifests.tasks)?;
    let promotion = local::promotion_name(stage_name, freight.name())?;
    let ctx = PromotionContext {
        project: project.clone(),
        stage: stage_name.to_owned(),
        promotion: promotion.clone(),
        target_freight: freight.clone(),
        collection: local::collection(stage, freight),
        actor: actor(cli),
    };
    let cache_root = cli.cache_dir.clone().unwrap_or_else(default_cache_dir);
    let mut rt = Runtime::new(
        &ctx,
        MirrorOptions {
            cache_root,
            ..Default::default()
        },
        cli.dry_run,
    );
    rt.quiet = cli.quiet;
    rt.applications = manifests.applications.clone();
    let mut progress = StderrProgress::new(cli.quiet);
    progress.note(&format!(
        "Promoting Freight {}{} to Stage {project}/{stage_name} ({promotion}){}",
        promote_api::naming::short_name(freight.name()),
        freight
            .alias()
            .map(|a| format!(" ({a})"))
            .unwrap_or_default(),
        if cli.dry_run { ", dry run" } else { "" }
    ));
    let result = runner::run_steps(stage_name, &steps, &vars, &mut rt, &mut progress)?;
    drop(progress);
    let mut summary = summarize(&rt, result, cli.dry_run)?;
    summary.promotion = promotion;
    summary.project = project;
    summary.stage = stage_name.to_owned();
    summary.freight = freight.name().to_owned();
    summary.freight_alias = freight.alias().map(str::to_owned);
    Ok(summary)
}

/// The summary of a run (the caller fills in who and what was promoted).
pub fn summarize(rt: &Runtime<'_>, result: RunResult, dry_run: bool) -> Result<Summary, Error> {
    let mut commits: Vec<PushedCommit> = rt.pushed.clone();
    let mut diff = String::new();
    if dry_run {
        for co in &rt.checkouts {
            let mut changes = co
                .checkout
                .committed_changes()
                .map_err(|e| Error::Output(e.to_string()))?;
            changes.extend(
                co.checkout
                    .pending_changes()
                    .map_err(|e| Error::Output(e.to_string()))?,
            );
            for c in &changes {
                diff.push_str(&file_diff(
                    &format!("{}/{}", co.path, c.path),
                    c.before.as_deref(),
                    c.after.as_deref(),
                ));
            }
            if co.checkout.has_unpushed() {
                commits.push(PushedCommit {
                    repo_url: co.repo_url.clone(),
                    branch: co.checkout.branch.clone().unwrap_or_default(),
                    commit: co.checkout.head().to_owned(),
                    files: co.checkout.touched(),
                });
            }
        }
    }
    let phase = match result.phase {
        PromotionPhase::Succeeded => "Succeeded",
        PromotionPhase::Failed => "Failed",
        PromotionPhase::Errored => "Errored",
        PromotionPhase::Aborted => "Aborted",
        PromotionPhase::Running => "Interrupted",
        PromotionPhase::Pending => "Pending",
    };
    Ok(Summary {
        promotion: String::new(),
        project: String::new(),
        stage: String::new(),
        freight: String::new(),
        freight_alias: None,
        phase: phase.to_owned(),
        message: result.message,
        dry_run,
        steps: result.steps,
        commits,
        applications: rt
            .argocd_patches
            .iter()
            .map(|(application, patch)| AppPatch {
                application: application.clone(),
                patch: patch.clone(),
            })
            .collect(),
        diff,
        object: None,
    })
}

/// `kubectl promote resume PROMOTION`.
pub fn resume(
    cli: &Cli,
    promotion: &str,
    timeout: Duration,
    dry_run: bool,
) -> Result<Vec<Summary>, Error> {
    let kube = Kube::connect(
        cli.global.kubeconfig.as_deref(),
        cli.global.context.as_deref(),
    )?;
    cluster::install_interrupt(&kube);
    let mut session = session(cli, &kube, timeout)?;
    session.opts.dry_run = dry_run;
    let s = session.resume(promotion);
    kube.report();
    Ok(vec![s?])
}
