//! Repository URL normalization exactly as Kargo v1.11.2 does it (`pkg/urls/{git,helm,image}.go`),
//! because Freight names hash normalized URLs: a single differing byte gives a different Freight.
//!
//! Kargo builds on Go's `net/url` and go-containerregistry's `name.ParseReference`; the small parts
//! of those that matter are reproduced here (see each function). Anything that cannot be normalized
//! is returned as given, like upstream.

use crate::gourl::Url;

/// Kargo's `SanitizeURL`: drop what Go's `unicode.IsPrint` calls non-printable (everything but
/// letters, marks, numbers, punctuation, symbols and the ASCII space: so also byte order marks,
/// zero-width spaces, no-break spaces and private-use characters), trim surrounding whitespace.
pub fn sanitize(url: &str) -> String {
    let kept: String = url.chars().filter(|c| go_is_print(*c)).collect();
    kept.trim().to_owned()
}

/// Go's `unicode.IsPrint`, by general category (the crate's Unicode tables may be a version
/// ahead of Go's for characters assigned since; nothing in a URL is likely to depend on that).
fn go_is_print(c: char) -> bool {
    use unicode_general_category::{GeneralCategory as G, get_general_category};
    c == ' '
        || !matches!(
            get_general_category(c),
            G::Control
                | G::Format
                | G::Surrogate
                | G::PrivateUse
                | G::Unassigned
                | G::SpaceSeparator
                | G::LineSeparator
                | G::ParagraphSeparator
        )
}

/// Kargo's `NormalizeGit`: lowercase; `http(s)://` loses userinfo, a trailing `/` and then a `.git`
/// suffix (URLs with query parameters are returned as given); `ssh://` keeps its user; scp-style
/// `[user@]host[:path]` becomes `ssh://[user@]host/path`. What Go's `url.Parse` refuses is returned
/// as given; the rest is printed as Go's `URL.String` prints it (escapes, `?`, `#`).
pub fn normalize_git(repo: &str) -> String {
    let orig = repo;
    let repo = sanitize(&repo.to_lowercase());
    let http = repo.starts_with("http://") || repo.starts_with("https://");
    if http || repo.starts_with("ssh://") {
        let Some(mut url) = Url::parse(&repo) else {
            return orig.to_owned();
        };
        if url.has_query_values() {
            return orig.to_owned();
        }
        if http {
            url.user = None;
        }
        trim_path(&mut url);
        return url.to_go_string();
    }
    // scp-style: ^((?:[\w-]+@)?[\w-]+(?:\.[\w-]+)*)(?::(.*))?$
    let (user_host, path) = repo.split_once(':').unwrap_or((&repo, ""));
    if !is_scp_user_host(user_host) {
        return orig.to_owned();
    }
    // The path is parsed as a URL of its own (found by fuzzing and by comparing with Kargo: a
    // path whose Go `Path` is empty, as in `host:/#x` or `host:?q`, leaves `ssh://host`).
    let Some(mut url) = Url::parse(path) else {
        return orig.to_owned();
    };
    trim_path(&mut url);
    if url.path.is_empty() {
        return format!("ssh://{user_host}");
    }
    format!("ssh://{user_host}/{}", url.to_go_string())
}

