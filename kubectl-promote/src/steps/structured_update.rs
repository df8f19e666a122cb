//! `json-update` and `toml-update`: set scalar values in a JSON or TOML file of a checkout, moving
//! nothing else. `json-update` follows tidwall/sjson, as Kargo's: missing keys are created
//! (`json_edit`). `toml-update` follows Kargo's own TOML editor: the key must exist and hold a
//! scalar; its value is replaced in place (`toml_edit` keeps every other byte). Both output
//! `commitMessage` as Kargo words it.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Runtime, StepError, StepResult, config, fail, utf8};

#[derive(Deserialize)]
struct Update {
    key: String,
    value: Value,
}

#[derive(Deserialize)]
struct Config {
    path: String,
    updates: Vec<Update>,
}

fn scalar(step: &str, u: &Update) -> Result<(), StepError> {
    match u.value {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(()),
        _ => Err(fail(format!(
            "{step}: value for key {:?} is not a scalar type",
            u.key
        ))),
    }
}

/// A value as sjson writes it.
fn json_raw(v: &Value) -> String {
    match v {
        Value::String(s) => crate::json_edit::stringify(s),
        other => other.to_string(),
    }
}

/// Kargo's `%q` / `%v` in commit messages.
fn go_show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Kargo's key split for TOML (its `sjson.SplitKey`): `\.` and `\:` escape, a leading `:` is
/// dropped.
fn toml_key(key: &str) -> Result<Vec<String>, String> {
    let key = key.trim();
    if key.is_empty() {
        return Err("empty key".into());
    }
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in key.chars() {
        if escaped {
            match c {
                '.' | ':' => cur.push(c),
                _ => return Err(format!("invalid escape sequence in key {key:?}")),
            }
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '.' if cur.is_empty() => return Err(format!("empty key part in key {key:?}")),
            '.' => parts.push(std::mem::take(&mut cur)),
            ':' if !cur.is_empty() => return Err(format!("unexpected colon in key {key:?}")),
            ':' => {}
            c => cur.push(c),
        }
    }
    if cur.is_empty() {
        return Err(format!("empty key part in key {key:?}"));
    }
    parts.push(cur);
    Ok(parts)
}

/// A TOML value for a scalar.
fn toml_value(v: &Value) -> Option<toml_edit::Value> {
    Some(match v {
        Value::String(s) => toml_edit::Value::from(s.as_str()),
        Value::Bool(b) => toml_edit::Value::from(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml_edit::Value::from(i),
            None => toml_edit::Value::from(n.as_f64()?),
        },
        _ => return None,
    })
}

/// `toml-update`'s edit of one key on a whole text: the new text, or why not (the fuzz target
/// `toml_update` checks that nothing but that value moves).
pub fn toml_update(text: &str, key: &str, v: &Value) -> Result<String, String> {
    toml_update_shown(text, key, v, text.len() > super::toml_stream::STREAM_ABOVE).map(|r| r.0)
}

/// [`toml_update`] through the stream (`stream`) or the whole document's tree, whatever the
/// size: the fuzz target holds the two to the same bytes.
#[doc(hidden)]
pub fn toml_update_with(text: &str, key: &str, v: &Value, stream: bool) -> Result<String, String> {
    toml_update_shown(text, key, v, stream).map(|r| r.0)
}

/// The edited text and the value as it now reads (for the commit message).
fn toml_update_shown(
    text: &str,
    key: &str,
    v: &Value,
    stream: bool,
) -> Result<(String, String), String> {
    if !stream {
        let mut doc = parse_toml(text)?;
        let shown = toml_set(&mut doc, key, v)?;
        return Ok((toml_text(text, &doc), shown));
    }
    use super::toml_stream::{Missing, locate};
    let parts = toml_key(key)?;
    let found = locate(text, &parts).map_err(|m| match m {
        Missing::NotFound => format!("error finding key {key}: key path not found"),
        Missing::Table => {
            format!("error finding key {key}: key path addresses a table instead of a scalar node")
        }
        Missing::Invalid(e) => e,
    })?;
    // The expression alone is a document: edit it as the tree-based path would, then put it
    // back where it was.
    let expr = &text[found.range.clone()];
    let mut doc = parse_toml(expr)?;
    let shown = set_in_table_like(doc.as_table_mut(), &found.local, key, v)?;
    let edited = doc.to_string();
    let edited = edited
        .strip_suffix('\n')
        .filter(|_| !expr.ends_with('\n'))
        .unwrap_or(&edited);
    let mut out = String::with_capacity(text.len() + edited.len());
    out.push_str(&text[..found.range.start]);
    out.push_str(edited);
    out.push_str(&text[found.range.end..]);
    Ok((out, shown))
}

/// The text of an edited document. toml_edit ends the last line with a line break even where
/// the file had none (found by comparing it with the stream); that byte is not the edit's, so
/// it is dropped again.
fn toml_text(original: &str, doc: &toml_edit::DocumentMut) -> String {
    let mut out = doc.to_string();
    if !original.ends_with('\n') && out.ends_with('\n') {
        out.pop();
        if out.ends_with('\r') && !original.ends_with('\r') {
            out.pop();
        }
    }
    out
}

