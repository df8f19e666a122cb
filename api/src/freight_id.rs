//! Freight names: the SHA-1 content hash Kargo v1.11.2 computes (`pkg/api/freight.go`
//! `GenerateFreightID`). Note: Kargo's `main` branch appends `:<subscriptionName>` to each part;
//! v1.11.2, which we match, does not.

use sha1::{Digest, Sha1};

use crate::types::{ArtifactReference, Chart, Freight, FreightOrigin, GitCommit, Image};
use crate::urls::{go_path_join, normalize_chart, normalize_git};

/// The hash input part of one commit: normalized repo URL, optional `tag:`, commit ID.
pub fn commit_part(c: &GitCommit) -> String {
    if c.tag.is_empty() {
        format!("{}:{}", normalize_git(&c.repo_url), c.id)
    } else {
        format!("{}:{}:{}", normalize_git(&c.repo_url), c.tag, c.id)
    }
}

/// The hash input part of one image: the raw repo URL, tag and digest (either may be empty).
pub fn image_part(i: &Image) -> String {
    format!("{}:{}@{}", i.repo_url, i.tag, i.digest)
}

/// The hash input part of one chart: normalized repo joined with the name, and the version.
pub fn chart_part(c: &Chart) -> String {
    format!(
        "{}:{}",
        go_path_join(&[&normalize_chart(&c.repo_url), &c.name]),
        c.version
    )
}

/// The hash input part of one generic artifact.
pub fn artifact_part(a: &ArtifactReference) -> String {
    format!("{}:{}:{}", a.artifact_type, a.subscription_name, a.version)
}

/// The exact string Kargo hashes: `<origin>:` + sorted parts joined by `|`.
pub fn hash_input(
    origin: &FreightOrigin,
    commits: &[GitCommit],
    images: &[Image],
    charts: &[Chart],
    artifacts: &[ArtifactReference],
) -> String {
    let mut parts: Vec<String> = commits
        .iter()
        .map(commit_part)
        .chain(images.iter().map(image_part))
        .chain(charts.iter().map(chart_part))
        .chain(artifacts.iter().map(artifact_part))
        .collect();
    // Go's slices.Sort on strings: byte-wise order, as Rust's String ordering.
    parts.sort();
    format!("{origin}:{}", parts.join("|"))
}

