//! Label selectors (the query-string form and `LabelSelector` objects) and field selectors.

use serde_json::{Map, Value};

fn labels_of(obj: &Value) -> Map<String, Value> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn label<'a>(labels: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    labels.get(k).and_then(Value::as_str)
}

#[derive(Debug, Clone, PartialEq)]
enum Req {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed `labelSelector` query parameter.
#[derive(Debug, Clone, Default)]
pub struct LabelSelector(Vec<Req>);

impl LabelSelector {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut reqs = vec![];
        // Split on commas outside parentheses.
        let mut parts = vec![];
        let (mut depth, mut cur) = (0, String::new());
        for c in text.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(std::mem::take(&mut cur));
                    continue;
                }
                _ => {}
            }
            cur.push(c);
        }
        parts.push(cur);
        for p in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            let set = |rest: &str| -> Result<Vec<String>, String> {
                let r = rest.trim();
                let inner = r
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| {
                        format!("unable to parse requirement: {p:?}: expected (v1,v2)")
                    })?;
                Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
            };
            if let Some(k) = p.strip_prefix('!') {
                reqs.push(Req::NotExists(k.trim().to_owned()));
            } else if let Some((k, v)) = p.split_once("!=") {
                reqs.push(Req::Ne(k.trim().into(), v.trim().into()));
            } else if let Some((k, v)) = p.split_once("==") {
                reqs.push(Req::Eq(k.trim().into(), v.trim().into()));
            } else if let Some((k, v)) = p.split_once('=') {
                reqs.push(Req::Eq(k.trim().into(), v.trim().into()));
            } else if let Some((k, v)) = p.split_once(" notin ") {
                reqs.push(Req::NotIn(k.trim().into(), set(v)?));
            } else if let Some((k, v)) = p.split_once(" in ") {
                reqs.push(Req::In(k.trim().into(), set(v)?));
            } else if p.contains(' ') || p.contains('(') {
                return Err(format!("unable to parse requirement: {p:?}"));
            } else {
                reqs.push(Req::Exists(p.to_owned()));
            }
        }
        Ok(Self(reqs))
    }

    /// From a `LabelSelector` object (`matchLabels`, `matchExpressions`).
    pub fn from_object(sel: &Value) -> Result<Self, String> {
        let mut reqs = vec![];
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(Req::Eq(k.clone(), v.as_str().unwrap_or("").to_owned()));
            }
        }
        if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                let key = e
                    .get("key")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let values: Vec<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                reqs.push(
                    match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                        "In" => Req::In(key, values),
                        "NotIn" => Req::NotIn(key, values),
                        "Exists" => Req::Exists(key),
                        "DoesNotExist" => Req::NotExists(key),
                        other => {
                            return Err(format!(
                                "{other:?} is not a valid label selector operator"
                            ));
                        }
                    },
                );
            }
        }
        Ok(Self(reqs))
    }

    pub fn matches_labels(&self, labels: &Map<String, Value>) -> bool {
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => label(labels, k) == Some(v),
            Req::Ne(k, v) => label(labels, k) != Some(v),
            Req::In(k, vs) => label(labels, k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Req::NotIn(k, vs) => label(labels, k).is_none_or(|l| !vs.iter().any(|v| v == l)),
            Req::Exists(k) => labels.contains_key(k),
            Req::NotExists(k) => !labels.contains_key(k),
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.matches_labels(&labels_of(obj))
    }
}

/// A parsed `fieldSelector` (`=`, `==`, `!=` on dotted paths such as `metadata.name`).
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut out = vec![];
        for p in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, eq, v) = if let Some((k, v)) = p.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = p.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = p.split_once('=') {
                (k, true, v)
            } else {
                return Err(format!("invalid selector: {p:?}; expected field=value"));
            };
            let k = k.trim();
            if !matches!(k, "metadata.name" | "metadata.namespace")
                && !k.starts_with("spec.")
                && !k.starts_with("status.")
                && k != "type"
            {
                return Err(format!("field label not supported: {k}"));
            }
            out.push((k.to_owned(), eq, v.trim().to_owned()));
        }
        Ok(Self(out))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(k, eq, v)| {
            let ptr = format!("/{}", k.replace('.', "/"));
            let got = obj.pointer(&ptr).map(|x| match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            let got = got.unwrap_or_default();
            (got == *v) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let o = json!({"metadata": {"labels": {"app": "a", "tier": "web"}}});
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(m("app=a"));
        assert!(m("app==a,tier!=db"));
        assert!(m("tier in (web, api),!missing"));
        assert!(!m("tier notin (web)"));
        assert!(m("app"));
        assert!(!m("app=b"));
        assert!(LabelSelector::parse("tier in web").is_err());
        let sel = LabelSelector::from_object(
            &json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["a"]}]}),
        )
        .unwrap();
        assert!(sel.matches(&o));
        let f = FieldSelector::parse("metadata.name=x").unwrap();
        assert!(f.matches(&json!({"metadata": {"name": "x"}})));
        assert!(!f.matches(&json!({"metadata": {"name": "y"}})));
    }
}
