//! `kubectl-promote`: the kubectl plugin (issue #3 and #5 build it).

use clap::Parser;

/// Kargo-style promotions for Argo CD without a controller.
#[derive(Parser, Debug)]
#[command(name = "kubectl-promote", bin_name = "kubectl promote", version)]
struct Cli {}

fn main() -> std::process::ExitCode {
    let _ = Cli::parse();
    eprintln!("error: promotions are not built yet\nhint: see `kubectl promote --help`");
    std::process::ExitCode::from(2)
}
