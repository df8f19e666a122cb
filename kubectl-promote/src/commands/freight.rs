//! `kubectl promote freight create`: Freight by hand, named by Kargo's content hash, with a
//! generated alias when none is given.

use promote_api::keys::ALIAS;
use promote_api::types::{Chart, Freight, FreightOrigin, GitCommit, Image};

use super::{Ctx, list_typed, print, print_done, print_objects};
use crate::cli::FreightCreateArgs;
use crate::error::{Error, context};
use crate::kube::{Api, kargo_path};

/// An image reference as the distribution grammar reads it (oci-spec's `Reference`): `repo:tag`,
/// `repo@sha256:...` or both. The repository is kept as written (no `docker.io/library`
/// defaults), as a Warehouse subscription writes it, so the Freight's name is the one Kargo
/// computes for the same image.
fn parse_image(s: &str) -> Result<Image, Error> {
    let bad = |why: String| {
        Error::Usage(format!(
            "--image {s:?} is not an image reference ({why}); expected REPO:TAG, REPO@sha256:DIGEST or REPO:TAG@sha256:DIGEST"
        ))
    };
    let reference: oci_spec::distribution::Reference = s
        .parse()
        .map_err(|e: oci_spec::distribution::ParseError| bad(e.to_string()))?;
    let (base, digest) = match s.split_once('@') {
        Some((b, _)) => (b, reference.digest().unwrap_or_default().to_owned()),
        None => (s, String::new()),
    };
    // A tag follows the last path component's colon (a registry port is followed by a '/').
    let last = base.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match base[last..].rfind(':') {
        Some(i) => (
            &base[..last + i],
            reference.tag().unwrap_or_default().to_owned(),
        ),
        None => (base, String::new()),
    };
    if tag.is_empty() && digest.is_empty() {
        return Err(bad("it names no tag and no digest".into()));
    }
    Ok(Image {
        repo_url: repo.into(),
        tag,
        digest,
        ..Default::default()
    })
}

fn parse_commit(s: &str) -> Result<GitCommit, Error> {
    match s.rsplit_once('@') {
        Some((repo, sha))
            if !repo.is_empty() && sha.len() >= 7 && sha.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(GitCommit {
                repo_url: repo.into(),
                id: sha.to_lowercase(),
                ..Default::default()
            })
        }
        _ => Err(Error::Usage(format!(
            "--commit {s:?}: expected REPO_URL@COMMIT_SHA"
        ))),
    }
}

fn parse_chart(s: &str) -> Result<Chart, Error> {
    let bad = || {
        Error::Usage(format!(
            "--chart {s:?}: expected REPO/NAME:VERSION (or oci://REGISTRY/PATH/NAME:VERSION)"
        ))
    };
    let slash = s.rfind('/').ok_or_else(bad)?;
    let colon = s[slash..].rfind(':').map(|i| slash + i).ok_or_else(bad)?;
    let (path, version) = (&s[..colon], &s[colon + 1..]);
    if version.is_empty() {
        return Err(bad());
    }
    if path.starts_with("oci://") {
        return Ok(Chart {
            repo_url: path.into(),
            name: String::new(),
            version: version.into(),
        });
    }
    let (repo, name) = path.rsplit_once('/').ok_or_else(bad)?;
    if repo.is_empty() || name.is_empty() {
        return Err(bad());
    }
    Ok(Chart {
        repo_url: repo.into(),
        name: name.into(),
        version: version.into(),
    })
}

/// A generated alias for Freight `name` that no Freight in `taken` has.
pub(crate) fn free_alias(name: &str, taken: &[Freight]) -> String {
    (0..64)
        .map(|i| promote_api::naming::freight_alias(name, i))
        .find(|a| !taken.iter().any(|f| f.alias() == Some(a.as_str())))
        .unwrap_or_else(|| promote_api::naming::freight_alias(name, 64))
}

/// Set the alias field and its label, as Kargo's webhook does.
pub(crate) fn set_alias(f: &mut Freight, alias: String) {
    f.alias = alias.clone();
    f.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(ALIAS.to_owned(), alias);
}

