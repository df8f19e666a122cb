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

/// URLs as tricky as the tables of Kargo's own tests, besides the fuzz corpus.
const URLS: &[&str] = &[
    "https://github.com/example/repo.git/",
    "HTTPS://GitHub.com/Example/Repo",
    "https://foo:bar@github.com/example/repo",
    "http://github.com/example/repo?foo=bar",
    "https://github.com/example/repo?",
    "https://github.com/example/repo?&",
    "https://github.com/example/repo?a;b",
    "https://github.com/example/repo?%zz",
    "https://github.com/example/repo?=x",
    "https://github.com/example/repo#",
    "https://github.com/example/repo#a b",
    "https://github.com/example/repo#%41",
    "https://github.com/example/repo#a%zz",
    "https://github.com/ex%41mple/r%2fepo.git",
    "https://github.com/ex ample/repo",
    "ssh://git@github.com/example/repo.git",
    "ssh://git@github.com:22/example/repo#é",
    "git@github.com:example/repo.git",
    "git@github.com:example/repo?x=1#y z",
    "git@github.com:example/r%41po",
    "git@github.com:/#frag",
    "git@github.com:?q",
    "git@github.com:#",
    "git@github.com://host/path",
    "git@github.com:a:b",
    "hs:/# httpx/r ts",
    "localhost",
    "nginx",
    "docker.io/library/nginx",
    "index.docker.io/nginx:1.2",
    "ghcr.io/Example/Image",
    "oci://ghcr.io/example/chart",
    "oci:// x",
    "https://charts.example.com/",
    "\u{feff} https://github.com/example/repo \t",
    "127.0.0.1:5000/x/y@sha256:0123456789012345678901234567890123456789012345678901234567890123",
];

/// `n` URL-like strings from the pieces URLs are made of (schemes, userinfo, hosts, ports, escapes,
/// valid and not, queries, fragments, characters Go escapes or refuses), from a fixed seed: the
/// same strings on every run.
fn generated_urls(n: usize) -> Vec<String> {
    const PIECES: &[&str] = &[
        "https://",
        "http://",
        "ssh://",
        "oci://",
        "HTTPS://",
        "git@",
        "user:pw@",
        "u@",
        "github.com",
        "GitHub.COM",
        "host",
        "localhost:8443",
        "127.0.0.1:5000",
        "[::1]",
        ":",
        ":22",
        ":x",
        "/",
        "//",
        "///",
        "repo",
        "Repo",
        ".git",
        "/",
        "?",
        "?a=b",
        "&",
        ";",
        "=",
        "#",
        "#frag",
        "%41",
        "%2f",
        "%zz",
        "%",
        "%25",
        "%c3%a9",
        " ",
        "é",
        "\u{feff}",
        "\t",
        "\u{0}",
        "[",
        "]",
        "x",
        "-",
        "_",
        ".",
        "..",
        "~",
        "!",
        "'",
        "(",
        ")",
        "*",
        "}",
        "`",
        "^",
        "|",
        "\"",
        "<",
        "+",
        "$",
        ",",
        "@",
        "docker.io/",
        "index.docker.io/",
        "library/",
        "nginx",
        ":1.2",
        "ghcr.io/",
        "@sha256:0123456789012345678901234567890123456789012345678901234567890123",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    (0..n)
        .map(|_| {
            let len = 1 + next() % 8;
            (0..len)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect()
        })
        .collect()
}

/// promote_api::urls against Kargo's own pkg/urls (tests/kargo, built by scripts/kube-build
/// --kargo-urls): every input the urls fuzzer kept, its regressions, the table above and 20,000 generated URLs, through
/// NormalizeGit, NormalizeChart and NormalizeImage, byte for byte.
#[test]
fn urls_normalize_as_kargos_own_code() {
    use std::io::Write;
    let oracle = match std::env::var("PROMOTE_KARGO_URLS") {
        Ok(p) => PathBuf::from(p),
        Err(_) if std::env::var("PROMOTE_REAL_KUBE_REQUIRED").is_ok_and(|v| v == "1") => {
            panic!(
                "PROMOTE_KARGO_URLS is not set: scripts/test builds it with scripts/kube-build --kargo-urls"
            )
        }
        Err(_) => {
            eprintln!(
                "skipped: PROMOTE_KARGO_URLS is not set (scripts/test builds Kargo's pkg/urls when Go is installed)"
            );
            return;
        }
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut urls: Vec<String> = URLS.iter().map(|s| (*s).to_owned()).collect();
    urls.extend(generated_urls(20_000));
    for dir in ["corpus/urls", "regressions/urls"] {
        for file in inputs(&root.join(dir)) {
            if let Ok(data) = std::fs::read(&file)
                && let Ok(s) = String::from_utf8(data)
                // The oracle reads lines; Go's JSON would replace what is not UTF-8 anyway.
                && !s.contains('\n')
            {
                urls.push(s);
            }
        }
    }
    let mut child = std::process::Command::new(&oracle)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", oracle.display()));
    let mut stdin = child.stdin.take().unwrap();
    let lines: String = urls
        .iter()
        .map(|u| serde_json::to_string(u).unwrap() + "\n")
        .collect();
    let writer = std::thread::spawn(move || stdin.write_all(lines.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{}", oracle.display());
    let kargo: Vec<[String; 3]> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(kargo.len(), urls.len());
    let mut differences = Vec::new();
    for (url, kargo) in urls.iter().zip(&kargo) {
        let ours = [
            promote_api::urls::normalize_git(url),
            promote_api::urls::normalize_chart(url),
            promote_api::urls::normalize_image(url),
        ];
        for (i, name) in ["NormalizeGit", "NormalizeChart", "NormalizeImage"]
            .iter()
            .enumerate()
        {
            if ours[i] != kargo[i] {
                differences.push(format!(
                    "{name}({url:?}): Kargo {:?}, promote {:?}",
                    kargo[i], ours[i]
                ));
            }
        }
    }
    eprintln!("{} URLs, 3 normalizations each", urls.len());
    assert!(
        differences.is_empty(),
        "{} differences from Kargo:\n{}",
        differences.len(),
        differences.join("\n")
    );
}
