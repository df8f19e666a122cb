//! Command-line arguments (kubectl conventions: `-n`, `-o`; never kubectl's `-v` or `-s`).

use std::path::PathBuf;

use clap::Parser;

use crate::output::Format;

/// Kargo-style promotions for Argo CD without a controller.
///
/// Promote Freight into a Stage: create the Promotion, run the Stage's promotion steps (Kargo's
/// step kinds; the README lists those promote runs) on this machine, wait for Argo CD, and record
/// the result on the Promotion, the Stage and the Freight. With --local DIR, no cluster is needed.
///
/// Exit codes: 0 success; 1 the promotion failed, errored, was aborted or timed out, or could not
/// start (unknown Stage or Freight, Freight not available, Stage busy, API refusal); 2 usage error.
#[derive(Parser, Debug)]
#[command(
    name = "kubectl-promote",
    bin_name = "kubectl promote",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("PROMOTE_GIT_COMMIT"), ")"),
    after_help = EXAMPLES,
    subcommand_negates_reqs = true,
    override_usage = "kubectl promote stage/<name> (--freight NAME|PREFIX | --freight-alias ALIAS) [OPTIONS]\n       kubectl promote --downstream-from stage/<name> (--freight ... | --freight-alias ...) [OPTIONS]\n       kubectl promote <COMMAND> [OPTIONS]"
)]
pub struct Cli {
    /// More commands (get, approve, abort, refresh, resume, freight, history, completion).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// The Stage to promote to, as `stage/<name>` (or just `<name>`).
    #[arg(value_name = "STAGE")]
    pub target: Option<String>,

    /// The Freight to promote: full name, unique name prefix (or alias).
    #[arg(long, value_name = "FREIGHT", conflicts_with = "freight_alias")]
    pub freight: Option<String>,

    /// The Freight to promote, by alias.
    #[arg(long = "freight-alias", value_name = "ALIAS")]
    pub freight_alias: Option<String>,

    /// Promote to every Stage that takes Freight from this Stage (`stage/<name>`), one after
    /// the other.
    #[arg(
        long = "downstream-from",
        value_name = "stage/NAME",
        conflicts_with = "target"
    )]
    pub downstream_from: Option<String>,

    /// Run without a cluster: read Stage, Freight, Warehouse, PromotionTask and Argo CD
    /// Application manifests from this directory.
    #[arg(long, value_name = "DIR", env = "PROMOTE_LOCAL")]
    pub local: Option<PathBuf>,

    /// When the Stage is busy with another Promotion, wait for it (queue) instead of failing.
    #[arg(long)]
    pub wait: bool,

    /// Give up after this long (queueing and waiting for Argo CD included), e.g. 90s, 10m.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,

    /// Show what would change (Promotion object, unified diff, Application patches); write
    /// and push nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Where Git mirrors are cached (default: $XDG_CACHE_HOME/kubectl-promote/git).
    #[arg(long, value_name = "DIR", env = "PROMOTE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Who to record as the promotion's actor when the cluster cannot say (default: $USER).
    #[arg(long, env = "PROMOTE_ACTOR", hide = true)]
    pub actor: Option<String>,

    /// No progress on stderr.
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,

    /// Cluster connection and output.
    #[command(flatten)]
    pub global: Global,
}

/// Flags every command takes (kubectl's names).
#[derive(clap::Args, Debug, Clone)]
pub struct Global {
    /// The project (namespace); default: the kubeconfig context's namespace.
    #[arg(
        short = 'n',
        long,
        value_name = "PROJECT",
        env = "PROMOTE_NAMESPACE",
        global = true
    )]
    pub namespace: Option<String>,

    /// Path to the kubeconfig file.
    #[arg(long, value_name = "FILE", global = true)]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use.
    #[arg(long, value_name = "CONTEXT", global = true)]
    pub context: Option<String>,

    /// Output format: table, wide, json, yaml, name, or jsonpath=TEMPLATE (kubectl's templates).
    #[arg(
        short = 'o',
        long,
        value_name = "FORMAT",
        value_parser = crate::output::FormatParser,
        default_value = "table",
        global = true
    )]
    pub output: Format,
}

