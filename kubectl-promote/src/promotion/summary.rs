//! The [`Summary`] of a promotion as the user sees it: every step, the commits pushed (or, in a
//! dry run, that would be), the diff, the Application patches; and what `resume --dry-run` shows.

use promote_api::types::{Promotion, PromotionPhase, PromotionStepStatus};

use super::plan::Plan;
use super::record::Begun;
use crate::error::Error;
use crate::output::{AppPatch, Outcome, Summary, file_diff};
use crate::runner::{RunResult, StepRecord};
use crate::steps::{PushedCommit, Runtime};

/// The summary of a run.
pub fn of(
    rt: &Runtime<'_>,
    result: &RunResult,
    plan: &Plan,
    begun: &Begun,
) -> Result<Summary, Error> {
    let mut commits: Vec<PushedCommit> = rt.pushed.clone();
    let mut diff = String::new();
    if rt.dry_run {
        for co in &rt.checkouts {
            let mut changes = co.checkout.committed_changes()?;
            changes.extend(co.checkout.pending_changes()?);
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
    Ok(Summary {
        promotion: begun.name.clone(),
        project: plan.project.clone(),
        stage: plan.stage.name().to_owned(),
        freight: plan.freight.name().to_owned(),
        freight_alias: plan.freight.alias().map(str::to_owned),
        phase: match result.phase {
            // Steps stop as Running only when interrupted in the middle of a remote write.
            PromotionPhase::Running => Outcome::Interrupted,
            p => Outcome::Finished(p),
        },
        message: result.message.clone(),
        dry_run: rt.dry_run,
        steps: result.steps.clone(),
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
        object: begun.object.clone(),
    })
}

/// What `resume --dry-run` shows: each step, run again or skipped as recorded.
pub fn resume_plan(p: &Promotion) -> Summary {
    let status = p.status.clone().unwrap_or_default();
    let recorded = |alias: &str| {
        status
            .step_execution_metadata
            .iter()
            .find(|m| m.alias == alias)
            .and_then(|m| m.status)
    };
    let steps = p
        .spec
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let alias = step.effective_alias(i);
            let done = recorded(&alias);
            let skip =
                done == Some(PromotionStepStatus::Succeeded) && crate::steps::is_remote(&step.uses);
            StepRecord {
                uses: step.uses.clone(),
                status: skip.then_some(PromotionStepStatus::Skipped),
                message: match done {
                    _ if skip => "would not run again: recorded as done".into(),
                    None => "would run".into(),
                    Some(s) => format!("would run again (recorded {s:?})"),
                },
                alias,
                duration_ms: 0,
            }
        })
        .collect();
    Summary {
        promotion: p.name().to_owned(),
        project: p.project().to_owned(),
        stage: p.spec.stage.clone(),
        freight: p.spec.freight.clone(),
        freight_alias: None,
        phase: Outcome::Finished(PromotionPhase::Succeeded),
        message: format!(
            "dry run: Promotion is {} with its lease expired; resume would take it over",
            p.phase()
        ),
        dry_run: true,
        steps,
        commits: Vec::new(),
        applications: Vec::new(),
        diff: String::new(),
        object: None,
    }
}
