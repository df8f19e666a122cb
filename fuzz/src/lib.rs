//! The properties the fuzz targets check, one function per target. `cargo fuzz` (through
//! `scripts/fuzz`) drives them with libFuzzer; the end-to-end tests replay every input kept in
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` through the same functions on stable
//! Rust, so a crash found once stays fixed.
//!
//! A check panics when a property fails: that is how a fuzzer learns of a bug. Each one holds the
//! code under test to an oracle where one exists (serde_json for the webhook's fast reader,
//! serde_yaml, serde_json and the toml crate for the structured edits) and otherwise to
//! invariants (no panic, idempotent normalization, parse and print agreeing).
// Failing loudly is the purpose of this crate; the workspace's no-panic rule is for product code.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// A target's check.
pub type Check = fn(&[u8]);

/// Every target: its name (the directory under `fuzz/corpus/` and the binary under
/// `fuzz/fuzz_targets/`) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("admission", admission),
    ("authorized_stage", authorized_stage),
    ("expression", expression),
    ("yaml_update", yaml_update),
    ("json_update", json_update),
    ("toml_update", toml_update),
    ("urls", urls),
];

/// An input split as `key\nvalue\ndocument` (the edit targets' format, readable in the corpus).
fn edit_input(data: &[u8]) -> Option<(&str, &str, &str)> {
    let text = std::str::from_utf8(data).ok()?;
    let (key, rest) = text.split_once('\n')?;
    let (value, doc) = rest.split_once('\n')?;
    Some((key, value, doc))
}

/// The value line of an edit input: JSON when it parses, else a string.
fn edit_value(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

// ---------------------------------------------------------------------------------------------
// admission

/// The cluster every review is decided against: a project with a Stage, a running Promotion of
/// it, Freight, a Warehouse, alice allowed to promote and authorize everything.
fn world() -> &'static promote_webhook::cluster::StaticCluster {
    static WORLD: OnceLock<promote_webhook::cluster::StaticCluster> = OnceLock::new();
    WORLD.get_or_init(|| {
        let mut c = promote_webhook::cluster::StaticCluster::default();
        for v in [
            json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Warehouse",
                "metadata": {"name": "w", "namespace": "p"},
                "spec": {"subscriptions": [{"image": {"repoURL": "ghcr.io/acme/api"}}]}}),
            json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
                "metadata": {"name": "test", "namespace": "p"},
                "spec": {"requestedFreight": [{"origin": {"kind": "Warehouse", "name": "w"},
                    "sources": {"direct": true}}],
                    "promotionTemplate": {"spec": {"steps": [
                        {"uses": "argocd-update", "config": {"apps": [{"name": "app"}]}}]}}}}),
            json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Freight",
                "metadata": {"name": "f", "namespace": "p"}, "origin": {"kind": "Warehouse", "name": "w"},
                "images": [{"repoURL": "ghcr.io/acme/api", "tag": "v1"}]}),
            json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
                "metadata": {"name": "test.01j00000000000000000000000.f", "namespace": "p"},
                "spec": {"stage": "test", "freight": "f", "steps": [
                    {"uses": "argocd-update", "config": {"apps": [{"name": "app"}]}}]},
                "status": {"phase": "Running"}}),
        ] {
            c.add(v).expect("the fuzz world is valid");
        }
        c.promoters = Some(vec![("alice".into(), "*".into(), "*".into())]);
        c.authorizers = Some(vec![("alice".into(), "*".into(), "*".into())]);
        c
    })
}

fn policy() -> promote_webhook::admission::Policy {
    promote_webhook::admission::Policy {
        now: "2026-12-02T00:00:00Z".parse().expect("a valid time"),
        ulid: ulid::Ulid::nil(),
        ..Default::default()
    }
}

/// Slim both objects of a request, so that a request the fast reader read and one serde_json
/// read compare equal (the fallback keeps objects whole; no decision reads what slimming drops).
fn slimmed(mut r: promote_webhook::admission::Request) -> promote_webhook::admission::Request {
    let keep_status = r.sub_resource == "status";
    for o in [&mut r.object, &mut r.old_object].into_iter().flatten() {
        promote_webhook::review::slim(o, keep_status);
    }
    r
}

/// An AdmissionReview body, on every webhook path: the fast reader reads what serde_json reads
/// (or both refuse it); a review the fast path settles without deciding gets the verdict the full
/// decision gives; every decision answers with a well-formed AdmissionReview response for the
/// request's uid, and a validating hook never patches.
pub fn admission(data: &[u8]) {
    use promote_webhook::admission::{self as adm, Hook};
    use promote_webhook::review;
    let fast = review::parse_review(data);
    let slow = review::parse_review_reference(data);
    match (&fast, &slow) {
        (Ok(f), Ok(s)) => assert_eq!(
            slimmed(f.clone()),
            slimmed(s.clone()),
            "fast and serde read different requests"
        ),
        (Err(_), Err(_)) => {}
        // The fast reader skips the values no decision reads (status, resource, managedFields)
        // by matching brackets, without validating their insides: a body that is invalid JSON
        // only inside such a value is read, where serde_json refuses it. kube-apiserver sends
        // valid JSON; the README says so (found by this target, first minute).
        (Ok(_), Err(_)) => {}
        (Err(e), Ok(_)) => panic!("the fast reader refused what serde_json reads: {e}"),
    }
    let Ok(req) = fast else {
        return;
    };
    let policy = policy();
    for hook in Hook::ALL {
        let verdict = futures::executor::block_on(adm::review(hook, &req, world(), &policy));
        if let Ok(r) = review::read_review(data)
            && let Some(settled) = adm::settled(&r, hook, &policy)
        {
            assert_eq!(
                settled.allowed, verdict.allowed,
                "{hook:?}: settled and decided differ"
            );
            assert_eq!(
                settled.patch, verdict.patch,
                "{hook:?}: settled and decided differ"
            );
        }
        let answer: Value =
            serde_json::from_slice(&verdict.to_review_bytes(&req.uid)).expect("the answer is JSON");
        assert_eq!(answer["response"]["uid"], Value::String(req.uid.clone()));
        assert_eq!(answer["response"]["allowed"], Value::Bool(verdict.allowed));
        if !verdict.allowed {
            assert!(
                !verdict.message.is_empty(),
                "{hook:?}: a denial without a reason"
            );
        }
        if let Some(patch) = answer["response"].get("patch") {
            assert!(hook.is_mutating() || patch.is_null(), "{hook:?} patched");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// authorized-stage

/// The `kargo.akuity.io/authorized-stage` parser: entries it accepts are trimmed, non-empty and
/// glob-free; printing them and parsing again gives the same entries; `authorize` admits exactly
/// the Stages the value lists.
pub fn authorized_stage(data: &[u8]) {
    use promote_api::authorized_stage::{authorize, expected_value, parse};
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    match parse(value) {
        Ok(entries) => {
            assert!(!entries.is_empty());
            for e in &entries {
                for part in [&e.project, &e.stage] {
                    assert!(
                        !part.is_empty() && part.trim() == part.as_str() && !part.contains('*')
                    );
                    assert!(!part.contains(','), "{part:?}");
                }
                assert!(!e.project.contains(':'), "{:?}", e.project);
                assert!(authorize(Some(value), "app", "argocd", &e.project, &e.stage).is_ok());
            }
            let printed: Vec<String> = entries
                .iter()
                .map(|e| expected_value(&e.project, &e.stage))
                .collect();
            assert_eq!(parse(&printed.join(",")).as_ref(), Ok(&entries));
            // A Stage the value does not list is refused.
            let (p, s) = ("\u{1}p", "\u{1}s");
            assert!(authorize(Some(value), "app", "argocd", p, s).is_err());
        }
        Err(message) => {
            assert!(!message.is_empty());
            if let Some((p, s)) = value.split_once(':') {
                assert!(authorize(Some(value), "app", "argocd", p.trim(), s.trim()).is_err());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// expressions

struct Funcs;

impl kubectl_promote::expr::Functions for Funcs {
    fn commit_from(&self, repo: &str, _: Option<&Value>) -> Result<Value, String> {
        Ok(json!({"RepoURL": repo, "ID": "0123abcd", "Tag": "v1.2.3", "Message": "m"}))
    }
    fn image_from(&self, repo: &str, _: Option<&Value>) -> Result<Value, String> {
        Ok(json!({"RepoURL": repo, "Tag": "1.25.3", "Digest": "sha256:00"}))
    }
    fn chart_from(
        &self,
        repo: &str,
        name: Option<&str>,
        _: Option<&Value>,
    ) -> Result<Value, String> {
        Ok(json!({"RepoURL": repo, "Name": name, "Version": "0.1.0"}))
    }
    fn step_status(&self, alias: &str) -> String {
        if alias == "a" {
            "Succeeded".into()
        } else {
            String::new()
        }
    }
    fn lookup(&self, _: kubectl_promote::expr::Lookup, name: &str) -> Result<Value, String> {
        Ok(json!({"name": name, "key": "value"}))
    }
}

fn expr_env() -> &'static Map<String, Value> {
    static ENV: OnceLock<Map<String, Value>> = OnceLock::new();
    ENV.get_or_init(|| {
        let v = json!({
            "ctx": {"project": "p", "stage": "test", "promotion": "test.01j.f",
                "targetFreight": {"name": "f", "origin": {"kind": "Warehouse", "name": "w"}}},
            "vars": {"repo": "https://git.example/r.git", "n": 3, "list": [1, 2, 3], "tag": "v1.2.3",
                "nested": {"a": {"b": [true, null, 1.5]}}},
            "outputs": {"a": {"commit": "abc", "images": ["x", "y"]}},
            "task": {"outputs": {}},
            "secrets": {},
        });
        let Value::Object(m) = v else { unreachable!() };
        m
    })
}

/// The expression evaluator, on any text as a template and as a bare expression: it answers (a
/// value or an error, never a panic or a hang); a string without `${{`/`${%` is itself; the same
/// input gives the same answer twice (unless it reads the clock).
pub fn expression(data: &[u8]) {
    use kubectl_promote::expr::{eval_expr, eval_template, has_expression};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = expr_env();
    let first = eval_template(text, env, &Funcs);
    if !has_expression(text) {
        assert_eq!(first.as_ref().ok(), Some(&Value::String(text.to_owned())));
    }
    let clock = text.contains("now") || text.contains("date");
    if !clock {
        assert_eq!(
            format!("{:?}", eval_template(text, env, &Funcs)),
            format!("{first:?}"),
            "the same template gave two answers"
        );
    }
    let _ = eval_expr(text, env, &Funcs);
}

// ---------------------------------------------------------------------------------------------
// structured edits

/// What editing `path` to `new` should do to a parsed YAML document, where that is clear:
/// `Some(expected document)`, `Some` too when the path ends at an existing scalar (the edit must
/// then succeed), `None` where the oracle does not model the case (aliases, non-string keys).
fn yaml_expect(
    doc: &serde_yaml::Value,
    path: &[kubectl_promote::yaml_edit::PathPart],
    new: &serde_yaml::Value,
) -> Option<serde_yaml::Value> {
    use kubectl_promote::yaml_edit::PathPart;
    use serde_yaml::Value as Y;
    let (first, rest) = path.split_first()?;
    match (doc, first) {
        (Y::Mapping(m), PathPart::Key(k)) => {
            // Keys other than strings (`1:`, `true:`) are matched by their text: not modelled.
            if m.keys().any(|key| !key.is_string()) {
                return None;
            }
            let mut m = m.clone();
            let key = Y::String(k.clone());
            let child = match m.get(&key) {
                Some(_) if rest.is_empty() => new.clone(),
                Some(existing) => yaml_expect(existing, rest, new)?,
                None => {
                    // Missing keys are created as nested mappings.
                    let mut v = new.clone();
                    for part in rest.iter().rev() {
                        let PathPart::Key(k) = part else { return None };
                        let mut inner = serde_yaml::Mapping::new();
                        inner.insert(Y::String(k.clone()), v);
                        v = Y::Mapping(inner);
                    }
                    v
                }
            };
            m.insert(key, child);
            Some(Y::Mapping(m))
        }
        (Y::Sequence(s), PathPart::Index(i)) => {
            let mut s = s.clone();
            match usize::try_from(*i).ok().filter(|i| *i < s.len()) {
                Some(i) if rest.is_empty() => s[i] = new.clone(),
                Some(i) => s[i] = yaml_expect(&s[i], rest, new)?,
                None if rest.is_empty() => s.push(new.clone()),
                None => return None,
            }
            Some(Y::Sequence(s))
        }
        _ => None,
    }
}

/// Whether the path leads through existing mappings and sequences to an existing scalar.
fn yaml_reaches_scalar(
    doc: &serde_yaml::Value,
    path: &[kubectl_promote::yaml_edit::PathPart],
) -> bool {
    use kubectl_promote::yaml_edit::PathPart;
    use serde_yaml::Value as Y;
    let Some((first, rest)) = path.split_first() else {
        return matches!(doc, Y::String(_) | Y::Number(_) | Y::Bool(_));
    };
    match (doc, first) {
        (Y::Mapping(m), PathPart::Key(k)) => m
            .get(Y::String(k.clone()))
            .is_some_and(|v| yaml_reaches_scalar(v, rest)),
        (Y::Sequence(s), PathPart::Index(i)) => usize::try_from(*i)
            .ok()
            .and_then(|i| s.get(i))
            .is_some_and(|v| yaml_reaches_scalar(v, rest)),
        _ => false,
    }
}

/// `yaml-update`'s edit: the result is YAML; read back with serde_yaml it is the document with
/// exactly that value changed; an edit of an existing scalar never fails; the bytes before the
/// first and after the last changed byte are the original's.
pub fn yaml_update(data: &[u8]) {
    use kubectl_promote::yaml_edit::{YamlDoc, split_key};
    let Some((key, raw, text)) = edit_input(data) else {
        return;
    };
    let value = edit_value(raw);
    let path = split_key(key);
    let Ok(mut doc) = YamlDoc::parse(text) else {
        return;
    };
    let before: Option<serde_yaml::Value> =
        if text.contains(['&', '*', '!', '%']) || text.contains("<<") {
            None
        } else {
            serde_yaml::from_str(text).ok()
        };
    let result = doc.set(&path, &value);
    let Some(before) = before else {
        if result.is_ok() {
            YamlDoc::parse(doc.text()).expect("an edit leaves valid YAML");
        }
        return;
    };
    let new = serde_yaml::to_value(&value).expect("JSON is YAML");
    if yaml_reaches_scalar(&before, &path) && !key.is_empty() {
        assert!(
            result.is_ok(),
            "editing an existing scalar failed: {result:?}"
        );
    }
    if result.is_err() {
        assert_eq!(doc.text(), text, "a failed edit changed the text");
        return;
    }
    let after: serde_yaml::Value = match serde_yaml::from_str(doc.text()) {
        Ok(v) => v,
        // serde_yaml reads at most 128 levels: a path that deep is past what the oracle can
        // check (found by this target), not a broken document (our own parser read it above).
        Err(e) if e.to_string().contains("recursion limit exceeded") => {
            YamlDoc::parse(doc.text()).expect("an edit leaves valid YAML");
            return;
        }
        Err(e) => panic!("the edit is not YAML ({e}):\n{}", doc.text()),
    };
    if let Some(expected) = yaml_expect(&before, &path, &new) {
        assert_eq!(
            after,
            expected,
            "the edit changed more than its value:\n{}",
            doc.text()
        );
    }
}

/// A JSON value whose objects have no repeated key (serde_json keeps the last one, sjson edits
/// the first: not a case the oracle models).
struct Strict;

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Strict;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
                Ok(Strict)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
                Ok(Strict)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
                Ok(Strict)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
                Ok(Strict)
            }
            fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
                Ok(Strict)
            }
            fn visit_unit<E>(self) -> Result<Strict, E> {
                Ok(Strict)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Strict, A::Error> {
                while a.next_element::<Strict>()?.is_some() {}
                Ok(Strict)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Strict, A::Error> {
                let mut seen = std::collections::HashSet::new();
                while let Some(k) = a.next_key::<String>()? {
                    if !seen.insert(k) {
                        return Err(serde::de::Error::custom("repeated key"));
                    }
                    a.next_value::<Strict>()?;
                }
                Ok(Strict)
            }
        }
        d.deserialize_any(V)
    }
}

/// A plain path part: letters, digits after the first, `_` and `-`.
fn plain(part: &str) -> bool {
    part.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// What setting the plain `path` to `new` does to a JSON object tree: nested objects are made for
/// missing keys; `None` where a non-object stands in the way (sjson rules not modelled).
fn json_expect(doc: &Value, path: &[&str], new: &Value) -> Option<Value> {
    let (first, rest) = path.split_first()?;
    let Value::Object(m) = doc else { return None };
    let mut m = m.clone();
    let child = match m.get(*first) {
        Some(_) if rest.is_empty() => new.clone(),
        Some(existing) => json_expect(existing, rest, new)?,
        None => rest.iter().rev().fold(new.clone(), |v, k| json!({ *k: v })),
    };
    m.insert((*first).to_owned(), child);
    Some(Value::Object(m))
}

/// `json-update`'s edit (sjson's `Set`): the result is JSON; where the path is plain and the
/// document an object tree, it reads as the document with exactly that value set.
pub fn json_update(data: &[u8]) {
    let Some((key, raw, text)) = edit_input(data) else {
        return;
    };
    let value = edit_value(raw);
    if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
        return;
    }
    // serde_json (with the raw_value feature the workspace turns on) reads an object whose only
    // key is this token as a RawValue, so the oracle cannot read such a document back: not a
    // fault of the edit (found by this target).
    if key.contains("$serde_json::private::") || text.contains("$serde_json::private::") {
        return;
    }
    // serde_json reads at most 128 levels of nesting; sjson (and so json-update) creates as
    // many as the key has parts. Deeper results cannot be read back by the oracle.
    if key.split('.').count() > 100 {
        return;
    }
    let raw = match &value {
        Value::String(s) => kubectl_promote::json_edit::stringify(s),
        other => other.to_string(),
    };
    let result = kubectl_promote::json_edit::set(text, key, &raw);
    let Ok(before) = serde_json::from_str::<Value>(text) else {
        return;
    };
    if serde_json::from_str::<Strict>(text).is_err() {
        return;
    }
    let parts: Vec<&str> = key.split('.').collect();
    let modelled = parts.iter().all(|p| plain(p));
    let out = match result {
        Ok(out) => out,
        Err(e) => {
            assert!(
                !(modelled && json_expect(&before, &parts, &value).is_some()),
                "set failed: {e}"
            );
            return;
        }
    };
    let after: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("the edit is not JSON ({e}):\n{out}"));
    if modelled && let Some(expected) = json_expect(&before, &parts, &value) {
        assert_eq!(
            after, expected,
            "the edit changed more than its value:\n{out}"
        );
    }
}

/// `toml-update`'s edit: the key must exist and hold a scalar; the result reads (with the toml
/// crate) as the document with exactly that value replaced; an edit of an existing scalar of a
/// plain path never fails; the stream used for large files writes what the tree writes.
pub fn toml_update(data: &[u8]) {
    let Some((key, raw, text)) = edit_input(data) else {
        return;
    };
    let value = edit_value(raw);
    if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
        return;
    }
    let parsed = text.parse::<toml::Table>();
    // toml_edit panics on some invalid documents, which the step catches; libFuzzer's panic
    // hook aborts before anything can catch, so under the fuzzer invalid documents stop here
    // (the replay on stable runs them through, regressions/toml_update included).
    if cfg!(fuzzing) && parsed.is_err() {
        return;
    }
    let result = kubectl_promote::steps::toml_update(text, key, &value);
    // Large files are edited by a stream of expressions instead of a tree: wherever the tree
    // edits, the stream must write the same bytes (it cannot see a key defined twice, so a
    // document the tree refuses may be edited by the stream).
    // Where the bytes differ, the tree moved some (toml_edit writes a table header's CRLF as LF,
    // found by this target) and the stream did not: the two must still read the same.
    if let Ok(tree) = &result {
        match kubectl_promote::steps::toml_update_with(text, key, &value, true) {
            Ok(stream) if &stream == tree => {}
            Ok(stream) => assert_eq!(
                stream.parse::<toml::Table>().ok(),
                tree.parse::<toml::Table>().ok(),
                "the stream and the tree edit differently:\n{stream}\n---\n{tree}"
            ),
            Err(e) => panic!("the tree edits, the stream fails: {e}"),
        }
    }
    let Ok(before) = parsed else {
        assert!(result.is_err(), "an edit of invalid TOML succeeded");
        return;
    };
    let parts: Vec<&str> = key.split('.').collect();
    let modelled = parts
        .iter()
        .all(|p| plain(p) || p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty());
    let new = match &value {
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64().expect("a JSON number")),
        },
        _ => return,
    };
    // The expected table, when the path reaches an existing scalar.
    fn replace(v: &mut toml::Value, path: &[&str], new: &toml::Value) -> bool {
        let Some((first, rest)) = path.split_first() else {
            if matches!(v, toml::Value::Table(_) | toml::Value::Array(_)) {
                return false;
            }
            *v = new.clone();
            return true;
        };
        let next = match v {
            toml::Value::Table(t) => t.get_mut(*first),
            toml::Value::Array(a) => first.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        };
        next.is_some_and(|n| replace(n, rest, new))
    }
    let mut expected = toml::Value::Table(before);
    let reaches = modelled && replace(&mut expected, &parts, &new);
    match result {
        Ok(out) => {
            let after: toml::Table = out
                .parse()
                .unwrap_or_else(|e| panic!("the edit is not TOML ({e}):\n{out}"));
            if reaches {
                assert_eq!(
                    toml::Value::Table(after),
                    expected,
                    "the edit changed more than its value:\n{out}"
                );
            }
        }
        Err(e) => assert!(!reaches, "editing an existing scalar failed: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// URLs and Freight names

/// Repository URL normalization, on which Freight names depend: sanitizing leaves no control
/// characters and no surrounding space; every normalization is idempotent (a URL written
/// normalized names the same Freight as the one it came from); a Freight name is 40 hex digits.
pub fn urls(data: &[u8]) {
    use promote_api::urls::{normalize_chart, normalize_git, normalize_image, sanitize};
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    let s = sanitize(url);
    assert!(!s.chars().any(char::is_control) && s.trim() == s);
    assert_eq!(sanitize(&s), s);
    for (name, f) in [
        ("git", normalize_git as fn(&str) -> String),
        ("chart", normalize_chart),
        ("image", normalize_image),
    ] {
        let once = f(url);
        // Kargo is idempotent only up to percent-encoding: it lowercases a URL before Go's
        // url.Parse, which escapes with uppercase hex (found by this target on `^` in a path),
        // and characters that were legal where they stood (`>` in an scp path's host) are
        // escaped once a second pass reads them in a path (found by this target; Kargo's own
        // code does the same, tests/kargo shows). Exactness is checked against Kargo's code
        // (`fuzz::urls_normalize_as_kargos_own_code`, over this corpus); here both sides are
        // compared decoded.
        let decoded = |s: &str| {
            let b = s.as_bytes();
            let mut out = Vec::with_capacity(b.len());
            let mut i = 0;
            while i < b.len() {
                let hex = |c: u8| char::from(c).to_digit(16);
                match (
                    b[i],
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) {
                    (b'%', Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    (c, _, _) => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            out
        };
        // Kargo trims one trailing `/` per normalization of a Git URL: a path ending in `//`
        // loses one each time, also before a query or fragment (found by this target).
        // And one `.git` suffix: `repo.git.git` keeps one `.git` the first time (found by this
        // target; Kargo's own code does the same, tests/kargo shows).
        let path = &once[..once.find(['?', '#']).unwrap_or(once.len())];
        if name == "git" && (path.ends_with('/') || path.to_ascii_lowercase().ends_with(".git")) {
            continue;
        }
        // Kargo turns an http(s) or ssh URL with no host (`http://r@`, `ssh://`,
        // `http://#://s`) into `http:`, `ssh:` or `http:#://s`, which a second normalization
        // reads as scp-style (`ssh://http`). Kargo's own code does, as tests/kargo shows; found
        // by this target.
        let lower = once.to_lowercase();
        if name == "git"
            && ["http:", "https:", "ssh:"]
                .iter()
                .any(|s| lower.starts_with(s) && !lower[s.len()..].starts_with("//"))
        {
            continue;
        }
        // Kargo strips one `oci://` per chart normalization: `oci://oci://x` loses one each
        // time (found by this target).
        if name == "chart" && once.to_lowercase().starts_with("oci://") {
            continue;
        }
        // A chart or image reference that normalizes to a repository with an empty name
        // (`docker.io/library/`, from `docker.io/library/\0…docker.io/library/\0…`) normalizes
        // to `` the next time: Kargo's own code does the same (checked with tests/kargo; found
        // by this target).
        if matches!(name, "chart" | "image") && once.ends_with('/') {
            continue;
        }
        // A normalization that ends in spaces (a query of spaces that were NULs and blanks:
        // `ssh:/x?\0 \0` gives `ssh://ssh//x?   `) loses them to the next pass's sanitizing:
        // Kargo's own code does the same (checked with tests/kargo; found by this target).
        if once.trim_end() != once {
            continue;
        }
        // Kargo's image (and so chart) normalization maps `docker.io/NAME` (one segment) to
        // `NAME`, but `docker.io/docker.io/NAME` to `docker.io/NAME`: not idempotent there
        // (checked with tests/kargo; found by this target).
        if matches!(name, "chart" | "image")
            && once
                .to_ascii_lowercase()
                .strip_prefix("docker.io/")
                .is_some_and(|rest| !rest.contains('/'))
        {
            continue;
        }
        // An escaped capital letter (`%55`) survives the lowercasing and is decoded by
        // url.Parse, so the first pass gives `U` and the second, lowercasing it, `u`: Kargo's
        // own code does (found by this target, checked with tests/kargo). Git and chart
        // normalization lowercase; both sides are compared in lowercase there.
        let fold = |s: &str| match name {
            "image" => decoded(s),
            _ => decoded(s).to_ascii_lowercase(),
        };
        assert_eq!(
            fold(&f(&once)),
            fold(&once),
            "{name} normalization is not idempotent on {url:?}"
        );
    }
    let mut freight = promote_api::types::Freight {
        origin: promote_api::types::FreightOrigin::warehouse("w"),
        commits: vec![promote_api::types::GitCommit {
            repo_url: url.to_owned(),
            id: "0123".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let id = promote_api::freight_id::freight_id(&freight);
    assert!(
        id.len() == 40
            && id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    // The same Freight from the normalized URL, where normalizing it again changes nothing.
    let normalized = normalize_git(url);
    if normalize_git(&normalized) == normalized {
        freight.commits[0].repo_url = normalized;
        assert_eq!(promote_api::freight_id::freight_id(&freight), id);
    }
}
