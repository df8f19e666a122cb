//! `promote-webhook`: see the library documentation.

use clap::Parser;

fn main() -> std::process::ExitCode {
    promote_webhook::cli::run(promote_webhook::cli::Cli::parse())
}
