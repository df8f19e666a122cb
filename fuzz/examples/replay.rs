//! Run one target's check on files, on stable Rust and without libFuzzer: the quick way to see
//! a crash's message, or to try an input by hand (`scripts/fuzz --replay TARGET FILE...`).
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((target, files)) = args.split_first() else {
        eprintln!("usage: replay TARGET FILE...");
        std::process::exit(2);
    };
    let Some((_, check)) = promote_fuzz::TARGETS.iter().find(|(n, _)| n == target) else {
        eprintln!(
            "no target {target}; the targets are: {:?}",
            promote_fuzz::TARGETS
                .iter()
                .map(|t| t.0)
                .collect::<Vec<_>>()
        );
        std::process::exit(2);
    };
    for f in files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("cannot read {f}: {e}"));
        check(&data);
        println!("{f}: ok");
    }
}
