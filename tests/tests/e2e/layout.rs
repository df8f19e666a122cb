//! The source tree's shape: no import cycles between the top-level modules of any crate, and the
//! README's layout table names paths that exist and every module of the plugin and the webhook.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Source without comments and without the test modules at the end of files.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|n| n.trim_start().starts_with("mod ") && n.trim_end().ends_with('{'))
        {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Top-level modules declared in a crate root, without test-only ones.
fn modules(root_file: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(root_file).unwrap();
    let mut out = BTreeSet::new();
    let mut test_only = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("#[cfg(test)]") {
            test_only = true;
            continue;
        }
        let decl = t
            .strip_prefix("pub mod ")
            .or_else(|| t.strip_prefix("pub(crate) mod "))
            .or_else(|| t.strip_prefix("mod "));
        if let Some(name) = decl.and_then(|d| d.strip_suffix(';'))
            && !test_only
        {
            out.insert(name.to_owned());
        }
        test_only = false;
    }
    out
}

/// The files of a top-level module.
fn files(src: &Path, module: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let file = src.join(format!("{module}.rs"));
    if file.exists() {
        out.push(file);
    }
    let dir = src.join(module);
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs")
                && !matches!(
                    p.file_name().and_then(|n| n.to_str()),
                    Some("tests.rs" | "fake.rs")
                )
            {
                out.push(p);
            }
        }
    }
    out
}

/// Which top-level modules each one uses (`crate::x`).
fn graph(krate: &str) -> BTreeMap<String, BTreeSet<String>> {
    let src = root().join(krate).join("src");
    let mods = modules(&src.join("lib.rs"));
    let word = regex::Regex::new(r"crate::([a-z_][a-z0-9_]*)").unwrap();
    let group = regex::Regex::new(r"crate::\{([^}]*)\}").unwrap();
    let mut g = BTreeMap::new();
    for m in &mods {
        let mut deps = BTreeSet::new();
        for f in files(&src, m) {
            let text = code(&std::fs::read_to_string(&f).unwrap());
            for c in word.captures_iter(&text) {
                deps.insert(c[1].to_owned());
            }
            for c in group.captures_iter(&text) {
                for part in c[1].split(',') {
                    let name = part.trim().split("::").next().unwrap_or_default();
                    deps.insert(name.to_owned());
                }
            }
        }
        deps.retain(|d| d != m && mods.contains(d));
        g.insert(m.clone(), deps);
    }
    g
}

/// A cycle in `g`, if there is one.
fn cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut c = path[i..].to_vec();
            c.push(n.to_owned());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_owned());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(n, g, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let mut found = Vec::new();
    for krate in ["api", "kubectl-promote", "webhook", "sandbox", "pki"] {
        let g = graph(krate);
        assert!(g.len() > 1 || krate == "pki", "{krate}: no modules found");
        if let Some(c) = cycle(&g) {
            found.push(format!("{krate}: {}", c.join(" -> ")));
        }
    }
    assert!(found.is_empty(), "import cycles: {found:?}");
    // The checker finds what it should.
    let mut g = BTreeMap::new();
    g.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    g.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert!(cycle(&g).is_some());
    // The sandbox does not build the webhook.
    let sandbox = std::fs::read_to_string(root().join("sandbox/Cargo.toml")).unwrap();
    assert!(!sandbox.contains("promote-webhook"), "{sandbox}");
}

/// Paths in the README's layout table: `a/b.rs`, and `dir/{x,y}.rs` groups expanded.
fn layout_paths(readme: &str) -> Vec<String> {
    let table = readme
        .split("## Layout")
        .nth(1)
        .unwrap_or_default()
        .split("\n## ")
        .next()
        .unwrap_or_default();
    let mut out = Vec::new();
    for line in table.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split('|').nth(1).unwrap_or_default();
        for part in first.split(", ") {
            let p = part.trim().trim_matches('`');
            match (p.find('{'), p.find('}')) {
                (Some(a), Some(b)) => {
                    for name in p[a + 1..b].split(',') {
                        out.push(format!("{}{}{}", &p[..a], name, &p[b + 1..]));
                    }
                }
                _ => out.push(p.to_owned()),
            }
        }
    }
    out
}

