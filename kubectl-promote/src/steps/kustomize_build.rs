//! `kustomize-build`: render a kustomization with the real kustomize (`kubectl kustomize`, else a
//! `kustomize` binary), with Kargo's options: no load restrictions, the Helm chart inflator on
//! (`plugin.helm.apiVersions`, `kubeVersion`). The checkout holding `path` is written to a
//! temporary directory first (edits included, so an image just set is rendered), since
//! kustomize reads files. `outPath` ending in `.yaml`/`.yml` gets kustomize's whole output;
//! any other `outPath` is a directory with one file per resource, named as Kargo names them
//! (`outputFormat: kargo`, the default: `[namespace-]kind-name.yaml`; `kustomize`:
//! `[namespace_]group_version_kind_name.yaml`). Each file holds the resource exactly as
//! kustomize printed it (Kargo re-serializes each with sorted keys; see the README).

use std::collections::BTreeSet;
use std::process::Command;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Runtime, StepError, StepResult, config, fail};

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Helm {
    #[serde(default)]
    api_versions: Vec<String>,
    #[serde(default)]
    kube_version: String,
}

#[derive(Deserialize, Default)]
struct Plugin {
    #[serde(default)]
    helm: Option<Helm>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    path: String,
    out_path: String,
    #[serde(default)]
    output_format: Option<String>,
    #[serde(default)]
    plugin: Option<Plugin>,
}

/// Kinds kustomize treats as cluster-scoped (they group apart from every namespace).
const CLUSTER_SCOPED: &[&str] = &[
    "APIService",
    "CSIDriver",
    "CSINode",
    "CertificateSigningRequest",
    "ClusterRole",
    "ClusterRoleBinding",
    "ComponentStatus",
    "CustomResourceDefinition",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PodSecurityPolicy",
    "PriorityClass",
    "RuntimeClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
];

/// One rendered resource: its document as kustomize printed it, and its identity.
struct Doc {
    text: String,
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
}

