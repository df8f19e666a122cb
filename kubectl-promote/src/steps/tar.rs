//! `tar`: archive a file or a directory of a checkout into a tar file (gzipped with `gzip: true`)
//! of a checkout, as Kargo's step does: entries are named relative to `inPath` (a single file by
//! its own name), directories end in `/`, `ignore` holds `.gitignore` patterns (default: `.git`),
//! an existing output file is replaced, and Kargo's limits hold: 50 MB per file, 100 MB in all.
//! Unlike Kargo's, the archive is reproducible: entries in path order, modes 0644 and 0755, no
//! owner, modification time 0, so the same tree gives the same bytes (and no spurious commit).

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Runtime, StepError, StepResult, config, fail};

const MAX_FILE: usize = 50 << 20;
const MAX_TOTAL: usize = 100 << 20;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    in_path: String,
    out_path: String,
    #[serde(default)]
    ignore: String,
    #[serde(default)]
    gzip: bool,
}

fn header(kind: tar::EntryType, size: usize, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size as u64);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("tar", cfg)?;
    let mut rules = ignore::gitignore::GitignoreBuilder::new("/in");
    let lines: Vec<&str> = if cfg.ignore.trim().is_empty() {
        vec![".git"]
    } else {
        cfg.ignore.lines().collect()
    };
    for line in lines {
        rules
            .add_line(None, line)
            .map_err(|e| fail(format!("tar: invalid ignore pattern {line:?}: {e}")))?;
    }
    let rules = rules
        .build()
        .map_err(|e| fail(format!("tar: invalid ignore patterns: {e}")))?;
    let ignored = |rel: &str, dir: bool| {
        rules
            .matched_path_or_any_parents(std::path::Path::new("/in").join(rel), dir)
            .is_ignore()
    };
    let (co, rel) = rt.resolve(&cfg.in_path)?;
    // (name in the archive, content; None for a directory)
    let mut entries: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    if co.checkout.is_dir(&rel)? {
        let mut files = co.checkout.files(&rel)?;
        files.sort();
        let mut dirs = std::collections::BTreeSet::new();
        for f in files {
            let inner = f
                .strip_prefix(&rel)
                .unwrap_or(&f)
                .trim_start_matches('/')
                .to_owned();
            if ignored(&inner, false) {
                continue;
            }
            // Each directory once, before what it holds, as a directory walk writes them.
            let parts: Vec<&str> = inner.split('/').collect();
            for i in 1..parts.len() {
                let d = parts[..i].join("/");
                if dirs.insert(d.clone()) {
                    entries.push((format!("{d}/"), None));
                }
            }
            let data = co.checkout.read(&f)?.unwrap_or_default();
            entries.push((inner, Some(data)));
        }
    } else {
        let Some(data) = co.checkout.read(&rel)? else {
            return Err(fail(format!(
                "tar: input path {:?} does not exist",
                cfg.in_path
            )));
        };
        let name = rel.rsplit('/').next().unwrap_or(&rel).to_owned();
        if !ignored(&name, false) {
            entries.push((name, Some(data)));
        }
    }
    let mut total = 0usize;
    for (name, data) in &entries {
        let size = data.as_ref().map_or(0, Vec::len);
        if size > MAX_FILE {
            return Err(fail(format!(
                "tar: file {name:?} size ({size} bytes) exceeds the maximum allowed single file size ({MAX_FILE} bytes)"
            )));
        }
        total += size;
        if total > MAX_TOTAL {
            return Err(fail(format!(
                "tar: total tar archive source size exceeds the maximum allowed size ({MAX_TOTAL} bytes)"
            )));
        }
    }
    let io = |e: std::io::Error| fail(format!("tar: writing the archive: {e}"));
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in &entries {
        match data {
            None => {
                let mut h = header(tar::EntryType::Directory, 0, 0o755);
                builder
                    .append_data(&mut h, name, std::io::empty())
                    .map_err(io)?;
            }
            Some(d) => {
                let mut h = header(tar::EntryType::Regular, d.len(), 0o644);
                builder
                    .append_data(&mut h, name, d.as_slice())
                    .map_err(io)?;
            }
        }
    }
    let archive = builder.into_inner().map_err(io)?;
    let bytes = if cfg.gzip {
        use std::io::Write;
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(Vec::new(), flate2::Compression::default());
        gz.write_all(&archive).map_err(io)?;
        gz.finish().map_err(io)?
    } else {
        archive
    };
    let n = entries.iter().filter(|(_, d)| d.is_some()).count();
    let size = bytes.len();
    let (out, out_rel) = rt.resolve(&cfg.out_path)?;
    out.checkout.write(&out_rel, bytes)?;
    Ok(StepResult::ok(
        json!({}),
        format!(
            "archived {n} file(s) of {} into {} ({size} bytes{})",
            cfg.in_path,
            cfg.out_path,
            if cfg.gzip { ", gzipped" } else { "" }
        ),
    ))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "tar",
    summary: "archive a file or directory of a checkout into a (gzipped) tar file, reproducibly",
    shape: &promote_api::step_config::TAR,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &[],
    verify_recorded: None,
};