/// Commands besides promoting.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List Stages, Freight, Promotions or Warehouses (kubectl-style tables).
    Get(GetArgs),
    /// Approve Freight for a Stage (it becomes available there without upstream verification).
    Approve(ApproveArgs),
    /// Abort a running or pending Promotion.
    Abort(AbortArgs),
    /// Check a Stage's Argo CD Applications now and record its health (status.health and the
    /// Healthy condition), as Kargo's controller keeps doing.
    Refresh(RefreshArgs),
    /// Continue an interrupted Promotion where it stopped (no step that already pushed or synced
    /// runs twice).
    Resume(ResumeArgs),
    /// Freight commands.
    #[command(subcommand)]
    Freight(FreightCommand),
    /// The Freight a Stage had, newest first, and the Promotions that put it there.
    History(HistoryArgs),
    /// Discover a Warehouse's newest images, commits and charts and create the Freight they
    /// make (as Kargo's Warehouse controller does); record what was found in its status.
    Discover(DiscoverArgs),
    /// Run the project's Promotions that nobody runs: created as data (`kubectl create`, CI) and
    /// never started, or started by a runner that stopped (lease expired; resumed).
    Run(RunArgs),
    /// Shell completion script (bash, zsh, fish).
    Completion(CompletionArgs),
}

/// `kubectl promote get KIND [NAME]`.
#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// stages | freight | promotions | warehouses (singular and short names work too).
    #[arg(value_name = "KIND")]
    pub kind: String,
    /// One object by name (Freight: also a unique prefix or an alias).
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// In every project.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only objects whose labels match this selector (kubectl's syntax: `k=v,k!=v,k`).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// No header row.
    #[arg(long)]
    pub no_headers: bool,
    /// After listing, watch for changes: each object that changes is printed again (asked every
    /// second), until interrupted.
    #[arg(short = 'w', long)]
    pub watch: bool,
}

