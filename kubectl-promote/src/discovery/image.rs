//! Image discovery over the OCI distribution API (the `oci-client` crate): Kargo v1.11's four
//! selection strategies (`pkg/image/*_selector.go`). Tags are listed page by page (`n`/`last`);
//! a manifest (and its config, for the build time) is fetched only for the tags a strategy keeps:
//! the first `discoveryLimit` after sorting for SemVer and Lexical, every matching tag for
//! NewestBuild (it sorts by build time), the one tag for Digest.

use std::collections::BTreeMap;

use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use promote_api::types::{DiscoveredImageReference, ImageDiscoveryResult, ImageSubscription};
use serde_json::Value;

use super::versions::{self, Constraint};
use super::{DiscoveryError, Login, TagFilter};

/// Tags asked for per page.
pub const PAGE: usize = 1000;
/// Manifests fetched at once (NewestBuild).
const CONCURRENCY: usize = 8;
const CREATED: [&str; 2] = [
    "org.opencontainers.image.created",
    "org.label-schema.build-date",
];
const ACCEPT: [&str; 4] = [
    manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
    manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    manifest::OCI_IMAGE_MEDIA_TYPE,
    manifest::IMAGE_MANIFEST_MEDIA_TYPE,
];

/// One image as found: what Kargo's `image` struct holds.
#[derive(Clone, Debug, Default)]
struct Found {
    tag: String,
    digest: String,
    created: Option<jiff::Timestamp>,
    annotations: BTreeMap<String, String>,
    platforms: Vec<Platform>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Platform {
    os: String,
    arch: String,
    variant: String,
    annotations: BTreeMap<String, String>,
}

/// `os/arch[/variant]`.
fn parse_platform(s: &str) -> Result<Option<Platform>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    let parts: Vec<&str> = s.splitn(3, '/').collect();
    if parts.len() < 2 {
        return Err(format!(
            "error parsing platform constraint {s:?}: expected OS/ARCH or OS/ARCH/VARIANT"
        ));
    }
    Ok(Some(Platform {
        os: parts[0].into(),
        arch: parts[1].into(),
        variant: parts.get(2).copied().unwrap_or_default().into(),
        ..Default::default()
    }))
}

/// go-containerregistry's `Registry.Scheme` heuristic for registries that may speak plain HTTP:
/// `localhost:PORT`, names ending in `.local` or `.localhost` (with an optional port), anything
/// containing `127.0.0.1` or `::1`, and RFC 1918 addresses. For these Kargo's client tries HTTPS
/// first and falls back to HTTP; for every other registry it speaks HTTPS only.
pub fn may_be_plain_http(registry: &str) -> bool {
    let ends_local = {
        let name = match registry.rsplit_once(':') {
            Some((n, port))
                if (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                n
            }
            _ => registry,
        };
        name.ends_with(".local") || name.ends_with(".localhost")
    };
    let private = registry
        .split(':')
        .next()
        .and_then(|h| h.parse::<std::net::Ipv4Addr>().ok())
        .is_some_and(|ip| ip.is_private());
    registry.starts_with("localhost:")
        || ends_local
        || registry.contains("127.0.0.1")
        || registry.contains("::1")
        || private
}

/// How each registry was found to answer, per `insecureSkipTLSVerify`: probed once a process.
static PROTOCOLS: std::sync::Mutex<BTreeMap<(String, bool), bool>> =
    std::sync::Mutex::new(BTreeMap::new());