/// Kustomize's output as its documents, each with its identity.
fn documents(output: &str) -> Result<Vec<Doc>, StepError> {
    super::yaml_documents(output)
        .into_iter()
        .map(|text| {
            let v: Value = serde_yaml::from_str(&text).map_err(|e| {
                fail(format!(
                    "kustomize-build: cannot read kustomize's output: {e}"
                ))
            })?;
            let field = |p: &str| {
                v.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            Ok(Doc {
                api_version: field("/apiVersion"),
                kind: field("/kind"),
                namespace: field("/metadata/namespace"),
                name: field("/metadata/name"),
                text,
            })
        })
        .collect()
}

fn file_name(d: &Doc, kustomize_format: bool, multiple_namespaces: bool) -> String {
    if kustomize_format {
        let (group, version) = match d.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", d.api_version.as_str()),
        };
        let gvk: Vec<&str> = [group, version, d.kind.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        let base = format!("{}_{}.yaml", gvk.join("_"), d.name).to_lowercase();
        if multiple_namespaces && !d.namespace.is_empty() {
            return format!("{}_{base}", d.namespace.to_lowercase());
        }
        return base;
    }
    if d.namespace.is_empty() {
        format!("{}-{}.yaml", d.kind, d.name).to_lowercase()
    } else {
        format!("{}-{}-{}.yaml", d.namespace, d.kind, d.name).to_lowercase()
    }
}

/// Kargo's check of a generated file name.
fn safe_name(name: &str) -> Result<(), StepError> {
    let unsafe_ = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\\'])
        || name.starts_with('.') && name.trim_start_matches('.').is_empty();
    if unsafe_ {
        return Err(fail(format!(
            "kustomize-build: unsafe generated resource filename {name:?}"
        )));
    }
    Ok(())
}

/// Run kustomize on `dir`; its output.
fn kustomize(dir: &std::path::Path, helm: Option<&Helm>) -> Result<String, StepError> {
    let mut flags: Vec<String> = vec![
        "--load-restrictor".into(),
        "LoadRestrictionsNone".into(),
        "--enable-helm".into(),
    ];
    if let Some(h) = helm {
        for v in &h.api_versions {
            flags.push("--helm-api-versions".into());
            flags.push(v.clone());
        }
        if !h.kube_version.is_empty() {
            flags.push("--helm-kube-version".into());
            flags.push(h.kube_version.clone());
        }
    }
    let attempts: [(&str, &[&str]); 2] = [("kubectl", &["kustomize"]), ("kustomize", &["build"])];
    for (program, sub) in attempts {
        let out = Command::new(program)
            .args(sub)
            .args(&flags)
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => {
                return Ok(String::from_utf8_lossy(&o.stdout).into_owned());
            }
            Ok(o) => {
                let err = String::from_utf8_lossy(&o.stderr);
                let root = dir.display().to_string();
                return Err(StepError::Tool {
                    tool: format!("{program} {}", sub.join(" ")),
                    message: err.replace(&root, ".").trim().to_owned(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(StepError::Tool {
                    tool: program.to_owned(),
                    message: e.to_string(),
                });
            }
        }
    }
    Err(StepError::Tool {
        tool: "kustomize".into(),
        message: "neither kubectl nor kustomize is on PATH; hint: install kubectl (https://kubernetes.io/docs/tasks/tools/), which includes kustomize".into(),
    })
}

fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("kustomize-build", cfg)?;
    let kustomize_format = match cfg.output_format.as_deref() {
        None | Some("kargo") => false,
        Some("kustomize") => true,
        Some(other) => {
            return Err(fail(format!(
                "kustomize-build: outputFormat {other:?} is not one of kargo, kustomize"
            )));
        }
    };
    let (co, rel) = rt.resolve(&cfg.path)?;
    let tmp = tempfile::tempdir().map_err(|e| StepError::Tool {
        tool: "kustomize".into(),
        message: format!("cannot create a temporary directory: {e}"),
    })?;
    co.checkout.materialize(tmp.path())?;
    let dir = tmp.path().join(&rel);
    let has_kustomization = ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .any(|f| dir.join(f).is_file());
    if !has_kustomization {
        return Err(fail(format!(
            "kustomize-build: {} holds no kustomization.yaml",
            cfg.path
        )));
    }
    let helm = cfg.plugin.as_ref().and_then(|p| p.helm.as_ref());
    let output = kustomize(&dir, helm)?;
    drop(tmp);
    let single = cfg.out_path.ends_with(".yaml") || cfg.out_path.ends_with(".yml");
    if single {
        let (out, rel) = rt.resolve(&cfg.out_path)?;
        out.checkout.write(&rel, output.into_bytes())?;
        return Ok(StepResult::ok(
            json!({}),
            format!("{} rendered into {}", cfg.path, cfg.out_path),
        ));
    }
    let docs = documents(&output)?;
    let namespaces: BTreeSet<&str> = docs
        .iter()
        .filter(|d| !CLUSTER_SCOPED.contains(&d.kind.as_str()))
        .map(|d| d.namespace.as_str())
        .collect();
    let multiple = namespaces.len() > 1;
    let mut written = BTreeSet::new();
    for d in &docs {
        let name = file_name(d, kustomize_format, multiple);
        safe_name(&name)?;
        let path = super::join(cfg.out_path.trim_end_matches('/'), &name);
        let (out, rel) = rt.resolve(&path)?;
        out.checkout.write(&rel, d.text.clone().into_bytes())?;
        written.insert(name);
    }
    Ok(StepResult::ok(
        json!({}),
        format!(
            "{} rendered into {} ({} file(s))",
            cfg.path,
            cfg.out_path,
            written.len()
        ),
    ))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "kustomize-build",
    summary: "render a kustomization with kustomize into one file or one file per resource",
    shape: &promote_api::step_config::KUSTOMIZE_BUILD,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &[],
    verify_recorded: None,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_named_as_kargo_and_kustomize_name_them() {
        let out = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Web-Content\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: demo\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n";
        let docs = documents(out).unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(
            docs[1].text,
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: demo\n"
        );
        let kargo: Vec<String> = docs.iter().map(|d| file_name(d, false, false)).collect();
        assert_eq!(
            kargo,
            [
                "configmap-web-content.yaml",
                "demo-deployment-web.yaml",
                "namespace-demo.yaml"
            ]
        );
        let kz: Vec<String> = docs.iter().map(|d| file_name(d, true, true)).collect();
        assert_eq!(
            kz,
            [
                "v1_configmap_web-content.yaml",
                "demo_apps_v1_deployment_web.yaml",
                "v1_namespace_demo.yaml"
            ]
        );
        assert!(
            safe_name("a/b.yaml").is_err()
                && safe_name("..").is_err()
                && safe_name("ok.yaml").is_ok()
        );
    }
}
