//! The commands: one file per verb, each taking its own arguments (`cli`). `promote` promotes (and
//! resumes) through the one promotion loop (`promotion::run`); the others read and write Kargo
//! objects. Output follows kubectl: tables on stdout (`--no-headers`, `-o wide`), `-o json|yaml`
//! print the object (a `List` for several), `-o name` prints `kind.group/name`.

mod abort;
mod approve;
mod discover;
mod freight;
mod get;
mod history;
pub mod promote;
pub(crate) mod refresh;
mod run;

use std::io::Write;

use serde_json::{Value, json};

use crate::cli::{Cli, Command, FreightCommand, Global};
use crate::error::{Error, context, decode};
use crate::kube::{Api, Kube, kargo_path};
use crate::output::{Format, Summary};

/// What a command runs with: the flags every command takes, the connection, the project.
pub struct Ctx<'a> {
    /// `-n`, `--context`, `-o`, ...
    pub global: &'a Global,
    /// The API server.
    pub kube: Kube,
    /// The project: `-n`, else the kubeconfig context's namespace.
    pub ns: String,
}

impl<'a> Ctx<'a> {
    /// Connect as the global flags say.
    pub fn connect(global: &'a Global) -> Result<Self, Error> {
        let kube = Kube::connect(global.kubeconfig.as_deref(), global.context.as_deref())?;
        let ns = global
            .namespace
            .clone()
            .unwrap_or_else(|| kube.namespace.clone());
        Ok(Self { global, kube, ns })
    }
}

/// What running the command line produced: summaries of promotions (printed by `main`), or
/// nothing more to print.
pub fn run(cli: &Cli) -> Result<Vec<Summary>, Error> {
    let Some(cmd) = &cli.command else {
        return promote::promote(cli);
    };
    if let Some(target) = &cli.target {
        return Err(Error::Usage(format!(
            "give either a Stage to promote or a command, not both (got {target:?} and a command)"
        )));
    }
    if let Command::Completion(args) = cmd {
        let mut c = <Cli as clap::CommandFactory>::command();
        let mut buf = Vec::new();
        clap_complete::generate(args.shell, &mut c, "kubectl-promote", &mut buf);
        print(&String::from_utf8_lossy(&buf))?;
        return Ok(Vec::new());
    }
    if let Command::Resume(args) = cmd {
        return promote::resume(cli, args);
    }
    if let Command::Discover(args) = cmd
        && args.local.is_some()
    {
        discover::local(&cli.global, args)?;
        return Ok(Vec::new());
    }
    let c = Ctx::connect(&cli.global)?;
    if let Command::Discover(args) = cmd {
        return discover::cluster(&c, args, cli.quiet);
    }
    if let Command::Run(args) = cmd {
        return run::pending(&c, args, cli.quiet);
    }
    match cmd {
        Command::Get(args) => get::run(&c, args),
        Command::Approve(args) => approve::run(&c, args),
        Command::Refresh(args) => refresh::run(&c, args),
        Command::Abort(args) => abort::run(&c, args),
        Command::History(args) => history::run(&c, args),
        Command::Freight(FreightCommand::Create(args)) => freight::create(&c, args),
        Command::Discover(_) | Command::Run(_) => Ok(()),
        Command::Resume(_) | Command::Completion(_) => Ok(()),
    }?;
    Ok(Vec::new())
}

/// LIST a Kargo kind in one namespace (or all with `None`), typed.
pub fn list_typed<T: serde::de::DeserializeOwned>(
    kube: &dyn Api,
    plural: &str,
    ns: Option<&str>,
) -> Result<Vec<T>, Error> {
    list_raw(kube, plural, ns, None)?
        .into_iter()
        .map(|v| decode(v, plural))
        .collect()
}

pub(crate) fn list_raw(
    kube: &dyn Api,
    plural: &str,
    ns: Option<&str>,
    selector: Option<&str>,
) -> Result<Vec<Value>, Error> {
    let path = match ns {
        Some(ns) => kargo_path(plural, ns, ""),
        None => format!("{}/{plural}", crate::kube::KARGO),
    };
    kube.list(&path, selector)
        .map_err(context(format!("listing {plural}")))
}

/// A Promotion's phase from its JSON (`Pending` when unset or unknown).
pub(crate) fn phase_of(p: &Value) -> promote_api::types::PromotionPhase {
    p.pointer("/status/phase")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or(promote_api::types::PromotionPhase::Pending)
}

/// kubectl's short ages: 45s, 12m, 3h, 5d.
pub(crate) fn age(obj: &Value) -> String {
    let Some(t) = obj
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    else {
        return "<unknown>".into();
    };
    let s = (jiff::Timestamp::now().as_second() - t.as_second()).max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

pub(crate) fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

pub(crate) fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

pub(crate) fn keys(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect::<Vec<_>>().join(","))
        .unwrap_or_default()
}

/// Align columns, kubectl style (three spaces between columns).
pub fn render(headers: &[&str], rows: &[Vec<String>], no_headers: bool) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.len());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    if !no_headers {
        line(headers.to_vec());
    }
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// Set once standard output is closed (`| head`): a watch stops then.
pub(crate) static STDOUT_CLOSED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

pub(crate) fn print(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Output(e.to_string())),
        Err(_) => {
            STDOUT_CLOSED.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

pub(crate) fn print_objects(
    items: &[Value],
    single: bool,
    format: Format,
    kind: &str,
) -> Result<(), Error> {
    let doc = if single {
        items.first().cloned().unwrap_or(Value::Null)
    } else {
        json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}})
    };
    let text = match format.data(&doc) {
        Some(text) => text?,
        None => items
            .iter()
            .map(|o| {
                format!(
                    "{}.kargo.akuity.io/{}\n",
                    kind.to_lowercase(),
                    s(o, "/metadata/name")
                )
            })
            .collect(),
    };
    print(&text)
}

pub(crate) fn print_patch(global: &Global, patch: &Value, line: &str) -> Result<(), Error> {
    match global.output.data(patch) {
        Some(text) => print(&text?),
        None => print(&format!("{line}\n")),
    }
}

pub(crate) fn print_done(global: &Global, name: &str, what: &str) -> Result<(), Error> {
    match global.output {
        Format::Name => print(&format!("{name}\n")),
        _ => print(&format!("{name} {what}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_like_kubectl() {
        let t = render(
            &["NAME", "AGE"],
            &[
                vec!["dev".into(), "5m".into()],
                vec!["production".into(), "1d".into()],
            ],
            false,
        );
        assert_eq!(t, "NAME         AGE\ndev          5m\nproduction   1d\n");
        assert_eq!(render(&["NAME"], &[vec!["x".into()]], true), "x\n");
    }
}