/// `GET /v2/` answered as a registry answers (200, or 401 with a challenge), as
/// go-containerregistry's ping takes it.
fn ping(registry: &str, scheme: &str, insecure_skip_tls_verify: bool) -> Result<(), String> {
    let agent: ureq::Agent =
        crate::web::agent_config(std::time::Duration::from_secs(10), insecure_skip_tls_verify)
            .build()
            .into();
    match agent.get(format!("{scheme}://{registry}/v2/")).call() {
        Ok(r) if matches!(r.status().as_u16(), 200 | 401) => Ok(()),
        Ok(r) => Err(format!(
            "GET {scheme}://{registry}/v2/ answered {}",
            r.status()
        )),
        Err(e) => Err(match untrusted_certificate(&e) {
            Some(why) => format!(
                "its TLS certificate is not trusted ({why}); if the registry's certificate is self-signed, set insecureSkipTLSVerify: true"
            ),
            None => e.to_string(),
        }),
    }
}

/// The certificate problem behind a failed request, if that is what failed (ureq reports
/// rustls' handshake errors inside an I/O error).
fn untrusted_certificate(e: &ureq::Error) -> Option<String> {
    let tls = match e {
        ureq::Error::Rustls(t) => Some(t),
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    match tls {
        Some(rustls::Error::InvalidCertificate(c)) => Some(format!("{c:?}")),
        _ => None,
    }
}

/// Whether to speak plain HTTP to `registry`: as go-containerregistry decides, HTTPS first and,
/// for the registries of [`may_be_plain_http`], HTTP when HTTPS does not answer. An error when
/// neither does, saying why HTTPS did not.
async fn plain_http(registry: &str, insecure_skip_tls_verify: bool) -> Result<bool, String> {
    if !may_be_plain_http(registry) {
        return Ok(false);
    }
    let key = (registry.to_owned(), insecure_skip_tls_verify);
    if let Some(known) = PROTOCOLS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&key)
    {
        return Ok(*known);
    }
    let reg = registry.to_owned();
    let probe =
        tokio::task::spawn_blocking(
            move || match ping(&reg, "https", insecure_skip_tls_verify) {
                Ok(()) => Ok(false),
                Err(https) => match ping(&reg, "http", insecure_skip_tls_verify) {
                    Ok(()) => Ok(true),
                    Err(_) => Err(format!(
                        "registry {reg} does not answer over HTTPS: {https}"
                    )),
                },
            },
        )
        .await
        .map_err(|e| format!("registry {registry}: the probe failed: {e}"))??;
    PROTOCOLS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(key, probe);
    Ok(probe)
}

/// A client for one registry, speaking HTTPS or, where go-containerregistry would, plain HTTP
/// (see [`plain_http`]). Credentials (`with_login`) go over plain HTTP only to this machine: a
/// registry on the network that answers only plain HTTP gets an error instead (Kargo would send
/// them).
pub async fn client(
    registry: &str,
    insecure_skip_tls_verify: bool,
    with_login: bool,
) -> Result<Client, String> {
    // reqwest (inside oci-client) is built without a default TLS provider: ring is the one the
    // rest of the plugin (kube) uses. Installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plain = plain_http(registry, insecure_skip_tls_verify).await?;
    if plain && with_login && !crate::credentials::is_loopback(registry) {
        return Err(format!(
            "refusing to send credentials over plain http to {registry}, which does not answer over HTTPS; serve the registry over HTTPS"
        ));
    }
    Ok(Client::new(ClientConfig {
        protocol: if plain {
            ClientProtocol::HttpsExcept(vec![registry.to_owned()])
        } else {
            ClientProtocol::Https
        },
        accept_invalid_certificates: insecure_skip_tls_verify,
        read_timeout: Some(std::time::Duration::from_secs(30)),
        connect_timeout: Some(std::time::Duration::from_secs(10)),
        ..Default::default()
    }))
}

/// The registry auth for a login.
pub fn auth(login: Option<&Login>) -> RegistryAuth {
    match login {
        Some(l) => RegistryAuth::Basic(l.username.clone(), l.password.clone()),
        None => RegistryAuth::Anonymous,
    }
}

