//! `kubectl-promote`: thin entry point. Exit codes: 0 success, 1 promotion failed/errored/aborted
//! or could not start, 2 usage.

use std::process::ExitCode;

use clap::Parser;
use kubectl_promote::cli::{Cli, Command};
use kubectl_promote::error::Error;
use kubectl_promote::output::{self, Summary};

fn report(e: &Error) -> ExitCode {
    eprintln!("error: {e}");
    if let Some(h) = e.hint() {
        eprintln!("hint: {h}");
    }
    ExitCode::from(e.exit_code())
}

fn finish(summaries: Result<Vec<Summary>, Error>, cli: &Cli) -> ExitCode {
    let summaries = match summaries {
        Ok(s) => s,
        Err(e) => return report(&e),
    };
    for summary in &summaries {
        if let Err(e) = output::print(summary, cli.global.output) {
            return report(&e);
        }
        if summary.phase != "Succeeded" {
            return report(&Error::PromotionFailed {
                promotion: summary.promotion.clone(),
                phase: summary.phase.clone(),
                message: summary.message.clone(),
            });
        }
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let (Some(_), Some(target)) = (&cli.command, &cli.target) {
        return report(&Error::Usage(format!(
            "give either a Stage to promote or a command, not both (got {target:?} and a command)"
        )));
    }
    match &cli.command {
        None => finish(kubectl_promote::promote::run(&cli), &cli),
        Some(Command::Resume {
            promotion,
            timeout,
            dry_run,
        }) => finish(
            kubectl_promote::promote::resume(&cli, promotion, *timeout, *dry_run),
            &cli,
        ),
        Some(cmd) => match kubectl_promote::commands::run(&cli, cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => report(&e),
        },
    }
}