#[test]
fn the_readme_layout_table_matches_the_tree() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let paths = layout_paths(&readme);
    assert!(paths.len() > 20, "{paths:?}");
    let missing: Vec<&String> = paths
        .iter()
        .filter(|p| !root().join(p.trim_end_matches('/')).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "the layout table names missing paths: {missing:?}"
    );
    // Every top-level module of the plugin and the webhook is in the table.
    let mut unlisted = Vec::new();
    for krate in ["kubectl-promote", "webhook"] {
        let src = format!("{krate}/src/");
        for m in modules(&root().join(&src).join("lib.rs")) {
            let (file, dir) = (format!("{src}{m}.rs"), format!("{src}{m}/"));
            if !paths.iter().any(|p| *p == file || *p == dir) {
                unlisted.push(format!("{src}{m}"));
            }
        }
    }
    assert!(
        unlisted.is_empty(),
        "modules missing from the README's layout table: {unlisted:?}"
    );
}

/// Field paths of the CRDs in `dir`, as `scripts/kargo-crd-fields` writes them.
fn crd_fields(dir: &Path) -> BTreeSet<String> {
    fn walk(s: &serde_json::Value, path: &str, out: &mut BTreeSet<String>) {
        let Some(o) = s.as_object() else {
            return;
        };
        if o.get("x-kubernetes-preserve-unknown-fields") == Some(&serde_json::Value::Bool(true)) {
            out.insert(format!("{path} *"));
        }
        if let Some(props) = o.get("properties").and_then(|p| p.as_object()) {
            for (k, v) in props {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                out.insert(p.clone());
                walk(v, &p, out);
            }
        }
        if o.get("type").and_then(|t| t.as_str()) == Some("array")
            && let Some(items) = o.get("items")
        {
            walk(items, &format!("{path}[]"), out);
        }
        if let Some(ap) = o.get("additionalProperties").filter(|a| a.is_object()) {
            walk(ap, &format!("{path}{{}}"), out);
        }
    }
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap();
        for doc in text.split("\n---\n") {
            let v: serde_json::Value = serde_yaml::from_str(doc).unwrap_or_default();
            if v["kind"] != "CustomResourceDefinition" {
                continue;
            }
            let kind = v["spec"]["names"]["kind"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            for ver in v["spec"]["versions"].as_array().into_iter().flatten() {
                let mut paths = BTreeSet::new();
                walk(&ver["schema"]["openAPIV3Schema"], "", &mut paths);
                out.extend(paths.into_iter().map(|p| format!("{kind} {p}")));
            }
        }
    }
    out
}

/// Whether `field` (`<Kind> <path>`) is in `ours`, or under an object of ours that keeps unknown
/// fields.
fn accepted(ours: &BTreeSet<String>, field: &str) -> bool {
    if ours.contains(field) {
        return true;
    }
    let Some((kind, path)) = field.split_once(' ') else {
        return false;
    };
    let mut p = path;
    loop {
        let cut = [p.rfind('.'), p.rfind("[]"), p.rfind("{}")]
            .into_iter()
            .flatten()
            .max();
        match cut {
            Some(i) if i > 0 => {
                p = &p[..i];
                if ours.contains(&format!("{kind} {p} *")) {
                    return true;
                }
            }
            _ => return false,
        }
    }
}

#[test]
fn our_crds_accept_every_field_of_kargos() {
    let fixture =
        std::fs::read_to_string(root().join("tests/fixtures/kargo-v1.11.2-crd-fields.txt"))
            .unwrap();
    let ours = crd_fields(&root().join("manifests/crds"));
    let kargo: Vec<&str> = fixture
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty() && !l.ends_with(" *"))
        .collect();
    assert!(kargo.len() > 600, "{}", kargo.len());
    let missing: Vec<&&str> = kargo.iter().filter(|f| !accepted(&ours, f)).collect();
    assert!(
        missing.is_empty(),
        "fields of Kargo's CRDs that ours would prune or refuse: {missing:?}"
    );
    // The comparison can fail.
    assert!(!accepted(&ours, "Stage spec.noSuchField"));
    assert!(accepted(
        &ours,
        "Stage spec.promotionTemplate.spec.steps[].config.anything"
    ));
}
