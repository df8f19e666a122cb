//! `helm-update-chart`: set dependency versions in a chart's `Chart.yaml` (`charts`: each
//! `repository` + `name` must match a `dependencies` entry exactly; the edit is byte-faithful,
//! only the version scalar moves) and run the real helm's `helm dependency update`, as Kargo's
//! step does: `Chart.lock` and `charts/*.tgz` come back into the checkout (stale archives
//! removed); when no dependency version changed, the old `Chart.lock` is kept (helm rewrites its
//! timestamp every time). Without `charts`, the dependencies are updated within the ranges
//! `Chart.yaml` declares. HTTP(S) repositories are registered in a throwaway repositories file and
//! OCI registries in a throwaway login file: logins from the project's Kargo credential Secrets
//! (`cred-type: helm`, read when the step runs against a cluster), else the user's own
//! (`repositories.yaml` for the same URL, Docker and Helm registry logins); OCI over plain HTTP
//! only on loopback. `file://` dependencies must stay
//! inside the checkout. Output: `commitMessage` (Kargo's: `Updated chart dependencies for
//! <path>` and one `- name: old -> new` line per change).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Runtime, StepError, StepResult, config, fail};
use crate::yaml_edit::{PathPart, YamlDoc};

#[derive(Deserialize)]
struct Update {
    repository: String,
    name: String,
    version: String,
}

#[derive(Deserialize)]
struct Config {
    path: String,
    #[serde(default)]
    charts: Vec<Update>,
}

#[derive(Deserialize, Default)]
struct Dependency {
    #[serde(default)]
    name: String,
    #[serde(default)]
    repository: String,
    #[serde(default)]
    version: String,
}

#[derive(Deserialize, Default)]
struct ChartFile {
    #[serde(default)]
    dependencies: Vec<Dependency>,
}

fn tool_error(message: impl Into<String>) -> StepError {
    StepError::Tool {
        tool: "helm".into(),
        message: message.into(),
    }
}

/// name → version of a `Chart.lock` (or `Chart.yaml`) text.
fn versions(text: Option<&[u8]>) -> BTreeMap<String, String> {
    text.and_then(|t| serde_yaml::from_slice::<ChartFile>(t).ok())
        .map(|c| {
            c.dependencies
                .into_iter()
                .map(|d| (d.name, d.version))
                .collect()
        })
        .unwrap_or_default()
}

/// Kargo's `compareChartVersions`: `old -> new`, a new name's version, `""` for a removed one.
fn changes(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, v) in after {
        match before.get(name) {
            Some(old) if old != v => {
                out.insert(name.clone(), format!("{old} -> {v}"));
            }
            Some(_) => {}
            None => {
                out.insert(name.clone(), v.clone());
            }
        }
    }
    for name in before.keys().filter(|n| !after.contains_key(*n)) {
        out.insert(name.clone(), String::new());
    }
    out
}

