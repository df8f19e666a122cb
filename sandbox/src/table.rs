//! Server-side printing (`meta.k8s.io/v1` `Table`), which `kubectl get` asks for: printer columns
//! evaluated with the JSONPath subset CRDs use, `date` columns as human durations.

use serde_json::{Value, json};

use crate::registry::{Column, ResourceType};

/// Whether an `Accept` header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let p = part.replace(' ', "");
        p.contains("as=Table") && p.contains("g=meta.k8s.io")
    })
}

/// The Table for `objects`; `include` is `includeObject` (None, Object, PartialObjectMetadata).
pub fn table(rt: &ResourceType, objects: &[Value], include: &str, rv: Option<u64>) -> Value {
    let defs: Vec<Value> = rt
        .columns
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": if c.type_.is_empty() { "string" } else { &c.type_ },
                   "format": c.format, "description": c.description, "priority": c.priority})
        })
        .collect();
    let rows: Vec<Value> = objects.iter().map(|o| row(rt, o, include)).collect();
    let mut meta = json!({});
    if let Some(rv) = rv {
        meta["resourceVersion"] = json!(rv.to_string());
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
           "columnDefinitions": defs, "rows": rows})
}

pub fn row(rt: &ResourceType, obj: &Value, include: &str) -> Value {
    let cells: Vec<Value> = rt.columns.iter().map(|c| cell(c, obj)).collect();
    let mut r = json!({"cells": cells});
    match include {
        "None" => {}
        "Object" => r["object"] = obj.clone(),
        _ => {
            r["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
            })
        }
    }
    r
}

fn cell(c: &Column, obj: &Value) -> Value {
    if let Some(b) = c.builtin {
        return match b {
            "phase" => obj
                .pointer("/status/phase")
                .cloned()
                .unwrap_or(json!("Active")),
            "secret-type" => obj.get("type").cloned().unwrap_or(json!("Opaque")),
            "data" => {
                let n = |k: &str| obj.get(k).and_then(Value::as_object).map_or(0, |m| m.len());
                json!(n("data") + n("binaryData") + n("stringData"))
            }
            "roleref" => {
                let k = obj
                    .pointer("/roleRef/kind")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let n = obj
                    .pointer("/roleRef/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                json!(format!("{k}/{n}"))
            }
            "webhooks" => json!(
                obj.get("webhooks")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            ),
            _ => Value::Null,
        };
    }
    let found = eval(&c.json_path, obj);
    let Some(v) = found.first() else {
        return Value::Null;
    };
    if c.type_ == "date" {
        return match v.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok()) {
            Some(t) => json!(human_duration(
                jiff::Timestamp::now().as_second() - t.as_second()
            )),
            None => Value::Null,
        };
    }
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => {
            if found.len() > 1 {
                json!(found.iter().map(plain).collect::<Vec<_>>().join(","))
            } else {
                v.clone()
            }
        }
        other => json!(other.to_string()),
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// kube's `duration.HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        let r = s % 60;
        return if r == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{r}s")
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = s / 3600;
    if h < 8 {
        let r = (s % 3600) / 60;
        return if r == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{r}m")
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    let d = h / 24;
    if h < 24 * 8 {
        let r = h % 24;
        return if r == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{r}h")
        };
    }
    if h < 24 * 365 * 2 {
        return format!("{d}d");
    }
    let y = d / 365;
    if h < 24 * 365 * 8 {
        let r = d % 365;
        return if r == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{r}d")
        };
    }
    format!("{y}y")
}

enum Seg {
    Field(String),
    Index(usize),
    All,
    Filter(String, String),
}

fn parse(path: &str) -> Vec<Seg> {
    let p = path.trim().trim_start_matches('{').trim_end_matches('}');
    let p = p.strip_prefix('$').unwrap_or(p);
    let chars: Vec<char> = p.chars().collect();
    let mut segs = vec![];
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let mut f = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    f.push(chars[i]);
                    i += 1;
                }
                if !f.is_empty() {
                    segs.push(Seg::Field(f));
                }
            }
            '[' => {
                let end = chars[i..]
                    .iter()
                    .position(|c| *c == ']')
                    .map_or(chars.len(), |e| i + e);
                let inner: String = chars[i + 1..end.min(chars.len())].iter().collect();
                let inner = inner.trim();
                if inner == "*" {
                    segs.push(Seg::All);
                } else if let Ok(n) = inner.parse::<usize>() {
                    segs.push(Seg::Index(n));
                } else if let Some(f) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')'))
                {
                    if let Some((k, v)) = f.split_once("==") {
                        let v = v.trim().trim_matches('"').trim_matches('\'');
                        segs.push(Seg::Filter(k.trim().to_owned(), v.to_owned()));
                    }
                } else {
                    let name = inner.trim_matches('\'').trim_matches('"');
                    segs.push(Seg::Field(name.to_owned()));
                }
                i = end + 1;
            }
            _ => i += 1,
        }
    }
    segs
}

/// Every value `path` selects in `obj`.
pub fn eval(path: &str, obj: &Value) -> Vec<Value> {
    let mut cur = vec![obj.clone()];
    for seg in parse(path) {
        let mut next = vec![];
        for v in cur {
            match &seg {
                Seg::Field(f) => {
                    if let Some(x) = v.get(f) {
                        next.push(x.clone())
                    }
                }
                Seg::Index(n) => {
                    if let Some(x) = v.get(*n) {
                        next.push(x.clone())
                    }
                }
                Seg::All => match v {
                    Value::Array(a) => next.extend(a),
                    Value::Object(m) => next.extend(m.into_iter().map(|(_, x)| x)),
                    _ => {}
                },
                Seg::Filter(k, want) => {
                    if let Value::Array(a) = v {
                        next.extend(a.into_iter().filter(|x| {
                            x.get(k).is_some_and(|got| match got {
                                Value::String(s) => s == want,
                                other => want.as_str() == other.to_string().as_str(),
                            })
                        }));
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_subset() {
        let o = json!({"metadata": {"labels": {"kargo.akuity.io/alias": "a1"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "status": "False"}]}});
        assert_eq!(
            eval(r".metadata.labels.kargo\.akuity\.io/alias", &o),
            vec![json!("a1")]
        );
        assert_eq!(
            eval(r#".status.conditions[?(@.type=="Ready")].status"#, &o),
            vec![json!("True")]
        );
        assert_eq!(eval(".status.conditions[1].type", &o), vec![json!("X")]);
        assert!(eval(".spec.nothing", &o).is_empty());
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3600 * 3 + 60), "3h1m");
        assert_eq!(human_duration(86400 * 3), "3d");
    }
}