/// Parse a TOML document for editing. toml_edit 0.23.10 panics ("all items have spans") on some
/// malformed documents (found by the toml_update fuzz target; input kept in
/// fuzz/regressions/toml_update): that is caught and reported as the parse error it is.
fn parse_toml(text: &str) -> Result<toml_edit::DocumentMut, String> {
    std::panic::catch_unwind(|| text.parse::<toml_edit::DocumentMut>())
        .map_err(|_| {
            "the TOML parser (toml_edit) failed on this document; it is most likely not valid TOML"
                .to_owned()
        })?
        .map_err(|e| format!("{e}"))
}

/// Replace the scalar at `key` in `doc`; what it now reads (for the commit message).
fn toml_set(doc: &mut toml_edit::DocumentMut, key: &str, v: &Value) -> Result<String, String> {
    let parts = toml_key(key)?;
    set_in_table_like(doc.as_table_mut(), &parts, key, v)
}

fn set_in_table_like(
    t: &mut toml_edit::Table,
    rest: &[String],
    key: &str,
    v: &Value,
) -> Result<String, String> {
    let not_found = || format!("error finding key {key}: key path not found");
    let (first, tail) = rest.split_first().ok_or_else(|| {
        format!("error finding key {key}: key path addresses a table instead of a scalar node")
    })?;
    match t.get_mut(first).ok_or_else(not_found)? {
        toml_edit::Item::Table(inner) => set_in_table_like(inner, tail, key, v),
        toml_edit::Item::Value(val) => set_in_value(val, tail, key, v),
        toml_edit::Item::ArrayOfTables(a) => {
            let (i, tail) = tail.split_first().ok_or_else(not_found)?;
            let i: usize = i.parse().map_err(|_| not_found())?;
            set_in_table_like(a.get_mut(i).ok_or_else(not_found)?, tail, key, v)
        }
        toml_edit::Item::None => Err(not_found()),
    }
}

/// Walk the rest of the path inside a value (inline tables, arrays) and replace the scalar.
fn set_in_value(
    val: &mut toml_edit::Value,
    rest: &[String],
    key: &str,
    v: &Value,
) -> Result<String, String> {
    let not_found = || format!("error finding key {key}: key path not found");
    if let Some((first, tail)) = rest.split_first() {
        let next = match val {
            toml_edit::Value::InlineTable(t) => t.get_mut(first).ok_or_else(not_found)?,
            toml_edit::Value::Array(a) => {
                let i: usize = first.parse().map_err(|_| not_found())?;
                a.get_mut(i).ok_or_else(not_found)?
            }
            _ => return Err(not_found()),
        };
        return set_in_value(next, tail, key, v);
    }
    if matches!(
        val,
        toml_edit::Value::InlineTable(_) | toml_edit::Value::Array(_)
    ) {
        return Err(format!(
            "error finding key {key}: key path addresses {} instead of a scalar node",
            if val.is_array() {
                "an array"
            } else {
                "an inline table"
            }
        ));
    }
    let mut new =
        toml_value(v).ok_or_else(|| format!("value for key {key:?} is not a TOML scalar type"))?;
    *new.decor_mut() = val.decor().clone();
    let shown = new.clone().decorated("", "").to_string();
    *val = new;
    Ok(shown)
}

fn run_json(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("json-update", cfg)?;
    let (co, rel) = rt.resolve(&cfg.path)?;
    let Some(data) = co.checkout.read(&rel)? else {
        return Err(fail(format!(
            "json-update: {} does not exist in the checkout of {}",
            cfg.path, co.repo_url
        )));
    };
    let mut text = utf8(&cfg.path, data)?;
    // At most two copies of the file at once: the text and its edited successor.
    let mut changed = false;
    for u in &cfg.updates {
        scalar("json-update", u)?;
        let next = crate::json_edit::set(&text, &u.key, &json_raw(&u.value)).map_err(|e| {
            fail(format!(
                "json-update: error setting key {:?} in {}: {e}",
                u.key, cfg.path
            ))
        })?;
        changed |= next != text;
        text = next;
    }
    if changed {
        co.checkout.write(&rel, text.into_bytes())?;
    }
    let mut msg = format!("Updated {}\n", cfg.path);
    for u in &cfg.updates {
        msg.push_str(&format!("\n- {}: {}", u.key, go_show(&u.value)));
    }
    Ok(StepResult::ok(
        json!({ "commitMessage": msg }),
        format!("{}: {} key(s) set", cfg.path, cfg.updates.len()),
    ))
}

