//! Chart discovery: HTTP(S) repositories through their `index.yaml`, and `oci://` registries
//! through their tag lists (Kargo v1.11's `pkg/helm/chart/*_selector.go`). HTTP versions parse
//! loosely (Masterminds' `NewVersion`), OCI tags strictly with `_` read as `+` (Helm's encoding of
//! build metadata in tags). Newest first, at most `discoveryLimit`.

use promote_api::types::{ChartDiscoveryResult, ChartSubscription};

use super::versions::{self, Constraint, Parsed};
use super::{DiscoveryError, Login};

/// The largest `index.yaml` read (Bitnami's full index is about 20 MiB).
const MAX_INDEX: u64 = 64 << 20;

fn http_versions(
    sub: &ChartSubscription,
    login: Option<&Login>,
) -> Result<Vec<Parsed>, DiscoveryError> {
    let index_url = format!("{}/index.yaml", sub.repo_url.trim_end_matches('/'));
    let shown = crate::git::redact::strip_userinfo(&index_url);
    if sub.name.is_empty() {
        return Err(DiscoveryError::Failed(format!(
            "chart subscription {:?}: an HTTP(S) repository needs name: the chart's name",
            sub.repo_url
        )));
    }
    if login.is_some()
        && let Some(why) = crate::credentials::insecure_transport(&index_url)
    {
        return Err(DiscoveryError::Failed(why));
    }
    let agent: ureq::Agent = crate::web::agent_config(
        std::time::Duration::from_secs(60),
        sub.insecure_skip_tls_verify,
    )
    .build()
    .into();
    let mut req = agent.get(&index_url);
    if let Some(l) = login {
        let basic = crate::credentials::base64(format!("{}:{}", l.username, l.password).as_bytes());
        req = req.header("Authorization", &format!("Basic {basic}"));
    }
    let mut resp = req.call().map_err(|e| {
        DiscoveryError::Failed(format!(
            "error querying repository index at {shown:?}: {}",
            crate::git::redact::strip_userinfo(&e.to_string())
        ))
    })?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(DiscoveryError::Failed(format!(
            "received unexpected HTTP {status} when querying repository index at {shown:?}"
        )));
    }
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_INDEX)
        .read_to_vec()
        .map_err(|e| {
            DiscoveryError::Failed(format!(
                "error reading repository index from {shown:?}: {e}"
            ))
        })?;
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        version: String,
    }
    #[derive(serde::Deserialize)]
    struct Index {
        #[serde(default)]
        entries: std::collections::BTreeMap<String, Vec<Entry>>,
    }
    let index: Index = serde_yaml::from_slice(&body).map_err(|e| {
        DiscoveryError::Failed(format!(
            "error unmarshaling repository index from {shown:?}: {e}"
        ))
    })?;
    Ok(index
        .entries
        .get(&sub.name)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            versions::parse_loose(&e.version).map(|version| Parsed {
                version,
                original: e.version.clone(),
            })
        })
        .collect())
}

async fn oci_versions(
    sub: &ChartSubscription,
    login: Option<&Login>,
) -> Result<Vec<Parsed>, DiscoveryError> {
    let path = sub.repo_url.trim_start_matches("oci://");
    let repo: oci_client::Reference = path.parse().map_err(|e: oci_client::ParseError| {
        DiscoveryError::Failed(format!(
            "error parsing repository URL {:?}: {e}",
            sub.repo_url
        ))
    })?;
    let client = super::image::client(
        repo.registry(),
        sub.insecure_skip_tls_verify,
        login.is_some(),
    )
    .await
    .map_err(|e| DiscoveryError::Failed(format!("chart {:?}: {e}", sub.repo_url)))?;
    let auth = super::image::auth(login);
    let tags = super::image::list_tags(&client, &auth, &repo)
        .await
        .map_err(|e| DiscoveryError::registry(&sub.repo_url, e))?;
    Ok(tags
        .into_iter()
        .filter_map(|t| {
            let original = t.replace('_', "+");
            versions::parse_strict(&original).map(|version| Parsed { version, original })
        })
        .collect())
}

/// Discover one chart subscription.
pub async fn discover(
    sub: &ChartSubscription,
    login: Option<&Login>,
) -> Result<ChartDiscoveryResult, DiscoveryError> {
    let constraint = match sub.semver_constraint.as_str() {
        "" => None,
        c => Some(Constraint::parse(c).map_err(|e| {
            DiscoveryError::Failed(format!(
                "chart {:?}: error parsing constraint: {e}",
                sub.repo_url
            ))
        })?),
    };
    let mut found = if sub.repo_url.starts_with("oci://") {
        oci_versions(sub, login).await?
    } else if sub.repo_url.starts_with("http://") || sub.repo_url.starts_with("https://") {
        http_versions(sub, login)?
    } else {
        return Err(DiscoveryError::Failed(format!(
            "chart repoURL {:?} must start with https://, http:// or oci://",
            sub.repo_url
        )));
    };
    found.retain(|p| constraint.as_ref().is_none_or(|c| c.matches(&p.version)));
    found.sort_by(versions::newest_first);
    found.truncate(sub.limit());
    Ok(ChartDiscoveryResult {
        repo_url: sub.repo_url.clone(),
        name: sub.name.clone(),
        semver_constraint: sub.semver_constraint.clone(),
        versions: found.into_iter().map(|p| p.original).collect(),
    })
}
