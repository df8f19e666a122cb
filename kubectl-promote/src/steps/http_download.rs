//! `http-download`: download a file into a checkout, as Kargo's step does: `url`, `headers`,
//! `queryParams`, `insecureSkipTLSVerify`, `timeout` (default 5m), `allowOverwrite` (else an
//! existing file fails the step); at most 100 MB (Kargo's limit), refused by `Content-Length`
//! before the body is read and by the body itself. A 429 or 5xx answer is transient (retried
//! with backoff); any other non-2xx fails. Header values (tokens) are never printed.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{NameValue, with_query};
use super::{Runtime, StepError, StepResult, config, fail};

const MAX_BYTES: u64 = 100 << 20;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    url: String,
    out_path: String,
    #[serde(default)]
    allow_overwrite: bool,
    #[serde(default)]
    headers: Vec<NameValue>,
    #[serde(default)]
    query_params: Vec<NameValue>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
    #[serde(default)]
    timeout: String,
}

fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("http-download", cfg)?;
    let timeout = match cfg.timeout.as_str() {
        "" => Duration::from_secs(300),
        t => promote_api::duration::parse(t).map_err(|e| {
            fail(format!(
                "http-download: timeout {t:?} is not a duration: {e}"
            ))
        })?,
    };
    let shown = crate::git::redact::strip_userinfo(&cfg.url);
    let (co, rel) = rt.resolve(&cfg.out_path)?;
    if co.checkout.read(&rel)?.is_some() && !cfg.allow_overwrite {
        return Err(fail(format!(
            "http-download: file already exists at {} and overwrite is not allowed; set allowOverwrite to true to replace it",
            cfg.out_path
        )));
    }
    let agent: ureq::Agent = crate::web::agent_config(timeout, cfg.insecure_skip_tls_verify)
        .build()
        .into();
    let mut req = agent.get(&with_query(&cfg.url, &cfg.query_params));
    for h in &cfg.headers {
        req = req.header(h.name.as_str(), h.value.as_str());
    }
    let mut resp = req.call().map_err(|e| StepError::Http {
        url: shown.clone(),
        message: crate::git::redact::strip_userinfo(&e.to_string()),
    })?;
    let status = resp.status().as_u16();
    if status == 429 || status >= 500 {
        return Err(StepError::Http {
            url: shown,
            message: format!("HTTP request failed with status {status}"),
        });
    }
    if !(200..300).contains(&status) {
        return Err(fail(format!(
            "http-download: {shown}: HTTP request failed with status {status}"
        )));
    }
    let too_big = || {
        fail(format!(
            "http-download: {shown}: download exceeds limit of {MAX_BYTES} bytes"
        ))
    };
    let length = resp
        .headers()
        .get("Content-Length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|l| l > MAX_BYTES) {
        return Err(too_big());
    }
    let data = resp
        .body_mut()
        .with_config()
        .limit(MAX_BYTES + 1)
        .read_to_vec()
        .map_err(|e| {
            if matches!(e, ureq::Error::BodyExceedsLimit(_)) {
                too_big()
            } else {
                StepError::Http {
                    url: shown.clone(),
                    message: format!("reading the response: {e}"),
                }
            }
        })?;
    if data.len() as u64 > MAX_BYTES {
        return Err(too_big());
    }
    let n = data.len();
    co.checkout.write(&rel, data)?;
    Ok(StepResult::ok(
        json!({}),
        format!("{shown} ({n} bytes) written to {}", cfg.out_path),
    ))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "http-download",
    summary: "download a file over HTTP(S) into a checkout (at most 100 MB)",
    shape: &promote_api::step_config::HTTP_DOWNLOAD,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &[],
    verify_recorded: None,
};
