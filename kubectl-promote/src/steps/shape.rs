//! Shape checks of step configs before anything runs: required keys present, no unknown keys (a
//! typo such as `reopURL` is caught up front instead of halfway through a promotion), and literal
//! paths confined to the work directory. Strings holding expressions pass any type check here;
//! their values are checked when the step runs.

use serde_json::Value;

pub enum Shape {
    Any,
    Str,
    Bool,
    Int,
    /// A path that must stay inside the work directory.
    Path,
    Arr(&'static Shape),
    Obj(&'static [(&'static str, bool, Shape)]),
}

pub(super) use Shape::*;

impl Shape {
    /// An object shape's top-level fields for the README (`name`, optional ones `name?`).
    pub fn fields(&self) -> String {
        match self {
            Obj(fields) => fields
                .iter()
                .map(|(n, required, _)| {
                    if *required {
                        format!("`{n}`")
                    } else {
                        format!("`{n}?`")
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
            Any => "(any keys: the outputs)".into(),
            _ => String::new(),
        }
    }
}

pub(super) const AUTHOR: Shape = Obj(&[
    ("name", false, Str),
    ("email", false, Str),
    ("signingKey", false, Str),
]);
pub(super) const SELECTOR: Shape = Obj(&[
    ("matchLabels", false, Any),
    ("matchExpressions", false, Any),
]);
fn check(v: &Value, shape: &Shape, path: &str, errs: &mut Vec<String>) {
    if v.as_str().is_some_and(crate::expr::has_expression) && !matches!(shape, Path) {
        return;
    }
    match (shape, v) {
        (Any, _) | (Str, Value::String(_)) | (Bool, Value::Bool(_)) => {}
        (Int, Value::Number(n)) if n.is_i64() => {}
        (Path, Value::String(s)) => {
            if !crate::expr::has_expression(s)
                && let Err(e) = crate::git::tree::clean_path(s)
            {
                errs.push(format!("{path}: {e}"));
            }
        }
        (Arr(item), Value::Array(a)) => {
            for (i, x) in a.iter().enumerate() {
                check(x, item, &format!("{path}[{i}]"), errs);
            }
        }
        (Obj(fields), Value::Object(o)) => {
            for (name, required, _) in fields.iter() {
                if *required && !o.contains_key(*name) {
                    errs.push(format!("{path}.{name}: required"));
                }
            }
            for (k, x) in o {
                match fields.iter().find(|(n, ..)| n == k) {
                    Some((_, _, s)) => check(x, s, &format!("{path}.{k}"), errs),
                    None => {
                        let known: Vec<&str> = fields.iter().map(|(n, ..)| *n).collect();
                        errs.push(format!(
                            "{path}.{k}: unknown field (known: {})",
                            known.join(", ")
                        ));
                    }
                }
            }
        }
        (s, v) => {
            let want = match s {
                Str | Path => "a string",
                Bool => "a boolean",
                Int => "an integer",
                Arr(_) => "a list",
                Obj(_) => "an object",
                Any => "anything",
            };
            errs.push(format!("{path}: must be {want}, got {v}"));
        }
    }
}

/// Check a step's config shape; every problem is listed with its path (`config.checkout[0].path`).
pub fn validate_config(uses: &str, config: Option<&Value>) -> Result<(), Vec<String>> {
    let Some(step) = super::lookup(uses) else {
        return Err(vec![format!(
            "uses: unknown step kind {uses:?}; promote runs: {}",
            super::known()
        )]);
    };
    let shape = step.shape;
    let mut errs = Vec::new();
    match config {
        Some(c) => check(c, shape, "config", &mut errs),
        None => errs.push("config: required".into()),
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes() {
        assert!(validate_config("git-clone", Some(&json!({ "repoURL": "${{ vars.r }}", "checkout": [{ "branch": "main", "path": "./src" }] }))).is_ok());
        assert_eq!(
            validate_config("git-clone", Some(&json!({ "reopURL": "x", "checkout": [{ "path": "../up" }] }))).unwrap_err(),
            vec![
                "config.repoURL: required".to_owned(),
                "config.reopURL: unknown field (known: repoURL, checkout, author, insecureSkipTLSVerify, blobless, recurseSubmodules)".to_owned(),
                "config.checkout[0].path: invalid path \"../up\": \"..\" would escape the work tree".to_owned(),
            ]
        );
        assert!(
            validate_config(
                "git-push",
                Some(&json!({ "path": "./out", "maxAttempts": "x" }))
            )
            .is_err()
        );
        assert!(
            validate_config(
                "git-push",
                Some(&json!({ "path": "./out", "maxAttempts": "${{ vars.n }}" }))
            )
            .is_ok()
        );
        assert!(validate_config("nope", Some(&json!({}))).is_err());
        assert!(validate_config("yaml-update", None).is_err());
    }
}
