//! `${{ }}` expressions in step configs, with Kargo's semantics
//! (`pkg/expressions/json_templates.go`): every string anywhere in a config is a template; text
//! outside delimiters is kept; each expression's result is written as a string (strings raw,
//! anything else as JSON); then the whole result is coerced: `"…"` → that string (so
//! `${{ quote(x) }}` keeps a number a string), else a number, else a boolean, else JSON, else the
//! string. Delimiters are `${{ }}` and `${% %}`.
//!
//! The language is expr-lang, as in Kargo, evaluated by the `expr-lang` crate with its builtins
//! (`upper`, `split`, `toJSON`, `now()`, `date()`, `duration()`, `filter`, `map`, ...) and Kargo's
//! functions registered next to them: `quote`, `unsafeQuote`, `asJSON`, `asYAML`, `warehouse`,
//! `commitFrom`, `imageFrom`, `chartFrom`, `artifactFrom`, `freightMetadata`, `freightStatus`,
//! `stageMetadata`,
//! `configMap`, `secret`, `sharedConfigMap`, `sharedSecret`, `semverDiff`, `semverParse`,
//! `success`, `failure`, `always`, `status`. Go methods on values (`response.header(name)`,
//! `semverParse(v).IncMinor().String()`) have no counterpart in the crate, so calls of those
//! method names are rewritten into calls of hidden functions before compiling
//! ([`rewrite_methods`]).

use expr::Value as X;
use serde_json::{Map, Value, json};

/// An expression failed to parse or evaluate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expression {expr:?}: {message}")]
pub struct ExprError {
    /// The expression text.
    pub expr: String,
    /// What went wrong.
    pub message: String,
}

/// What the cluster-backed functions read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// `configMap(name)`: the project's ConfigMap's data.
    ConfigMap,
    /// `secret(name)`: the project's Secret's data, decoded.
    Secret,
    /// `sharedConfigMap(name)`: a ConfigMap of the shared resources namespace.
    SharedConfigMap,
    /// `sharedSecret(name)`: a generic-credentials Secret of the shared resources namespace.
    SharedSecret,
    /// `stageMetadata(name)`: a Stage's `status.metadata`.
    StageMetadata,
    /// `freightMetadata(name)`: a Freight's `status.metadata`.
    FreightMetadata,
    /// `freightStatus(name)`: a Freight's whole `status` (Kargo after v1.11).
    FreightStatus,
}

impl Lookup {
    /// The function's name.
    pub fn name(self) -> &'static str {
        match self {
            Lookup::ConfigMap => "configMap",
            Lookup::Secret => "secret",
            Lookup::SharedConfigMap => "sharedConfigMap",
            Lookup::SharedSecret => "sharedSecret",
            Lookup::StageMetadata => "stageMetadata",
            Lookup::FreightMetadata => "freightMetadata",
            Lookup::FreightStatus => "freightStatus",
        }
    }
}

/// Functions whose results depend on the promotion (freight lookups, step status, the cluster).
pub trait Functions: Sync {
    /// `commitFrom(repoURL[, origin])`.
    fn commit_from(&self, repo: &str, origin: Option<&Value>) -> Result<Value, String>;
    /// `imageFrom(repoURL[, origin])`.
    fn image_from(&self, repo: &str, origin: Option<&Value>) -> Result<Value, String>;
    /// `chartFrom(repoURL[, name][, origin])`.
    fn chart_from(
        &self,
        repo: &str,
        name: Option<&str>,
        origin: Option<&Value>,
    ) -> Result<Value, String>;
    /// Whether every earlier step succeeded (for `success()` / `failure()`).
    fn all_succeeded(&self) -> bool {
        true
    }
    /// `status(alias)`: the status of an earlier step of the promotion (`""` when none ran).
    fn step_status(&self, _alias: &str) -> String {
        String::new()
    }
    /// `configMap()`, `secret()`, `stageMetadata()`, ...: what the cluster holds (empty map, or
    /// nil for metadata, when the object does not exist).
    fn lookup(&self, what: Lookup, _name: &str) -> Result<Value, String> {
        Err(format!("{}() needs a cluster", what.name()))
    }
}

/// The Go methods Kargo's expressions call on values, rewritten into hidden functions.
const METHODS: &[&str] = &[
    "header",
    "Major",
    "Minor",
    "Patch",
    "Prerelease",
    "Metadata",
    "IncMajor",
    "IncMinor",
    "IncPatch",
    "String",
    "Original",
];

