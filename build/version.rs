// The build script of every crate with a binary (included by each crate's build.rs): the commit
// `--version` prints, from PROMOTE_GIT_COMMIT (release builds set it), else the checkout's HEAD,
// else "unknown" (a source archive without Git).
fn main() {
    let commit = std::env::var("PROMOTE_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            std::process::Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=PROMOTE_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-env-changed=PROMOTE_GIT_COMMIT");
    for path in ["../.git/HEAD", "../.git/refs/heads", "../.git/packed-refs"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