/// The Freight's name: lowercase hex SHA-1 of [`hash_input`].
pub fn freight_id(f: &Freight) -> String {
    let input = hash_input(&f.origin, &f.commits, &f.images, &f.charts, &f.artifacts);
    format!("{:x}", Sha1::digest(input.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn freight(commits: Vec<GitCommit>, images: Vec<Image>, charts: Vec<Chart>) -> Freight {
        Freight {
            origin: FreightOrigin::warehouse("my-warehouse"),
            commits,
            images,
            charts,
            ..Default::default()
        }
    }

    fn commit(repo: &str, tag: &str, id: &str) -> GitCommit {
        GitCommit {
            repo_url: repo.into(),
            tag: tag.into(),
            id: id.into(),
            ..Default::default()
        }
    }

    fn image(repo: &str, tag: &str, digest: &str) -> Image {
        Image {
            repo_url: repo.into(),
            tag: tag.into(),
            digest: digest.into(),
            ..Default::default()
        }
    }

    fn chart(repo: &str, name: &str, version: &str) -> Chart {
        Chart {
            repo_url: repo.into(),
            name: name.into(),
            version: version.into(),
        }
    }

    /// The vector of the issue (computed from Kargo's algorithm).
    #[test]
    fn single_image_known_vector() {
        let f = freight(vec![], vec![image("nginx", "1.25.0", "")], vec![]);
        assert_eq!(
            hash_input(&f.origin, &f.commits, &f.images, &f.charts, &f.artifacts),
            "Warehouse/my-warehouse:nginx:1.25.0@"
        );
        assert_eq!(freight_id(&f), "be79d3d863f2323dd406cff7a99de434892f8740");
    }

    /// Each vector pins the exact hash input and its ID (SHA-1 computed independently with
    /// Python's hashlib), so a change in input building or in hashing is caught.
    #[test]
    fn vectors() {
        let sha = "abc123def4567890abc123def4567890abc123de";
        let cases: Vec<(Freight, &str, &str)> = vec![
            (
                freight(
                    vec![commit("https://github.com/example/repo.git", "", sha)],
                    vec![],
                    vec![],
                ),
                "Warehouse/my-warehouse:https://github.com/example/repo:abc123def4567890abc123def4567890abc123de",
                "a76a4add857fbf04bf4f601c7968360c2b6f099a",
            ),
            (
                freight(
                    vec![commit(
                        "https://user:s3cret@GitHub.com/Example/Repo/",
                        "v1.2.3",
                        sha,
                    )],
                    vec![],
                    vec![],
                ),
                "Warehouse/my-warehouse:https://github.com/example/repo:v1.2.3:abc123def4567890abc123def4567890abc123de",
                "e11b680b4090125a9c2b5c2a44a1adba7c98441b",
            ),
            (
                freight(
                    vec![commit("git@github.com:example/repo.git", "", sha)],
                    vec![],
                    vec![],
                ),
                "Warehouse/my-warehouse:ssh://git@github.com/example/repo:abc123def4567890abc123def4567890abc123de",
                "1b2d4d73bab71e42d73cdcab2872a2e2def1c1dc",
            ),
            (
                freight(
                    vec![commit(
                        "ssh://git@localhost:2222/example/repo.git",
                        "v2",
                        sha,
                    )],
                    vec![],
                    vec![],
                ),
                "Warehouse/my-warehouse:ssh://git@localhost:2222/example/repo:v2:abc123def4567890abc123def4567890abc123de",
                "f5a19f27bc659f1a8df533a4ad9bf8fb6d359ed4",
            ),
            (
                freight(
                    vec![],
                    vec![],
                    vec![chart("https://charts.example.com", "nginx", "1.0.0")],
                ),
                "Warehouse/my-warehouse:https:/charts.example.com/nginx:1.0.0",
                "160b6144e828f2e017f5e3da8c9621dd977e34ae",
            ),
            (
                freight(
                    vec![],
                    vec![],
                    vec![chart("oci://ghcr.io/Example/charts/nginx", "", "2.1.0")],
                ),
                "Warehouse/my-warehouse:ghcr.io/example/charts/nginx:2.1.0",
                "eefed095ebb8a4217283295f38589be785ca65dc",
            ),
            (
                freight(
                    vec![commit("https://github.com/example/repo", "", sha)],
                    vec![
                        image("ghcr.io/example/app", "1.0.0", "sha256:0123"),
                        image("nginx", "1.25.0", ""),
                    ],
                    vec![chart(
                        "oci://registry-1.docker.io/bitnamicharts/redis",
                        "",
                        "18.0.0",
                    )],
                ),
                "Warehouse/my-warehouse:bitnamicharts/redis:18.0.0|ghcr.io/example/app:1.0.0@sha256:0123|https://github.com/example/repo:abc123def4567890abc123def4567890abc123de|nginx:1.25.0@",
                "dabd3eec1aa12b29864b36ac83b649850467c6cb",
            ),
        ];
        for (f, input, id) in &cases {
            assert_eq!(
                &hash_input(&f.origin, &f.commits, &f.images, &f.charts, &f.artifacts),
                input
            );
            assert_eq!(freight_id(f), *id, "hash of {input}");
        }
    }

    #[test]
    fn order_of_artifacts_does_not_matter() {
        let a = freight(
            vec![],
            vec![image("a", "1", ""), image("b", "2", "")],
            vec![],
        );
        let b = freight(
            vec![],
            vec![image("b", "2", ""), image("a", "1", "")],
            vec![],
        );
        assert_eq!(freight_id(&a), freight_id(&b));
    }

    #[test]
    fn origin_and_tag_change_the_id() {
        let a = freight(vec![commit("https://x/r", "", "1")], vec![], vec![]);
        let mut b = a.clone();
        b.origin = FreightOrigin::warehouse("other");
        let c = freight(vec![commit("https://x/r", "v1", "1")], vec![], vec![]);
        assert_ne!(freight_id(&a), freight_id(&b));
        assert_ne!(freight_id(&a), freight_id(&c));
    }
}
