//! `promote-webhook`: the validating and mutating admission webhook (issue #6 builds the server).

use clap::Parser;

/// Admission webhook for promote: enforces `kargo.akuity.io/authorized-stage` on Argo CD
/// Application writes, injects the sync operation, and guards who may promote.
///
/// The server, `certs` and `review` subcommands are not built yet; this binary only answers
/// `--help` and `--version`.
#[derive(Parser, Debug)]
#[command(name = "promote-webhook", version)]
struct Cli {}

fn main() -> std::process::ExitCode {
    let _ = Cli::parse();
    eprintln!("error: the webhook server is not built yet\nhint: see `promote-webhook --help`");
    std::process::ExitCode::from(2)
}
