//! Commit discovery over the engine's Git mirror cache: Kargo v1.11's four commit selection
//! strategies (`pkg/controller/git/commit/*_selector.go`). The mirror fetches the whole history
//! blob-less (trees and commits, no file contents), which is all that `git log` and the changed
//! paths of a commit need.

use promote_api::types::{DiscoveredCommit, GitDiscoveryResult, GitSubscription};
use regex::Regex;

use super::versions::{self, Constraint};
use super::{DiscoveryError, TagFilter};
use crate::git::Mirror;

/// One commit or tag as git lists it.
#[derive(Clone, Debug, Default, PartialEq)]
struct Listed {
    tag: String,
    id: String,
    subject: String,
    author: String,
    committer: String,
    date: String,
    tagger: String,
    annotation: String,
}

/// A path selector: a base directory, or `glob:` (doublestar: `*` stays within a directory),
/// `regex:`/`regexp:` (Kargo's `pattern.ParsePathPattern`).
enum PathMatcher {
    Base(String),
    Glob(globset::GlobMatcher),
    Regex(Regex),
}

impl PathMatcher {
    fn parse(p: &str) -> Result<Self, String> {
        if let Some(g) = p.strip_prefix("glob:") {
            let glob = globset::GlobBuilder::new(g)
                .literal_separator(true)
                .build()
                .map_err(|e| format!("parse error path selector {p:?}: {e}"))?;
            return Ok(Self::Glob(glob.compile_matcher()));
        }
        if let Some(r) = p
            .strip_prefix("regex:")
            .or_else(|| p.strip_prefix("regexp:"))
        {
            return Regex::new(r)
                .map(Self::Regex)
                .map_err(|e| format!("parse error path selector {p:?}: {e}"));
        }
        Ok(Self::Base(p.trim_end_matches('/').to_owned()))
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Self::Base(b) => {
                b.is_empty() || b == "." || path == b || path.starts_with(&format!("{b}/"))
            }
            Self::Glob(g) => g.is_match(path),
            Self::Regex(r) => r.is_match(path),
        }
    }
}

fn any(matchers: &[PathMatcher], path: &str) -> bool {
    matchers.iter().any(|m| m.matches(path))
}

struct Filters {
    include: Vec<PathMatcher>,
    exclude: Vec<PathMatcher>,
    expression: Option<expr::Program>,
    tags: TagFilter,
}

impl Filters {
    fn paths(&self) -> bool {
        !self.include.is_empty() || !self.exclude.is_empty()
    }

    /// Kargo's `MatchesPaths`: some changed path is included (or no include list) and not
    /// excluded.
    fn matches_paths(&self, paths: &[String]) -> bool {
        paths
            .iter()
            .any(|p| (self.include.is_empty() || any(&self.include, p)) && !any(&self.exclude, p))
    }

    fn tag_allowed(&self, tag: &str) -> bool {
        self.tags.allows(tag)
    }

    /// The expression filter over a commit (`id`, `commitDate`, `author`, `committer`,
    /// `subject`) or a tag (also `tag`, `creatorDate`, `tagger`, `annotation`). Dates are RFC
    /// 3339 strings. A result that is not a boolean is read as one, as Go's `ParseBool` does.
    fn keep(&self, l: &Listed, is_tag: bool) -> Result<bool, String> {
        let Some(program) = &self.expression else {
            return Ok(true);
        };
        let mut ctx = expr::Context::default();
        ctx.insert("id", l.id.as_str());
        ctx.insert("author", l.author.as_str());
        ctx.insert("committer", l.committer.as_str());
        ctx.insert("subject", l.subject.as_str());
        if is_tag {
            ctx.insert("tag", l.tag.as_str());
            ctx.insert("creatorDate", l.date.as_str());
            ctx.insert("tagger", l.tagger.as_str());
            ctx.insert("annotation", l.annotation.as_str());
        } else {
            ctx.insert("commitDate", l.date.as_str());
        }
        let v = expr::run(program, &ctx)
            .map_err(|e| format!("error evaluating filter expression: {e}"))?;
        match v {
            expr::Value::Bool(b) => Ok(b),
            other => match other.to_string().as_str() {
                "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
                "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
                s => Err(format!(
                    "error parsing expression result {s:?} as a boolean"
                )),
            },
        }
    }
}