/// The byte offsets of string literals in `src` (start, end exclusive).
fn string_spans(src: &str) -> Vec<(usize, usize)> {
    let b = src.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let q = b[i];
        if q == b'"' || q == b'\'' || q == b'`' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != q {
                if b[i] == b'\\' && q != b'`' {
                    i += 1;
                }
                i += 1;
            }
            i = (i + 1).min(b.len());
            spans.push((start, i));
        } else {
            i += 1;
        }
    }
    spans
}

/// Rewrite `receiver.Method(args)` (also `?.`) into `__Method(receiver, args)` for the methods
/// in [`METHODS`], outside string literals; the receiver is the postfix expression before the dot
/// (names, member and index access, calls, literals).
pub fn rewrite_methods(src: &str) -> String {
    let mut s = src.to_owned();
    'outer: loop {
        let spans = string_spans(&s);
        let inside = |i: usize| spans.iter().any(|(a, b)| i >= *a && i < *b);
        let bytes = s.as_bytes();
        for (dot, _) in s.match_indices('.') {
            if inside(dot) {
                continue;
            }
            let rest = &s[dot + 1..];
            let Some(name) = METHODS
                .iter()
                .find(|m| rest.starts_with(**m) && rest[m.len()..].starts_with('('))
            else {
                continue;
            };
            // The receiver: scan back over a postfix expression.
            let end = if dot > 0 && bytes[dot - 1] == b'?' {
                dot - 1
            } else {
                dot
            };
            let mut i = end;
            while i > 0 {
                let c = bytes[i - 1];
                if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'.' || c == b'?' {
                    i -= 1;
                } else if c == b')' || c == b']' {
                    let (open, close) = if c == b')' {
                        (b'(', b')')
                    } else {
                        (b'[', b']')
                    };
                    let mut depth = 0usize;
                    let mut j = i;
                    while j > 0 {
                        j -= 1;
                        if let Some((a, _)) = spans.iter().find(|(a, b)| j >= *a && j < *b) {
                            j = *a;
                            continue;
                        }
                        if bytes[j] == close {
                            depth += 1;
                        } else if bytes[j] == open {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                    }
                    i = j;
                } else if let Some((a, _)) = spans.iter().find(|(_, b)| *b == i) {
                    i = *a;
                } else {
                    break;
                }
            }
            if i == end {
                continue;
            }
            let receiver = s[i..end].to_owned();
            let args = &s[dot + 1 + name.len() + 1..];
            let sep = if args.trim_start().starts_with(')') {
                ""
            } else {
                ", "
            };
            s = format!("{}__{name}({receiver}{sep}{args}", &s[..i]);
            continue 'outer;
        }
        return s;
    }
}

/// serde_json → expr-lang.
fn to_x(v: &Value) -> X {
    match v {
        Value::Null => X::Nil,
        Value::Bool(b) => X::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => X::Integer(i),
            None => X::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => X::String(s.clone()),
        Value::Array(a) => X::Array(a.iter().map(to_x).collect()),
        Value::Object(m) => X::Map(m.iter().map(|(k, v)| (k.clone(), to_x(v))).collect()),
    }
}

/// expr-lang → serde_json, as Go's `encoding/json` would write the value: times as RFC 3339,
/// durations as nanoseconds, bytes as base64, a parsed version as its string.
fn from_x(v: &X) -> Value {
    match v {
        X::Nil => Value::Null,
        X::Bool(b) => Value::Bool(*b),
        X::Integer(i) => json!(i),
        X::Float(f) => num(*f),
        X::String(s) => Value::String(s.clone()),
        X::Array(a) => Value::Array(a.iter().map(from_x).collect()),
        X::Map(m) => match semver_of(v) {
            Some(ver) => Value::String(ver.string()),
            None => Value::Object(m.iter().map(|(k, v)| (k.clone(), from_x(v))).collect()),
        },
        X::KeyedMap(pairs) => Value::Object(
            pairs
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        X::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (key, from_x(v))
                })
                .collect(),
        ),
        X::Bytes(b) => Value::String(crate::credentials::base64(b)),
        X::DateTime(d) => Value::String(d.to_rfc3339()),
        X::Duration(ns) => json!(ns),
        other => Value::String(other.to_string()),
    }
}

fn num(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        json!(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

/// JSON as Go's `encoding/json` writes it: map keys sorted.
fn go_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&sorted(v)).unwrap_or_default()
}

