//! Versions as Kargo reads them: Masterminds/semver v3's loose and strict grammars and its
//! constraint language, evaluated with the `semver` crate. Kargo parses tags with
//! `semver.NewVersion` (a `v` prefix and missing minor or patch allowed: `v1.2` is 1.2.0) and,
//! with `strictSemvers` (the default), also requires `StrictNewVersion` of the tag without its
//! `v`. Ordering is semver precedence (build metadata ignored), ties broken by the original text,
//! both descending: newest first.

use std::cmp::Ordering;

use semver::{BuildMetadata, Prerelease, Version, VersionReq};

/// A parsed version that remembers how it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The version.
    pub version: Version,
    /// The text it came from (a tag, a chart version).
    pub original: String,
}

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn identifiers_ok(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// Masterminds' `NewVersion`: `v?MAJOR(.MINOR)?(.PATCH)?(-PRE)?(+META)?`.
pub fn parse_loose(s: &str) -> Option<Version> {
    let body = s.strip_prefix('v').unwrap_or(s);
    let (body, meta) = match body.split_once('+') {
        Some((b, m)) => (b, Some(m)),
        None => (body, None),
    };
    let (core, pre) = match body.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (body, None),
    };
    let mut parts = core.split('.');
    let major = number(parts.next()?)?;
    let minor = parts.next().map_or(Some(0), number)?;
    let patch = parts.next().map_or(Some(0), number)?;
    if parts.next().is_some() {
        return None;
    }
    let pre = match pre {
        Some(p) if identifiers_ok(p) => Prerelease::new(p).ok()?,
        Some(_) => return None,
        None => Prerelease::EMPTY,
    };
    let build = match meta {
        Some(m) if identifiers_ok(m) => BuildMetadata::new(m).ok()?,
        Some(_) => return None,
        None => BuildMetadata::EMPTY,
    };
    Some(Version {
        major,
        minor,
        patch,
        pre,
        build,
    })
}

/// Masterminds' `StrictNewVersion`: exactly `MAJOR.MINOR.PATCH(-PRE)?(+META)?`, no leading
/// zeros, no `v`.
pub fn parse_strict(s: &str) -> Option<Version> {
    let core = s.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.len() > 1 && p.starts_with('0')) {
        return None;
    }
    Version::parse(s).ok()
}

/// Kargo's `semver.Parse(tag, strict)` (`pkg/controller/semver/parser.go`).
pub fn parse_tag(tag: &str, strict: bool) -> Option<Parsed> {
    let version = parse_loose(tag)?;
    if strict && parse_strict(tag.strip_prefix('v').unwrap_or(tag)).is_none() {
        return None;
    }
    Some(Parsed {
        version,
        original: tag.to_owned(),
    })
}

/// Newest first: precedence descending, then the original text descending (Kargo's sort).
pub fn newest_first(a: &Parsed, b: &Parsed) -> Ordering {
    b.version
        .cmp_precedence(&a.version)
        .then_with(|| b.original.cmp(&a.original))
}

/// One comparator of a conjunction.
#[derive(Clone, Debug)]
enum Term {
    Req(VersionReq),
    Not(VersionReq),
}

/// A Masterminds constraint: alternatives (`||`) of conjunctions (`,` or spaces).
#[derive(Clone, Debug)]
pub struct Constraint {
    any_of: Vec<Vec<Term>>,
}

const OPERATORS: [&str; 11] = ["!=", ">=", "=>", "<=", "=<", "~>", "=", ">", "<", "~", "^"];

fn term(token: &str, whole: &str) -> Result<Term, String> {
    let op = OPERATORS
        .iter()
        .find(|o| token.starts_with(**o))
        .copied()
        .unwrap_or("");
    let version = token[op.len()..].trim();
    let version = version.strip_prefix('v').unwrap_or(version);
    let version = version.replace(['x', 'X'], "*");
    if version.is_empty() {
        return Err(format!("{whole:?}: {token:?} names no version"));
    }
    let (op, negate) = match op {
        "=>" => (">=", false),
        "=<" => ("<=", false),
        "~>" => ("~", false),
        // A bare version is an exact match in Masterminds (in Cargo it would be a caret).
        "" | "=" => ("=", false),
        "!=" => ("=", true),
        other => (other, false),
    };
    let text = if version == "*" {
        "*".to_owned()
    } else {
        format!("{op}{version}")
    };
    let req = VersionReq::parse(&text).map_err(|e| format!("{whole:?}: {token:?}: {e}"))?;
    Ok(if negate {
        Term::Not(req)
    } else {
        Term::Req(req)
    })
}

