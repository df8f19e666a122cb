//! `kubectl_complete-promote`: shell completion for `kubectl promote ...` through kubectl itself
//! (kubectl ≥ 1.26 runs `kubectl_complete-<plugin> __complete <words...>` and expects Cobra's
//! protocol: one candidate per line, then `:<directive>`). Subcommands, kinds and flags complete
//! offline; Stage, Freight and Promotion names come from the cluster (best effort: nothing is
//! printed on errors, and completion never hangs longer than the API's answer).

use kubectl_promote::kube::{Kube, kargo_path};
use serde_json::Value;

/// Cobra's "do not fall back to file names".
const NO_FILE_COMP: u8 = 4;

const SUBCOMMANDS: &[&str] = &[
    "get",
    "approve",
    "abort",
    "resume",
    "freight",
    "history",
    "completion",
];
const KINDS: &[&str] = &["stages", "freight", "promotions", "warehouses"];
const FLAGS: &[&str] = &[
    "--freight",
    "--freight-alias",
    "--downstream-from",
    "--local",
    "--wait",
    "--timeout",
    "--dry-run",
    "--namespace",
    "--context",
    "--kubeconfig",
    "--output",
    "--quiet",
];

fn flag_value<'a>(words: &'a [String], long: &str, short: Option<&str>) -> Option<&'a str> {
    let mut it = words.iter();
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

fn names(words: &[String], plural: &str, alias: bool) -> Vec<String> {
    let kubeconfig = flag_value(words, "--kubeconfig", None).map(std::path::PathBuf::from);
    let Ok(kube) = Kube::connect(kubeconfig.as_deref(), flag_value(words, "--context", None))
    else {
        return Vec::new();
    };
    let ns = flag_value(words, "--namespace", Some("-n"))
        .map(str::to_owned)
        .unwrap_or_else(|| kube.namespace.clone());
    let items = kube
        .list(&kargo_path(plural, &ns, ""), None)
        .unwrap_or_default();
    let pick = |v: &Value| {
        if alias {
            v.get("alias").and_then(Value::as_str).map(str::to_owned)
        } else {
            v.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_owned)
        }
    };
    items
        .iter()
        .filter_map(pick)
        .filter(|n| !n.is_empty())
        .collect()
}

/// Flags that take a value (the next word is not a positional).
const VALUED: &[&str] = &[
    "--freight",
    "--freight-alias",
    "--downstream-from",
    "--local",
    "--timeout",
    "--namespace",
    "-n",
    "--context",
    "--kubeconfig",
    "--output",
    "-o",
    "--cache-dir",
];

fn positionals(words: &[String]) -> Vec<&str> {
    let mut out = Vec::new();
    let mut skip = false;
    for w in words {
        if skip {
            skip = false;
        } else if VALUED.contains(&w.as_str()) {
            skip = true;
        } else if !w.starts_with('-') {
            out.push(w.as_str());
        }
    }
    out
}

fn candidates(words: &[String]) -> Vec<String> {
    let (done, current) = match words.split_last() {
        Some((last, rest)) => (rest, last.as_str()),
        None => (&[][..], ""),
    };
    let prev = done.last().map(String::as_str).unwrap_or_default();
    match prev {
        "--freight" => return names(words, "freights", false),
        "--freight-alias" => return names(words, "freights", true),
        "--downstream-from" | "history" => {
            return names(words, "stages", false)
                .into_iter()
                .map(|n| format!("stage/{n}"))
                .collect();
        }
        "abort" | "resume" => return names(words, "promotions", false),
        "get" => return KINDS.iter().map(|s| (*s).to_owned()).collect(),
        "completion" => {
            return ["bash", "zsh", "fish"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
        }
        "-o" | "--output" => {
            return ["table", "wide", "json", "yaml", "name"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
        }
        _ => {}
    }
    if current.starts_with('-') {
        return FLAGS.iter().map(|s| (*s).to_owned()).collect();
    }
    if positionals(done).is_empty() {
        let mut out: Vec<String> = SUBCOMMANDS.iter().map(|s| (*s).to_owned()).collect();
        out.extend(
            names(words, "stages", false)
                .into_iter()
                .map(|n| format!("stage/{n}")),
        );
        return out;
    }
    Vec::new()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words = match args.split_first() {
        Some((first, rest)) if first == "__complete" || first == "__completeNoDesc" => {
            rest.to_vec()
        }
        _ => args,
    };
    let current = words.last().cloned().unwrap_or_default();
    for c in candidates(&words) {
        if c.starts_with(&current) {
            println!("{c}");
        }
    }
    println!(":{NO_FILE_COMP}");
}