/// Go's `%q` for the strings expressions produce.
fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// A version as Masterminds/semver keeps it (`semverParse`).
#[derive(Clone, Debug, PartialEq)]
struct Ver {
    major: u64,
    minor: u64,
    patch: u64,
    pre: String,
    meta: String,
    original: String,
}

/// The marker key of a parsed version held as an expr map.
const SEMVER_KEY: &str = "__semver";

impl Ver {
    fn parse(s: &str) -> Option<Ver> {
        let v = crate::discovery::versions::parse_loose(s)?;
        Some(Ver {
            major: v.major,
            minor: v.minor,
            patch: v.patch,
            pre: v.pre.to_string(),
            meta: v.build.to_string(),
            original: s.to_owned(),
        })
    }
    fn string(&self) -> String {
        let mut out = format!("{}.{}.{}", self.major, self.minor, self.patch);
        if !self.pre.is_empty() {
            out.push('-');
            out.push_str(&self.pre);
        }
        if !self.meta.is_empty() {
            out.push('+');
            out.push_str(&self.meta);
        }
        out
    }
    fn bumped(&self, major: u64, minor: u64, patch: u64) -> Ver {
        let mut v = Ver {
            major,
            minor,
            patch,
            pre: String::new(),
            meta: String::new(),
            original: String::new(),
        };
        let prefix = if self.original.starts_with('v') {
            "v"
        } else {
            ""
        };
        v.original = format!("{prefix}{}", v.string());
        v
    }
    fn to_x(&self) -> X {
        let mut m = expr::__private::IndexMap::new();
        m.insert(SEMVER_KEY.to_owned(), X::Bool(true));
        for (k, n) in [
            ("major", self.major),
            ("minor", self.minor),
            ("patch", self.patch),
        ] {
            m.insert(
                k.to_owned(),
                X::Integer(i64::try_from(n).unwrap_or(i64::MAX)),
            );
        }
        m.insert("pre".to_owned(), X::String(self.pre.clone()));
        m.insert("meta".to_owned(), X::String(self.meta.clone()));
        m.insert("original".to_owned(), X::String(self.original.clone()));
        X::Map(m)
    }
}

fn semver_of(v: &X) -> Option<Ver> {
    let X::Map(m) = v else { return None };
    m.get(SEMVER_KEY)?;
    let n = |k: &str| match m.get(k) {
        Some(X::Integer(i)) => u64::try_from(*i).ok(),
        _ => None,
    };
    let s = |k: &str| match m.get(k) {
        Some(X::String(s)) => s.clone(),
        _ => String::new(),
    };
    Some(Ver {
        major: n("major")?,
        minor: n("minor")?,
        patch: n("patch")?,
        pre: s("pre"),
        meta: s("meta"),
        original: s("original"),
    })
}

fn type_name(v: &X) -> &'static str {
    match v {
        X::Nil => "nil",
        X::Bool(_) => "bool",
        X::Integer(_) => "int",
        X::Float(_) => "float64",
        X::String(_) => "string",
        X::Array(_) => "array",
        X::Map(_) | X::KeyedMap(_) => "map",
        _ => "value",
    }
}

/// A string argument, with Go's wording when it is not one.
fn str_arg(args: &[X], i: usize, f: &str) -> expr::Result<String> {
    match args.get(i) {
        Some(X::String(s)) => Ok(s.clone()),
        Some(other) => Err(expr::Error::ExprError(format!(
            "{f}(): argument {} must be string, got {}",
            i + 1,
            type_name(other)
        ))),
        None => Err(expr::Error::ExprError(format!(
            "{f}(): expected at least {} argument(s), got {}",
            i + 1,
            args.len()
        ))),
    }
}

fn arity(args: &[X], n: usize, f: &str) -> expr::Result<()> {
    if args.len() == n {
        Ok(())
    } else {
        Err(expr::Error::ExprError(format!(
            "{f}(): expected {n} argument(s), got {}",
            args.len()
        )))
    }
}

fn err(e: String) -> expr::Error {
    expr::Error::ExprError(e)
}

