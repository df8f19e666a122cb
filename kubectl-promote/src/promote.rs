//! The `kubectl promote stage/<name>` command: resolve, check, run the steps, summarize.

use promote_api::types::PromotionPhase;

use crate::cli::{Cli, default_cache_dir};
use crate::error::Error;
use crate::git::MirrorOptions;
use crate::local::{self, Manifests};
use crate::output::{AppPatch, StderrProgress, Summary, file_diff};
use crate::runner;
use crate::steps::{PromotionContext, PushedCommit, Runtime};

/// Run the command; the summary is returned whatever the promotion's outcome.
pub fn run(cli: &Cli) -> Result<Summary, Error> {
    let stage_name = cli.stage_name().map_err(Error::Usage)?;
    if cli.freight.is_none() && cli.freight_alias.is_none() {
        return Err(Error::Usage(
            "name the Freight to promote: --freight NAME|PREFIX or --freight-alias ALIAS".into(),
        ));
    }
    let Some(dir) = &cli.local else {
        return Err(Error::Usage("promoting through a cluster is not available in this build yet; pass --local DIR to promote from manifests on disk".into()));
    };
    let manifests = Manifests::load(dir, cli.namespace.as_deref())?;
    let project = manifests.project(cli.namespace.as_deref())?;
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
    let actor = cli
        .actor
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.is_empty());
    let ctx = PromotionContext {
        project: project.clone(),
        stage: stage_name.to_owned(),
        promotion: promotion.clone(),
        target_freight: freight.clone(),
        collection: local::collection(stage, freight),
        actor,
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
    rt.applications = manifests.applications.clone();
    let mut progress = StderrProgress::new(cli.quiet);
    progress.note(&format!(
        "Promoting Freight {}{} to Stage {project}/{stage_name} ({promotion}){}",
        &freight.name()[..7.min(freight.name().len())],
        freight
            .alias()
            .map(|a| format!(" ({a})"))
            .unwrap_or_default(),
        if cli.dry_run { ", dry run" } else { "" }
    ));
    let result = runner::run_steps(stage_name, &steps, &vars, &mut rt, &mut progress)?;
    drop(progress);

    let mut commits: Vec<PushedCommit> = rt.pushed.clone();
    let mut diff = String::new();
    for co in &rt.checkouts {
        if cli.dry_run {
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
        other => return Err(Error::Output(format!("unexpected phase {other}"))),
    };
    Ok(Summary {
        promotion,
        project,
        stage: stage_name.to_owned(),
        freight: freight.name().to_owned(),
        freight_alias: freight.alias().map(str::to_owned),
        phase: phase.to_owned(),
        message: result.message,
        dry_run: cli.dry_run,
        steps: result.steps,
        commits,
        applications: rt
            .argocd_patches
            .into_iter()
            .map(|(application, patch)| AppPatch { application, patch })
            .collect(),
        diff,
    })
}