/// Every tag of a repository, page by page (`n`/`last`). A page shorter than asked for is not
/// taken as the end, since registries cap `n` as they like and oci-client does not show the
/// `Link` header: the end is an empty page, or one that does not move past `last`. That costs
/// one request more than the pages, and never misses a tag.
pub async fn list_tags(
    client: &Client,
    auth: &RegistryAuth,
    repo: &Reference,
) -> Result<Vec<String>, oci_client::errors::OciDistributionError> {
    let mut tags: Vec<String> = Vec::new();
    let mut last: Option<String> = None;
    loop {
        let page = client
            .list_tags(repo, auth, Some(PAGE), last.as_deref())
            .await?
            .tags;
        match page.last() {
            Some(end) if last.as_deref() != Some(end.as_str()) => last = Some(end.clone()),
            _ => break,
        }
        tags.extend(page);
    }
    Ok(tags)
}

struct Selector<'a> {
    sub: &'a ImageSubscription,
    client: Client,
    auth: RegistryAuth,
    repo: Reference,
    tags: TagFilter,
    platform: Option<Platform>,
}

/// The repository reference of a subscription's `repoURL` (Kargo's `urls.NormalizeImage` first:
/// lower case, `docker.io/library` defaults).
pub fn repository(repo_url: &str) -> Result<Reference, String> {
    let normalized = promote_api::urls::normalize_image(repo_url);
    let last = normalized.rsplit('/').next().unwrap_or_default();
    if normalized.contains('@') || last.contains(':') {
        return Err(format!(
            "image repo URL {repo_url:?} must name a repository, without a tag or digest"
        ));
    }
    let r: Reference = normalized.parse().map_err(|e: oci_client::ParseError| {
        format!("error parsing image repo URL {repo_url:?}: {e}")
    })?;
    Ok(Reference::with_tag(
        r.registry().to_owned(),
        r.repository().to_owned(),
        "latest".to_owned(),
    ))
}