/// expr-lang's environment with Kargo's functions over `funcs`.
fn environment(funcs: &dyn Functions) -> expr::Environment<'_> {
    let mut env = expr::Environment::new();
    env.add_function("quote", |c| {
        arity(&c.args, 1, "quote")?;
        Ok(X::String(match &c.args[0] {
            X::String(s) => go_quote(s),
            other => format!("\"{}\"", go_json(&from_x(other))),
        }))
    });
    env.add_function("unsafeQuote", |c| {
        arity(&c.args, 1, "unsafeQuote")?;
        Ok(X::String(format!("\"{}\"", go_json(&from_x(&c.args[0])))))
    });
    env.add_function("asJSON", |c| {
        arity(&c.args, 1, "asJSON")?;
        Ok(X::String(format!(
            "\"{}\n\"",
            serde_json::to_string_pretty(&from_x(&c.args[0])).unwrap_or_default()
        )))
    });
    env.add_function("asYAML", |c| {
        arity(&c.args, 1, "asYAML")?;
        let yaml = serde_yaml::to_string(&from_x(&c.args[0])).map_err(|e| err(e.to_string()))?;
        Ok(X::String(format!("\"{yaml}\"")))
    });
    env.add_function("warehouse", |c| {
        arity(&c.args, 1, "warehouse")?;
        let name = str_arg(&c.args, 0, "warehouse")?;
        Ok(to_x(&json!({ "kind": "Warehouse", "name": name })))
    });
    env.add_function("commitFrom", move |c| {
        let repo = str_arg(&c.args, 0, "commitFrom")?;
        let origin = c.args.get(1).map(from_x);
        funcs
            .commit_from(&repo, origin.as_ref())
            .map(|v| to_x(&v))
            .map_err(err)
    });
    env.add_function("imageFrom", move |c| {
        let repo = str_arg(&c.args, 0, "imageFrom")?;
        let origin = c.args.get(1).map(from_x);
        funcs
            .image_from(&repo, origin.as_ref())
            .map(|v| to_x(&v))
            .map_err(err)
    });
    env.add_function("chartFrom", move |c| {
        let repo = str_arg(&c.args, 0, "chartFrom")?;
        let result = match c.args.get(1) {
            Some(X::String(n)) => {
                let origin = c.args.get(2).map(from_x);
                funcs.chart_from(&repo, Some(n), origin.as_ref())
            }
            other => {
                let origin = other.map(from_x);
                funcs.chart_from(&repo, None, origin.as_ref())
            }
        };
        result.map(|v| to_x(&v)).map_err(err)
    });
    env.add_function("artifactFrom", |_| {
        Err(err(
            "artifactFrom(): generic artifact subscriptions are not supported by promote (Freight holds commits, images and charts)".into(),
        ))
    });
    for what in [
        Lookup::ConfigMap,
        Lookup::Secret,
        Lookup::SharedConfigMap,
        Lookup::SharedSecret,
        Lookup::StageMetadata,
        Lookup::FreightMetadata,
        Lookup::FreightStatus,
    ] {
        env.add_function(what.name(), move |c| {
            arity(&c.args, 1, what.name())?;
            let name = str_arg(&c.args, 0, what.name())?;
            if name.is_empty() && matches!(what, Lookup::StageMetadata | Lookup::FreightMetadata) {
                return Err(err(format!(
                    "{}(): the name must not be empty",
                    what.name()
                )));
            }
            funcs.lookup(what, &name).map(|v| to_x(&v)).map_err(err)
        });
    }
    env.add_function("success", move |c| {
        arity(&c.args, 0, "success")?;
        Ok(X::Bool(funcs.all_succeeded()))
    });
    env.add_function("failure", move |c| {
        arity(&c.args, 0, "failure")?;
        Ok(X::Bool(!funcs.all_succeeded()))
    });
    env.add_function("always", |c| {
        arity(&c.args, 0, "always")?;
        Ok(X::Bool(true))
    });
    env.add_function("status", move |c| {
        arity(&c.args, 1, "status")?;
        let alias = str_arg(&c.args, 0, "status")?;
        if alias.is_empty() {
            return Err(err("status(): argument must not be empty".into()));
        }
        Ok(X::String(funcs.step_status(&alias)))
    });
    env.add_function("semverDiff", |c| {
        arity(&c.args, 2, "semverDiff")?;
        let (a, b) = (
            str_arg(&c.args, 0, "semverDiff")?,
            str_arg(&c.args, 1, "semverDiff")?,
        );
        let (Some(a), Some(b)) = (Ver::parse(&a), Ver::parse(&b)) else {
            return Ok(X::String("Incomparable".into()));
        };
        Ok(X::String(
            if a.major != b.major {
                "Major"
            } else if a.minor != b.minor {
                "Minor"
            } else if a.patch != b.patch {
                "Patch"
            } else if a.meta != b.meta {
                "Metadata"
            } else {
                "None"
            }
            .into(),
        ))
    });
    env.add_function("semverParse", |c| {
        arity(&c.args, 1, "semverParse")?;
        let s = str_arg(&c.args, 0, "semverParse")?;
        Ver::parse(&s)
            .map(|v| v.to_x())
            .ok_or_else(|| err(format!("semverParse(): invalid semantic version: {s:?}")))
    });
    // The rewritten methods (see `rewrite_methods`): nil receivers give nil, as `?.` would.
    env.add_function("__header", |c| {
        let wanted = str_arg(&c.args, 1, "header")?.to_lowercase();
        let headers = match c.args.first() {
            Some(X::Map(m)) => m.get("headers").cloned(),
            _ => None,
        };
        let found = match headers {
            Some(X::Map(h)) => h
                .iter()
                .find(|(k, _)| k.to_lowercase() == wanted)
                .map(|(_, v)| match v {
                    X::Array(a) => a.first().cloned().unwrap_or_default(),
                    other => other.clone(),
                }),
            _ => None,
        };
        Ok(found.unwrap_or_else(|| X::String(String::new())))
    });
    for method in &METHODS[1..] {
        let method: &'static str = method;
        env.add_function(&format!("__{method}"), move |c| {
            let Some(receiver) = c.args.first() else {
                return Ok(X::Nil);
            };
            if matches!(receiver, X::Nil) {
                return Ok(X::Nil);
            }
            let Some(v) = semver_of(receiver) else {
                if method == "String" {
                    return Ok(X::String(match receiver {
                        X::String(s) => s.clone(),
                        other => other.to_string(),
                    }));
                }
                return Err(err(format!(
                    "{method}() is a method of a version (semverParse), not of a {}",
                    type_name(receiver)
                )));
            };
            let int = |n: u64| X::Integer(i64::try_from(n).unwrap_or(i64::MAX));
            Ok(match method {
                "Major" => int(v.major),
                "Minor" => int(v.minor),
                "Patch" => int(v.patch),
                "Prerelease" => X::String(v.pre.clone()),
                "Metadata" => X::String(v.meta.clone()),
                "Original" => X::String(v.original.clone()),
                "String" => X::String(v.string()),
                "IncMajor" => v.bumped(v.major + 1, 0, 0).to_x(),
                "IncMinor" => v.bumped(v.major, v.minor + 1, 0).to_x(),
                _ if v.pre.is_empty() => v.bumped(v.major, v.minor, v.patch + 1).to_x(),
                _ => v.bumped(v.major, v.minor, v.patch).to_x(),
            })
        });
    }
    env
}

