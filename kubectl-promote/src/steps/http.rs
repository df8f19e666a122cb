//! `http`: send an HTTP request and judge the answer with expressions, as Kargo's: `method`
//! (default GET), `url`, `headers`, `queryParams`, `body`, `timeout` (default 10s), `proxy`,
//! `insecureSkipTLSVerify`; `successExpression` / `failureExpression` over `response` (`status`,
//! `headers`, `header(name)`, `body`: parsed as JSON or YAML by its content type, else text;
//! `responseContentType` overrides), `errorExpression` for the failure's message, `outputs` by
//! expression. Without expressions a 2xx succeeds. When neither expression holds yet, the
//! request is sent again every `pollInterval` (default 30s) until one does or `--timeout`
//! ends, as Kargo's controller re-runs the step. Responses are read up to 2 MiB.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Runtime, StepError, StepResult, config, fail};

#[derive(Deserialize)]
pub(super) struct NameValue {
    pub(super) name: String,
    pub(super) value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    #[serde(default)]
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<NameValue>,
    #[serde(default)]
    query_params: Vec<NameValue>,
    #[serde(default)]
    body: String,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
    #[serde(default)]
    proxy: String,
    #[serde(default)]
    timeout: String,
    #[serde(default)]
    poll_interval: String,
    #[serde(default)]
    response_content_type: String,
    #[serde(default)]
    outputs: Vec<super::parse::Output>,
    #[serde(default)]
    success_expression: String,
    #[serde(default)]
    failure_expression: String,
    #[serde(default)]
    error_expression: String,
}

/// Kargo's limit on a response body.
const MAX_RESPONSE: u64 = 2 << 20;

fn duration(field: &str, v: &str, default: Duration) -> Result<Duration, StepError> {
    if v.is_empty() {
        return Ok(default);
    }
    promote_api::duration::parse(v)
        .map_err(|e| fail(format!("http: {field} {v:?} is not a duration: {e}")))
}

/// The URL with the query parameters added (Kargo's `url.Values.Encode` sorts them by name).
pub(super) fn with_query(url: &str, params: &[NameValue]) -> String {
    if params.is_empty() {
        return url.to_owned();
    }
    let mut params: Vec<&NameValue> = params.iter().collect();
    params.sort_by(|a, b| a.name.cmp(&b.name));
    let q: Vec<String> = params
        .iter()
        // Go's `url.QueryEscape`: percent-encoding, a space as `+`.
        .map(|p| {
            let q = |v: &str| crate::kube::percent_encode(v).replace("%20", "+");
            format!("{}={}", q(&p.name), q(&p.value))
        })
        .collect();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{}", q.join("&"))
}

fn full_url(cfg: &Config) -> String {
    with_query(&cfg.url, &cfg.query_params)
}

/// The `response` the expressions see.
fn response_env(
    status: u16,
    headers: &ureq::http::HeaderMap,
    body: &[u8],
    content_type: &str,
) -> Map<String, Value> {
    let mut hs: Map<String, Value> = Map::new();
    for (k, v) in headers {
        let entry = hs.entry(k.as_str().to_owned()).or_insert_with(|| json!([]));
        if let Value::Array(a) = entry {
            a.push(json!(v.to_str().unwrap_or_default()));
        }
    }
    let declared = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_lowercase();
    let ct = if content_type.is_empty() {
        declared
    } else {
        content_type.to_lowercase()
    };
    let text = String::from_utf8_lossy(body).into_owned();
    let parsed = if body.is_empty() {
        json!({})
    } else if ct.contains("yaml") {
        serde_yaml::from_str(&text).unwrap_or(Value::String(text))
    } else if ct == "text/plain" {
        Value::String(text)
    } else {
        // JSON, and JSON as the fallback for other types when it parses (Kargo's rule).
        match serde_json::from_slice::<Value>(body) {
            Ok(v) => v,
            Err(_) if ct == "application/json" => Value::String(text),
            Err(_) => json!({}),
        }
    };
    let mut env = Map::new();
    env.insert(
        "response".into(),
        json!({"status": status, "headers": hs, "body": parsed}),
    );
    env
}

fn judge(
    expr: &str,
    env: &Map<String, Value>,
    rt: &Runtime<'_>,
    what: &str,
) -> Result<Option<bool>, StepError> {
    if expr.is_empty() {
        return Ok(None);
    }
    match crate::expr::eval_expr(expr, env, &rt.functions(false))? {
        Value::Bool(b) => Ok(Some(b)),
        other => Err(fail(format!(
            "http: {what} expression {expr:?} did not evaluate to a boolean (got {other})"
        ))),
    }
}

fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("http", cfg)?;
    let timeout = duration("timeout", &cfg.timeout, Duration::from_secs(10))?;
    let poll = duration("pollInterval", &cfg.poll_interval, Duration::from_secs(30))?;
    let method = if cfg.method.is_empty() {
        "GET".to_owned()
    } else {
        cfg.method.to_uppercase()
    };
    let url = full_url(&cfg);
    let shown = crate::git::redact::strip_userinfo(&cfg.url);
    let mut builder = crate::web::agent_config(timeout, cfg.insecure_skip_tls_verify);
    if !cfg.proxy.is_empty() {
        let proxy = ureq::Proxy::new(&cfg.proxy).map_err(|e| {
            fail(format!(
                "http: proxy {:?} is not usable: {e}",
                crate::git::redact::strip_userinfo(&cfg.proxy)
            ))
        })?;
        builder = builder.proxy(Some(proxy));
    }
    let agent: ureq::Agent = builder.build().into();
    let deadline = rt.deadline;
    loop {
        let mut req = ureq::http::Request::builder()
            .method(method.as_str())
            .uri(&url);
        for h in &cfg.headers {
            req = req.header(h.name.as_str(), h.value.as_str());
        }
        let req = req
            .body(cfg.body.clone())
            .map_err(|e| fail(format!("http: cannot build the request to {shown}: {e}")))?;
        let mut resp = agent.run(req).map_err(|e| StepError::Http {
            url: shown.clone(),
            message: crate::git::redact::strip_userinfo(&e.to_string()),
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()
            .map_err(|e| StepError::Http {
                url: shown.clone(),
                message: format!("reading the response: {e} (at most {MAX_RESPONSE} bytes)"),
            })?;
        let env = response_env(status, &headers, &body, &cfg.response_content_type);
        let success = judge(&cfg.success_expression, &env, rt, "success")?;
        let failure = judge(&cfg.failure_expression, &env, rt, "failure")?;
        let outputs = |rt: &Runtime<'_>| super::parse::outputs(&cfg.outputs, &env, rt);
        match (success, failure) {
            (_, Some(true)) => {
                let msg = if cfg.error_expression.is_empty() {
                    String::new()
                } else {
                    crate::expr::eval_expr(&cfg.error_expression, &env, &rt.functions(false))
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                };
                return Err(fail(if msg.is_empty() {
                    format!("HTTP ({status}) response met failure criteria")
                } else {
                    format!("HTTP ({status}) response met failure criteria: {msg:?}")
                }));
            }
            (Some(true), _) => {
                return Ok(StepResult::ok(
                    outputs(rt)?,
                    format!("{method} {shown}: {status}"),
                ));
            }
            (None, None) if (200..300).contains(&status) => {
                return Ok(StepResult::ok(
                    outputs(rt)?,
                    format!("{method} {shown}: {status}"),
                ));
            }
            // A server's 429 or 5xx is worth asking again (the step is retried with backoff).
            (None, None) if status == 429 || status >= 500 => {
                return Err(StepError::Http {
                    url: shown.clone(),
                    message: format!("the server answered {status}"),
                });
            }
            (None, None) => {
                return Err(fail(format!(
                    "HTTP ({status}) response from {method} {shown} is not a success (2xx)"
                )));
            }
            _ => {}
        }
        // Neither criterion holds yet: ask again later.
        let now = Instant::now();
        if deadline.is_none_or(|d| now + poll >= d) {
            return Err(StepError::Timeout(format!(
                "http: {method} {shown} met neither its success nor its failure criteria before the timeout (last status {status})"
            )));
        }
        if crate::interrupt::requested().is_some() {
            return Err(StepError::Stopped(format!("waiting for {method} {shown}")));
        }
        rt.note(&format!(
            "{method} {shown}: {status}, criteria not met yet; asking again in {:.0}s",
            poll.as_secs_f64()
        ));
        std::thread::sleep(poll);
    }
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "http",
    summary: "send an HTTP request; succeed, fail or wait by expressions over the response",
    shape: &promote_api::step_config::HTTP,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &["(each `outputs[].name`)"],
    verify_recorded: None,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_encoded_and_sorted() {
        let cfg: Config = serde_json::from_value(json!({
            "url": "https://h/x", "queryParams": [{"name": "b", "value": "a b"}, {"name": "a", "value": "1&2"}]
        }))
        .unwrap();
        assert_eq!(full_url(&cfg), "https://h/x?a=1%262&b=a+b");
    }
}