/// Run `freight create`.
pub fn create(c: &Ctx<'_>, args: &FreightCreateArgs) -> Result<(), Error> {
    let (kube, ns) = (&c.kube, c.ns.as_str());
    let (images, commits, charts) = (&args.images, &args.commits, &args.charts);
    if images.is_empty() && commits.is_empty() && charts.is_empty() {
        return Err(Error::Usage(
            "Freight needs at least one --image, --commit or --chart".into(),
        ));
    }
    let mut f = Freight::new(ns, FreightOrigin::warehouse(&args.warehouse));
    f.images = images
        .iter()
        .map(|i| parse_image(i))
        .collect::<Result<_, _>>()?;
    f.commits = commits
        .iter()
        .map(|c| parse_commit(c))
        .collect::<Result<_, _>>()?;
    f.charts = charts
        .iter()
        .map(|c| parse_chart(c))
        .collect::<Result<_, _>>()?;
    let name = promote_api::freight_id::freight_id(&f);
    f.metadata.name = Some(name.clone());
    // Every Freight gets a human alias (Kargo's style); a generated one must be free in the project.
    let alias = match args.alias.as_deref() {
        Some(a) => a.to_owned(),
        None => free_alias(&name, &list_typed(kube, "freights", Some(ns))?),
    };
    set_alias(&mut f, alias);
    let obj = serde_json::to_value(&f).map_err(|e| Error::Output(e.to_string()))?;
    if args.dry_run {
        return match c.global.output {
            f if f.is_data() => print_objects(&[obj], true, c.global.output, "Freight"),
            _ => print(&format!(
                "freight.kargo.akuity.io/{name} created (dry run)\n"
            )),
        };
    }
    let created = kube
        .create(&kargo_path("freights", ns, ""), &obj)
        .map_err(context(format!("creating Freight {name}")))?;
    match c.global.output {
        f if f.is_data() => print_objects(&[created], true, c.global.output, "Freight"),
        _ => print_done(
            c.global,
            &format!("freight.kargo.akuity.io/{name}"),
            "created",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_flags_parse() {
        let i = parse_image("registry.local:5000/team/app:1.2.3").unwrap();
        assert_eq!(
            (i.repo_url.as_str(), i.tag.as_str()),
            ("registry.local:5000/team/app", "1.2.3")
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        let d = parse_image(&format!("nginx@{digest}")).unwrap();
        assert_eq!(
            (d.repo_url.as_str(), d.digest.as_str()),
            ("nginx", digest.as_str())
        );
        let both = parse_image(&format!("ghcr.io/acme/api:v2.3.1@{digest}")).unwrap();
        assert_eq!(
            (
                both.repo_url.as_str(),
                both.tag.as_str(),
                both.digest.as_str()
            ),
            ("ghcr.io/acme/api", "v2.3.1", digest.as_str())
        );
        let port = parse_image(&format!("localhost:5000/app@{digest}")).unwrap();
        assert_eq!(
            (port.repo_url.as_str(), port.tag.as_str()),
            ("localhost:5000/app", "")
        );
        assert!(parse_image("registry.local:5000/team/app").is_err());
        assert!(
            parse_image("nginx@sha256:abcd")
                .unwrap_err()
                .to_string()
                .contains("not an image reference")
        );
        assert!(parse_image("Nginx:1.0").is_err());
        assert!(parse_image("nginx:").is_err());
        // The name is Kargo's: the hash of `Warehouse/<name>:` and `repoURL:tag@digest`.
        let mut f = Freight::new("demo", FreightOrigin::warehouse("w"));
        f.images = vec![both];
        let key = format!("Warehouse/w:ghcr.io/acme/api:v2.3.1@{digest}");
        let expected = {
            use sha1::Digest;
            format!("{:x}", sha1::Sha1::digest(key.as_bytes()))
        };
        assert_eq!(promote_api::freight_id::freight_id(&f), expected);
        let c = parse_commit("git@github.com:o/r.git@ABCDEF1234").unwrap();
        assert_eq!(
            (c.repo_url.as_str(), c.id.as_str()),
            ("git@github.com:o/r.git", "abcdef1234")
        );
        assert!(parse_commit("https://x/r.git@main").is_err());
        let h = parse_chart("https://charts.example.com/podinfo:6.5.0").unwrap();
        assert_eq!(
            (h.repo_url.as_str(), h.name.as_str(), h.version.as_str()),
            ("https://charts.example.com", "podinfo", "6.5.0")
        );
        let o = parse_chart("oci://ghcr.io/stefanprodan/charts/podinfo:6.5.0").unwrap();
        assert_eq!(
            (o.repo_url.as_str(), o.name.as_str()),
            ("oci://ghcr.io/stefanprodan/charts/podinfo", "")
        );
    }
}
