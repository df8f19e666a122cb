//! `kubectl_complete-promote`: shell completion for `kubectl promote ...` through kubectl itself
//! (kubectl ≥ 1.26 runs `kubectl_complete-<plugin> __complete <words...>` and expects Cobra's
//! protocol: one candidate per line, then `:<directive>`).
//!
//! Everything offline comes from the clap definitions (`cli.rs`): subcommands, flags, which flags
//! take a value, enum values. What an argument names (a Stage, Freight, a Promotion, a project, a
//! context) comes from its value name, and the names from the cluster (best effort: nothing is
//! printed on errors, and completion never hangs longer than the API's answer).

use clap::{Arg, Command, CommandFactory};
use kubectl_promote::cli::Cli;
use kubectl_promote::kube::{Api, Kube, kargo_path};
use promote_api::types::PromotionPhase;
use serde_json::Value;

/// Cobra's directives: "do not fall back to file names", "complete directory names only".
const NO_FILE_COMP: u8 = 4;
const FILTER_DIRS: u8 = 16;
/// Cobra's default: the shell completes file names.
const FILES: u8 = 0;

/// The words typed so far, read for the cluster connection flags.
struct Words<'a>(&'a [String]);

impl Words<'_> {
    fn flag(&self, long: &str, short: Option<&str>) -> Option<&str> {
        let mut it = self.0.iter();
        while let Some(w) = it.next() {
            if w == long || short.is_some_and(|s| w == s) {
                return it.next().map(String::as_str);
            }
            if let Some(v) = w.strip_prefix(&format!("{long}=")) {
                return Some(v);
            }
        }
        None
    }

    fn connect(&self) -> Option<(Kube, String)> {
        let kubeconfig = self
            .flag("--kubeconfig", None)
            .map(std::path::PathBuf::from);
        let kube = Kube::connect(kubeconfig.as_deref(), self.flag("--context", None)).ok()?;
        let ns = self
            .flag("--namespace", Some("-n"))
            .map(str::to_owned)
            .unwrap_or_else(|| kube.namespace.clone());
        Some((kube, ns))
    }

    /// Objects of a Kargo kind in the project.
    fn objects(&self, plural: &str) -> Vec<Value> {
        match self.connect() {
            Some((kube, ns)) => kube
                .list(&kargo_path(plural, &ns, ""), None)
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    fn names(&self, plural: &str) -> Vec<String> {
        self.objects(plural).iter().filter_map(name).collect()
    }
}

fn name(v: &Value) -> Option<String> {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

/// Promotions that can still be aborted or resumed (not finished).
fn unfinished(words: &Words<'_>) -> Vec<String> {
    words
        .objects("promotions")
        .iter()
        .filter(|p| {
            !p.pointer("/status/phase")
                .and_then(|v| serde_json::from_value::<PromotionPhase>(v.clone()).ok())
                .is_some_and(PromotionPhase::is_terminal)
        })
        .filter_map(name)
        .collect()
}

fn aliases(words: &Words<'_>) -> Vec<String> {
    words
        .objects("freights")
        .iter()
        .filter_map(|f| f.get("alias").and_then(Value::as_str))
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

fn namespaces(words: &Words<'_>) -> Vec<String> {
    match words.connect() {
        Some((kube, _)) => kube
            .list("/api/v1/namespaces", None)
            .unwrap_or_default()
            .iter()
            .filter_map(name)
            .collect(),
        None => Vec::new(),
    }
}

fn contexts(words: &Words<'_>) -> Vec<String> {
    let config = match words.flag("--kubeconfig", None) {
        Some(path) => kube::config::Kubeconfig::read_from(path).ok(),
        None => kube::config::Kubeconfig::read().ok(),
    };
    config
        .map(|c| c.contexts.into_iter().map(|c| c.name).collect())
        .unwrap_or_default()
}

/// The plural `get` lists for a kind as typed.
fn plural(kind: &str) -> Option<&'static str> {
    match kind.to_lowercase().as_str() {
        "stage" | "stages" => Some("stages"),
        "freight" | "freights" => Some("freights"),
        "promotion" | "promotions" | "promo" | "promos" => Some("promotions"),
        "warehouse" | "warehouses" => Some("warehouses"),
        _ => None,
    }
}

/// Candidates for an argument's value, and the directive.
fn values(arg: &Arg, positionals: &[&str], words: &Words<'_>) -> (Vec<String>, u8) {
    let enumerated: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_owned())
        .collect();
    if !enumerated.is_empty() {
        return (enumerated, NO_FILE_COMP);
    }
    let value_name = arg
        .get_value_names()
        .and_then(|v| v.first())
        .map(|v| v.as_str())
        .unwrap_or_default();
    let stage_refs = |words: &Words<'_>| -> Vec<String> {
        words
            .names("stages")
            .into_iter()
            .map(|n| format!("stage/{n}"))
            .collect()
    };
    let out = match value_name {
        // A positional Stage (and --downstream-from) is written `stage/<name>`; --stage takes the
        // bare name.
        "STAGE" if arg.is_positional() => stage_refs(words),
        "stage/NAME" => stage_refs(words),
        "STAGE" => words.names("stages"),
        "FREIGHT" => words.names("freights"),
        "ALIAS" => aliases(words),
        "PROMOTION" => unfinished(words),
        // `discover warehouse/<name>`; `freight create --warehouse` takes the bare name.
        "WAREHOUSE" if arg.is_positional() => words
            .names("warehouses")
            .into_iter()
            .map(|n| format!("warehouse/{n}"))
            .collect(),
        "WAREHOUSE" => words.names("warehouses"),
        "KIND" => ["stages", "freight", "promotions", "warehouses"]
            .map(str::to_owned)
            .to_vec(),
        "NAME" => match positionals.first().copied().and_then(plural) {
            Some("freights") => {
                let mut all = words.names("freights");
                all.extend(aliases(words));
                all
            }
            Some(p) => words.names(p),
            None => Vec::new(),
        },
        "PROJECT" => namespaces(words),
        "CONTEXT" => contexts(words),
        "DIR" => return (Vec::new(), FILTER_DIRS),
        "FILE" => return (Vec::new(), FILES),
        _ => Vec::new(),
    };
    (out, NO_FILE_COMP)
}

