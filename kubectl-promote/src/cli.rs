//! Command-line arguments (kubectl conventions: `-n`, `-o`; never kubectl's `-v` or `-s`).

use std::path::PathBuf;

use clap::Parser;

use crate::output::Format;

/// Kargo-style promotions for Argo CD without a controller.
///
/// Promote Freight into a Stage: run the Stage's promotion steps (git-clone, kustomize-set-image,
/// yaml-update, helm-update-image, git-commit, git-push, git-open-pr, argocd-update) on this
/// machine.
///
/// Exit codes: 0 the promotion succeeded; 1 it failed, errored or could not start (unknown Stage
/// or Freight, Freight not available); 2 usage error.
#[derive(Parser, Debug)]
#[command(name = "kubectl-promote", bin_name = "kubectl promote", version, after_help = EXAMPLES)]
pub struct Cli {
    /// The Stage to promote to, as `stage/<name>` (or just `<name>`).
    pub target: String,

    /// The Freight to promote: full name, unique name prefix (or alias).
    #[arg(long, conflicts_with = "freight_alias")]
    pub freight: Option<String>,

    /// The Freight to promote, by alias.
    #[arg(long = "freight-alias")]
    pub freight_alias: Option<String>,

    /// Run without a cluster: read Stage, Freight, Warehouse, PromotionTask and Argo CD
    /// Application manifests from this directory.
    #[arg(long, value_name = "DIR", env = "PROMOTE_LOCAL")]
    pub local: Option<PathBuf>,

    /// The project (namespace) of the Stage.
    #[arg(short = 'n', long, env = "PROMOTE_NAMESPACE")]
    pub namespace: Option<String>,

    /// Show what would change (unified diff, Application patches) and push nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Output format of the result.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    pub output: Format,

    /// Where Git mirrors are cached (default: $XDG_CACHE_HOME/kubectl-promote/git).
    #[arg(long, value_name = "DIR", env = "PROMOTE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Who to record as the promotion's actor (default: $USER).
    #[arg(long, env = "PROMOTE_ACTOR", hide = true)]
    pub actor: Option<String>,

    /// No progress on stderr.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

const EXAMPLES: &str = "Examples:
  # Promote Freight abc1234 to the test Stage, with no cluster
  kubectl promote stage/test --freight abc1234 --local ./kargo -n kargo-demo

  # See the diff and the Argo CD patch first, push nothing
  kubectl promote stage/test --freight-alias wonky-wombat --local ./kargo --dry-run

  # Machine-readable result (commit SHAs, branches, changed files)
  kubectl promote stage/test --freight abc1234 --local ./kargo -o json";

impl Cli {
    /// The Stage name from `stage/<name>` or `<name>`.
    pub fn stage_name(&self) -> Result<&str, String> {
        let name = match self.target.split_once('/') {
            Some(("stage" | "stages" | "stages.kargo.akuity.io", n)) => n,
            Some((kind, _)) => {
                return Err(format!(
                    "cannot promote to {:?}: only Stages can be promoted to (stage/<name>), not {kind:?}",
                    self.target
                ));
            }
            None => self.target.as_str(),
        };
        if name.is_empty() {
            return Err("name the Stage: stage/<name>".into());
        }
        Ok(name)
    }
}

/// The default cache directory for Git mirrors.
pub fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("kubectl-promote").join("git")
}
