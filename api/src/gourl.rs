//! Go's `net/url` as Kargo's URL normalization meets it: `url.Parse`, `URL.String` and
//! `len(URL.Query()) > 0`, with Go 1.26's rules (the Go Kargo v1.11.2 is built with).
//!
//! Kargo is the specification of [`crate::urls`], and what Kargo returns follows from what Go's
//! parser accepts, how it decodes and how it escapes again: which URL is "returned as given"
//! because Go refuses it, which `%XX` survives, where a `./` or `//` appears. So this is a model of
//! Go's parser, written from Go's documented behaviour, not an RFC 3986 parser; the tests compare
//! it, through `crate::urls`, with Kargo's own code (tests/kargo, `fuzz::urls_normalize_as_kargos_own_code`).
//! Decoded parts are bytes, as Go's strings are: `%FF` decodes to a byte that is not UTF-8.

/// Go's escaping modes (`encodePath`, `encodeHost`, ...).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Path,
    Host,
    Zone,
    UserPassword,
    QueryComponent,
    Fragment,
}

/// Whether Go escapes `c` in `mode` (`shouldEscape`).
fn should_escape(c: u8, mode: Mode) -> bool {
    if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
        return false;
    }
    let kept: &[u8] = match mode {
        Mode::Path => b"$&+,/:;=@",
        Mode::Host | Mode::Zone => b"!\"$&'()*+,:;<=>[]",
        Mode::UserPassword => b"$&+,;=",
        Mode::QueryComponent => b"",
        Mode::Fragment => b"!$&()*+,/:;=?@",
    };
    !kept.contains(&c)
}

fn unhex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

/// Go's `unescape`: `None` for a bad `%` escape, and in hosts for characters a host cannot hold
/// or escapes of ASCII other than `%25`.
fn unescape(s: &str, mode: Mode) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let (hi, lo) = (*b.get(i + 1)?, *b.get(i + 2)?);
                if !hi.is_ascii_hexdigit() || !lo.is_ascii_hexdigit() {
                    return None;
                }
                let v = (unhex(hi) << 4) | unhex(lo);
                let pct25 = hi == b'2' && lo == b'5';
                if mode == Mode::Host && unhex(hi) < 8 && !pct25 {
                    return None;
                }
                if mode == Mode::Zone && !pct25 && v != b' ' && should_escape(v, Mode::Host) {
                    return None;
                }
                out.push(v);
                i += 3;
            }
            b'+' if mode == Mode::QueryComponent => {
                out.push(b' ');
                i += 1;
            }
            c => {
                if matches!(mode, Mode::Host | Mode::Zone) && c < 0x80 && should_escape(c, mode) {
                    return None;
                }
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Go's `escape` (uppercase hex; a space is `+` only in query components).
fn escape(s: &[u8], mode: Mode) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &c in s {
        if c == b' ' && mode == Mode::QueryComponent {
            out.push('+');
        } else if should_escape(c, mode) {
            out.push('%');
            out.push(char::from(HEX[usize::from(c >> 4)]));
            out.push(char::from(HEX[usize::from(c & 15)]));
        } else {
            out.push(char::from(c));
        }
    }
    out
}

/// Go's `validEncoded`: whether a raw path or fragment may be printed as it was given.
fn valid_encoded(s: &str, mode: Mode) -> bool {
    s.bytes()
        .all(|c| b"!$&'()*+,;=:@[]%".contains(&c) || !should_escape(c, mode))
}

/// A URL as Go's `url.Parse` leaves it. Kargo edits `path` (trimming `/` and `.git`) and `user`
/// and prints the result with [`Url::to_go_string`].
#[derive(Debug, Default)]
pub(crate) struct Url {
    scheme: String,
    opaque: String,
    /// Decoded user name and, when a `:` was given, password.
    pub(crate) user: User,
    /// Decoded host, with its port.
    pub(crate) host: Vec<u8>,
    /// Decoded path.
    pub(crate) path: Vec<u8>,
    /// The path as given, when it differs from Go's escaping of `path`.
    raw_path: String,
    omit_host: bool,
    force_query: bool,
    raw_query: String,
    fragment: Vec<u8>,
    raw_fragment: String,
}

impl Url {
    /// `url.Parse(raw)`; `None` where Go returns an error.
    pub(crate) fn parse(raw: &str) -> Option<Url> {
        let (rest, fragment) = raw.split_once('#').unwrap_or((raw, ""));
        let mut url = Self::parse_reference(rest)?;
        if !fragment.is_empty() {
            url.fragment = unescape(fragment, Mode::Fragment)?;
            if escape(&url.fragment, Mode::Fragment) != fragment {
                url.raw_fragment = fragment.to_owned();
            }
        }
        Some(url)
    }

