//! Repository URL normalization exactly as Kargo v1.11.2 does it (`pkg/urls/{git,helm,image}.go`),
//! because Freight names hash normalized URLs: a single differing byte gives a different Freight.
//!
//! Kargo builds on Go's `net/url` and go-containerregistry's `name.ParseReference`; the small parts
//! of those that matter are reproduced here (see each function). Anything that cannot be normalized
//! is returned as given, like upstream.

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
/// suffix (URLs with a query are returned as given); `ssh://` keeps its user; scp-style
/// `[user@]host[:path]` becomes `ssh://[user@]host/path`.
pub fn normalize_git(repo: &str) -> String {
    let orig = repo;
    let repo = sanitize(&repo.to_lowercase());
    for scheme in ["http://", "https://", "ssh://"] {
        if let Some(rest) = repo.strip_prefix(scheme) {
            let Some(url) = GoUrl::parse(rest) else {
                return orig.to_owned();
            };
            if url.has_query_params() {
                return orig.to_owned();
            }
            let userinfo = if scheme == "ssh://" {
                url.userinfo
            } else {
                None
            };
            let path = url.path_trimmed();
            let mut out = String::from(scheme);
            if let Some(u) = userinfo {
                out.push_str(u);
                out.push('@');
            }
            out.push_str(url.host);
            out.push_str(&path);
            if let Some(f) = url.fragment {
                out.push('#');
                out.push_str(f);
            }
            return out;
        }
    }
    // scp-style: ^((?:[\w-]+@)?[\w-]+(?:\.[\w-]+)*)(?::(.*))?$
    let (user_host, path) = match repo.split_once(':') {
        Some((uh, p)) => (uh, p),
        None => (repo.as_str(), ""),
    };
    if !is_scp_user_host(user_host) {
        return orig.to_owned();
    }
    // The path goes through url.Parse too: its query/fragment survive, and only the path part is
    // trimmed. A path that starts like a scheme (`x:`) is parsed as one by Go; when that leaves
    // Go's Path empty (`ssh://`, `a:b`) Kargo returns `ssh://user@host` (found by fuzzing: the
    // result was not stable under a second normalization). A path Go refuses is returned as given.
    let before_query = &path[..path.find(['?', '#']).unwrap_or(path.len())];
    match go_scheme(path) {
        Err(()) => return orig.to_owned(),
        Ok(Some(rest)) => {
            let rest = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
            let go_path = match rest.strip_prefix("//") {
                Some(authority_and_path) => authority_and_path
                    .find('/')
                    .map_or("", |i| &authority_and_path[i..]),
                None if rest.starts_with('/') => rest,
                None => "",
            };
            let t = go_path.strip_suffix('/').unwrap_or(go_path);
            if t.strip_suffix(".git").unwrap_or(t).is_empty() {
                return format!("ssh://{user_host}");
            }
        }
        Ok(None) => {
            if before_query
                .split('/')
                .next()
                .is_some_and(|seg| seg.contains(':'))
            {
                // "first path segment in URL cannot contain colon"
                return orig.to_owned();
            }
        }
    }
    let (p, tail) = match path.find(['?', '#']) {
        Some(i) => (&path[..i], &path[i..]),
        None => (path, ""),
    };
    let trimmed = p.strip_suffix('/').unwrap_or(p);
    let trimmed = trimmed.strip_suffix(".git").unwrap_or(trimmed);
    if trimmed.is_empty() && tail.is_empty() {
        return format!("ssh://{user_host}");
    }
    format!("ssh://{user_host}/{}{tail}", escape_path(trimmed))
}

/// Go's `getScheme`: `Ok(Some(rest after "scheme:"))`, `Ok(None)` when `s` has no scheme,
/// `Err` for a leading `:` ("missing protocol scheme").
fn go_scheme(s: &str) -> Result<Option<&str>, ()> {
    for (i, c) in s.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return Err(()),
            ':' => return Ok(Some(&s[i + 1..])),
            _ => return Ok(None),
        }
    }
    Ok(None)
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

/// The parts of Go's `url.Parse` result Kargo looks at, for the authority-and-after of a URL.
struct GoUrl<'a> {
    userinfo: Option<&'a str>,
    host: &'a str,
    raw_path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

impl<'a> GoUrl<'a> {
    fn parse(rest: &'a str) -> Option<Self> {
        if rest.chars().any(|c| c.is_ascii_control()) {
            return None;
        }
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (rest, None),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, raw_path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (userinfo, host) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        if !valid_host(host) || !valid_percent_encoding(raw_path) {
            return None;
        }
        Some(Self {
            userinfo,
            host,
            raw_path,
            query,
            fragment,
        })
    }

    /// `len(u.Query()) > 0`: some `&`-separated part is a usable key.
    fn has_query_params(&self) -> bool {
        self.query
            .is_some_and(|q| q.split('&').any(|kv| !kv.is_empty() && !kv.contains(';')))
    }