fn filters(sub: &GitSubscription) -> Result<Filters, String> {
    let paths = |list: &[String]| {
        list.iter()
            .map(|p| PathMatcher::parse(p))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(Filters {
        include: paths(&sub.include_paths)
            .map_err(|e| format!("error parsing include path selectors: {e}"))?,
        exclude: paths(&sub.exclude_paths)
            .map_err(|e| format!("error parsing exclude path selectors: {e}"))?,
        expression: match sub.expression_filter.as_str() {
            "" => None,
            e => Some(
                expr::compile(e)
                    .map_err(|err| format!("error compiling filter expression: {err}"))?,
            ),
        },
        tags: TagFilter::new(
            &sub.allow_tags,
            &sub.ignore_tags,
            &sub.allow_tags_regexes,
            &sub.ignore_tags_regexes,
        )?,
    })
}

/// Kargo shortens subjects to 80 characters (`...` included).
fn shorten(s: &str) -> String {
    if s.len() > 80 {
        let mut end = 77;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s.to_owned()
    }
}

fn rfc3339(date: &str) -> Option<String> {
    date.parse::<jiff::Timestamp>()
        .ok()
        .map(crate::kube::timestamp)
}

/// The paths a commit changes against its first parent (`git show --name-status
/// --no-renames --first-parent`, as Kargo runs it).
fn changed_paths(mirror: &Mirror, id: &str) -> Result<Vec<String>, DiscoveryError> {
    let out = mirror
        .git(&[
            "show",
            "--pretty=",
            "--name-status",
            "--no-renames",
            "--first-parent",
            id,
        ])
        .map_err(DiscoveryError::Git)?;
    Ok(out
        .lines()
        .filter_map(|l| l.split('\t').nth(1).map(str::to_owned))
        .collect())
}

const LOG_FORMAT: &str = "--format=%H%x1f%cI%x1f%an <%ae>%x1f%cn <%ce>%x1f%s";

fn newest_from_branch(
    mirror: &Mirror,
    sub: &GitSubscription,
    f: &Filters,
) -> Result<Vec<DiscoveredCommit>, DiscoveryError> {
    let branch = if sub.branch.is_empty() {
        mirror.default_branch().map_err(DiscoveryError::Git)?
    } else {
        sub.branch.clone()
    };
    let spec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
    mirror.fetch_history(&[&spec], false).map_err(|e| match e {
        crate::git::GitError::Command { stderr, .. }
            if stderr.contains("couldn't find remote ref") =>
        {
            DiscoveryError::Failed(format!(
                "branch {branch:?} does not exist in {}",
                sub.repo_url
            ))
        }
        e => DiscoveryError::Git(e),
    })?;
    let limit = sub.limit();
    let since = sub.since.as_ref().map(|s| format!("--since={s}"));
    let mut out: Vec<DiscoveredCommit> = Vec::new();
    let (mut skip, mut batch) = (0usize, limit);
    loop {
        let (n, s) = (format!("-n{batch}"), format!("--skip={skip}"));
        let mut args = vec!["log", LOG_FORMAT, &n, &s];
        if let Some(since) = &since {
            args.push(since);
        }
        let rev = format!("refs/remotes/origin/{branch}");
        args.extend([rev.as_str(), "--"]);
        let log = mirror.git(&args).map_err(DiscoveryError::Git)?;
        let commits: Vec<Listed> = log
            .lines()
            .filter_map(|l| {
                let p: Vec<&str> = l.split('\x1f').collect();
                (p.len() == 5).then(|| Listed {
                    id: p[0].into(),
                    date: p[1].into(),
                    author: p[2].into(),
                    committer: p[3].into(),
                    subject: p[4].into(),
                    ..Default::default()
                })
            })
            .collect();
        if commits.is_empty() {
            break;
        }
        let count = commits.len();
        for c in commits {
            if !f.keep(&c, false).map_err(DiscoveryError::Failed)? {
                continue;
            }
            if f.paths() && !f.matches_paths(&changed_paths(mirror, &c.id)?) {
                continue;
            }
            out.push(DiscoveredCommit {
                id: c.id,
                branch: sub.branch.clone(),
                subject: shorten(&c.subject),
                author: c.author,
                committer: c.committer,
                creator_date: rfc3339(&c.date),
                ..Default::default()
            });
            if out.len() >= limit {
                return Ok(out);
            }
        }
        if count < batch {
            break;
        }
        skip += batch;
        batch = (batch * 2).min(1000);
    }
    Ok(out)
}

const SEP: &str = "|*|";
const TAG_FORMAT: &str = "--format=%(if)%(*objectname)%(then)%(refname:short)|*|%(*objectname)|*|%(*contents:subject)|*|%(*authorname) %(*authoremail)|*|%(*committername) %(*committeremail)|*|%(creatordate:iso8601-strict)|*|%(taggername) %(taggeremail)|*|%(contents:subject)%(else)%(refname:short)|*|%(objectname)|*|%(contents:subject)|*|%(authorname) %(authoremail)|*|%(committername) %(committeremail)|*|%(creatordate:iso8601-strict)%(end)";

/// Every tag, newest first by creator date (Kargo's `ListTags`).
fn tags(mirror: &Mirror) -> Result<Vec<Listed>, DiscoveryError> {
    mirror
        .fetch_history(&["+refs/tags/*:refs/tags/*"], true)
        .map_err(DiscoveryError::Git)?;
    let out = mirror
        .git(&[
            "for-each-ref",
            "--sort=-creatordate",
            TAG_FORMAT,
            "refs/tags",
        ])
        .map_err(DiscoveryError::Git)?;
    Ok(out
        .lines()
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let p: Vec<&str> = l.split(SEP).collect();
            (p.len() >= 6).then(|| Listed {
                tag: p[0].into(),
                id: p[1].into(),
                subject: p[2].into(),
                author: p[3].into(),
                committer: p[4].into(),
                date: p[5].into(),
                tagger: p.get(6).copied().unwrap_or_default().into(),
                annotation: p.get(7).copied().unwrap_or_default().into(),
            })
        })
        .collect())
}

