//! `helm-template`: render a chart of a checkout with the real helm (`helm template`, found on
//! PATH), with Kargo's fields: `releaseName`, `namespace` (default: the project), `valuesFiles`
//! (`ignoreMissingValueFiles`), `setValues` (`--set`, or `--set-literal` with `literal`),
//! `buildDependencies`, `includeCRDs`, `disableHooks`, `skipTests`, `kubeVersion`, `apiVersions`.
//! `outPath` ending in `.yaml`/`.yml` gets the whole render (what `helm template` prints, as
//! Kargo writes it); a directory gets helm's `--output-dir` layout (`outLayout: helm`, the
//! default; `useReleaseName`) or one file per resource (`outLayout: flat`, named as Kargo names
//! them). The chart's checkout is written to a temporary directory first (edits included).

use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Runtime, StepError, StepResult, config, fail};

#[derive(Deserialize)]
struct SetValue {
    key: String,
    value: String,
    #[serde(default)]
    literal: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    path: String,
    out_path: String,
    #[serde(default)]
    out_layout: Option<String>,
    release_name: String,
    #[serde(default)]
    use_release_name: bool,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    values_files: Vec<String>,
    #[serde(default)]
    ignore_missing_value_files: bool,
    #[serde(default)]
    set_values: Vec<SetValue>,
    #[serde(default)]
    build_dependencies: bool,
    #[serde(default, rename = "includeCRDs")]
    include_crds: bool,
    #[serde(default)]
    disable_hooks: bool,
    #[serde(default)]
    skip_tests: bool,
    #[serde(default)]
    kube_version: String,
    #[serde(default)]
    api_versions: Vec<String>,
}

fn tool_error(message: impl Into<String>) -> StepError {
    StepError::Tool {
        tool: "helm".into(),
        message: message.into(),
    }
}