    /// Go's `parse(raw, false)`: everything but the fragment.
    fn parse_reference(raw: &str) -> Option<Url> {
        if raw.bytes().any(|b| b < b' ' || b == 0x7f) {
            return None;
        }
        let mut url = Url::default();
        if raw == "*" {
            url.path = b"*".to_vec();
            return Some(url);
        }
        let (scheme, rest) = scheme(raw)?;
        url.scheme = scheme.to_ascii_lowercase();
        let mut rest = rest;
        if rest.ends_with('?') && rest.matches('?').count() == 1 {
            url.force_query = true;
            rest = &rest[..rest.len() - 1];
        } else if let Some((r, q)) = rest.split_once('?') {
            rest = r;
            url.raw_query = q.to_owned();
        }
        if !rest.starts_with('/') {
            if !url.scheme.is_empty() {
                // A rootless path after a scheme is opaque.
                url.opaque = rest.to_owned();
                return Some(url);
            }
            // "first path segment in URL cannot contain colon"
            if rest.split('/').next().is_some_and(|seg| seg.contains(':')) {
                return None;
            }
        }
        if (!url.scheme.is_empty() || !rest.starts_with("///")) && rest.starts_with("//") {
            let after = &rest[2..];
            let (authority, path) = after.find('/').map_or((after, ""), |i| after.split_at(i));
            let (user, host) = authority_parts(&url.scheme, authority)?;
            url.user = user;
            url.host = host;
            rest = path;
        } else if !url.scheme.is_empty() && rest.starts_with('/') {
            url.omit_host = true;
        }
        url.path = unescape(rest, Mode::Path)?;
        if escape(&url.path, Mode::Path) != rest {
            url.raw_path = rest.to_owned();
        }
        Some(url)
    }

    /// `len(u.Query()) > 0`: some `&`-separated part decodes to a key (empty keys count, parts
    /// with `;` or bad escapes do not; past 10,000 parts Go parses none).
    pub(crate) fn has_query_values(&self) -> bool {
        let q = &self.raw_query;
        if q.matches('&').count() + 1 > 10_000 {
            return false;
        }
        q.split('&').any(|part| {
            if part.is_empty() || part.contains(';') {
                return false;
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            unescape(k, Mode::QueryComponent).is_some()
                && unescape(v, Mode::QueryComponent).is_some()
        })
    }

    /// `u.EscapedPath()`: the raw path while it still decodes to `path`, else `path` escaped.
    fn escaped_path(&self) -> String {
        if !self.raw_path.is_empty()
            && valid_encoded(&self.raw_path, Mode::Path)
            && unescape(&self.raw_path, Mode::Path).as_deref() == Some(&self.path[..])
        {
            return self.raw_path.clone();
        }
        if self.path == b"*" {
            return "*".to_owned();
        }
        escape(&self.path, Mode::Path)
    }

    /// `u.EscapedFragment()`.
    fn escaped_fragment(&self) -> String {
        if !self.raw_fragment.is_empty()
            && valid_encoded(&self.raw_fragment, Mode::Fragment)
            && unescape(&self.raw_fragment, Mode::Fragment).as_deref() == Some(&self.fragment[..])
        {
            return self.raw_fragment.clone();
        }
        escape(&self.fragment, Mode::Fragment)
    }

    /// `u.String()`.
    pub(crate) fn to_go_string(&self) -> String {
        let mut out = String::new();
        if !self.scheme.is_empty() {
            out.push_str(&self.scheme);
            out.push(':');
        }
        if !self.opaque.is_empty() {
            out.push_str(&self.opaque);
        } else {
            let has_authority =
                !self.scheme.is_empty() || !self.host.is_empty() || self.user.is_some();
            if has_authority && !(self.omit_host && self.host.is_empty() && self.user.is_none()) {
                if !self.host.is_empty() || !self.path.is_empty() || self.user.is_some() {
                    out.push_str("//");
                }
                if let Some((name, password)) = &self.user {
                    out.push_str(&escape(name, Mode::UserPassword));
                    if let Some(p) = password {
                        out.push(':');
                        out.push_str(&escape(p, Mode::UserPassword));
                    }
                    out.push('@');
                }
                out.push_str(&escape(&self.host, Mode::Host));
            }
            let path = self.escaped_path();
            if !path.is_empty() && !path.starts_with('/') && !self.host.is_empty() {
                out.push('/');
            }
            // A first segment with a colon would read as a scheme.
            if out.is_empty() && path.split('/').next().is_some_and(|seg| seg.contains(':')) {
                out.push_str("./");
            }
            out.push_str(&path);
        }
        if self.force_query || !self.raw_query.is_empty() {
            out.push('?');
            out.push_str(&self.raw_query);
        }
        if !self.fragment.is_empty() {
            out.push('#');
            out.push_str(&self.escaped_fragment());
        }
        out
    }
}

/// Go's `getScheme`: the scheme (empty when there is none) and the rest; `None` for a leading
/// `:` ("missing protocol scheme").
fn scheme(raw: &str) -> Option<(&str, &str)> {
    for (i, c) in raw.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return None,
            b':' => return Some((&raw[..i], &raw[i + 1..])),
            _ => return Some(("", raw)),
        }
    }
    Some(("", raw))
}