/// Kargo's trims of a parsed Git URL's path: one trailing `/`, then `.git`.
fn trim_path(url: &mut Url) {
    for suffix in [&b"/"[..], b".git"] {
        if url.path.ends_with(suffix) {
            url.path.truncate(url.path.len() - suffix.len());
        }
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn is_scp_user_host(s: &str) -> bool {
    let host = match s.split_once('@') {
        Some((user, host)) => {
            if user.is_empty() || !user.chars().all(is_word) {
                return false;
            }
            host
        }
        None => s,
    };
    !host.is_empty()
        && host
            .split('.')
            .all(|label| !label.is_empty() && label.chars().all(is_word))
}

/// Kargo's `NormalizeChart`: sanitize, lowercase, strip `oci://`, then image normalization.
pub fn normalize_chart(repo: &str) -> String {
    let sanitized = sanitize(repo);
    // Kargo returns what `url.Parse` refuses as given (found by fuzzing: `oci:// x` lost its
    // prefix and then its space, so a second normalization differed).
    if Url::parse(&sanitized).is_none() {
        return repo.to_owned();
    }
    let lower = sanitized.to_lowercase();
    normalize_image(lower.strip_prefix("oci://").unwrap_or(&lower))
}

const DOCKER_HUB: &str = "index.docker.io";

/// Kargo's `NormalizeImage`: parse as an image reference (go-containerregistry, weak validation);
/// Docker Hub references lose their registry and the `library/` namespace; others become
/// `registry/repository`. Unparseable input is returned as given.
pub fn normalize_image(repo_url: &str) -> String {
    let s = sanitize(&repo_url.to_lowercase());
    let Some((registry, repository)) = parse_reference(&s) else {
        return repo_url.to_owned();
    };
    if registry == DOCKER_HUB || registry == "registry-1.docker.io" {
        return repository
            .strip_prefix("library/")
            .unwrap_or(&repository)
            .to_owned();
    }
    format!("{registry}/{repository}")
}

/// `name.ParseReference(s, name.WeakValidation)` reduced to (registry, repository): a tag
/// reference, or else a digest reference.
fn parse_reference(s: &str) -> Option<(String, String)> {
    if let Some(r) = parse_tag(s) {
        return Some(r);
    }
    // Exactly one `@`, and a canonical (lowercase) sha256.
    let (base, digest) = s.split_once('@').filter(|(_, d)| !d.contains('@'))?;
    let hex = digest.strip_prefix("sha256:")?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    parse_tag(base)
}

fn parse_tag(s: &str) -> Option<(String, String)> {
    let mut base = s;
    if let Some(i) = s.rfind(':') {
        let tag = &s[i + 1..];
        if !tag.contains('/') {
            base = &s[..i];
            // "must specify a tag name after the colon"; at most 128 characters.
            if !check_element(
                tag,
                |b| b.is_ascii_alphanumeric() || b"_-.".contains(&b),
                1,
                128,
            ) {
                return None;
            }
        }
    }
    parse_repository(base)
}

fn parse_repository(name: &str) -> Option<(String, String)> {
    if name.is_empty() {
        return None;
    }
    let (mut registry, repo) = match name.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') => (first, rest),
        _ => ("", name),
    };
    let repo_ok = |r: &str| {
        check_element(
            r,
            |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-./".contains(&b),
            2,
            255,
        )
    };
    if !repo_ok(repo) || !valid_registry(registry) {
        return None;
    }
    if registry.is_empty() || registry == "docker.io" {
        registry = DOCKER_HUB;
    }
    let repository = if registry == DOCKER_HUB && !repo.contains('/') {
        let full = format!("library/{repo}");
        if !repo_ok(&full) {
            return None;
        }
        full
    } else {
        repo.to_owned()
    };
    Some((registry.to_owned(), repository))
}

fn check_element(s: &str, allowed: impl Fn(u8) -> bool, min: usize, max: usize) -> bool {
    let n = s.chars().count();
    n >= min && n <= max && s.bytes().all(allowed)
}

/// go-containerregistry's `checkRegistry`: `url.Parse("//"+name).Host == name`.
fn valid_registry(name: &str) -> bool {
    Url::parse(&format!("//{name}")).is_some_and(|u| u.host == name.as_bytes())
}

/// Go's `path.Join`: join non-empty elements with `/` and clean the result.
pub fn go_path_join(parts: &[&str]) -> String {
    let joined = parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    if joined.is_empty() {
        return String::new();
    }
    go_path_clean(&joined)
}

/// Go's `path.Clean`.
pub fn go_path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".to_owned();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|s| *s != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            s => out.push(s),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_owned(),
        (false, false) => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kargo's own table (`pkg/urls/git_test.go` at v1.11.2).
    #[test]
    fn normalize_git_matches_kargo_table() {
        let cases = [
            ("https://not a url", "https://not a url"),
            (
                "http://github.com/example/repo?foo=bar",
                "http://github.com/example/repo?foo=bar",
            ),
            ("ssh://not a url", "ssh://not a url"),
            (
                "ssh://github.com/example/repo?foo=bar",
                "ssh://github.com/example/repo?foo=bar",
            ),
            ("not even remotely a url", "not even remotely a url"),
            ("https://github.com", "https://github.com"),
            ("https://github.com/", "https://github.com"),
            ("https://foo:bar@github.com", "https://github.com"),
            ("https://foo:bar@github.com/", "https://github.com"),
            (
                "https://github.com/example/repo",
                "https://github.com/example/repo",
            ),
            (
                "https://github.com/example/repo/",
                "https://github.com/example/repo",
            ),
            (
                "https://github.com/example/repo.git",
                "https://github.com/example/repo",
            ),
            (
                "https://github.com/example/repo.git/",
                "https://github.com/example/repo",
            ),
            (
                "https://localhost:8443/example/repo",
                "https://localhost:8443/example/repo",
            ),
            (
                "https://localhost:8443/example/repo.git/",
                "https://localhost:8443/example/repo",
            ),
            (
                "https://foo:bar@github.com/example/repo.git/",
                "https://github.com/example/repo",
            ),
            (
                "https://foo:bar@localhost:8443/example/repo.git",
                "https://localhost:8443/example/repo",
            ),
            ("ssh://git.example.com", "ssh://git.example.com"),
            ("ssh://git.example.com/", "ssh://git.example.com"),
            ("ssh://git@git.example.com", "ssh://git@git.example.com"),
            ("ssh://git@git.example.com/", "ssh://git@git.example.com"),
            (
                "ssh://github.com/example/repo.git/",
                "ssh://github.com/example/repo",
            ),
            (
                "ssh://localhost:2222/example/repo.git",
                "ssh://localhost:2222/example/repo",
            ),
            (
                "ssh://git@github.com/example/repo/",
                "ssh://git@github.com/example/repo",
            ),
            (
                "ssh://git@localhost:2222/example/repo.git/",
                "ssh://git@localhost:2222/example/repo",
            ),
            ("git.example.com", "ssh://git.example.com"),
            ("git@git.example.com", "ssh://git@git.example.com"),
            ("github.com:example/repo", "ssh://github.com/example/repo"),
            (
                "github.com:example/repo.git/",
                "ssh://github.com/example/repo",
            ),
            (
                "git@github.com:example/repo",
                "ssh://git@github.com/example/repo",
            ),
            (
                "git@github.com:example/repo/",
                "ssh://git@github.com/example/repo",
            ),
            (
                "git@github.com:example/repo.git",
                "ssh://git@github.com/example/repo",
            ),
            (
                "git@github.com:example/repo.git/",
                "ssh://git@github.com/example/repo",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_git(input), want, "input {input:?}");
        }
    }

    #[test]
    fn normalize_git_lowercases_and_sanitizes() {
        assert_eq!(
            normalize_git("  HTTPS://GitHub.com/Example/Repo.GIT \n"),
            "https://github.com/example/repo"
        );
        assert_eq!(
            normalize_git("https://github.com/my repo"),
            "https://github.com/my%20repo"
        );
    }

    /// Kargo's tables (`pkg/urls/helm_test.go`, `image_test.go` at v1.11.2).
    #[test]
    fn normalize_chart_and_image_match_kargo_tables() {
        for (input, want) in [
            ("", ""),
            ("repo", "repo"),
            ("  repo  ", "repo"),
            ("REpo", "repo"),
            ("oci://repo", "repo"),
            ("  oci://repo  ", "repo"),
            ("OCI://Repo", "repo"),
            ("oci://docker.io/example/repo", "example/repo"),
            ("docker.io/example/repo", "example/repo"),
            ("oci://index.docker.io/example/repo", "example/repo"),
            ("registry-1.docker.io/example/repo", "example/repo"),
            (
                "oci://ghcr.io/example/charts/nginx",
                "ghcr.io/example/charts/nginx",
            ),
        ] {
            assert_eq!(normalize_chart(input), want, "chart {input:?}");
        }
        for (input, want) in [
            ("index.docker.io/library/busybox", "busybox"),
            ("index.docker.io/busybox", "busybox"),
            ("registry-1.docker.io/library/busybox", "busybox"),
            ("docker.io/busybox", "busybox"),
            ("library/busybox", "busybox"),
            ("busybox", "busybox"),
            ("example/repo", "example/repo"),
            ("ghcr.io/example/repo", "ghcr.io/example/repo"),
            ("localhost:5000/example/repo", "localhost:5000/example/repo"),
            ("invalid url", "invalid url"),
        ] {
            assert_eq!(normalize_image(input), want, "image {input:?}");
        }
    }

    /// HTTP chart repositories are not image references: go-containerregistry still accepts
    /// `https:` as a registry and `/host` as a repository, so the URL comes back (lowercased);
    /// with a port the repository part is invalid and the input is returned as given.
    #[test]
    fn normalize_chart_http_repositories() {
        assert_eq!(
            normalize_chart("https://Charts.Example.com"),
            "https://charts.example.com"
        );
        assert_eq!(
            normalize_chart("https://charts.example.com:8443/x"),
            "https://charts.example.com:8443/x"
        );
    }

    #[test]
    fn what_go_url_parse_refuses_is_returned_as_given() {
        for input in [
            "oci:// ssh://$",         // a space in the host (found by fuzzing)
            "OCI://Example.com:8x/c", // a port that is not a number
            "oci://ghcr.io/a%zz",     // a bad escape in the path
            "oci://ghcr.io/a#%g",     // and in the fragment
            "oci://[::1/x",           // missing ']'
            "oci://u s@ghcr.io/x",    // a space in the userinfo
            "oci://ghcr%41.io/x",     // an escape of ASCII in a host
            ":x",                     // missing protocol scheme
            "1a:b",                   // a colon in a relative first segment
        ] {
            assert_eq!(normalize_chart(input), input, "{input:?}");
        }
        // Accepted: an opaque URL, a query (not checked), `%25` in a host.
        assert_eq!(normalize_chart("oci:ghcr.io/X"), "oci:ghcr.io/x");
        assert!(Url::parse("oci://ghcr.io/x?%zz").is_some());
        assert!(Url::parse("oci://a%25b/x").is_some());
        assert!(Url::parse("oci://[::1]:5000/x").is_some());
    }

    #[test]
    fn sanitize_drops_what_go_calls_non_printable() {
        assert_eq!(
            sanitize("\u{FEFF}\u{200B} oci://ghcr.io/x\u{00A0}\t\u{E000}"),
            "oci://ghcr.io/x"
        );
        assert_eq!(sanitize("a\u{2028}b\u{3000}c"), "abc");
        // Letters, marks, symbols and the ASCII space stay.
        assert_eq!(sanitize("é\u{301} €  x"), "é\u{301} €  x");
    }

    #[test]
    fn go_path_join_cleans() {
        assert_eq!(
            go_path_join(&["https://charts.example.com", "nginx"]),
            "https:/charts.example.com/nginx"
        );
        assert_eq!(go_path_join(&["ghcr.io/x/nginx", ""]), "ghcr.io/x/nginx");
        assert_eq!(go_path_join(&["", ""]), "");
        assert_eq!(go_path_join(&["a/", "../b"]), "b");
        assert_eq!(go_path_clean("/../a//b/."), "/a/b");
    }
}