/// `kubectl promote approve --freight F --stage S`.
#[derive(clap::Args, Debug)]
pub struct ApproveArgs {
    /// The Freight: name, unique prefix or alias.
    #[arg(long, value_name = "FREIGHT")]
    pub freight: String,
    /// The Stage.
    #[arg(long, value_name = "STAGE")]
    pub stage: String,
    /// Print the patch; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `kubectl promote abort PROMOTION`.
#[derive(clap::Args, Debug)]
pub struct AbortArgs {
    /// The Promotion's name.
    #[arg(value_name = "PROMOTION")]
    pub promotion: String,
    /// Print what would be written; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `kubectl promote refresh stage/NAME`.
#[derive(clap::Args, Debug)]
pub struct RefreshArgs {
    /// The Stage (`stage/<name>` or `<name>`).
    #[arg(value_name = "STAGE")]
    pub stage: String,
    /// Print what would be written; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `kubectl promote resume PROMOTION`.
#[derive(clap::Args, Debug)]
pub struct ResumeArgs {
    /// The Promotion's name.
    #[arg(value_name = "PROMOTION")]
    pub promotion: String,
    /// Give up after this long.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// Show which steps would run again and which are skipped as done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `kubectl promote history stage/NAME`.
#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    /// `stage/<name>`.
    #[arg(value_name = "STAGE")]
    pub target: String,
}

/// `kubectl promote completion SHELL`.
#[derive(clap::Args, Debug)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `kubectl promote freight ...`.
#[derive(clap::Subcommand, Debug)]
pub enum FreightCommand {
    /// Create Freight by hand (its name is the content hash Kargo would compute).
    Create(FreightCreateArgs),
}

/// `kubectl promote freight create`.
#[derive(clap::Args, Debug)]
pub struct FreightCreateArgs {
    /// The Warehouse it comes from.
    #[arg(long, value_name = "WAREHOUSE")]
    pub warehouse: String,
    /// An image, `repo:tag` or `repo@sha256:...` (repeatable).
    #[arg(long = "image", value_name = "REPO:TAG")]
    pub images: Vec<String>,
    /// A Git commit, `repoURL@sha` (repeatable).
    #[arg(long = "commit", value_name = "REPO@SHA")]
    pub commits: Vec<String>,
    /// A Helm chart, `repo/name:version` (repeatable).
    #[arg(long = "chart", value_name = "REPO/NAME:VERSION")]
    pub charts: Vec<String>,
    /// A human alias (default: a generated `adjective-animal` one, free in the project).
    #[arg(long)]
    pub alias: Option<String>,
    /// Print the object; create nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `kubectl promote run --pending`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Every Promotion of the project that is not finished and that no live runner holds, oldest
    /// first.
    #[arg(long, required = true)]
    pub pending: bool,
    /// Give up on a promotion after this long, e.g. 90s, 10m.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// Where Git mirrors are cached (default: $XDG_CACHE_HOME/kubectl-promote/git).
    #[arg(long, value_name = "DIR", env = "PROMOTE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Who to record as the promotions' actor when the cluster cannot say (default: $USER).
    #[arg(long, env = "PROMOTE_ACTOR", hide = true)]
    pub actor: Option<String>,
}

/// `kubectl promote discover warehouse/<name>`.
#[derive(clap::Args, Debug)]
pub struct DiscoverArgs {
    /// The Warehouse, as `warehouse/<name>` (or just `<name>`).
    #[arg(value_name = "WAREHOUSE", required_unless_present = "all")]
    pub target: Option<String>,
    /// Every Warehouse of the project.
    #[arg(long, conflicts_with = "target")]
    pub all: bool,
    /// Without a cluster: read Warehouses from this directory and write new Freight into it
    /// (`freight-<alias>.yaml`).
    #[arg(long, value_name = "DIR")]
    pub local: Option<PathBuf>,
    /// Discover and show the Freight; create nothing, record nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The alias of the Freight this discovery creates (default: a generated one, as Kargo
    /// gives). Not used when the Freight exists already; refused when another Freight has it.
    #[arg(long, conflicts_with = "all")]
    pub alias: Option<String>,
    /// Then promote the newest available Freight into every Stage whose ProjectConfig promotion
    /// policy enables auto-promotion (Kargo's rules), through the normal promotion path, until
    /// no Stage takes more (dev, then test once dev verified it, ...).
    #[arg(long, conflicts_with_all = ["local", "dry_run"])]
    pub auto_promote: bool,
    /// For --auto-promote: give up on a promotion after this long, e.g. 90s, 10m.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// Where Git mirrors are cached (default: $XDG_CACHE_HOME/kubectl-promote/git).
    #[arg(long, value_name = "DIR", env = "PROMOTE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Who to record as the promotions' actor when the cluster cannot say (default: $USER).
    #[arg(long, env = "PROMOTE_ACTOR", hide = true)]
    pub actor: Option<String>,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    promote_api::duration::parse(s)
        .map_err(|e| format!("{s:?} is not a duration like 90s, 5m or 1h: {e}"))
}

const EXAMPLES: &str = "Examples:
  # Promote Freight abc1234 to the test Stage of project kargo-demo
  kubectl promote stage/test --freight abc1234 -n kargo-demo

  # Queue behind a running promotion; give up after 15 minutes
  kubectl promote stage/prod --freight-alias wonky-wombat --wait --timeout 15m

  # See the Promotion, the diff and the Argo CD patch first; change nothing
  kubectl promote stage/test --freight abc1234 --dry-run

  # With no cluster, from manifests on disk
  kubectl promote stage/test --freight abc1234 --local ./kargo -n kargo-demo

  # Where things stand
  kubectl promote get stages
  kubectl promote history stage/test

  # Machine-readable result (commit SHAs, branches, changed files)
  kubectl promote stage/test --freight abc1234 -o json";

impl Cli {
    /// The Stage name from `stage/<name>` or `<name>`.
    pub fn stage_name(&self) -> Result<&str, String> {
        stage_name(self.target.as_deref().unwrap_or_default())
    }
}

/// The Stage name from `stage/<name>` or `<name>`.
pub fn stage_name(target: &str) -> Result<&str, String> {
    let name = match target.split_once('/') {
        Some(("stage" | "stages" | "stages.kargo.akuity.io", n)) => n,
        Some((kind, _)) => {
            return Err(format!(
                "cannot promote to {target:?}: only Stages can be promoted to (stage/<name>), not {kind:?}"
            ));
        }
        None => target,
    };
    if name.is_empty() {
        return Err("name the Stage: stage/<name>".into());
    }
    Ok(name)
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