/// Run helm; its stdout.
pub(super) fn helm(args: &[String], dir: &Path) -> Result<String, StepError> {
    let out = Command::new("helm")
        .args(args)
        .current_dir(dir)
        .env("HELM_CACHE_HOME", dir.join(".helm/cache"))
        .env("HELM_CONFIG_HOME", dir.join(".helm/config"))
        .env("HELM_DATA_HOME", dir.join(".helm/data"))
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(o) => Err(StepError::Tool {
            tool: format!(
                "helm {}",
                args.first().map(String::as_str).unwrap_or_default()
            ),
            message: String::from_utf8_lossy(&o.stderr)
                .replace(&dir.display().to_string(), ".")
                .trim()
                .to_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(tool_error(
            "helm is not on PATH; hint: install helm v3 (https://helm.sh/docs/intro/install/)",
        )),
        Err(e) => Err(tool_error(e.to_string())),
    }
}

/// Kargo's file name for one resource of the flat layout:
/// `[group-]kind[-namespace]-name.yaml`, the group's dots as `_`, lowercase.
fn flat_name(doc: &str, i: usize) -> String {
    let v: Value = serde_yaml::from_str(doc).unwrap_or(Value::Null);
    let field = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let (kind, name, namespace) = (
        field("/kind"),
        field("/metadata/name"),
        field("/metadata/namespace"),
    );
    if kind.is_empty() || name.is_empty() {
        return format!("resource-{i}.yaml");
    }
    let group = field("/apiVersion")
        .split_once('/')
        .map(|(g, _)| g)
        .unwrap_or_default();
    let mut f = kind.to_owned();
    if !group.is_empty() {
        f = format!("{}-{f}", group.replace('.', "_"));
    }
    if !namespace.is_empty() {
        f = format!("{f}-{namespace}");
    }
    format!("{f}-{name}.yaml").to_lowercase()
}

/// The documents of a render that hold a resource (a template that renders to comments only
/// holds none), trimmed.
fn documents(render: &str) -> Vec<String> {
    super::yaml_documents(render)
        .into_iter()
        .map(|d| d.trim().to_owned())
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("helm-template", cfg)?;
    let flat = match cfg.out_layout.as_deref() {
        None | Some("helm") => false,
        Some("flat") => true,
        Some(other) => {
            return Err(fail(format!(
                "helm-template: outLayout {other:?} is not one of helm, flat"
            )));
        }
    };
    if cfg.release_name.is_empty() {
        return Err(fail("helm-template: releaseName is required"));
    }
    let tmp = tempfile::tempdir()
        .map_err(|e| tool_error(format!("cannot create a temporary directory: {e}")))?;
    let (co, rel) = rt.resolve(&cfg.path)?;
    let src = tmp.path().join("src");
    co.checkout.materialize(&src)?;
    let chart = src.join(&rel);
    if !chart.join("Chart.yaml").is_file() {
        return Err(fail(format!(
            "helm-template: {} holds no Chart.yaml",
            cfg.path
        )));
    }
    let mut args: Vec<String> = vec![
        "template".into(),
        cfg.release_name.clone(),
        chart.display().to_string(),
    ];
    let namespace = if cfg.namespace.is_empty() {
        rt.ctx.project.clone()
    } else {
        cfg.namespace.clone()
    };
    args.extend(["--namespace".into(), namespace]);
    for (i, vf) in cfg.values_files.iter().enumerate() {
        let (vco, vrel) = rt.resolve(vf)?;
        match vco.checkout.read(&vrel)? {
            Some(data) => {
                let p = tmp.path().join(format!("values-{i}.yaml"));
                std::fs::write(&p, data).map_err(|e| tool_error(e.to_string()))?;
                args.extend(["--values".into(), p.display().to_string()]);
            }
            None if cfg.ignore_missing_value_files => {}
            None => {
                return Err(fail(format!(
                    "helm-template: values file {vf:?} does not exist; set ignoreMissingValueFiles to skip missing ones"
                )));
            }
        }
    }
    for s in &cfg.set_values {
        let flag = if s.literal { "--set-literal" } else { "--set" };
        args.extend([flag.into(), format!("{}={}", s.key, s.value)]);
    }
    if cfg.include_crds {
        args.push("--include-crds".into());
    }
    if cfg.disable_hooks {
        args.push("--no-hooks".into());
    }
    if cfg.skip_tests {
        args.push("--skip-tests".into());
    }
    if !cfg.kube_version.is_empty() {
        args.extend(["--kube-version".into(), cfg.kube_version.clone()]);
    }
    for a in &cfg.api_versions {
        args.extend(["--api-versions".into(), a.clone()]);
    }
    if cfg.build_dependencies {
        let sub = if chart.join("Chart.lock").is_file() {
            "build"
        } else {
            "update"
        };
        helm(
            &["dependency".into(), sub.into(), chart.display().to_string()],
            tmp.path(),
        )?;
    }
    let single = cfg.out_path.ends_with(".yaml") || cfg.out_path.ends_with(".yml");
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    if single || flat {
        let render = helm(&args, tmp.path())?;
        if single {
            let mut text = render.trim().to_owned();
            text.push('\n');
            files.push((cfg.out_path.clone(), text.into_bytes()));
        } else {
            for (i, d) in documents(&render).iter().enumerate() {
                let body = d
                    .lines()
                    .skip_while(|l| l.starts_with("# Source:"))
                    .collect::<Vec<_>>()
                    .join("\n");
                let name = flat_name(&body, i);
                files.push((
                    super::join(cfg.out_path.trim_end_matches('/'), &name),
                    body.into_bytes(),
                ));
            }
        }
    } else {
        let out = tmp.path().join("out");
        args.extend(["--output-dir".into(), out.display().to_string()]);
        if cfg.use_release_name {
            args.push("--release-name".into());
        }
        helm(&args, tmp.path())?;
        let mut stack = vec![out.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d)
                .map_err(|e| tool_error(e.to_string()))?
                .flatten()
            {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let inner = p.strip_prefix(&out).unwrap_or(&p).display().to_string();
                    let data = std::fs::read(&p).map_err(|e| tool_error(e.to_string()))?;
                    files.push((
                        super::join(cfg.out_path.trim_end_matches('/'), &inner),
                        data,
                    ));
                }
            }
        }
        files.sort();
    }
    let n = files.len();
    for (path, data) in files {
        let (out, rel) = rt.resolve(&path)?;
        out.checkout.write(&rel, data)?;
    }
    Ok(StepResult::ok(
        json!({}),
        format!(
            "{} rendered as release {} into {} ({n} file(s))",
            cfg.path, cfg.release_name, cfg.out_path
        ),
    ))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "helm-template",
    summary: "render a Helm chart with helm into one file, helm's layout or one file per resource",
    shape: &promote_api::step_config::HELM_TEMPLATE,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &[],
    verify_recorded: None,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_files_are_named_as_kargo_names_them() {
        let render = "---\n# Source: c/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n  namespace: demo\n---\n# Source: c/templates/empty.yaml\n---\n# Source: c/templates/d.yaml\napiVersion: apps.example.io/v1\nkind: Widget\nmetadata:\n  name: W\n";
        let docs = documents(render);
        assert_eq!(docs.len(), 2);
        let body = |d: &str| {
            d.lines()
                .skip_while(|l| l.starts_with("# Source:"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(flat_name(&body(&docs[0]), 0), "configmap-demo-web.yaml");
        assert_eq!(
            flat_name(&body(&docs[1]), 1),
            "apps_example_io-widget-w.yaml"
        );
        assert_eq!(flat_name("kind: X\n", 7), "resource-7.yaml");
    }
}