/// The decoded user and password.
type User = Option<(Vec<u8>, Option<Vec<u8>>)>;

/// Go's `parseAuthority`: `[userinfo@]host[:port]`, decoded.
fn authority_parts(scheme: &str, authority: &str) -> Option<(User, Vec<u8>)> {
    let Some(at) = authority.rfind('@') else {
        return Some((None, host(scheme, authority)?));
    };
    let host = host(scheme, &authority[at + 1..])?;
    let userinfo = &authority[..at];
    let valid = userinfo
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._:~!$&'()*+,;=%@".contains(c));
    if !valid {
        return None;
    }
    let user = match userinfo.split_once(':') {
        None => (unescape(userinfo, Mode::UserPassword)?, None),
        Some((name, password)) => (
            unescape(name, Mode::UserPassword)?,
            Some(unescape(password, Mode::UserPassword)?),
        ),
    };
    Some((Some(user), host))
}

/// Go's `parseHost`: an IPv6 literal in brackets (with a zone after `%25`), or a name with at
/// most one port; for `http` and `https` a second `:` is an error.
fn host(scheme: &str, host: &str) -> Option<Vec<u8>> {
    match host.rfind('[') {
        Some(i) if i > 0 => return None, // invalid IP-literal
        Some(_) => {
            let close = host.rfind(']')?;
            let colon_port = &host[close + 1..];
            if !valid_optional_port(colon_port) {
                return None;
            }
            let port = unescape(colon_port, Mode::Host)?;
            let name = host.get(1..close)?;
            let mut decoded = match name.find("%25") {
                Some(z) => {
                    let mut h = unescape(&name[..z], Mode::Host)?;
                    h.extend(unescape(&name[z..], Mode::Zone)?);
                    h
                }
                None => unescape(name, Mode::Host)?,
            };
            // Only an IPv6 address (with an optional, non-empty zone) may stand in brackets.
            let text = std::str::from_utf8(&decoded).ok()?;
            let (addr, zone) = text
                .split_once('%')
                .map_or((text, None), |(a, z)| (a, Some(z)));
            if zone == Some("") || addr.parse::<std::net::Ipv6Addr>().is_err() {
                return None;
            }
            let mut out = b"[".to_vec();
            out.append(&mut decoded);
            out.push(b']');
            out.extend(port);
            return Some(out);
        }
        None => {}
    }
    if let Some(first) = host.find(':') {
        let last = host.rfind(':').unwrap_or(first);
        let i = if last != first && (scheme == "http" || scheme == "https") {
            first
        } else {
            last
        };
        if !valid_optional_port(&host[i..]) {
            return None;
        }
    }
    unescape(host, Mode::Host)
}

fn valid_optional_port(port: &str) -> bool {
    port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(s: &str) -> Option<String> {
        Url::parse(s).map(|u| u.to_go_string())
    }

    #[test]
    fn parse_and_print_as_go_does() {
        // Outputs of Go 1.26's url.Parse(s).String().
        for (s, want) in [
            ("https://h/p#a b", "https://h/p#a%20b"),
            ("https://h/p#", "https://h/p"),
            ("https://h/p?", "https://h/p?"),
            ("/p?#", "/p?"),
            ("/p#%41", "/p#%41"),
            ("/p#é", "/p#%C3%A9"),
            ("/p#[x]'", "/p#[x]'"),
            ("ssh://h/p#a%20b", "ssh://h/p#a%20b"),
            ("https://u:p%40@h/a%2Fb", "https://u:p%40@h/a%2Fb"),
            ("//h/x", "//h/x"),
            ("a/b:c", "a/b:c"),
            ("x:opaque/path", "x:opaque/path"),
            ("file:///etc", "file:///etc"),
            ("https://[::1]:80/x", "https://[::1]:80/x"),
            ("*", "*"),
        ] {
            assert_eq!(round(s).as_deref(), Some(want), "{s}");
        }
        for bad in [
            "/p#a%zz",
            ":x",
            ":b/c",
            "https://a:1:2/",
            "https://x[::1]/",
            "https://[1.2.3.4]/",
            "https://h:x/",
            "https://%41/",
            "https://é@h/",
            "https://h/\u{7f}",
        ] {
            assert_eq!(round(bad), None, "{bad:?}");
        }
        // Only http and https refuse a second colon in the host.
        assert_eq!(round("ssh://a:1:2/").as_deref(), Some("ssh://a:1:2/"));
    }

    #[test]
    fn query_values_are_counted_as_go_does() {
        let q = |s: &str| Url::parse(s).is_some_and(|u| u.has_query_values());
        assert!(q("https://h/?a=b") && q("https://h/?=x") && q("https://h/?a"));
        assert!(!q("https://h/?") && !q("https://h/?&") && !q("https://h/?a;b"));
        assert!(!q("https://h/?%zz") && !q("https://h/"));
    }
}
