//! The resource types the sandbox serves: built-ins, and custom resources registered by
//! CustomResourceDefinition objects.

use serde_json::{Value, json};

/// A printer column (`additionalPrinterColumns`, or a built-in's column).
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    /// JSONPath for custom resources; a built-in computed column is named by `builtin`.
    pub json_path: String,
    pub builtin: Option<&'static str>,
}

/// One served resource (a single version per group/resource).
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    pub status_subresource: bool,
    /// The structural schema (`openAPIV3Schema`) of custom resources.
    pub schema: Option<Value>,
    pub columns: Vec<Column>,
    /// Custom resources get `metadata.generation` and need a `resourceVersion` on update.
    pub custom: bool,
    /// Review kinds (SubjectAccessReview…) are create-only and never stored.
    pub review: bool,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn verbs(&self) -> Vec<&'static str> {
        if self.review {
            vec!["create"]
        } else {
            vec![
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
        }
    }

    /// The `APIResource` entries of discovery (the resource and its subresources).
    pub fn discovery(&self) -> Vec<Value> {
        let mut main = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": self.verbs(),
        });
        if !self.short_names.is_empty() {
            main["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            main["categories"] = json!(self.categories);
        }
        let mut out = vec![main];
        if self.status_subresource {
            out.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        out
    }
}

fn builtin(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short: &[&str],
    columns: &[(&str, &'static str)],
) -> ResourceType {
    let mut cols = vec![Column {
        name: "Name".into(),
        type_: "string".into(),
        format: "name".into(),
        description: "Name must be unique within a namespace.".into(),
        priority: 0,
        json_path: ".metadata.name".into(),
        builtin: None,
    }];
    for (name, b) in columns {
        cols.push(Column {
            name: (*name).into(),
            type_: if *b == "age" { "date" } else { "string" }.into(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            json_path: String::new(),
            builtin: Some(b),
        });
    }
    cols.push(Column {
        name: "Age".into(),
        type_: "date".into(),
        format: String::new(),
        description: "CreationTimestamp".into(),
        priority: 0,
        json_path: ".metadata.creationTimestamp".into(),
        builtin: None,
    });
    ResourceType {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_ascii_lowercase(),
        short_names: short.iter().map(|s| (*s).to_owned()).collect(),
        categories: vec![],
        namespaced,
        status_subresource: false,
        schema: None,
        columns: cols,
        custom: false,
        review: false,
    }
}

/// The built-in kinds the project uses.
pub fn builtins() -> Vec<ResourceType> {
    let mut ns = builtin(
        "",
        "v1",
        "Namespace",
        "namespaces",
        false,
        &["ns"],
        &[("Status", "phase")],
    );
    ns.status_subresource = true;
    let mut crd = builtin(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
        &[],
    );
    crd.status_subresource = true;
    let mut sar = builtin(
        "authorization.k8s.io",
        "v1",
        "SubjectAccessReview",
        "subjectaccessreviews",
        false,
        &[],
        &[],
    );
    sar.review = true;
    let mut ssar = builtin(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        false,
        &[],
        &[],
    );
    ssar.review = true;
    let mut lsar = builtin(
        "authorization.k8s.io",
        "v1",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        true,
        &[],
        &[],
    );
    lsar.review = true;
    let mut ssr = builtin(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        false,
        &[],
        &[],
    );
    ssr.review = true;
    vec![
        ns,
        builtin(
            "",
            "v1",
            "Secret",
            "secrets",
            true,
            &[],
            &[("Type", "secret-type"), ("Data", "data")],
        ),
        builtin(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            true,
            &["cm"],
            &[("Data", "data")],
        ),
        builtin("", "v1", "Event", "events", true, &["ev"], &[]),
        builtin(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            true,
            &["sa"],
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            true,
            &[],
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            &[],
            &[("Role", "roleref")],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            &[],
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            &[],
            &[("Role", "roleref")],
        ),
        builtin(
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            false,
            &[],
            &[("Webhooks", "webhooks")],
        ),
        builtin(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
            false,
            &[],
            &[("Webhooks", "webhooks")],
        ),
        builtin("", "v1", "Service", "services", true, &["svc"], &[]),
        builtin(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true,
            &["deploy"],
            &[],
        ),
        builtin(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
            &["pdb"],
            &[],
        ),
        builtin(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true,
            &[],
            &[],
        ),
        crd,
        sar,
        ssar,
        lsar,
        ssr,
    ]
}

/// The resource type a CustomResourceDefinition declares (its storage version), or why not.
pub fn from_crd(crd: &Value) -> Result<ResourceType, String> {
    let spec = crd.get("spec").ok_or("spec is missing")?;
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let names = spec.get("names").ok_or("spec.names is missing")?;
    let group = s(spec, "group");
    let plural = s(names, "plural");
    let kind = s(names, "kind");
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return Err("spec.group, spec.names.plural and spec.names.kind are required".into());
    }
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .ok_or("spec.versions is missing")?;
    let version = versions
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .or_else(|| versions.first())
        .ok_or("spec.versions is empty")?;
    let list = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut columns = vec![Column {
        name: "Name".into(),
        type_: "string".into(),
        format: "name".into(),
        description: "Name must be unique within a namespace.".into(),
        priority: 0,
        json_path: ".metadata.name".into(),
        builtin: None,
    }];
    match version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
    {
        Some(cols) => {
            for c in cols {
                columns.push(Column {
                    name: s(c, "name"),
                    type_: s(c, "type"),
                    format: s(c, "format"),
                    description: s(c, "description"),
                    priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                    json_path: s(c, "jsonPath"),
                    builtin: None,
                });
            }
        }
        None => columns.push(Column {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: "CreationTimestamp".into(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
            builtin: None,
        }),
    }
    let singular = match s(names, "singular") {
        x if x.is_empty() => kind.to_ascii_lowercase(),
        x => x,
    };
    Ok(ResourceType {
        group,
        version: s(version, "name"),
        kind,
        plural,
        singular,
        short_names: list(names.get("shortNames")),
        categories: list(names.get("categories")),
        namespaced: s(spec, "scope") != "Cluster",
        status_subresource: version.pointer("/subresources/status").is_some(),
        schema: version.pointer("/schema/openAPIV3Schema").cloned(),
        columns,
        custom: true,
        review: false,
    })
}