impl Constraint {
    /// Parse Masterminds' syntax: `^1.2`, `~1.2.3`, `>= 1.2, < 2`, `1.2.x`, `1.2 - 1.4`,
    /// `!= 1.3.0`, alternatives with `||`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut any_of = Vec::new();
        for alternative in text.split("||") {
            let mut alt = alternative.trim().to_owned();
            if alt.is_empty() {
                return Err(format!("{text:?}: an empty alternative"));
            }
            // Hyphen ranges: `A - B` is `>= A, <= B`.
            if let Some((lo, hi)) = alt.split_once(" - ") {
                alt = format!(">={}, <={}", lo.trim(), hi.trim());
            }
            // Glue operators to their versions, then split on commas and spaces.
            let mut glued = String::new();
            let mut chars = alt.chars().peekable();
            while let Some(c) = chars.next() {
                glued.push(c);
                if matches!(c, '=' | '>' | '<' | '~' | '^' | '!') {
                    while chars.peek() == Some(&' ') {
                        chars.next();
                    }
                }
            }
            let terms = glued
                .split([',', ' '])
                .filter(|t| !t.is_empty())
                .map(|t| term(t, text))
                .collect::<Result<Vec<_>, _>>()?;
            any_of.push(terms);
        }
        Ok(Self { any_of })
    }

    /// Whether the version satisfies the constraint.
    pub fn matches(&self, v: &Version) -> bool {
        self.any_of.iter().any(|all| {
            all.iter().all(|t| match t {
                Term::Req(r) => r.matches(v),
                Term::Not(r) => !r.matches(v),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn tags_parse_as_kargo_parses_them() {
        assert_eq!(parse_loose("v1.2"), Some(v("1.2.0")));
        assert_eq!(parse_loose("1"), Some(v("1.0.0")));
        assert_eq!(
            parse_loose("1.2.3-rc.1+build.5"),
            Some(v("1.2.3-rc.1+build.5"))
        );
        assert_eq!(parse_loose("latest"), None);
        assert_eq!(parse_loose("1.2.3.4"), None);
        assert_eq!(
            parse_loose("1.2.3-01"),
            None,
            "numeric pre-release with a leading zero"
        );
        // Strict: three parts, no leading zeros; the `v` is allowed by Kargo (trimmed first).
        assert!(parse_tag("v1.2.3", true).is_some());
        assert!(parse_tag("1.2", true).is_none());
        assert!(parse_tag("1.2", false).is_some());
        assert!(parse_tag("01.2.3", true).is_none());
        assert_eq!(parse_tag("v1.2", false).unwrap().original, "v1.2");
    }

    #[test]
    fn newest_first_ignores_build_metadata_then_breaks_ties_by_text() {
        let mut tags: Vec<Parsed> = [
            "1.0.0",
            "v1.10.0",
            "1.2.0",
            "1.10.0",
            "1.10.0-rc.1",
            "1.2.0+b2",
        ]
        .iter()
        .filter_map(|t| parse_tag(t, false))
        .collect();
        tags.sort_by(newest_first);
        let order: Vec<&str> = tags.iter().map(|p| p.original.as_str()).collect();
        assert_eq!(
            order,
            [
                "v1.10.0",
                "1.10.0",
                "1.10.0-rc.1",
                "1.2.0+b2",
                "1.2.0",
                "1.0.0"
            ]
        );
    }

    #[test]
    fn constraints_read_as_masterminds_reads_them() {
        let c = |s: &str| Constraint::parse(s).unwrap();
        assert!(c("^1.2").matches(&v("1.9.0")));
        assert!(!c("^1.2").matches(&v("2.0.0")));
        assert!(c(">= 1.2, < 2").matches(&v("1.5.0")));
        assert!(c(">= 1.2 < 2").matches(&v("1.5.0")));
        assert!(!c(">=1.2 <2").matches(&v("2.1.0")));
        assert!(c("1.2.x").matches(&v("1.2.7")));
        assert!(!c("1.2.x").matches(&v("1.3.0")));
        assert!(c("1.2.3").matches(&v("1.2.3")), "a bare version is exact");
        assert!(!c("1.2.3").matches(&v("1.2.4")));
        assert!(c("1.2 - 1.4.5").matches(&v("1.4.5")));
        assert!(!c("1.2 - 1.4.5").matches(&v("1.4.6")));
        assert!(c("~> 1.2.3").matches(&v("1.2.9")));
        assert!(c("<1.0 || >=2.0").matches(&v("2.3.0")));
        assert!(!c("<1.0 || >=2.0").matches(&v("1.3.0")));
        assert!(!c("!= 1.3.0").matches(&v("1.3.0")));
        assert!(c(">= 1.2, != 1.3.0").matches(&v("1.4.0")));
        assert!(c("*").matches(&v("9.9.9")));
        assert!(c("v1.x").matches(&v("1.4.0")));
        // Pre-releases match only a constraint that names one.
        assert!(!c(">= 1.0").matches(&v("1.5.0-rc.1")));
        assert!(c(">= 1.5.0-rc.0").matches(&v("1.5.0-rc.1")));
        assert!(Constraint::parse(">= banana").is_err());
        assert!(Constraint::parse("1.0 ||").is_err());
    }
}
