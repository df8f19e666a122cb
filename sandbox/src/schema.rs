//! Structural schemas of custom resources, applied as kube-apiserver applies them: nulls in
//! non-nullable fields dropped, defaults filled in, unknown fields pruned (reported so the caller
//! can warn or, under `fieldValidation=Strict`, refuse), then type, enum, required and bound checks.

use serde_json::{Map, Value};

use crate::error::Cause;

/// What applying a schema found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Paths of unknown fields that were pruned, e.g. `spec.foo`.
    pub pruned: Vec<String>,
    pub causes: Vec<Cause>,
}

/// Prune, default and validate `obj` (a whole custom resource) against `schema`.
pub fn apply(schema: &Value, obj: &mut Value) -> Outcome {
    let mut out = Outcome::default();
    let Some(map) = obj.as_object_mut() else {
        out.causes
            .push(Cause::new("FieldValueInvalid", "", "must be an object"));
        return out;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match props.and_then(|p| p.get(&k)) {
            Some(sub) => {
                if let Some(v) = map.get_mut(&k) {
                    if v.is_null() && !nullable(sub) {
                        map.remove(&k);
                        continue;
                    }
                    walk(sub, v, &k, &mut out);
                }
            }
            None if preserves(schema) => {}
            None => {
                map.remove(&k);
                out.pruned.push(k);
            }
        }
    }
    apply_defaults(schema, map);
    required(schema, map, "", &mut out);
    out
}

fn preserves(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn nullable(schema: &Value) -> bool {
    schema.get("nullable").and_then(Value::as_bool) == Some(true)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn apply_defaults(schema: &Value, map: &mut Map<String, Value>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, sub) in props {
            if !map.contains_key(k)
                && let Some(d) = sub.get("default")
            {
                map.insert(k.clone(), d.clone());
            }
        }
    }
}

fn required(schema: &Value, map: &Map<String, Value>, path: &str, out: &mut Outcome) {
    if let Some(req) = schema.get("required").and_then(Value::as_array) {
        for r in req.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                out.causes.push(Cause::new(
                    "FieldValueRequired",
                    join(path, r),
                    "Required value",
                ));
            }
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn short(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        other => other.to_string(),
    }
}

fn walk(schema: &Value, v: &mut Value, path: &str, out: &mut Outcome) {
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    let want = schema.get("type").and_then(Value::as_str).unwrap_or("");
    let got = type_name(v);
    let type_ok = if int_or_string {
        matches!(got, "integer" | "string")
    } else {
        match want {
            "" => true,
            "number" => matches!(got, "number" | "integer"),
            w => w == got,
        }
    };
    if !type_ok {
        out.causes.push(Cause::new(
            "FieldValueTypeInvalid",
            path,
            format!("Invalid value: \"{got}\": {path} in body must be of type {want}: \"{got}\""),
        ));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(short).collect();
        out.causes.push(Cause::new(
            "FieldValueNotSupported",
            path,
            format!(
                "Unsupported value: {}: supported values: {}",
                short(v),
                list.join(", ")
            ),
        ));
    }
    bounds(schema, v, path, out);
    match v {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let embedded = schema
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                == Some(true);
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let sub_path = join(path, &k);
                let sub = props.and_then(|p| p.get(&k)).or(additional);
                match sub {
                    Some(sub) => {
                        if let Some(child) = map.get_mut(&k) {
                            if child.is_null() && !nullable(sub) {
                                map.remove(&k);
                                continue;
                            }
                            walk(sub, child, &sub_path, out);
                        }
                    }
                    None if preserves(schema)
                        || (embedded
                            && matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
                        || (props.is_none() && schema.get("additionalProperties").is_some()) => {}
                    None if props.is_none() && want.is_empty() => {}
                    None => {
                        map.remove(&k);
                        out.pruned.push(sub_path);
                    }
                }
            }
            apply_defaults(schema, map);
            required(schema, map, path, out);
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

fn bounds(schema: &Value, v: &Value, path: &str, out: &mut Outcome) {
    let n = |k: &str| schema.get(k).and_then(Value::as_f64);
    let mut bad = |msg: String| {
        out.causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {}: {path} in body {msg}", short(v)),
        ))
    };
    match v {
        Value::String(s) => {
            let len = s.chars().count() as f64;
            if let Some(m) = n("minLength")
                && len < m
            {
                bad(format!("should be at least {m} chars long"));
            }
            if let Some(m) = n("maxLength")
                && len > m
            {
                bad(format!("may not be more than {m} bytes"));
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str)
                && let Ok(re) = regex::Regex::new(p)
                && !re.is_match(s)
            {
                bad(format!("should match '{p}'"));
            }
        }
        Value::Array(a) => {
            if let Some(m) = n("minItems")
                && (a.len() as f64) < m
            {
                bad(format!("should have at least {m} items"));
            }
            if let Some(m) = n("maxItems")
                && (a.len() as f64) > m
            {
                bad(format!("must have at most {m} items"));
            }
        }
        Value::Number(x) => {
            let x = x.as_f64().unwrap_or(0.0);
            if let Some(m) = n("minimum")
                && x < m
            {
                bad(format!("should be greater than or equal to {m}"));
            }
            if let Some(m) = n("maximum")
                && x > m
            {
                bad(format!("should be less than or equal to {m}"));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prunes_defaults_and_validates() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["steps"], "properties": {
                "steps": {"type": "array", "items": {"type": "object", "properties": {"uses": {"type": "string"}, "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
                "mode": {"type": "string", "enum": ["A", "B"], "default": "A"},
                "n": {"type": "integer"},
                "port": {"x-kubernetes-int-or-string": true},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            }},
        }});
        let mut obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"}, "extra": 1,
            "spec": {"steps": [{"uses": "git-clone", "bogus": true, "config": {"any": {"thing": 1}}}], "n": 3, "port": "http", "labels": {"a": "b"}, "gone": null}});
        let out = apply(&schema, &mut obj);
        assert!(out.causes.is_empty(), "{:?}", out.causes);
        let mut pruned = out.pruned.clone();
        pruned.sort();
        assert_eq!(pruned, ["extra", "spec.gone", "spec.steps[0].bogus"]);
        assert_eq!(obj["spec"]["mode"], "A");
        assert_eq!(obj["spec"]["steps"][0]["config"]["any"]["thing"], 1);
        assert!(obj.get("extra").is_none());
        assert!(obj["spec"].get("gone").is_none());

        let mut bad = json!({"spec": {"n": "three", "mode": "C", "labels": {"a": 1}}});
        let out = apply(&schema, &mut bad);
        let text: Vec<String> = out
            .causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert!(text.contains(&"spec.n: Invalid value: \"string\": spec.n in body must be of type integer: \"string\"".to_owned()), "{text:?}");
        assert!(
            text.contains(
                &"spec.mode: Unsupported value: \"C\": supported values: \"A\", \"B\"".to_owned()
            ),
            "{text:?}"
        );
        assert!(
            text.contains(&"spec.steps: Required value".to_owned()),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("spec.labels.a: Invalid value")),
            "{text:?}"
        );
    }
}
