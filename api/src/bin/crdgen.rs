//! Writes the Kargo CRDs generated from the api types to `manifests/crds/` (or the directory given
//! as the first argument). `--check` exits 1 instead of writing when a file would change.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut check = false;
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds");
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" => check = true,
            "-h" | "--help" => {
                println!(
                    "usage: crdgen [--check] [DIR]\n\nWrites the Kargo CRDs to DIR (default manifests/crds).\n--check  exit 1 when a file differs instead of writing"
                );
                return ExitCode::SUCCESS;
            }
            other => dir = PathBuf::from(other),
        }
    }
    let files = match promote_api::crd::render_all() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let mut stale = false;
    for (name, content) in files {
        let path = dir.join(&name);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(content.as_str()) {
            continue;
        }
        if check {
            eprintln!("stale: {}", path.display());
            stale = true;
        } else if let Err(e) = std::fs::write(&path, content) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        } else {
            eprintln!("wrote {}", path.display());
        }
    }
    if stale {
        eprintln!("hint: run `cargo run -p promote-api --bin crdgen`");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