    /// Go's `Path` with Kargo's trims applied, rendered as `EscapedPath` would.
    fn path_trimmed(&self) -> String {
        let decoded = percent_decode(self.raw_path);
        let t = decoded.strip_suffix('/').unwrap_or(&decoded);
        let t = t.strip_suffix(".git").unwrap_or(t);
        // Go keeps RawPath only while it still decodes to Path; trimming breaks that whenever
        // something was trimmed, and then the path is re-escaped.
        if t == decoded && escape_path(&decoded) != self.raw_path && valid_encoded(self.raw_path) {
            return self.raw_path.to_owned();
        }
        escape_path(t)
    }
}

/// Go's host check for `url.Parse`: characters allowed in a host (`shouldEscape(.., encodeHost)`).
fn valid_host(host: &str) -> bool {
    host.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.~!$&'()*+,;=:[]<>\"%".contains(&b) || b >= 0x80)
}

fn valid_percent_encoding(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (b.get(i + 1), b.get(i + 2))
            && let (Some(h), Some(l)) = ((*h as char).to_digit(16), (*l as char).to_digit(16))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Go's `validEncoded(s, encodePath)`.
fn valid_encoded(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.~!$&'()*+,;=:@[]%/".contains(&b))
}

/// Go's `escape(s, encodePath)`.
fn escape_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~$&+,/:;=@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Kargo's `NormalizeChart`: sanitize, lowercase, strip `oci://`, then image normalization.
pub fn normalize_chart(repo: &str) -> String {
    let sanitized = sanitize(repo);
    // Kargo returns what `url.Parse` refuses as given (found by fuzzing: `oci:// x` lost its
    // prefix and then its space, so a second normalization differed).
    if !go_url_parses(&sanitized) {
        return repo.to_owned();
    }
    let lower = sanitized.to_lowercase();
    normalize_image(lower.strip_prefix("oci://").unwrap_or(&lower))
}

/// Whether Go's `url.Parse` accepts `raw` (net/url's `parse` with `viaRequest` false): what it
/// checks is the scheme, a colon in a relative first segment, the authority (userinfo characters,
/// host characters and escapes, the port) and the percent escapes of path and fragment; the
/// query and an opaque part are not checked.
fn go_url_parses(raw: &str) -> bool {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return false;
    }
    let (rest, fragment) = raw.split_once('#').unwrap_or((raw, ""));
    if !valid_percent_encoding(fragment) {
        return false;
    }
    if rest == "*" {
        return true;
    }
    let (scheme, rest) = match go_scheme(rest) {
        Err(()) => return false,
        Ok(Some(after)) => (true, after),
        Ok(None) => (false, rest),
    };
    let rest = rest.split_once('?').map_or(rest, |(r, _)| r);
    if !rest.starts_with('/') {
        if scheme {
            return true; // opaque
        }
        if rest.split('/').next().is_some_and(|seg| seg.contains(':')) {
            return false;
        }
    }
    let path = match rest.strip_prefix("//") {
        Some(after) if scheme || !rest.starts_with("///") => {
            let (authority, path) = after.find('/').map_or((after, ""), |i| after.split_at(i));
            if !go_authority_parses(authority) {
                return false;
            }
            path
        }
        _ => rest,
    };
    valid_percent_encoding(path)
}

/// net/url's `parseAuthority`: `[userinfo@]host[:port]`.
fn go_authority_parses(authority: &str) -> bool {
    let (userinfo, host) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    if let Some(u) = userinfo
        && !(u.chars().all(|c| {
            c.is_ascii_alphanumeric() || "-._:~!$&'()*+,;=%@".contains(c) || !c.is_ascii()
        }) && valid_percent_encoding(u))
    {
        return false;
    }
    let (name, port) = if host.starts_with('[') {
        match host.rfind(']') {
            Some(i) => host.split_at(i + 1),
            None => return false, // missing ']' in host
        }
    } else {
        host.rfind(':').map_or((host, ""), |i| host.split_at(i))
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    port_ok && valid_host(host) && valid_host_escapes(name)
}

/// net/url's `unescape(.., encodeHost)`: an escape in a host must be `%25` or of a non-ASCII
/// byte (at least `%80`).
fn valid_host_escapes(host: &str) -> bool {
    let b = host.as_bytes();
    b.iter().enumerate().all(|(i, &c)| {
        c != b'%'
            || (b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
                && (&host[i..i + 3] == "%25" || b[i + 1] >= b'8'))
    })
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
    let (base, digest) = s.split_once('@')?;
    let hex = digest.strip_prefix("sha256:")?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
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
            if !tag.is_empty()
                && !check_element(
                    tag,
                    |b| b.is_ascii_alphanumeric() || b"_-.".contains(&b),
                    1,
                    127,
                )
            {
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
    !name.contains(['/', '?', '#', '@']) && valid_host(name) && valid_port(name)
}

fn valid_port(host: &str) -> bool {
    if host.starts_with('[') {
        return true;
    }
    match host.rfind(':') {
        Some(i) => host[i + 1..].bytes().all(|b| b.is_ascii_digit()),
        None => true,
    }
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
        assert!(go_url_parses("oci://ghcr.io/x?%zz"));
        assert!(go_url_parses("oci://a%25b/x"));
        assert!(go_url_parses("oci://[::1]:5000/x"));
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