/// Kargo's repository name: the SHA-256 of the URL, hex.
fn repo_name(url: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(url.trim_end_matches('/').as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The user's `repositories.yaml` entry for `url`, for its credentials.
fn user_repo_login(url: &str) -> Option<(String, String)> {
    let path = std::env::var_os("HELM_REPOSITORY_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| std::path::PathBuf::from(h).join(".config/helm/repositories.yaml"))
        })?;
    let doc: serde_yaml::Value = serde_yaml::from_slice(&std::fs::read(path).ok()?).ok()?;
    doc.get("repositories")?
        .as_sequence()?
        .iter()
        .find_map(|r| {
            let same = r.get("url")?.as_str()?.trim_end_matches('/') == url.trim_end_matches('/');
            let user = r.get("username")?.as_str()?.to_owned();
            let pass = r.get("password")?.as_str()?.to_owned();
            same.then_some((user, pass))
        })
}

fn run(cfg: &Value, rt: &mut Runtime<'_>) -> Result<StepResult, StepError> {
    let cfg: Config = config("helm-update-chart", cfg)?;
    let creds = super::oci_push::credentials(rt);
    let (co, rel) = rt.resolve(&cfg.path)?;
    let chart_yaml = if rel.is_empty() {
        "Chart.yaml".to_owned()
    } else {
        format!("{rel}/Chart.yaml")
    };
    let lock_path = if rel.is_empty() {
        "Chart.lock".to_owned()
    } else {
        format!("{rel}/Chart.lock")
    };
    let charts_dir = if rel.is_empty() {
        "charts".to_owned()
    } else {
        format!("{rel}/charts")
    };
    let Some(text) = co.checkout.read(&chart_yaml)? else {
        return Err(fail(format!(
            "helm-update-chart: {} holds no Chart.yaml",
            cfg.path
        )));
    };
    let text = super::utf8(&chart_yaml, text)?;
    let parsed: ChartFile = serde_yaml::from_str(&text).map_err(|e| {
        fail(format!(
            "helm-update-chart: {chart_yaml} is not a chart file: {e}"
        ))
    })?;
    // Versions first, byte-faithfully.
    let mut doc =
        YamlDoc::parse(&text).map_err(|e| fail(format!("helm-update-chart: {chart_yaml}: {e}")))?;
    let mut edited = false;
    for u in &cfg.charts {
        let Some(i) = parsed
            .dependencies
            .iter()
            .position(|d| d.name == u.name && d.repository == u.repository)
        else {
            return Err(fail(format!(
                "helm-update-chart: no dependency in Chart.yaml matches update with repository {:?} and name {:?}",
                u.repository, u.name
            )));
        };
        if parsed.dependencies[i].version != u.version {
            let path = [
                PathPart::Key("dependencies".into()),
                PathPart::Index(i64::try_from(i).unwrap_or(i64::MAX)),
                PathPart::Key("version".into()),
            ];
            doc.set(&path, &json!(u.version))
                .map_err(|e| fail(format!("helm-update-chart: {chart_yaml}: {e}")))?;
            edited = true;
        }
    }
    // Local dependencies may not reach outside the checkout.
    let depth = rel.split('/').filter(|p| !p.is_empty()).count();
    for d in &parsed.dependencies {
        if let Some(local) = d.repository.strip_prefix("file://") {
            let mut level = depth as i64;
            for part in local.split('/') {
                match part {
                    ".." => level -= 1,
                    "" | "." => {}
                    _ => level += 1,
                }
                if level < 0 || local.starts_with('/') {
                    return Err(fail(format!(
                        "helm-update-chart: dependency {:?} at {:?} is outside the checkout",
                        d.name, d.repository
                    )));
                }
            }
        }
    }
    if edited {
        co.checkout
            .write(&chart_yaml, doc.text().as_bytes().to_vec())?;
    }
    let before_lock = co.checkout.read(&lock_path)?;
    let before = versions(before_lock.as_deref());
    let tmp = tempfile::tempdir()
        .map_err(|e| tool_error(format!("cannot create a temporary directory: {e}")))?;
    let src = tmp.path().join("src");
    co.checkout.materialize(&src)?;
    let chart = src.join(&rel);
    // A repositories file and a registry login file of our own: every HTTP(S) dependency
    // repository, named as Kargo names them, and every OCI registry, with the logins the project's
    // `cred-type: helm` Secrets (or, for OCI, `image` ones) give, else the user's own.
    let mut repos = Vec::new();
    let mut auths = serde_json::Map::new();
    let mut plain_http = false;
    for d in &parsed.dependencies {
        if d.repository.starts_with("http://") || d.repository.starts_with("https://") {
            let mut entry = json!({"name": repo_name(&d.repository), "url": d.repository});
            let login = creds
                .for_chart(&d.repository)
                .map(|l| (l.username, l.password))
                .or_else(|| user_repo_login(&d.repository));
            if let Some((user, pass)) = login {
                if let Some(why) = crate::credentials::insecure_transport(&d.repository) {
                    return Err(fail(format!("helm-update-chart: {why}")));
                }
                entry["username"] = json!(user);
                entry["password"] = json!(pass);
            }
            repos.push(entry);
        }
        if let Some(rest) = d.repository.strip_prefix("oci://") {
            let host = rest.split('/').next().unwrap_or_default();
            if crate::credentials::is_loopback(host) {
                plain_http = true;
            }
            let full = format!("{}/{}", d.repository.trim_end_matches('/'), d.name);
            if let Some(l) = creds.for_chart(&full) {
                let token =
                    crate::credentials::base64(format!("{}:{}", l.username, l.password).as_bytes());
                auths.insert(host.to_owned(), json!({"auth": token}));
            }
        }
    }
    let repo_file = tmp.path().join("repositories.yaml");
    let repo_doc =
        json!({"apiVersion": "", "generated": "0001-01-01T00:00:00Z", "repositories": repos});
    std::fs::write(
        &repo_file,
        serde_yaml::to_string(&repo_doc).map_err(|e| tool_error(e.to_string()))?,
    )
    .map_err(|e| tool_error(e.to_string()))?;
    let registry_file = tmp.path().join("registry.json");
    std::fs::write(&registry_file, json!({"auths": auths}).to_string())
        .map_err(|e| tool_error(e.to_string()))?;
    let mut args: Vec<String> = vec![
        "dependency".into(),
        "update".into(),
        chart.display().to_string(),
        "--repository-config".into(),
        repo_file.display().to_string(),
        "--repository-cache".into(),
        tmp.path().join("repository-cache").display().to_string(),
        "--registry-config".into(),
        registry_file.display().to_string(),
    ];
    if plain_http {
        args.push("--plain-http".into());
    }
    super::helm_template::helm(&args, tmp.path())?;
    // What helm wrote comes back into the checkout.
    let after_lock = std::fs::read(chart.join("Chart.lock")).ok();
    let after = versions(after_lock.as_deref());
    let diff = changes(&before, &after);
    if !diff.is_empty()
        && let Some(lock) = after_lock
    {
        co.checkout.write(&lock_path, lock)?;
    }
    let mut archives: Vec<String> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(chart.join("charts")) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tgz") {
                let data = std::fs::read(e.path()).map_err(|err| tool_error(err.to_string()))?;
                let path = format!("{charts_dir}/{name}");
                if co.checkout.read(&path)?.as_deref() != Some(data.as_slice()) {
                    co.checkout.write(&path, data)?;
                }
                archives.push(name);
            }
        }
    }
    if co.checkout.is_dir(&charts_dir)? {
        for (name, is_dir) in co.checkout.list_dir(&charts_dir)? {
            if !is_dir && name.ends_with(".tgz") && !archives.contains(&name) {
                co.checkout.remove(&format!("{charts_dir}/{name}"))?;
            }
        }
    }
    if diff.is_empty() {
        return Ok(StepResult::ok(
            json!({}),
            format!("{}: dependencies unchanged", cfg.path),
        ));
    }
    let mut message = format!("Updated chart dependencies for {}\n", cfg.path);
    for (name, change) in &diff {
        let change = if change.is_empty() {
            "removed"
        } else {
            change.as_str()
        };
        message.push_str(&format!("\n- {name}: {change}"));
    }
    let summary = diff
        .iter()
        .map(|(n, c)| format!("{n} {}", if c.is_empty() { "removed" } else { c }))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(StepResult::ok(
        json!({ "commitMessage": message }),
        format!("{}: {summary}", cfg.path),
    ))
}

/// The registry entry (`steps::REGISTRY`).
pub(super) const STEP: super::Step = super::Step {
    name: "helm-update-chart",
    summary: "set a chart's dependency versions in Chart.yaml and run helm dependency update (Chart.lock, charts/)",
    shape: &promote_api::step_config::HELM_UPDATE_CHART,
    run: |cfg, rt, _| run(cfg, rt),
    remote: false,
    outputs: &["commitMessage"],
    verify_recorded: None,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_kargos() {
        let m = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let c = changes(
            &m(&[("a", "1.0.0"), ("b", "2.0.0"), ("gone", "1")]),
            &m(&[("a", "1.1.0"), ("b", "2.0.0"), ("new", "0.1.0")]),
        );
        assert_eq!(
            c,
            m(&[("a", "1.0.0 -> 1.1.0"), ("gone", ""), ("new", "0.1.0")])
        );
        assert_eq!(
            repo_name("https://charts.example/"),
            repo_name("https://charts.example")
        );
        assert_eq!(repo_name("x").len(), 64);
    }
}