fn find_long<'c>(cmd: &'c Command, long: &str) -> Option<&'c Arg> {
    cmd.get_arguments().find(|a| a.get_long() == Some(long))
}

fn find_short(cmd: &Command, short: char) -> Option<&Arg> {
    cmd.get_arguments().find(|a| a.get_short() == Some(short))
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
}

fn candidates(root: &Command, words: &[String]) -> (Vec<String>, u8) {
    let all = Words(words);
    let (done, current) = match words.split_last() {
        Some((last, rest)) => (rest, last.as_str()),
        None => (&[][..], ""),
    };
    let mut cmd = root;
    let mut positionals: Vec<&str> = Vec::new();
    let mut pending: Option<&Arg> = None;
    for w in done {
        if pending.take().is_some() {
            continue;
        }
        if let Some(long) = w.strip_prefix("--") {
            if !long.contains('=') {
                pending = find_long(cmd, long).filter(|a| takes_value(a));
            }
        } else if let Some(short) = w.strip_prefix('-').filter(|s| !s.is_empty()) {
            let mut chars = short.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                pending = find_short(cmd, c).filter(|a| takes_value(a));
            }
        } else if let Some(sub) = positionals
            .is_empty()
            .then(|| cmd.find_subcommand(w))
            .flatten()
        {
            cmd = sub;
        } else {
            positionals.push(w.as_str());
        }
    }
    if let Some(arg) = pending {
        return values(arg, &positionals, &all);
    }
    if current.starts_with('-') {
        let flags = cmd
            .get_arguments()
            .filter(|a| !a.is_hide_set() && !a.is_positional())
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .chain(["--help".to_owned()])
            .collect();
        return (flags, NO_FILE_COMP);
    }
    let mut out = Vec::new();
    if positionals.is_empty() {
        out.extend(
            cmd.get_subcommands()
                .filter(|s| !s.is_hide_set() && s.get_name() != "help")
                .map(|s| s.get_name().to_owned()),
        );
    }
    let mut directive = NO_FILE_COMP;
    if let Some(arg) = cmd.get_positionals().nth(positionals.len()) {
        let (values, d) = values(arg, &positionals, &all);
        out.extend(values);
        directive = d;
    }
    (out, directive)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args == ["--version"] {
        println!(
            "kubectl_complete-promote {} (commit {})",
            env!("CARGO_PKG_VERSION"),
            env!("PROMOTE_GIT_COMMIT")
        );
        return;
    }
    let words = match args.split_first() {
        Some((first, rest)) if first == "__complete" || first == "__completeNoDesc" => {
            rest.to_vec()
        }
        _ => args,
    };
    let mut root = Cli::command();
    root.build();
    let current = words.last().cloned().unwrap_or_default();
    let (found, directive) = candidates(&root, &words);
    for c in found {
        if c.starts_with(&current) {
            println!("{c}");
        }
    }
    println!(":{directive}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offline(words: &[&str]) -> (Vec<String>, u8) {
        let mut root = Cli::command();
        root.build();
        // No cluster: point the connection at a kubeconfig that does not exist.
        let mut w: Vec<String> = vec!["--kubeconfig".into(), "/nonexistent/kubeconfig".into()];
        w.extend(words.iter().map(|s| (*s).to_owned()));
        candidates(&root, &w)
    }

    #[test]
    fn subcommands_flags_and_values_come_from_the_clap_definitions() {
        let (top, _) = offline(&[""]);
        for sub in [
            "get",
            "approve",
            "abort",
            "resume",
            "freight",
            "history",
            "completion",
        ] {
            assert!(top.iter().any(|c| c == sub), "{sub} in {top:?}");
        }
        assert!(!top.iter().any(|c| c == "help"));
        // -n takes a value: what follows is a project, never a subcommand.
        let (after_n, d) = offline(&["-n", ""]);
        assert!(after_n.is_empty() && d == NO_FILE_COMP, "{after_n:?}");
        let (after_ctx, _) = offline(&["--context", ""]);
        assert!(!after_ctx.iter().any(|c| c == "get"), "{after_ctx:?}");
        let (kinds, _) = offline(&["get", ""]);
        assert_eq!(kinds, ["stages", "freight", "promotions", "warehouses"]);
        let (outputs, _) = offline(&["get", "stages", "-o", ""]);
        assert!(outputs.iter().any(|o| o == "wide"), "{outputs:?}");
        let (shells, _) = offline(&["completion", ""]);
        assert!(shells.iter().any(|s| s == "zsh"), "{shells:?}");
        let (flags, _) = offline(&["approve", "--"]);
        assert!(
            flags.iter().any(|f| f == "--stage") && flags.iter().any(|f| f == "--freight"),
            "{flags:?}"
        );
        assert!(
            !flags.iter().any(|f| f == "--actor"),
            "hidden flags stay hidden"
        );
        let (_, d) = offline(&["stage/dev", "--local", ""]);
        assert_eq!(d, FILTER_DIRS);
        let (_, d) = offline(&["--kubeconfig", ""]);
        assert_eq!(d, FILES);
    }
}
