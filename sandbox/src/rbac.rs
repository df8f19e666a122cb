//! Authentication (static bearer tokens) and RBAC authorization from the Role, ClusterRole,
//! RoleBinding and ClusterRoleBinding objects in the store, following kube-apiserver's
//! `rbac` authorizer (`ResourceMatches`, `NonResourceURLMatches`, subject matching).

use serde_json::{Value, json};

use crate::store::Inner;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    pub fn to_json(&self) -> Value {
        json!({"username": self.username, "uid": self.uid, "groups": self.groups})
    }
}

/// One line of a static token file: `token,user,uid,"group1,group2"`.
#[derive(Debug, Clone)]
pub struct TokenEntry {
    pub token: String,
    pub user: UserInfo,
}

/// Parse a static token file (kube-apiserver's `--token-auth-file` format).
pub fn parse_tokens(text: &str) -> Result<Vec<TokenEntry>, String> {
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = split_csv(line);
        if fields.len() < 3 {
            return Err(format!(
                "line {}: want token,user,uid[,\"group1,group2\"], got {} fields",
                i + 1,
                fields.len()
            ));
        }
        let mut groups: Vec<String> = fields
            .get(3)
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        groups.push("system:authenticated".into());
        out.push(TokenEntry {
            token: fields[0].clone(),
            user: UserInfo {
                username: fields[1].clone(),
                uid: fields[2].clone(),
                groups,
            },
        });
    }
    Ok(out)
}

fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![];
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

/// What a request wants to do.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// Set for non-resource requests (`/api`, `/version`…).
    pub path: Option<String>,
}

impl Attributes {
    /// kube-apiserver's Forbidden message.
    pub fn forbidden_message(&self, user: &UserInfo) -> String {
        if let Some(p) = &self.path {
            return format!(
                "forbidden: User \"{}\" cannot {} path \"{p}\"",
                user.username, self.verb
            );
        }
        let res = if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        };
        let what = crate::error::qualified(&self.group, &self.resource);
        let subject = if self.name.is_empty() {
            what
        } else {
            format!("{what} \"{}\"", self.name)
        };
        let scope = if self.namespace.is_empty() {
            "at the cluster scope".to_owned()
        } else {
            format!("in the namespace \"{}\"", self.namespace)
        };
        format!(
            "{subject} is forbidden: User \"{}\" cannot {} resource \"{res}\" in API group \"{}\" {scope}",
            user.username, self.verb, self.group
        )
    }
}

fn strs(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let verbs = strs(rule.get("verbs"));
    if !verbs.iter().any(|v| *v == "*" || *v == a.verb) {
        return false;
    }
    if let Some(path) = &a.path {
        return strs(rule.get("nonResourceURLs")).iter().any(|u| {
            *u == "*" || u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p))
        });
    }
    if !strs(rule.get("apiGroups"))
        .iter()
        .any(|g| *g == "*" || *g == a.group)
    {
        return false;
    }
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let res_ok = strs(rule.get("resources")).iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!a.subresource.is_empty() && r.strip_prefix("*/") == Some(a.subresource.as_str()))
    });
    if !res_ok {
        return false;
    }
    let names = strs(rule.get("resourceNames"));
    names.is_empty() || (!a.name.is_empty() && names.contains(&a.name.as_str()))
}

fn subject_matches(s: &Value, user: &UserInfo, binding_ns: &str) -> bool {
    let kind = s.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = s.get("name").and_then(Value::as_str).unwrap_or("");
    match kind {
        "User" => user.username == name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = s
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            user.username == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

/// Rules everyone authenticated gets (kube's `system:discovery`, `system:basic-user`,
/// `system:public-info-viewer`).
fn default_rules() -> Value {
    json!([
        {"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/version", "/version/", "/openapi", "/openapi/*", "/healthz", "/livez", "/readyz"]},
        {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]},
        {"verbs": ["create"], "apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"]},
    ])
}