/// One evaluation scope: expr-lang's environment with Kargo's functions, and the variables
/// converted to expr-lang's values, made once for all the expressions of a config.
struct Scope<'a> {
    env: expr::Environment<'a>,
    ctx: expr::Context,
}

impl<'a> Scope<'a> {
    fn new(vars: &Map<String, Value>, funcs: &'a dyn Functions) -> Self {
        let mut ctx = expr::Context::default();
        for (k, v) in vars {
            ctx.insert(k.clone(), to_x(v));
        }
        Self {
            env: environment(funcs),
            ctx,
        }
    }

    fn expr(&self, src: &str) -> Result<Value, ExprError> {
        let fail = |message: String| ExprError {
            expr: src.trim().to_owned(),
            message,
        };
        let code = rewrite_methods(src);
        let program = expr::compile(&code).map_err(|e| fail(e.to_string()))?;
        let value = self
            .env
            .run(&program, &self.ctx)
            .map_err(|e| fail(e.to_string()))?;
        Ok(from_x(&value))
    }

    fn template(&self, template: &str) -> Result<Value, ExprError> {
        if !has_expression(template) {
            return Ok(Value::String(template.to_owned()));
        }
        let mut out = String::new();
        let mut rest = template;
        loop {
            let next = DELIMS
                .iter()
                .filter_map(|(s, e)| rest.find(s).map(|i| (i, *s, *e)))
                .min_by_key(|(i, ..)| *i);
            let Some((i, start, end)) = next else {
                out.push_str(rest);
                break;
            };
            out.push_str(&rest[..i]);
            let body_start = i + start.len();
            let Some(j) = rest[body_start..].find(end) else {
                return Err(ExprError {
                    expr: template.to_owned(),
                    message: format!(
                        "unclosed expression: expected {end:?} but reached end of template"
                    ),
                });
            };
            match self.expr(&rest[body_start..body_start + j])? {
                Value::String(s) => out.push_str(&s),
                other => out.push_str(&go_json(&other)),
            }
            rest = &rest[body_start + j + end.len()..];
        }
        Ok(coerce(out))
    }

