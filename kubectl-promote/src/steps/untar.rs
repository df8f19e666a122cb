//! `untar`: extract a tar file (gzipped or not: detected by its first bytes) of a checkout into a
//! directory of a checkout, as Kargo's step does: `stripComponents` drops leading path parts
//! (entries with too few are skipped), `ignore` holds `.gitignore` patterns (`.git` is always
//! ignored), extracted files replace files of the same name, and Kargo's limits hold: 50 MB per
//! file, 100 MB in all. Entries that would leave the directory (absolute, `..`) are skipped, as
//! Kargo skips them; symbolic and hard links are skipped too (a checkout holds files, and a link
//! could lead out of it), and the message counts them.

use std::io::Read;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Runtime, StepError, StepResult, config, fail};

const MAX_FILE: u64 = 50 << 20;
const MAX_TOTAL: u64 = 100 << 20;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    in_path: String,
    out_path: String,
    #[serde(default)]
    strip_components: Option<i64>,
    #[serde(default)]
    ignore: String,
}

fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("untar", cfg)?;
    let strip = match cfg.strip_components {
        None => 0,
        Some(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
        Some(n) => {
            return Err(fail(format!(
                "untar: stripComponents must not be negative (got {n})"
            )));
        }
    };
    let (in_co, in_rel) = rt.resolve(&cfg.in_path)?;
    let Some(data) = in_co.checkout.read(&in_rel)? else {
        return Err(fail(format!("untar: {} does not exist", cfg.in_path)));
    };
    let mut ignore = ignore::gitignore::GitignoreBuilder::new("");
    for line in cfg.ignore.lines().chain(std::iter::once(".git")) {
        ignore
            .add_line(None, line)
            .map_err(|e| fail(format!("untar: ignore pattern {line:?}: {e}")))?;
    }
    let ignore = ignore
        .build()
        .map_err(|e| fail(format!("untar: ignore patterns: {e}")))?;
    let gzipped = data.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if gzipped {
        Box::new(flate2::read::GzDecoder::new(data.as_slice()))
    } else {
        Box::new(data.as_slice())
    };
    let bad = |e: std::io::Error| {
        fail(format!(
            "untar: {} is not a readable tar file: {e}",
            cfg.in_path
        ))
    };
    let mut archive = tar::Archive::new(reader);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let (mut total, mut links, mut unsafe_paths) = (0u64, 0usize, 0usize);
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let kind = entry.header().entry_type();
        let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let parts: Vec<&str> = name
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        if parts.len() <= strip {
            continue;
        }
        let target = parts[strip..].join("/");
        if target.is_empty() {
            continue;
        }
        if ignore
            .matched_path_or_any_parents(&target, kind.is_dir())
            .is_ignore()
        {
            continue;
        }
        if kind.is_symlink() || kind.is_hard_link() {
            links += 1;
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let Ok(clean) = crate::git::tree::clean_path(&target) else {
            unsafe_paths += 1;
            continue;
        };
        let size = entry.header().size().map_err(bad)?;
        if size > MAX_FILE {
            return Err(fail(format!(
                "untar: extraction aborted: file {clean} exceeds size limit of {MAX_FILE} bytes"
            )));
        }
        if total + size > MAX_TOTAL {
            return Err(fail(format!(
                "untar: extraction aborted: total size would exceed limit of {MAX_TOTAL} bytes"
            )));
        }
        let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        entry
            .by_ref()
            .take(MAX_FILE + 1)
            .read_to_end(&mut buf)
            .map_err(bad)?;
        total += buf.len() as u64;
        files.push((clean, buf));
    }
    let (out_co, out_rel) = rt.resolve(&cfg.out_path)?;
    let n = files.len();
    for (name, data) in files {
        let path = if out_rel.is_empty() {
            name
        } else {
            format!("{out_rel}/{name}")
        };
        out_co.checkout.write(&path, data)?;
    }
    let mut message = format!("{n} file(s) from {} into {}", cfg.in_path, cfg.out_path);
    if links > 0 {
        message.push_str(&format!("; {links} link(s) skipped"));
    }
    if unsafe_paths > 0 {
        message.push_str(&format!(
            "; {unsafe_paths} entr(ies) outside the directory skipped"
        ));
    }
    Ok(StepResult::ok(json!({}), message))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "untar",
    summary: "extract a tar (or gzipped tar) file of a checkout into a directory",
    shape: &promote_api::step_config::UNTAR,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &[],
    verify_recorded: None,
};
