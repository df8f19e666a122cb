//! `promote-sandbox`: a Kubernetes-API-compatible test cluster with an Argo CD simulator (issue #4
//! builds it).

use clap::Parser;

/// A Kubernetes-API-compatible test cluster with an Argo CD simulator, for tests and demos.
///
/// The `up` and `demo` subcommands are not built yet; this binary only answers `--help` and
/// `--version`.
#[derive(Parser, Debug)]
#[command(name = "promote-sandbox", version)]
struct Cli {}

fn main() -> std::process::ExitCode {
    let _ = Cli::parse();
    eprintln!("error: the sandbox is not built yet\nhint: see `promote-sandbox --help`");
    std::process::ExitCode::from(2)
}
