//! `kubectl-promote`: thin entry point. Exit codes: 0 success, 1 promotion failed/errored/aborted
//! or could not start, 2 usage.

use std::process::ExitCode;

use clap::Parser;
use kubectl_promote::cli::Cli;
use kubectl_promote::error::Error;
use kubectl_promote::output;

fn report(e: &Error) -> ExitCode {
    eprintln!("error: {e}");
    if let Some(h) = e.hint() {
        eprintln!("hint: {h}");
    }
    ExitCode::from(e.exit_code())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let summaries = match kubectl_promote::commands::run(&cli) {
        Ok(s) => s,
        Err(e) => return report(&e),
    };
    for summary in &summaries {
        if let Err(e) = output::print(summary, cli.global.output) {
            return report(&e);
        }
        if !summary.phase.succeeded() {
            return report(&Error::PromotionFailed {
                promotion: summary.promotion.clone(),
                phase: summary.phase.to_string(),
                message: summary.message.clone(),
            });
        }
    }
    ExitCode::SUCCESS
}
