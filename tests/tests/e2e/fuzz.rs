//! The fuzz corpus, replayed: every input the fuzzers kept (`fuzz/corpus/<target>/`) and every
//! crash they found and we fixed (`fuzz/regressions/<target>/`) goes through its target's check
//! (`promote_fuzz`), on stable Rust and without libFuzzer.

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    out.sort();
    out
}

#[test]
fn corpus_and_regressions_pass_their_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut failures = Vec::new();
    for (target, check) in promote_fuzz::TARGETS {
        let corpus = inputs(&root.join("corpus").join(target));
        assert!(
            corpus.iter().any(|p| p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("seed-")),
            "fuzz/corpus/{target} has no seeds; run fuzz/seeds.py"
        );
        for file in corpus
            .iter()
            .chain(&inputs(&root.join("regressions").join(target)))
        {
            // A fuzzer running meanwhile replaces inputs by smaller ones.
            let Ok(data) = std::fs::read(file) else {
                continue;
            };
            if std::panic::catch_unwind(|| check(&data)).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    // Every target has a binary and the binaries are exactly the targets.
    let mut bins: Vec<String> = inputs(&root.join("fuzz_targets"))
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    bins.sort();
    let mut names: Vec<String> = promote_fuzz::TARGETS
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    names.sort();
    assert_eq!(
        bins, names,
        "fuzz/fuzz_targets and promote_fuzz::TARGETS differ"
    );
    assert!(
        failures.is_empty(),
        "inputs failing their checks: {failures:#?}"
    );
}