    fn value(&self, v: &Value) -> Result<Value, ExprError> {
        Ok(match v {
            Value::String(s) => self.template(s)?,
            Value::Array(a) => {
                Value::Array(a.iter().map(|x| self.value(x)).collect::<Result<_, _>>()?)
            }
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| Ok((k.clone(), self.value(x)?)))
                    .collect::<Result<_, ExprError>>()?,
            ),
            other => other.clone(),
        })
    }
}

/// Whether any string in `v` holds an expression.
fn any_expression(v: &Value) -> bool {
    match v {
        Value::String(s) => has_expression(s),
        Value::Array(a) => a.iter().any(any_expression),
        Value::Object(o) => o.values().any(any_expression),
        _ => false,
    }
}

/// Evaluate one expression (no delimiters) to a value.
pub fn eval_expr(
    src: &str,
    env: &Map<String, Value>,
    funcs: &dyn Functions,
) -> Result<Value, ExprError> {
    Scope::new(env, funcs).expr(src)
}

const DELIMS: [(&str, &str); 2] = [("${{", "}}"), ("${%", "%}")];

/// Whether a string contains an expression (`${{` or `${%`, as the shared step shapes read it).
pub fn has_expression(s: &str) -> bool {
    promote_api::step_config::has_expression(s)
}

/// Evaluate a template string with Kargo's coercion of the result.
pub fn eval_template(
    template: &str,
    env: &Map<String, Value>,
    funcs: &dyn Functions,
) -> Result<Value, ExprError> {
    if !has_expression(template) {
        return Ok(Value::String(template.to_owned()));
    }
    Scope::new(env, funcs).template(template)
}