impl Selector<'_> {
    fn tag_allowed(&self, tag: &str) -> bool {
        self.tags.allows(tag)
    }

    fn at(&self, reference: &str) -> Reference {
        let (registry, repository) = (
            self.repo.registry().to_owned(),
            self.repo.repository().to_owned(),
        );
        if reference.starts_with("sha256:") {
            Reference::with_digest(registry, repository, reference.to_owned())
        } else {
            Reference::with_tag(registry, repository, reference.to_owned())
        }
    }

    async fn manifest(&self, reference: &str) -> Result<(Value, String), DiscoveryError> {
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(&self.at(reference), &self.auth, &ACCEPT)
            .await
            .map_err(|e| DiscoveryError::registry(&self.sub.repo_url, e))?;
        let doc: Value = serde_json::from_slice(&bytes).map_err(|e| {
            DiscoveryError::Failed(format!(
                "the manifest of {}@{reference} is not JSON: {e}",
                self.sub.repo_url
            ))
        })?;
        Ok((doc, digest))
    }

    /// A single-platform manifest's build time: the creation annotations of the manifest, then
    /// the config's labels, then the config's `created` (Kargo's `getCreationTime`).
    async fn image(&self, digest: &str, doc: &Value) -> Result<Found, DiscoveryError> {
        let annotations = string_map(doc.get("annotations"));
        let mut config = Value::Null;
        if let Some(cfg) = doc.pointer("/config/digest").and_then(Value::as_str) {
            let mut buf: Vec<u8> = Vec::new();
            self.client
                .pull_blob(&self.at(digest), cfg, &mut buf)
                .await
                .map_err(|e| DiscoveryError::registry(&self.sub.repo_url, e))?;
            config = serde_json::from_slice(&buf).unwrap_or(Value::Null);
        }
        let labels = string_map(config.pointer("/config/Labels"));
        let created = [&annotations, &labels]
            .iter()
            .flat_map(|m| CREATED.iter().filter_map(|k| m.get(*k)))
            .find_map(|t| t.parse::<jiff::Timestamp>().ok())
            .or_else(|| {
                config
                    .get("created")
                    .and_then(Value::as_str)
                    .and_then(|t| t.parse().ok())
            });
        Ok(Found {
            digest: digest.to_owned(),
            created,
            annotations,
            ..Default::default()
        })
    }

    /// What a tag names, or `None` when it does not match the platform constraint.
    async fn by_tag(&self, tag: &str) -> Result<Option<Found>, DiscoveryError> {
        let (doc, digest) = self.manifest(tag).await?;
        let is_index = doc.get("manifests").is_some_and(Value::is_array);
        let mut found = if is_index {
            let mut platforms = Vec::new();
            let mut created: Option<jiff::Timestamp> = None;
            for entry in doc["manifests"].as_array().into_iter().flatten() {
                let os = entry
                    .pointer("/platform/os")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let arch = entry
                    .pointer("/platform/architecture")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if os.is_empty() || arch.is_empty() || os == "unknown" || arch == "unknown" {
                    continue; // attestations and other non-images
                }
                let Some(d) = entry.get("digest").and_then(Value::as_str) else {
                    continue;
                };
                let (inner, inner_digest) = self.manifest(d).await?;
                let img = self.image(&inner_digest, &inner).await?;
                if created.is_none_or(|c| img.created.is_some_and(|t| t > c)) {
                    created = img.created;
                }
                platforms.push(Platform {
                    os: os.into(),
                    arch: arch.into(),
                    variant: entry
                        .pointer("/platform/variant")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .into(),
                    annotations: string_map(entry.get("annotations")),
                });
            }
            if platforms.is_empty() {
                return Err(DiscoveryError::Failed(format!(
                    "error retrieving image with tag {tag:?}: empty V2 manifest list or OCI index is not supported"
                )));
            }
            Found {
                digest,
                created,
                annotations: string_map(doc.get("annotations")),
                platforms,
                ..Default::default()
            }
        } else {
            self.image(&digest, &doc).await?
        };
        found.tag = tag.to_owned();
        let Some(want) = &self.platform else {
            return Ok(Some(found));
        };
        let Some(p) = found
            .platforms
            .iter()
            .find(|p| p.os == want.os && p.arch == want.arch && p.variant == want.variant)
            .cloned()
        else {
            return Ok(None);
        };
        found.annotations.extend(p.annotations);
        Ok(Some(found))
    }

    /// The first `limit` tags (in order) that match the platform.
    async fn first(&self, tags: &[String], limit: usize) -> Result<Vec<Found>, DiscoveryError> {
        let mut out = Vec::new();
        for tag in tags {
            if out.len() >= limit {
                break;
            }
            if let Some(f) = self.by_tag(tag).await? {
                out.push(f);
            }
        }
        Ok(out)
    }
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Discover one image subscription.
pub async fn discover(
    sub: &ImageSubscription,
    login: Option<&Login>,
) -> Result<ImageDiscoveryResult, DiscoveryError> {
    let fail = |m: String| DiscoveryError::Failed(format!("image {:?}: {m}", sub.repo_url));
    let repo = repository(&sub.repo_url).map_err(fail)?;
    let sel = Selector {
        sub,
        client: client(
            repo.registry(),
            sub.insecure_skip_tls_verify,
            login.is_some(),
        )
        .await
        .map_err(fail)?,
        auth: auth(login),
        tags: TagFilter::new(
            &sub.allow_tags,
            &sub.ignore_tags,
            &sub.allow_tags_regexes,
            &sub.ignore_tags_regexes,
        )
        .map_err(fail)?,
        platform: parse_platform(&sub.platform).map_err(fail)?,
        repo,
    };
    let limit = sub.limit();
    let found = match sub.strategy() {
        "SemVer" => {
            let constraint = match sub.constraint.as_str() {
                "" => None,
                c => Some(
                    Constraint::parse(c)
                        .map_err(|e| fail(format!("error parsing semver constraint: {e}")))?,
                ),
            };
            let tags = list_tags(&sel.client, &sel.auth, &sel.repo)
                .await
                .map_err(|e| DiscoveryError::registry(&sub.repo_url, e))?;
            let mut parsed: Vec<versions::Parsed> = tags
                .iter()
                .filter(|t| sel.tag_allowed(t))
                .filter_map(|t| versions::parse_tag(t, sub.strict()))
                .filter(|p| constraint.as_ref().is_none_or(|c| c.matches(&p.version)))
                .collect();
            parsed.sort_by(versions::newest_first);
            let tags: Vec<String> = parsed.into_iter().map(|p| p.original).collect();
            sel.first(&tags, limit).await?
        }
        "Lexical" => {
            let mut tags: Vec<String> = list_tags(&sel.client, &sel.auth, &sel.repo)
                .await
                .map_err(|e| DiscoveryError::registry(&sub.repo_url, e))?
                .into_iter()
                .filter(|t| sel.tag_allowed(t))
                .collect();
            tags.sort_by(|a, b| b.cmp(a));
            sel.first(&tags, limit).await?
        }
        "NewestBuild" => {
            let tags: Vec<String> = list_tags(&sel.client, &sel.auth, &sel.repo)
                .await
                .map_err(|e| DiscoveryError::registry(&sub.repo_url, e))?
                .into_iter()
                .filter(|t| sel.tag_allowed(t))
                .collect();
            let results: Vec<Result<Option<Found>, DiscoveryError>> =
                futures::stream::iter(tags.iter())
                    .map(|t| sel.by_tag(t))
                    .buffered(CONCURRENCY)
                    .collect()
                    .await;
            let mut images = Vec::new();
            for r in results {
                if let Some(f) = r? {
                    images.push(f);
                }
            }
            // Newest build first; equal times by tag, descending (Kargo's sort).
            images.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.tag.cmp(&a.tag)));
            images.truncate(limit);
            images
        }
        "Digest" => {
            if sub.constraint.is_empty() {
                return Err(fail(
                    "the Digest strategy needs constraint: the tag to follow".into(),
                ));
            }
            match sel.by_tag(&sub.constraint).await {
                Ok(found) => found.into_iter().collect(),
                Err(DiscoveryError::Registry {
                    not_found: true, ..
                }) => Vec::new(),
                Err(e) => return Err(e),
            }
        }
        other => {
            return Err(fail(format!(
                "unknown imageSelectionStrategy {other:?}: expected SemVer, Lexical, NewestBuild or Digest"
            )));
        }
    };
    Ok(ImageDiscoveryResult {
        repo_url: sub.repo_url.clone(),
        platform: sub.platform.clone(),
        references: found
            .into_iter()
            .map(|f| DiscoveredImageReference {
                tag: f.tag,
                digest: f.digest,
                annotations: f.annotations,
                created_at: f.created.map(crate::kube::timestamp),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_normalize_as_kargo_normalizes_them() {
        let r = repository("nginx").unwrap();
        assert_eq!(
            (r.registry(), r.repository()),
            ("docker.io", "library/nginx")
        );
        let r = repository("127.0.0.1:5000/Team/App").unwrap();
        assert_eq!(
            (r.registry(), r.repository()),
            ("127.0.0.1:5000", "team/app")
        );
        for r in [
            "127.0.0.1:5000",
            "localhost:5000",
            "[::1]:5000",
            "10.1.2.3:5000",
            "192.168.0.9",
            "registry.local",
            "r.localhost:80",
        ] {
            assert!(may_be_plain_http(r), "{r}");
        }
        for r in ["ghcr.io", "localhost", "8.8.8.8:5000", "a.local:123456"] {
            assert!(!may_be_plain_http(r), "{r}");
        }
        assert!(parse_platform("linux").is_err());
        assert_eq!(
            parse_platform("linux/arm64/v8").unwrap().unwrap().variant,
            "v8"
        );
    }
}
