//! Discovery (`/api`, `/apis`, group and group/version resource lists, `/version`) and the
//! OpenAPI v3 documents kubectl reads (to know that the server validates fields, for `kubectl
//! explain`, and to pick JSON merge patch for custom resources in `kubectl apply`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::registry::ResourceType;
use crate::wire::Reply;

fn not_found() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn ok(v: Value) -> Result<Reply, ApiError> {
    Ok(Reply::Json {
        code: 200,
        body: v,
        warnings: vec![],
    })
}

/// Served group/versions: `"" → v1`, and each group's single version.
fn groups(types: &[ResourceType]) -> BTreeMap<String, String> {
    types
        .iter()
        .map(|t| (t.group.clone(), t.version.clone()))
        .collect()
}

fn schema_name(rt: &ResourceType) -> String {
    let g = if rt.group.is_empty() {
        "io.k8s.api.core".to_owned()
    } else {
        rt.group.split('.').rev().collect::<Vec<_>>().join(".")
    };
    format!("{g}.{}.{}", rt.version, rt.kind)
}

fn openapi_doc(types: &[&ResourceType]) -> Value {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for rt in types {
        let gvk = json!({"group": rt.group, "version": rt.version, "kind": rt.kind});
        let prefix = if rt.group.is_empty() {
            format!("/api/{}", rt.version)
        } else {
            format!("/apis/{}/{}", rt.group, rt.version)
        };
        let base = if rt.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", rt.plural)
        } else {
            format!("{prefix}/{}", rt.plural)
        };
        // Strategic merge patch is accepted (as a merge patch without directives) but not
        // advertised: kubectl then computes patches for built-ins from its compiled-in types
        // instead of from these reduced schemas.
        let content = json!({
            "application/json-patch+json": {"schema": {"type": "object"}},
            "application/merge-patch+json": {"schema": {"type": "object"}},
            "application/apply-patch+yaml": {"schema": {"type": "object"}},
        });
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
        ]);
        let reference = json!({"$ref": format!("#/components/schemas/{}", schema_name(rt))});
        let op = |verb: &str| {
            json!({
                "operationId": format!("{verb}{}", rt.kind),
                "parameters": params,
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
                "requestBody": {"content": if verb == "patch" { content.clone() } else { json!({"application/json": {"schema": reference}}) }},
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}},
            })
        };
        paths.insert(base.clone(), json!({"post": op("post")}));
        paths.insert(
            format!("{base}/{{name}}"),
            json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}),
        );
        let mut schema = rt
            .schema
            .clone()
            .unwrap_or(json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
        if let Some(m) = schema.as_object_mut() {
            m.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
            if let Some(props) = m.get_mut("properties").and_then(Value::as_object_mut) {
                props.insert(
                    "metadata".into(),
                    json!({"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}], "default": {}}),
                );
            }
        }
        schemas.insert(schema_name(rt), schema);
    }
    schemas.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".into(),
        json!({"type": "object", "description": "Standard object metadata.", "x-kubernetes-preserve-unknown-fields": true}),
    );
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// Answer a non-resource path.
pub fn answer(
    types: &[ResourceType],
    path: &str,
    segs: &[&str],
    _accept: &str,
) -> Result<Reply, ApiError> {
    let gvs = groups(types);
    let resources = |group: &str, version: &str| -> Result<Reply, ApiError> {
        if gvs.get(group).map(String::as_str) != Some(version) {
            return Err(not_found());
        }
        let list: Vec<Value> = types
            .iter()
            .filter(|t| t.group == group)
            .flat_map(ResourceType::discovery)
            .collect();
        let gv = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        ok(
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
        )
    };
    let group_json = |g: &str, v: &str| {
        json!({"name": g, "versions": [{"groupVersion": format!("{g}/{v}"), "version": v}],
               "preferredVersion": {"groupVersion": format!("{g}/{v}"), "version": v}})
    };
    match segs {
        ["healthz" | "livez" | "readyz", ..] => Ok(Reply::Text(200, "ok".into())),
        ["version"] => ok(json!({
            "major": "1", "minor": "32", "gitVersion": "v1.32.0+promote-sandbox",
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc",
            "platform": "linux/amd64",
        })),
        ["api"] => ok(json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})),
        ["api", v] => resources("", v),
        ["apis"] => {
            let list: Vec<Value> = gvs
                .iter()
                .filter(|(g, _)| !g.is_empty())
                .map(|(g, v)| group_json(g, v))
                .collect();
            ok(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": list}))
        }
        ["apis", g] => match gvs.get(*g) {
            Some(v) if !g.is_empty() => {
                let mut j = group_json(g, v);
                j["kind"] = json!("APIGroup");
                j["apiVersion"] = json!("v1");
                ok(j)
            }
            _ => Err(not_found()),
        },
        ["apis", g, v] => resources(g, v),
        ["openapi", "v3"] => {
            let mut paths = serde_json::Map::new();
            for (g, v) in &gvs {
                let p = if g.is_empty() {
                    format!("api/{v}")
                } else {
                    format!("apis/{g}/{v}")
                };
                let hash = types.iter().filter(|t| t.group == *g).count() + types.len() * 31;
                paths.insert(
                    p.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash:016X}")}),
                );
            }
            ok(json!({"paths": paths}))
        }
        ["openapi", "v3", "api", v] => {
            let sel: Vec<&ResourceType> = types
                .iter()
                .filter(|t| t.group.is_empty() && t.version == *v)
                .collect();
            if sel.is_empty() {
                return Err(not_found());
            }
            ok(openapi_doc(&sel))
        }
        ["openapi", "v3", "apis", g, v] => {
            let sel: Vec<&ResourceType> = types
                .iter()
                .filter(|t| t.group == *g && t.version == *v)
                .collect();
            if sel.is_empty() {
                return Err(not_found());
            }
            ok(openapi_doc(&sel))
        }
        _ => {
            let _ = path;
            Err(not_found())
        }
    }
}