/// Kargo's coercion of a rendered template.
fn coerce(result: String) -> Value {
    let (body, had_newline) = match result.strip_suffix('\n') {
        Some(b) => (b.to_owned(), true),
        None => (result.clone(), false),
    };
    if body.len() > 1 && body.starts_with('"') && body.ends_with('"') {
        let mut s = body[1..body.len() - 1].to_owned();
        if had_newline {
            s.push('\n');
        }
        return Value::String(s);
    }
    if let Some(n) = parse_go_float(&body) {
        return num(n);
    }
    match body.as_str() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => return Value::Bool(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(v) = serde_json::from_str::<Value>(&body) {
        return v;
    }
    Value::String(result)
}

/// `strconv.ParseFloat` for the forms that matter (decimal, exponent); Go also accepts inf/nan
/// and hex floats, which never appear as image tags or revisions.
fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.strip_prefix(['+', '-']).unwrap_or(s);
    if t.is_empty()
        || !t.bytes().all(|b| {
            b.is_ascii_digit()
                || b == b'.'
                || b == b'e'
                || b == b'E'
                || b == b'+'
                || b == b'-'
                || b == b'_'
        })
    {
        return None;
    }
    if t.contains('_') {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Evaluate every string in a JSON value (a step config) as a template; the scope is made once
/// for the whole value, and not at all when it holds no expression.
pub fn eval_value(
    v: &Value,
    env: &Map<String, Value>,
    funcs: &dyn Functions,
) -> Result<Value, ExprError> {
    if !any_expression(v) {
        return Ok(v.clone());
    }
    Scope::new(env, funcs).value(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct F;
    impl Functions for F {
        fn commit_from(&self, repo: &str, _: Option<&Value>) -> Result<Value, String> {
            Ok(json!({ "RepoURL": repo, "ID": "abc123", "Tag": "v1" }))
        }
        fn image_from(&self, repo: &str, _: Option<&Value>) -> Result<Value, String> {
            if repo == "missing" {
                return Ok(Value::Null);
            }
            Ok(json!({ "RepoURL": repo, "Tag": "1.25", "Digest": "sha256:d" }))
        }
        fn chart_from(
            &self,
            repo: &str,
            name: Option<&str>,
            _: Option<&Value>,
        ) -> Result<Value, String> {
            Ok(json!({ "RepoURL": repo, "Name": name, "Version": "2.0.0" }))
        }
    }

    fn env() -> Map<String, Value> {
        json!({
            "vars": { "repo": "https://github.com/x/y", "n": 3 },
            "ctx": { "stage": "test", "project": "demo", "targetFreight": { "name": "abc", "origin": { "name": "w" } } },
            "outputs": { "update-image": { "commitMessage": "msg" }, "commit": { "commit": "deadbeef" } }
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    fn t(s: &str) -> Value {
        eval_template(s, &env(), &F).unwrap()
    }

    #[test]
    fn templates_and_coercion() {
        assert_eq!(t("plain"), json!("plain"));
        assert_eq!(t("${{ vars.repo }}"), json!("https://github.com/x/y"));
        assert_eq!(t("stage/${{ ctx.stage }}"), json!("stage/test"));
        assert_eq!(
            t("${{ outputs['update-image'].commitMessage }}"),
            json!("msg")
        );
        assert_eq!(t("${{ outputs.commit.commit }}"), json!("deadbeef"));
        // Kargo's coercion: a tag like 1.25 becomes a number unless quoted.
        assert_eq!(t("${{ imageFrom('nginx').Tag }}"), json!(1.25));
        assert_eq!(t("${{ quote(imageFrom('nginx').Tag) }}"), json!("1.25"));
        assert_eq!(t("${{ vars.n }}"), json!(3));
        assert_eq!(t("${{ vars.n > 2 }}"), json!(true));
        assert_eq!(t("${{ commitFrom(vars.repo).ID }}"), json!("abc123"));
        assert_eq!(
            t("${{ chartFrom('oci://x', 'c').Version }}"),
            json!("2.0.0")
        );
        assert_eq!(t("${% ctx.project %}-${{ ctx.stage }}"), json!("demo-test"));
        assert_eq!(
            t("${{ imageFrom('missing')?.Tag ?? 'none' }}"),
            json!("none")
        );
        assert_eq!(t("${{ ctx.stage == 'test' ? 'yes' : 'no' }}"), json!("yes"));
        assert_eq!(t("${{ 'a' + ctx.stage }}"), json!("atest"));
        assert_eq!(t("${{ !success() || always() }}"), json!(true));
        assert_eq!(t("${{ quote(3) }}"), json!("3"));
        assert_eq!(
            t("x: ${{ vars }}"),
            json!("x: {\"n\":3,\"repo\":\"https://github.com/x/y\"}")
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = eval_template("${{ nope.x }}", &env(), &F).unwrap_err();
        assert_eq!(e.message, "unknown variable: nope");
        let e = eval_template("${{ semverParse('x.y') }}", &env(), &F).unwrap_err();
        assert_eq!(
            e.message,
            "semverParse(): invalid semantic version: \"x.y\""
        );
        let e = eval_template("${{ configMap('c').a }}", &env(), &F).unwrap_err();
        assert_eq!(e.message, "configMap() needs a cluster");
        let e = eval_template("${{ ctx.stage", &env(), &F).unwrap_err();
        assert!(e.message.contains("unclosed expression"), "{e}");
        assert!(eval_template("${{ ctx..stage }}", &env(), &F).is_err());
        assert!(eval_template("${{ imageFrom('missing').Tag }}", &env(), &F).is_err());
        assert!(eval_template("${{ unknownFn() }}", &env(), &F).is_err());
    }

    struct G;
    impl Functions for G {
        fn commit_from(&self, _: &str, _: Option<&Value>) -> Result<Value, String> {
            Ok(Value::Null)
        }
        fn image_from(&self, _: &str, _: Option<&Value>) -> Result<Value, String> {
            Ok(Value::Null)
        }
        fn chart_from(&self, _: &str, _: Option<&str>, _: Option<&Value>) -> Result<Value, String> {
            Ok(Value::Null)
        }
        fn step_status(&self, alias: &str) -> String {
            if alias == "push" {
                "Succeeded".into()
            } else {
                String::new()
            }
        }
        fn lookup(&self, what: Lookup, name: &str) -> Result<Value, String> {
            Ok(match (what, name) {
                (Lookup::ConfigMap, "settings") => json!({ "region": "eu-west-1" }),
                (Lookup::StageMetadata, "test") => {
                    json!({ "aws-region": "us-east-1", "config": { "timeout": 30 } })
                }
                (Lookup::StageMetadata, _) => Value::Null,
                _ => json!({}),
            })
        }
    }

    fn g(s: &str) -> Value {
        eval_template(s, &env(), &G).unwrap()
    }

    #[test]
    fn kargos_functions_and_expr_langs_builtins() {
        assert_eq!(g("${{ semverDiff('1.2.3', 'v1.3.0') }}"), json!("Minor"));
        assert_eq!(g("${{ semverDiff('1.2.3', '2.0') }}"), json!("Major"));
        assert_eq!(
            g("${{ semverDiff('1.2.3+a', '1.2.3+b') }}"),
            json!("Metadata")
        );
        assert_eq!(g("${{ semverDiff('1.2.3', 'v1.2.3') }}"), json!("None"));
        assert_eq!(
            g("${{ semverDiff('1.2.3', 'latest') }}"),
            json!("Incomparable")
        );
        assert_eq!(
            g("${{ semverParse('v1.2.3').IncMinor().String() }}"),
            json!("1.3.0")
        );
        assert_eq!(
            g("${{ semverParse('v1.2.3').IncMajor().Original() }}"),
            json!("v2.0.0")
        );
        assert_eq!(
            g("${{ semverParse('1.2.3-rc.1').IncPatch().String() }}"),
            json!("1.2.3")
        );
        assert_eq!(g("${{ semverParse('1.2.3').IncPatch() }}"), json!("1.2.4"));
        assert_eq!(
            g("${{ semverParse('1.2.3-rc.1+b5').Prerelease() }}"),
            json!("rc.1")
        );
        assert_eq!(
            g("${{ semverParse(vars.repo == '' ? '0.0.1' : '4.5.6').Major() + 1 }}"),
            json!(5)
        );
        assert_eq!(g("${{ configMap('settings').region }}"), json!("eu-west-1"));
        assert_eq!(
            g("${{ configMap('absent').region ?? 'none' }}"),
            json!("none")
        );
        assert_eq!(
            g("${{ stageMetadata(ctx.stage)['aws-region'] }}"),
            json!("us-east-1")
        );
        assert_eq!(
            g("${{ stageMetadata(ctx.stage)?.config?.timeout ?? 300 }}"),
            json!(30)
        );
        assert_eq!(
            g("${{ stageMetadata('uat')?.config?.timeout ?? 300 }}"),
            json!(300)
        );
        assert_eq!(g("${{ status('push') }}"), json!("Succeeded"));
        assert_eq!(
            g("${{ upper(ctx.stage) + '-' + join(split('a,b', ','), '+') }}"),
            json!("TEST-a+b")
        );
        assert_eq!(g("${{ toJSON({a: 1}) }}"), json!({ "a": 1 }));
        // Kargo's quote() is Go's %q, whose escapes the coercion keeps.
        assert_eq!(g("${{ quote(toJSON({a: 1})) }}"), json!("{\\\"a\\\":1}"));
        assert_eq!(g("${{ len(filter([1, 2, 3], # > 1)) }}"), json!(2));
        assert_eq!(g("${{ ctx.stage in ['test', 'uat'] }}"), json!(true));
        assert_eq!(g("${{ now().Year() > 2000 }}"), json!(true));
        assert_eq!(g("${{ date('2024-01-02').Year() }}"), json!(2024));
        assert_eq!(g("${{ asYAML({a: 1}) }}"), json!("a: 1\n"));
        assert_eq!(
            eval_expr(
                "response.header('content-type')",
                json!({ "response": { "headers": { "Content-Type": ["text/plain"] } } })
                    .as_object()
                    .unwrap(),
                &G
            )
            .unwrap(),
            json!("text/plain")
        );
    }

    #[test]
    fn methods_are_rewritten_outside_strings() {
        assert_eq!(rewrite_methods("a.b.String()"), "__String(a.b)");
        assert_eq!(
            rewrite_methods("semverParse(x['v']).IncMinor().String()"),
            "__String(__IncMinor(semverParse(x['v'])))"
        );
        assert_eq!(rewrite_methods("r?.header('X')"), "__header(r, 'X')");
        assert_eq!(rewrite_methods("'a.String()' + b"), "'a.String()' + b");
        assert_eq!(
            rewrite_methods("f(a).Major() > 1 && b.Minor() < 2"),
            "__Major(f(a)) > 1 && __Minor(b) < 2"
        );
        assert_eq!(rewrite_methods("now().Year()"), "now().Year()");
    }

    #[test]
    fn whole_configs() {
        let cfg = json!({ "path": "./src/${{ ctx.stage }}", "images": [{ "image": "nginx", "tag": "${{ quote(imageFrom('nginx').Tag) }}" }], "n": 1 });
        assert_eq!(
            eval_value(&cfg, &env(), &F).unwrap(),
            json!({ "path": "./src/test", "images": [{ "image": "nginx", "tag": "1.25" }], "n": 1 })
        );
    }
}