/// Decide: `Some(reason)` when allowed, `None` when no rule allows it.
pub fn authorize(inner: &Inner, user: &UserInfo, a: &Attributes) -> Option<String> {
    if user.groups.iter().any(|g| g == "system:masters") {
        return Some("allowed by group \"system:masters\"".into());
    }
    if user.groups.iter().any(|g| g == "system:authenticated")
        && default_rules()
            .as_array()
            .is_some_and(|rules| rules.iter().any(|r| rule_allows(r, a)))
    {
        return Some("allowed by the default discovery rules".into());
    }
    let rbac = "rbac.authorization.k8s.io";
    let rules_of = |kind: &str, name: &str, ns: &str| -> Vec<Value> {
        let role = if kind == "ClusterRole" {
            inner.get(rbac, "clusterroles", "", name)
        } else {
            inner.get(rbac, "roles", ns, name)
        };
        role.and_then(|r| r.get("rules"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let describe = |binding_kind: &str, b: &Value| {
        format!(
            "RBAC: allowed by {binding_kind} \"{}\" of {} \"{}\" to User \"{}\"",
            b.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or(""),
            b.pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .unwrap_or(""),
            b.pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or(""),
            user.username
        )
    };
    for b in inner.list(rbac, "clusterrolebindings", None) {
        let subjects = b
            .get("subjects")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if !subjects.iter().any(|s| subject_matches(s, user, "")) {
            continue;
        }
        let name = b
            .pointer("/roleRef/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if rules_of("ClusterRole", name, "")
            .iter()
            .any(|r| rule_allows(r, a))
        {
            return Some(describe("ClusterRoleBinding", &b));
        }
    }
    if !a.namespace.is_empty() {
        for b in inner.list(rbac, "rolebindings", Some(&a.namespace)) {
            let subjects = b
                .get("subjects")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if !subjects
                .iter()
                .any(|s| subject_matches(s, user, &a.namespace))
            {
                continue;
            }
            let kind = b
                .pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .unwrap_or("");
            let name = b
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if rules_of(kind, name, &a.namespace)
                .iter()
                .any(|r| rule_allows(r, a))
            {
                return Some(describe("RoleBinding", &b));
            }
        }
    }
    None
}

/// Answer a SubjectAccessReview spec (`resourceAttributes` or `nonResourceAttributes`).
pub fn review(inner: &Inner, user: &UserInfo, spec: &Value) -> Value {
    let s = |p: &str| {
        spec.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let a = if spec.get("nonResourceAttributes").is_some() {
        Attributes {
            verb: s("/nonResourceAttributes/verb"),
            path: Some(s("/nonResourceAttributes/path")),
            ..Attributes::default()
        }
    } else {
        Attributes {
            verb: s("/resourceAttributes/verb"),
            group: s("/resourceAttributes/group"),
            resource: s("/resourceAttributes/resource"),
            subresource: s("/resourceAttributes/subresource"),
            namespace: s("/resourceAttributes/namespace"),
            name: s("/resourceAttributes/name"),
            path: None,
        }
    };
    match authorize(inner, user, &a) {
        Some(reason) => json!({"allowed": true, "reason": reason}),
        None => json!({"allowed": false}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_file() {
        let t = parse_tokens("# comment\nabc,alice,u1,\"dev,ops\"\nxyz,bob,u2\n").unwrap();
        assert_eq!(t[0].user.groups, ["dev", "ops", "system:authenticated"]);
        assert_eq!(t[1].user.username, "bob");
        assert!(parse_tokens("onlytoken\n").is_err());
    }

    #[test]
    fn rules_match_like_kube() {
        let a = Attributes {
            verb: "promote".into(),
            group: "kargo.akuity.io".into(),
            resource: "stages".into(),
            namespace: "p".into(),
            name: "prod".into(),
            ..Attributes::default()
        };
        let rule = |r: Value| rule_allows(&r, &a);
        assert!(rule(
            json!({"verbs": ["promote"], "apiGroups": ["kargo.akuity.io"], "resources": ["stages"]})
        ));
        assert!(rule(
            json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
        ));
        assert!(rule(
            json!({"verbs": ["promote"], "apiGroups": ["kargo.akuity.io"], "resources": ["stages"], "resourceNames": ["prod"]})
        ));
        assert!(!rule(
            json!({"verbs": ["promote"], "apiGroups": ["kargo.akuity.io"], "resources": ["stages"], "resourceNames": ["test"]})
        ));
        assert!(!rule(
            json!({"verbs": ["get"], "apiGroups": ["kargo.akuity.io"], "resources": ["stages"]})
        ));
        assert!(!rule(
            json!({"verbs": ["promote"], "apiGroups": [""], "resources": ["stages"]})
        ));
        let sub = Attributes {
            subresource: "status".into(),
            verb: "update".into(),
            ..a.clone()
        };
        assert!(rule_allows(
            &json!({"verbs": ["update"], "apiGroups": ["*"], "resources": ["*/status"]}),
            &sub
        ));
        assert!(!rule_allows(
            &json!({"verbs": ["update"], "apiGroups": ["*"], "resources": ["stages"]}),
            &sub
        ));
        let u = UserInfo {
            username: "alice".into(),
            uid: String::new(),
            groups: vec![],
        };
        assert_eq!(
            a.forbidden_message(&u),
            "stages.kargo.akuity.io \"prod\" is forbidden: User \"alice\" cannot promote resource \"stages\" in API group \"kargo.akuity.io\" in the namespace \"p\""
        );
    }
}
