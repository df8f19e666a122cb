//! `kubectl promote stage/<name> --local DIR`: a promotion with no cluster. Stages, Freight,
//! Warehouses, PromotionTasks and Argo CD Applications come from the YAML files in DIR (any
//! `.yaml`/`.yml`, multi-document, searched recursively); no Promotion object is written; Git
//! steps run for real; `argocd-update` shows the patch it would send.

use std::path::{Path, PathBuf};

use promote_api::availability::{self, Availability};
use promote_api::types::{
    Freight, FreightCollection, PromotionStep, PromotionTask, Stage, Warehouse,
};
use promote_api::{freight_id, naming, template, validation};
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
    /// PromotionTasks.
    pub tasks: Vec<PromotionTask>,
    /// Argo CD Applications, as open JSON.
    pub applications: Vec<Value>,
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
                    ("argoproj.io/v1alpha1", "Application") => m.applications.push(value),
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

/// Find Freight by full name, unique name prefix, or alias.
pub fn resolve_freight<'a>(
    all: &'a [Freight],
    project: &str,
    name: Option<&str>,
    alias: Option<&str>,
) -> Result<&'a Freight, Error> {
    let in_project: Vec<&Freight> = all
        .iter()
        .filter(|f| f.metadata.namespace.as_deref() == Some(project))
        .collect();
    let available = || {
        in_project
            .iter()
            .take(10)
            .map(|f| match f.alias() {
                Some(a) => format!("{} ({a})", naming::short_name(f.name())),
                None => naming::short_name(f.name()).to_owned(),
            })
            .collect::<Vec<_>>()
    };
    if let Some(alias) = alias {
        return in_project
            .iter()
            .copied()
            .find(|f| f.alias() == Some(alias))
            .ok_or_else(|| Error::FreightNotFound {
                what: format!("with alias \"{alias}\""),
                project: project.to_owned(),
                available: available(),
            });
    }
    let Some(name) = name else {
        return Err(Error::Usage(
            "name the Freight: --freight NAME|PREFIX or --freight-alias ALIAS".into(),
        ));
    };
    if let Some(f) = in_project.iter().find(|f| f.name() == name) {
        return Ok(f);
    }
    let matches: Vec<&&Freight> = in_project
        .iter()
        .filter(|f| f.name().starts_with(name))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => {
            // An alias passed to --freight is a common slip: accept it when unambiguous.
            if let Some(f) = in_project.iter().find(|f| f.alias() == Some(name)) {
                return Ok(f);
            }
            Err(Error::FreightNotFound {
                what: format!("named \"{name}\""),
                project: project.to_owned(),
                available: available(),
            })
        }
        many => Err(Error::FreightAmbiguous {
            prefix: name.to_owned(),
            candidates: many.iter().map(|f| f.name().to_owned()).collect(),
        }),
    }
}

/// The Stage's steps and vars, legacy format translated and task references inflated.
pub fn stage_steps(
    stage: &Stage,
    stages: &[Stage],
    tasks: &[PromotionTask],
) -> Result<
    (
        Vec<PromotionStep>,
        Vec<promote_api::types::ExpressionVariable>,
    ),
    Error,
> {
    template::promotion_steps(stage, stages, tasks).map_err(|e| match e {
        promote_api::Error::Template { problem, .. } => Error::Steps {
            stage: stage.name().to_owned(),
            problems: vec![problem],
        },
        other => other.into(),
    })
}

/// The Freight collection the Stage will have: the target Freight plus, for other origins, what
/// the Stage's newest history entry holds.
pub fn collection(stage: &Stage, target: &Freight) -> FreightCollection {
    let mut c = FreightCollection::default();
    if let Some(latest) = stage
        .status
        .as_ref()
        .and_then(|s| s.freight_history.first())
    {
        for (origin, f) in &latest.freight {
            if stage.requests_origin(&f.origin) {
                c.freight.insert(origin.clone(), f.clone());
            }
        }
    }
    c.freight
        .insert(target.origin.to_string(), target.reference());
    c.id = c.compute_id();
    c
}

/// Resolve and check everything a local promotion needs; returns (stage, freight).
pub fn prepare<'a>(
    m: &'a Manifests,
    project: &str,
    stage_name: &str,
    freight: Option<&str>,
    alias: Option<&str>,
    now: jiff::Timestamp,
) -> Result<(&'a Stage, &'a Freight), Error> {
    let stage = m
        .stages
        .iter()
        .find(|s| s.name() == stage_name && s.project() == project)
        .ok_or_else(|| Error::StageNotFound {
            stage: stage_name.to_owned(),
            project: project.to_owned(),
            available: m
                .stages
                .iter()
                .filter(|s| s.project() == project)
                .map(|s| s.name().to_owned())
                .collect(),
        })?;
    validation::validate_stage(stage).map_err(|source| Error::Invalid {
        kind: "Stage",
        name: stage_name.to_owned(),
        source: Box::new(source),
    })?;
    let f = resolve_freight(&m.freight, project, freight, alias)?;
    validation::validate_freight(f).map_err(|source| Error::Invalid {
        kind: "Freight",
        name: f.name().to_owned(),
        source: Box::new(source),
    })?;
    let effective = template::effective_stage(stage, &m.stages)?;
    match availability::check(&effective, f, now) {
        Availability::Unavailable(reason) => Err(Error::Unavailable {
            freight: f.name().to_owned(),
            stage: stage_name.to_owned(),
            reason,
        }),
        _ => Ok((stage, f)),
    }
}

/// A new Promotion name for this Stage and Freight.
pub fn promotion_name(stage: &str, freight: &str) -> Result<String, Error> {
    Ok(naming::promotion_name(stage, freight, ulid::Ulid::new())?)
}