fn by_tags(
    mirror: &Mirror,
    sub: &GitSubscription,
    f: &Filters,
) -> Result<Vec<DiscoveredCommit>, DiscoveryError> {
    // Git's creator-date order (NewestTag keeps it), less the tags the filters drop.
    let mut listed: Vec<Listed> = Vec::new();
    for t in tags(mirror)? {
        if f.tag_allowed(&t.tag) && f.keep(&t, true).map_err(DiscoveryError::Failed)? {
            listed.push(t);
        }
    }
    match sub.strategy() {
        "SemVer" => {
            let constraint = match sub.semver_constraint.as_str() {
                "" => None,
                c => Some(Constraint::parse(c).map_err(|e| {
                    DiscoveryError::Failed(format!("error parsing semver constraint: {e}"))
                })?),
            };
            let mut parsed: Vec<(versions::Parsed, Listed)> = listed
                .into_iter()
                .filter_map(|t| versions::parse_tag(&t.tag, sub.strict()).map(|p| (p, t)))
                .filter(|(p, _)| constraint.as_ref().is_none_or(|c| c.matches(&p.version)))
                .collect();
            parsed.sort_by(|(a, _), (b, _)| versions::newest_first(a, b));
            listed = parsed.into_iter().map(|(_, t)| t).collect();
        }
        "Lexical" => listed.sort_by(|a, b| b.tag.cmp(&a.tag)),
        _ => {}
    }
    let limit = sub.limit();
    let mut out = Vec::new();
    for t in listed {
        if out.len() >= limit {
            break;
        }
        if f.paths() && !f.matches_paths(&changed_paths(mirror, &t.id)?) {
            continue;
        }
        out.push(DiscoveredCommit {
            id: t.id,
            tag: t.tag,
            subject: shorten(&t.subject),
            author: t.author,
            committer: t.committer,
            creator_date: rfc3339(&t.date),
            ..Default::default()
        });
    }
    Ok(out)
}

/// Discover one Git subscription through its mirror.
pub fn discover(
    mirror: &Mirror,
    sub: &GitSubscription,
) -> Result<GitDiscoveryResult, DiscoveryError> {
    let fail =
        |m: String| DiscoveryError::Failed(format!("git repository {:?}: {m}", sub.repo_url));
    let f = filters(sub).map_err(fail)?;
    let commits = match sub.strategy() {
        "NewestFromBranch" => newest_from_branch(mirror, sub, &f)?,
        "SemVer" | "Lexical" | "NewestTag" => by_tags(mirror, sub, &f)?,
        other => {
            return Err(fail(format!(
                "unknown commitSelectionStrategy {other:?}: expected NewestFromBranch, SemVer, Lexical or NewestTag"
            )));
        }
    };
    Ok(GitDiscoveryResult {
        repo_url: sub.repo_url.clone(),
        commits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_selectors_read_as_kargo_reads_them() {
        let base = PathMatcher::parse("apps/api").unwrap();
        assert!(base.matches("apps/api/deploy.yaml") && base.matches("apps/api"));
        assert!(!base.matches("apps/api-v2/deploy.yaml"));
        let glob = PathMatcher::parse("glob:apps/*/values.yaml").unwrap();
        assert!(glob.matches("apps/web/values.yaml"));
        assert!(
            !glob.matches("apps/web/sub/values.yaml"),
            "* stays in one directory"
        );
        let deep = PathMatcher::parse("glob:apps/**/values.yaml").unwrap();
        assert!(deep.matches("apps/web/sub/values.yaml"));
        let re = PathMatcher::parse("regex:^charts/.*\\.tpl$").unwrap();
        assert!(re.matches("charts/a/templates/x.tpl"));
        assert!(PathMatcher::parse("regexp:(").is_err());
        assert_eq!(shorten(&"x".repeat(81)).len(), 80);
        assert_eq!(shorten("short"), "short");
    }
}
