//! Manifests on disk (`--local DIR`): Stages, Freight, Warehouses, PromotionTasks and Argo CD
//! Applications from the YAML files in DIR (any `.yaml`/`.yml`, multi-document, searched
//! recursively). `promotion::source::Files` promotes from them without a cluster.

use std::path::{Path, PathBuf};

use promote_api::freight_id;
use promote_api::types::{Freight, PromotionTask, Stage, Warehouse};
use serde_json::Value;

use crate::error::Error;

/// Everything found in a manifests directory.
#[derive(Debug, Default)]
pub struct Manifests {
    /// Stages.
    pub stages: Vec<Stage>,
    /// Freight (names filled in from their content hash when absent).
    pub freight: Vec<Freight>,
    /// Warehouses.
    pub warehouses: Vec<Warehouse>,
    /// PromotionTasks, and ClusterPromotionTasks as PromotionTasks without a namespace.
    pub tasks: Vec<PromotionTask>,
    /// Argo CD Applications, as open JSON.
    pub applications: Vec<Value>,
    /// ConfigMaps and Secrets (`configMap()`, `secret()` in expressions), as open JSON.
    pub data: Vec<Value>,
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Load {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            yaml_files(&p, out)?;
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            out.push(p);
        }
    }
    Ok(())
}

fn typed<T: serde::de::DeserializeOwned>(path: &Path, doc: Value) -> Result<T, Error> {
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("object")
        .to_owned();
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("(unnamed)")
        .to_owned();
    serde_json::from_value(doc).map_err(|e| Error::Load {
        path: path.display().to_string(),
        reason: format!("{kind} \"{name}\": {e}"),
    })
}

impl Manifests {
    /// Load every Kargo and Argo CD object under `dir`; objects without a namespace get `default_ns`.
    pub fn load(dir: &Path, default_ns: Option<&str>) -> Result<Self, Error> {
        if !dir.is_dir() {
            return Err(Error::Usage(format!(
                "--local {}: not a directory",
                dir.display()
            )));
        }
        let mut files = Vec::new();
        yaml_files(dir, &mut files)?;
        let mut m = Self::default();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::Load {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let value: Value =
                    serde::Deserialize::deserialize(doc).map_err(|e| Error::Load {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })?;
                let mut value = value;
                if value.is_null() {
                    continue;
                }
                let api = value
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let kind = value
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if let (Some(ns), Some(meta)) = (
                    default_ns,
                    value.get_mut("metadata").and_then(Value::as_object_mut),
                ) && !meta.contains_key("namespace")
                    && !(api.starts_with("argoproj.io/") && kind == "Application")
                    && kind != "ClusterPromotionTask"
                {
                    meta.insert("namespace".into(), Value::String(ns.to_owned()));
                }
                match (api.as_str(), kind.as_str()) {
                    (promote_api::API_VERSION, "Stage") => m.stages.push(typed(&path, value)?),
                    (promote_api::API_VERSION, "Freight") => m.freight.push(typed(&path, value)?),
                    (promote_api::API_VERSION, "Warehouse") => {
                        m.warehouses.push(typed(&path, value)?)
                    }
                    (promote_api::API_VERSION, "PromotionTask") => {
                        m.tasks.push(typed(&path, value)?)
                    }
                    (promote_api::API_VERSION, "ClusterPromotionTask") => m.tasks.push(
                        typed::<promote_api::types::ClusterPromotionTask>(&path, value)?.into(),
                    ),
                    ("argoproj.io/v1alpha1", "Application") => m.applications.push(value),
                    ("v1", "ConfigMap" | "Secret") => m.data.push(value),
                    _ => {}
                }
            }
        }
        for f in &mut m.freight {
            if f.metadata.name.as_deref().unwrap_or_default().is_empty() {
                f.metadata.name = Some(freight_id::freight_id(f));
            }
        }
        Ok(m)
    }

    /// The project: `-n` if given, else the one namespace all Stages share.
    pub fn project(&self, ns: Option<&str>) -> Result<String, Error> {
        if let Some(ns) = ns {
            return Ok(ns.to_owned());
        }
        let mut projects: Vec<&str> = self
            .stages
            .iter()
            .map(|s| s.project())
            .filter(|p| !p.is_empty())
            .collect();
        projects.sort_unstable();
        projects.dedup();
        match projects.as_slice() {
            [one] => Ok((*one).to_owned()),
            [] => Err(Error::Usage(
                "no Stage in the manifests has a namespace; pass -n PROJECT".into(),
            )),
            many => Err(Error::Usage(format!(
                "the manifests hold several projects ({}); pass -n PROJECT",
                many.join(", ")
            ))),
        }
    }
}