fn run_toml(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("toml-update", cfg)?;
    let (co, rel) = rt.resolve(&cfg.path)?;
    let Some(data) = co.checkout.read(&rel)? else {
        return Err(fail(format!(
            "toml-update: {} does not exist in the checkout of {}",
            cfg.path, co.repo_url
        )));
    };
    let text = utf8(&cfg.path, data)?;
    let mut msg = format!("Updated {}\n", cfg.path);
    let (out, changed) = if text.len() > super::toml_stream::STREAM_ABOVE {
        // Large files: one expression at a time, never the whole tree (toml_stream). At most
        // two copies of the file at once: the text and its edited successor.
        let mut out = text;
        let mut changed = false;
        for u in &cfg.updates {
            scalar("toml-update", u)?;
            let (next, shown) = toml_update_shown(&out, &u.key, &u.value, true).map_err(|e| {
                if e.starts_with("TOML parse error") {
                    fail(format!("toml-update: could not parse {}: {e}", cfg.path))
                } else {
                    fail(format!("toml-update: {} in {}", e, cfg.path))
                }
            })?;
            msg.push_str(&format!("\n- {}: {shown}", u.key));
            changed |= next != out;
            out = next;
        }
        (out, changed)
    } else {
        let mut doc = parse_toml(&text)
            .map_err(|e| fail(format!("toml-update: could not parse {}: {e}", cfg.path)))?;
        for u in &cfg.updates {
            scalar("toml-update", u)?;
            let shown = toml_set(&mut doc, &u.key, &u.value)
                .map_err(|e| fail(format!("toml-update: {} in {}", e, cfg.path)))?;
            msg.push_str(&format!("\n- {}: {shown}", u.key));
        }
        let out = toml_text(&text, &doc);
        let changed = out != text;
        (out, changed)
    };
    if changed {
        co.checkout.write(&rel, out.into_bytes())?;
    }
    Ok(StepResult::ok(
        json!({ "commitMessage": msg }),
        format!("{}: {} key(s) set", cfg.path, cfg.updates.len()),
    ))
}

/// The registry entries (`steps::REGISTRY`).
pub(super) const JSON: super::Step = super::Step {
    name: "json-update",
    summary: "set values in a JSON file (sjson paths; missing keys are created), moving nothing else",
    shape: &promote_api::step_config::STRUCTURED_UPDATE,
    run: |cfg, rt, _| run_json(cfg, rt),
    remote: false,
    outputs: &["commitMessage"],
    verify_recorded: None,
};
/// `toml-update`.
pub(super) const TOML: super::Step = super::Step {
    name: "toml-update",
    summary: "set existing scalar values in a TOML file, moving nothing else",
    run: |cfg, rt, _| run_toml(cfg, rt),
    ..JSON
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_for_large_files_writes_what_the_tree_writes() {
        let doc = r#"# deps
title = "x" # c
version=1
[a]
b.c = 1 # one
d = { e = [1, {f = 2}], g = 'h' }

[[srv]]
host = "h0"
[[srv]]
host = "h1"
[srv.tls]
on = true
m = [
  1, # first
  2,
]
"q.k" = '''v'''
last = 3.5"#;
        let keys = [
            "title",
            "version",
            "a.b.c",
            "a.d.g",
            "a.d.e.0",
            "a.d.e.1.f",
            "srv.0.host",
            "srv.1.host",
            "srv.1.tls.on",
            "srv.1.tls.m.1",
            r"srv.1.tls.q\.k",
            "srv.1.tls.last",
            "a",
            "a.d",
            "a.d.e",
            "srv",
            "srv.2.host",
            "nope",
            "a.b",
            "srv.1.tls.m",
        ];
        for key in keys {
            for v in [json!("v2"), json!(7), json!(false), json!(1.25)] {
                let tree = toml_update_with(doc, key, &v, false);
                let stream = toml_update_with(doc, key, &v, true);
                assert_eq!(stream, tree, "key {key}, value {v}");
            }
        }
        // Syntax errors anywhere are found, after the key too.
        let e = toml_update_with("a = 1\nb = = 2\n", "a", &json!(2), true).unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }

    fn toml_update(text: &str, key: &str, v: Value) -> Result<String, String> {
        super::toml_update(text, key, &v)
    }

    #[test]
    fn toml_values_are_replaced_in_place() {
        let text = "# app\n[image]\ntag = \"1.0\"   # pinned\nrepo = 'x'\n\n[[servers]]\nport = 80\n[[servers]]\nport = 81\n\n[inline]\nt = { a = 1, b = [1, 2] }\n";
        assert_eq!(
            toml_update(text, "image.tag", json!("2.0")).unwrap(),
            text.replace("\"1.0\"", "\"2.0\"")
        );
        assert_eq!(
            toml_update(text, "servers.1.port", json!(8081)).unwrap(),
            text.replace("port = 81", "port = 8081")
        );
        assert_eq!(
            toml_update(text, "inline.t.b.0", json!(9)).unwrap(),
            text.replace("b = [1, 2]", "b = [9, 2]")
        );
        assert!(
            toml_update(text, "image.missing", json!(1))
                .unwrap_err()
                .contains("key path not found")
        );
        assert!(
            toml_update(text, "image", json!(1))
                .unwrap_err()
                .contains("instead of a scalar")
        );
        assert_eq!(toml_key(r"a\.b.:c").unwrap(), ["a.b", "c"]);
        assert!(toml_key("a..b").is_err());
    }
}
