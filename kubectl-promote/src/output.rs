//! What the user sees: progress on stderr (a spinner on a TTY, plain lines otherwise) and the
//! result on stdout (`-o table|json|yaml|name`).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::error::Error;
use crate::runner::{Progress, StepRecord};
use crate::steps::PushedCommit;

/// Output formats: kubectl's `-o` values this plugin prints.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Format {
    /// Human-readable summary.
    #[default]
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
    /// Wider tables.
    Wide,
    /// `kind/<name>` only.
    Name,
    /// `jsonpath=TEMPLATE`: the template applied to what `-o json` prints. The template lives as
    /// long as the process (it is parsed once, from the command line), which keeps `Format`
    /// `Copy` for the many places that pass it on.
    Jsonpath(&'static crate::jsonpath::Template),
}

impl Format {
    /// Whether this prints JSON-shaped data (`json`, `yaml`, `jsonpath=`), not a table or names.
    pub fn is_data(self) -> bool {
        matches!(self, Self::Json | Self::Yaml | Self::Jsonpath(_))
    }

    /// `doc` as `-o json`, `-o yaml` or `-o jsonpath=` print it; `None` for tables and names.
    pub fn data(self, doc: &impl Serialize) -> Option<Result<String, Error>> {
        let out = |e: String| Error::Output(e);
        Some(match self {
            Self::Json => serde_json::to_string_pretty(doc)
                .map(|t| t + "\n")
                .map_err(|e| out(e.to_string())),
            Self::Yaml => serde_yaml::to_string(doc).map_err(|e| out(e.to_string())),
            Self::Jsonpath(t) => serde_json::to_value(doc)
                .map_err(|e| out(e.to_string()))
                .and_then(|v| {
                    t.render(&v)
                        .map_err(|e| out(format!("error executing jsonpath {:?}: {e}", t.source())))
                }),
            Self::Table | Self::Wide | Self::Name => return None,
        })
    }
}

/// Parse `-o`: kubectl's names, and `jsonpath=TEMPLATE` (also `jsonpath='TEMPLATE'`).
pub fn parse_format(s: &str) -> Result<Format, String> {
    if let Some(t) = s.strip_prefix("jsonpath=") {
        let t = t
            .strip_prefix('\'')
            .and_then(|t| t.strip_suffix('\''))
            .unwrap_or(t);
        if t.is_empty() {
            return Err(
                "jsonpath= needs a template, for example jsonpath='{.items[*].metadata.name}'"
                    .into(),
            );
        }
        let template = crate::jsonpath::Template::parse(t)
            .map_err(|e| format!("error parsing jsonpath {t}: {e}"))?;
        // Leaked once per process: the command line is parsed once and lives as long.
        return Ok(Format::Jsonpath(Box::leak(Box::new(template))));
    }
    Ok(match s {
        "table" => Format::Table,
        "json" => Format::Json,
        "yaml" => Format::Yaml,
        "wide" => Format::Wide,
        "name" => Format::Name,
        other => {
            return Err(format!(
                "unknown output format {other:?}: use table, wide, json, yaml, name or jsonpath=TEMPLATE"
            ));
        }
    })
}

/// `-o`'s clap parser: [`parse_format`], and the fixed names as possible values, so that help
/// and shell completion (`kubectl_complete-promote`) list them although `jsonpath=` takes any
/// template.
#[derive(Clone, Copy, Debug, Default)]
pub struct FormatParser;

impl FormatParser {
    /// The names `-o` accepts; `jsonpath=` is followed by a template.
    pub const NAMES: [&'static str; 6] = ["table", "wide", "json", "yaml", "name", "jsonpath="];
}

impl clap::builder::TypedValueParser for FormatParser {
    type Value = Format;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Format, clap::Error> {
        // clap's own error for a function parser: "invalid value 'X' for '--output <FORMAT>': why".
        parse_format.parse_ref(cmd, arg, value)
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            Self::NAMES
                .iter()
                .map(|n| clap::builder::PossibleValue::new(*n)),
        ))
    }
}

/// How a promotion ended, as shown: a Promotion phase, or `Interrupted` (stopped in the middle of
/// a remote write; the Promotion stays `Running` for `kubectl promote resume`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It reached this phase.
    Finished(promote_api::types::PromotionPhase),
    /// Interrupted during a remote write.
    Interrupted,
}

impl Outcome {
    /// Whether it succeeded.
    pub fn succeeded(self) -> bool {
        self == Self::Finished(promote_api::types::PromotionPhase::Succeeded)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Finished(p) => p.fmt(f),
            Self::Interrupted => f.write_str("Interrupted"),
        }
    }
}

impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The result of a promotion, as printed.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Promotion name.
    pub promotion: String,
    /// Project.
    pub project: String,
    /// Stage.
    pub stage: String,
    /// Freight name.
    pub freight: String,
    /// Freight alias.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freight_alias: Option<String>,
    /// How it ended.
    pub phase: Outcome,
    /// Why.
    pub message: String,
    /// Nothing was pushed.
    pub dry_run: bool,
    /// Every step.
    pub steps: Vec<StepRecord>,
    /// Commits pushed (or, in a dry run, that would be).
    pub commits: Vec<PushedCommit>,
    /// Argo CD Application patches (`namespace/name` → merge patch).
    pub applications: Vec<AppPatch>,
    /// Unified diff of what was (or would be) committed.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub diff: String,
    /// The Promotion a dry run would create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<Value>,
}

/// One Application patch.
#[derive(Clone, Debug, Serialize)]
pub struct AppPatch {
    /// `namespace/name`.
    pub application: String,
    /// The JSON merge patch.
    pub patch: Value,
}

/// Print the summary to stdout.
pub fn print(summary: &Summary, format: Format) -> Result<(), Error> {
    let text = match format.data(summary) {
        Some(text) => text?,
        None if format == Format::Name => format!("promotion/{}\n", summary.promotion),
        None => table(summary),
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::Output(e.to_string())),
    }
}

fn table(s: &Summary) -> String {
    let mut out = String::new();
    let freight = match &s.freight_alias {
        Some(a) => format!("{} ({a})", s.freight),
        None => s.freight.clone(),
    };
    for (k, v) in [
        ("PROMOTION", s.promotion.as_str()),
        ("STAGE", &format!("{}/{}", s.project, s.stage)),
        ("FREIGHT", &freight),
        (
            "PHASE",
            &format!("{}{}", s.phase, if s.dry_run { " (dry run)" } else { "" }),
        ),
        ("MESSAGE", &s.message),
    ] {
        out.push_str(&format!("{k:<10} {v}\n"));
    }
    out.push('\n');
    let w_alias = s
        .steps
        .iter()
        .map(|r| r.alias.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let w_uses = s
        .steps
        .iter()
        .map(|r| r.uses.len())
        .max()
        .unwrap_or(4)
        .max(4);
    out.push_str(&format!(
        "{:<w_alias$}  {:<w_uses$}  {:<9}  MESSAGE\n",
        "STEP", "USES", "STATUS"
    ));
    for r in &s.steps {
        let msg = r.message.lines().next().unwrap_or_default();
        out.push_str(&format!(
            "{:<w_alias$}  {:<w_uses$}  {:<9}  {msg}\n",
            r.alias,
            r.uses,
            r.status_text()
        ));
    }
    if !s.commits.is_empty() {
        out.push_str(&format!(
            "\n{}\n",
            if s.dry_run { "WOULD PUSH" } else { "PUSHED" }
        ));
        for c in &s.commits {
            out.push_str(&format!(
                "{} {} {} ({})\n",
                c.commit,
                c.branch,
                c.repo_url,
                c.files.join(", ")
            ));
        }
    }
    for a in &s.applications {
        out.push_str(&format!(
            "\nPATCH {} (application/merge-patch+json)\n{}\n",
            a.application,
            serde_json::to_string_pretty(&a.patch).unwrap_or_default()
        ));
    }
    if !s.diff.is_empty() {
        out.push('\n');
        out.push_str(&s.diff);
    }
    out
}

/// Progress on stderr: a spinner on a terminal, one line per step otherwise.
pub struct StderrProgress {
    bar: Option<indicatif::ProgressBar>,
    quiet: bool,
}

impl StderrProgress {
    /// Progress for this process's stderr.
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            b.enable_steady_tick(Duration::from_millis(100));
            b
        });
        Self { bar, quiet }
    }

    /// The steps are over: clear the spinner before the summary prints.
    pub fn done(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }

    /// A note between steps.
    pub fn note(&self, msg: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }
}

impl Progress for StderrProgress {
    fn start(&mut self, index: usize, total: usize, alias: &str, uses: &str) {
        if let Some(b) = &self.bar {
            b.set_message(format!("[{}/{total}] {uses} ({alias})", index + 1));
        }
    }

    fn finish(
        &mut self,
        index: usize,
        total: usize,
        r: &StepRecord,
        _outputs: &serde_json::Map<String, Value>,
    ) {
        let first = r.message.lines().next().unwrap_or_default();
        self.note(&format!(
            "[{}/{total}] {:<20} {:<9} {first} ({:.2}s)",
            index + 1,
            r.uses,
            r.status_text(),
            r.duration_ms as f64 / 1000.0
        ));
    }
}

impl Drop for StderrProgress {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// A unified diff of one file.
pub fn file_diff(path: &str, before: Option<&[u8]>, after: Option<&[u8]>) -> String {
    let a = before.map(String::from_utf8_lossy).unwrap_or_default();
    let b = after.map(String::from_utf8_lossy).unwrap_or_default();
    let old = if before.is_some() {
        format!("a/{path}")
    } else {
        "/dev/null".to_owned()
    };
    let new = if after.is_some() {
        format!("b/{path}")
    } else {
        "/dev/null".to_owned()
    };
    similar::TextDiff::from_lines(a.as_ref(), b.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(&old, &new)
        .to_string()
}
