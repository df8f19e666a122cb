//! `json-parse`, `yaml-parse`, `toml-parse`: read a file of a checkout and publish values picked
//! from it: each `outputs[]` entry names an output and an expression (`fromExpression`) evaluated
//! with the document's top-level keys as its variables, as Kargo's do.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Runtime, StepError, StepResult, config, fail, utf8};

/// One output picked by an expression (`outputs[]` of the parse steps and of `http`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Output {
    name: String,
    from_expression: String,
}

/// Evaluate `outputs` with `env`'s keys as variables.
pub(super) fn outputs(
    outputs: &[Output],
    env: &Map<String, Value>,
    rt: &Runtime<'_>,
) -> Result<Value, StepError> {
    let mut out = Map::new();
    for o in outputs {
        out.insert(
            o.name.clone(),
            crate::expr::eval_expr(&o.from_expression, env, &rt.functions(false))?,
        );
    }
    Ok(Value::Object(out))
}

#[derive(Deserialize)]
struct Config {
    path: String,
    outputs: Vec<Output>,
}

#[derive(Clone, Copy)]
enum Format {
    Json,
    Yaml,
    Toml,
}

impl Format {
    fn step(self) -> &'static str {
        match self {
            Format::Json => "json-parse",
            Format::Yaml => "yaml-parse",
            Format::Toml => "toml-parse",
        }
    }

    fn parse(self, text: &str) -> Result<Value, String> {
        match self {
            Format::Json => serde_json::from_str(text).map_err(|e| e.to_string()),
            Format::Yaml => serde_yaml::from_str(text).map_err(|e| e.to_string()),
            Format::Toml => toml::from_str::<toml::Value>(text)
                .map_err(|e| e.to_string())
                .and_then(|v| serde_json::to_value(v).map_err(|e| e.to_string())),
        }
    }
}

fn run(format: Format, cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let step = format.step();
    let cfg: Config = config(step, cfg)?;
    if cfg.outputs.is_empty() {
        return Err(fail(format!(
            "{step}: outputs must name at least one output"
        )));
    }
    let (co, rel) = rt.resolve(&cfg.path)?;
    let Some(data) = co.checkout.read(&rel)? else {
        return Err(fail(format!(
            "{step}: {} does not exist in the checkout of {}",
            cfg.path, co.repo_url
        )));
    };
    let text = utf8(&cfg.path, data)?;
    let doc = format
        .parse(&text)
        .map_err(|e| fail(format!("{step}: could not parse {}: {e}", cfg.path)))?;
    let env: Map<String, Value> = match doc {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let out = outputs(&cfg.outputs, &env, rt)?;
    Ok(StepResult::ok(
        out,
        format!("{}: {} output(s)", cfg.path, cfg.outputs.len()),
    ))
}

/// The registry entries (`steps::REGISTRY`).
pub(super) const JSON: super::Step = super::Step {
    name: "json-parse",
    summary: "publish values picked from a JSON file by expressions",
    shape: &promote_api::step_config::PARSE,
    run: |cfg, rt, _| run(Format::Json, cfg, rt),
    remote: false,
    outputs: &["(each `outputs[].name`)"],
    verify_recorded: None,
};
/// `yaml-parse`.
pub(super) const YAML: super::Step = super::Step {
    name: "yaml-parse",
    summary: "publish values picked from a YAML file by expressions",
    run: |cfg, rt, _| run(Format::Yaml, cfg, rt),
    ..JSON
};
/// `toml-parse`.
pub(super) const TOML: super::Step = super::Step {
    name: "toml-parse",
    summary: "publish values picked from a TOML file by expressions",
    run: |cfg, rt, _| run(Format::Toml, cfg, rt),
    ..JSON
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_parses_into_the_same_values() {
        let json = Format::Json
            .parse(r#"{"image": {"tag": "1.2"}, "n": 3}"#)
            .unwrap();
        let yaml = Format::Yaml
            .parse("image:\n  tag: \"1.2\"\nn: 3\n")
            .unwrap();
        let toml = Format::Toml
            .parse("n = 3\n[image]\ntag = \"1.2\"\n")
            .unwrap();
        assert_eq!(json, yaml);
        assert_eq!(json["image"], toml["image"]);
        assert!(Format::Json.parse("{").is_err());
    }
}
