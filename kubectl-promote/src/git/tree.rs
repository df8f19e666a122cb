//! A checkout without a working tree: files are read from the object database and edits are kept
//! in memory until a commit turns them into blobs, trees and a commit object. The cost of a
//! promotion follows the directories it touches, not the size of the repository.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{GitError, Mirror, Oid, PushOutcome, RemoteRef};

/// One changed file: its content before and after (`None` = absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileChange {
    /// Path inside the repository.
    pub path: String,
    /// Content before the change.
    pub before: Option<Vec<u8>>,
    /// Content after the change.
    pub after: Option<Vec<u8>>,
}

#[derive(Clone, Debug)]
struct LocalCommit {
    message: String,
    author: Option<(String, String)>,
    changes: Vec<FileChange>,
}

/// A branch (or detached commit) of a mirrored repository, edited in memory.
#[derive(Debug)]
pub struct Checkout {
    mirror: Arc<Mirror>,
    /// The branch this checkout follows, `None` when detached (commit or tag checkout).
    pub branch: Option<String>,
    /// The remote commit the checkout started from (or was last rebased onto).
    upstream: Oid,
    /// The current commit (upstream plus local commits).
    head: Oid,
    /// Uncommitted edits: path → new content (`None` = deleted).
    edits: BTreeMap<String, Option<Vec<u8>>>,
    /// Commits made here and not pushed yet.
    local: Vec<LocalCommit>,
    /// Every path changed since the checkout started (for summaries).
    touched: std::collections::BTreeSet<String>,
    /// Annotated tags made here (`git-tag`), not pushed yet: name → (tag object, forced).
    pub tags: BTreeMap<String, (Oid, bool)>,
}

/// Normalize a repository-relative path: no absolute paths, no `..`, no `.git`, no empty parts
/// (the rules are `promote_api::step_config::clean_path`'s, which the webhook checks too).
pub fn clean_path(path: &str) -> Result<String, GitError> {
    promote_api::step_config::clean_path(path).map_err(|reason| GitError::Path {
        path: path.into(),
        reason,
    })
}

/// One entry of a tree object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEntry {
    /// Mode (`100644`, `100755`, `120000`, `40000`, `160000`).
    pub mode: String,
    /// Name within the tree.
    pub name: String,
    /// Object id.
    pub oid: Oid,
}

impl TreeEntry {
    /// Whether the entry is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode == "40000"
    }
}

fn parse_tree(data: &[u8]) -> Vec<TreeEntry> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let Some(sp) = data[i..].iter().position(|b| *b == b' ') else {
            break;
        };
        let Some(nul) = data[i + sp..].iter().position(|b| *b == 0) else {
            break;
        };
        let mode = String::from_utf8_lossy(&data[i..i + sp]).into_owned();
        let name = String::from_utf8_lossy(&data[i + sp + 1..i + sp + nul]).into_owned();
        let start = i + sp + nul + 1;
        let Some(raw) = data.get(start..start + 20) else {
            break;
        };
        let oid: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        out.push(TreeEntry { mode, name, oid });
        i = start + 20;
    }
    out
}

impl Checkout {
    /// Start a checkout of `what` (fetched now).
    pub fn start(mirror: Arc<Mirror>, what: &RemoteRef) -> Result<Self, GitError> {
        let (branch, head) = match what {
            RemoteRef::Default => {
                let b = mirror.default_branch()?;
                let head = mirror.fetch(&RemoteRef::Branch(b.clone()))?;
                (Some(b), head)
            }
            RemoteRef::Branch(b) => (Some(b.clone()), mirror.fetch(what)?),
            other => (None, mirror.fetch(other)?),
        };
        Ok(Self {
            mirror,
            branch,
            upstream: head.clone(),
            head,
            edits: BTreeMap::new(),
            local: Vec::new(),
            touched: Default::default(),
            tags: BTreeMap::new(),
        })
    }

    /// Create `branch` on the remote as an orphan with one empty commit (Kargo's `create: true`),
    /// and check it out.
    /// With `push: false` (dry runs) the branch only exists locally.
    pub fn create_orphan(mirror: Arc<Mirror>, branch: &str, push: bool) -> Result<Self, GitError> {
        let tree = mirror.write_tree(b"")?;
        let commit = mirror.commit_tree(&tree, &[], "Initial commit", None, None)?;
        let outcome = if push {
            mirror.push(&commit, branch, false)?
        } else {
            PushOutcome::Pushed
        };
        match outcome {
            PushOutcome::Pushed => {}
            PushOutcome::Rejected(_) => {
                // Someone created it meanwhile: use theirs.
                return Self::start(mirror, &RemoteRef::Branch(branch.to_owned()));
            }
        }
        Ok(Self {
            mirror,
            branch: Some(branch.to_owned()),
            upstream: commit.clone(),
            head: commit,
            edits: BTreeMap::new(),
            local: Vec::new(),
            touched: Default::default(),
            tags: BTreeMap::new(),
        })
    }

    /// The mirror behind this checkout.
    pub fn mirror(&self) -> &Arc<Mirror> {
        &self.mirror
    }

    /// The current commit.
    pub fn head(&self) -> &str {
        &self.head
    }

    /// Paths changed since the checkout started (committed or not).
    pub fn touched(&self) -> Vec<String> {
        let mut t: Vec<String> = self.touched.iter().cloned().collect();
        t.extend(
            self.edits
                .keys()
                .filter(|k| !self.touched.contains(*k))
                .cloned(),
        );
        t.sort();
        t
    }

    fn read_at(&self, commit: &str, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        let spec = if path.is_empty() {
            format!("{commit}^{{tree}}")
        } else {
            format!("{commit}:{path}")
        };
        Ok(match self.mirror.read(&spec)? {
            Some((kind, data)) if kind == "blob" => Some(data),
            _ => None,
        })
    }

    /// A file's current content (edits included), `None` when absent or a directory.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        let path = clean_path(path)?;
        if let Some(edit) = self.edits.get(&path) {
            return Ok(edit.clone());
        }
        self.read_at(&self.head, &path)
    }

    /// A file's content at the current commit, ignoring uncommitted edits.
    pub fn read_committed(&self, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        self.read_at(&self.head, &clean_path(path)?)
    }

    /// Names in a directory (edits included): (name, is_dir). Empty when absent.
    pub fn list_dir(&self, dir: &str) -> Result<Vec<(String, bool)>, GitError> {
        let dir = clean_path(dir)?;
        let spec = if dir.is_empty() {
            format!("{}^{{tree}}", self.head)
        } else {
            format!("{}:{dir}", self.head)
        };
        let mut names: BTreeMap<String, bool> = match self.mirror.read(&spec)? {
            Some((kind, data)) if kind == "tree" => parse_tree(&data)
                .into_iter()
                .map(|e| (e.name.clone(), e.is_dir()))
                .collect(),
            _ => BTreeMap::new(),
        };
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        for (path, content) in &self.edits {
            let Some(rest) = path.strip_prefix(&prefix) else {
                continue;
            };
            let (name, is_dir) = match rest.split_once('/') {
                Some((d, _)) => (d, true),
                None => (rest, false),
            };
            if content.is_some() {
                names.insert(name.to_owned(), is_dir);
            } else if !is_dir {
                names.remove(name);
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Whether `dir` exists as a directory.
    pub fn is_dir(&self, dir: &str) -> Result<bool, GitError> {
        let dir = clean_path(dir)?;
        if dir.is_empty() {
            return Ok(true);
        }
        if matches!(self.mirror.read(&format!("{}:{dir}", self.head))?, Some((k, _)) if k == "tree")
        {
            return Ok(true);
        }
        let prefix = format!("{dir}/");
        Ok(self
            .edits
            .iter()
            .any(|(p, c)| c.is_some() && p.starts_with(&prefix)))
    }

    /// Set a file's content (kept in memory until [`Checkout::commit`]).
    pub fn write(&mut self, path: &str, content: Vec<u8>) -> Result<(), GitError> {
        let path = clean_path(path)?;
        if path.is_empty() {
            return Err(GitError::Path {
                path,
                reason: "not a file".into(),
            });
        }
        self.edits.insert(path, Some(content));
        Ok(())
    }

    /// Delete a file (kept in memory until [`Checkout::commit`]); deleting an absent file is a
    /// no-op.
    pub fn remove(&mut self, path: &str) -> Result<(), GitError> {
        let path = clean_path(path)?;
        if path.is_empty() {
            return Err(GitError::Path {
                path,
                reason: "not a file".into(),
            });
        }
        self.edits.insert(path, None);
        Ok(())
    }

    /// Every file under `dir` (edits included), recursively, as checkout-relative paths in name
    /// order; empty when `dir` is absent. `dir` may be a file: then just that file.
    pub fn files(&self, dir: &str) -> Result<Vec<String>, GitError> {
        let dir = clean_path(dir)?;
        let mut out = Vec::new();
        if !dir.is_empty() && !self.is_dir(&dir)? {
            if self.read(&dir)?.is_some() {
                out.push(dir);
            }
            return Ok(out);
        }
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for (name, is_dir) in self.list_dir(&d)? {
                let path = if d.is_empty() {
                    name
                } else {
                    format!("{d}/{name}")
                };
                if is_dir {
                    stack.push(path);
                } else {
                    out.push(path);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Write the checkout's files (edits included) under `dir` on disk, for programs that read a
    /// directory (kustomize, helm). Blobs the mirror lacks are fetched in one batch first.
    pub fn materialize(&self, dir: &std::path::Path) -> Result<usize, GitError> {
        self.mirror.prefetch_blobs(&self.head)?;
        let files = self.files("")?;
        for f in &files {
            let Some(data) = self.read(f)? else {
                continue;
            };
            let to = dir.join(f);
            let cache = |source| GitError::Cache {
                path: to.display().to_string(),
                source,
            };
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(cache)?;
            }
            std::fs::write(&to, data).map_err(cache)?;
        }
        Ok(files.len())
    }

    /// Uncommitted changes with their previous contents (unchanged files left out).
    pub fn pending_changes(&self) -> Result<Vec<FileChange>, GitError> {
        let mut out = Vec::new();
        for (path, after) in &self.edits {
            let before = self.read_at(&self.head, path)?;
            if &before != after {
                out.push(FileChange {
                    path: path.clone(),
                    before,
                    after: after.clone(),
                });
            }
        }
        Ok(out)
    }

    /// Build a tree: `base` with `changes` (path relative to this tree) applied.
    fn build_tree(
        &self,
        base: Option<&str>,
        changes: &BTreeMap<String, Option<Vec<u8>>>,
    ) -> Result<Option<Oid>, GitError> {
        let mut entries: BTreeMap<String, TreeEntry> = match base {
            Some(oid) => match self.mirror.read(oid)? {
                Some((k, data)) if k == "tree" => parse_tree(&data)
                    .into_iter()
                    .map(|e| (e.name.clone(), e))
                    .collect(),
                _ => BTreeMap::new(),
            },
            None => BTreeMap::new(),
        };
        let mut subdirs: BTreeMap<String, BTreeMap<String, Option<Vec<u8>>>> = BTreeMap::new();
        for (path, content) in changes {
            match path.split_once('/') {
                Some((dir, rest)) => {
                    subdirs
                        .entry(dir.to_owned())
                        .or_default()
                        .insert(rest.to_owned(), content.clone());
                }
                None => match content {
                    Some(data) => {
                        let oid = self.mirror.write_blob(data)?;
                        let mode = entries
                            .get(path)
                            .filter(|e| !e.is_dir())
                            .map_or("100644".to_owned(), |e| e.mode.clone());
                        entries.insert(
                            path.clone(),
                            TreeEntry {
                                mode,
                                name: path.clone(),
                                oid,
                            },
                        );
                    }
                    None => {
                        entries.remove(path);
                    }
                },
            }
        }
        for (dir, sub) in subdirs {
            let existing = entries
                .get(&dir)
                .filter(|e| e.is_dir())
                .map(|e| e.oid.clone());
            match self.build_tree(existing.as_deref(), &sub)? {
                Some(oid) => {
                    entries.insert(
                        dir.clone(),
                        TreeEntry {
                            mode: "40000".into(),
                            name: dir,
                            oid,
                        },
                    );
                }
                None => {
                    entries.remove(&dir);
                }
            }
        }
        if entries.is_empty() && base.is_some() {
            return Ok(None);
        }
        let mut input = Vec::new();
        for e in entries.values() {
            let kind = match e.mode.as_str() {
                "40000" => "tree",
                "160000" => "commit",
                _ => "blob",
            };
            input.extend_from_slice(format!("{} {kind} {}\t{}", e.mode, e.oid, e.name).as_bytes());
            input.push(0);
        }
        Ok(Some(self.mirror.write_tree(&input)?))
    }

    fn tree_of(&self, commit: &str) -> Result<Oid, GitError> {
        Ok(self
            .mirror
            .git(&["rev-parse", &format!("{commit}^{{tree}}")])?
            .trim()
            .to_owned())
    }

    fn commit_changes(
        &self,
        parent: &str,
        changes: &[FileChange],
        message: &str,
        author: Option<(&str, &str)>,
        signing_key: Option<&str>,
    ) -> Result<Option<Oid>, GitError> {
        let map: BTreeMap<String, Option<Vec<u8>>> = changes
            .iter()
            .map(|c| (c.path.clone(), c.after.clone()))
            .collect();
        let base_tree = self.tree_of(parent)?;
        let tree = self
            .build_tree(Some(&base_tree), &map)?
            .unwrap_or(self.mirror.write_tree(b"")?);
        if tree == base_tree {
            return Ok(None);
        }
        Ok(Some(self.mirror.commit_tree(
            &tree,
            &[parent],
            message,
            author,
            signing_key,
        )?))
    }

    /// Commit the pending edits. `None` when nothing changed (the step is then Skipped).
    pub fn commit(
        &mut self,
        message: &str,
        author: Option<(&str, &str)>,
        signing_key: Option<&str>,
    ) -> Result<Option<Oid>, GitError> {
        let changes = self.pending_changes()?;
        self.edits.clear();
        if changes.is_empty() {
            return Ok(None);
        }
        let Some(commit) =
            self.commit_changes(&self.head, &changes, message, author, signing_key)?
        else {
            return Ok(None);
        };
        for c in &changes {
            self.touched.insert(c.path.clone());
        }
        self.local.push(LocalCommit {
            message: message.to_owned(),
            author: author.map(|(n, e)| (n.to_owned(), e.to_owned())),
            changes,
        });
        self.head = commit.clone();
        Ok(Some(commit))
    }

    /// Whether there are commits not pushed yet.
    pub fn has_unpushed(&self) -> bool {
        !self.local.is_empty()
    }

    /// Replay the local commits on top of the remote's new `tip`, merging each changed file
    /// three-way; a real conflict names the file.
    pub fn rebase_onto(
        &mut self,
        tip: &str,
        branch: &str,
        signing_key: Option<&str>,
    ) -> Result<(), GitError> {
        let mut head = tip.to_owned();
        let mut replayed = Vec::new();
        for lc in &self.local {
            let mut changes = Vec::new();
            for c in &lc.changes {
                let theirs = self.read_at(&head, &c.path)?;
                let after = if theirs == c.before || theirs == c.after {
                    c.after.clone()
                } else {
                    match (&c.after, &c.before, &theirs) {
                        (Some(ours), Some(base), Some(t)) => {
                            match self.mirror.merge_file(ours, base, t)? {
                                Some(merged) => Some(merged),
                                None => {
                                    return Err(GitError::Conflict {
                                        repo: self.mirror.display_url(),
                                        branch: branch.to_owned(),
                                        path: c.path.clone(),
                                    });
                                }
                            }
                        }
                        _ => {
                            return Err(GitError::Conflict {
                                repo: self.mirror.display_url(),
                                branch: branch.to_owned(),
                                path: c.path.clone(),
                            });
                        }
                    }
                };
                changes.push(FileChange {
                    path: c.path.clone(),
                    before: theirs,
                    after,
                });
            }
            let author = lc.author.as_ref().map(|(n, e)| (n.as_str(), e.as_str()));
            if let Some(commit) =
                self.commit_changes(&head, &changes, &lc.message, author, signing_key)?
            {
                head = commit;
            }
            replayed.push(LocalCommit {
                message: lc.message.clone(),
                author: lc.author.clone(),
                changes,
            });
        }
        self.local = replayed;
        self.upstream = tip.to_owned();
        self.head = head;
        Ok(())
    }

    /// Mark everything as pushed to `branch` at the current head.
    pub fn mark_pushed(&mut self, branch: &str) {
        self.local.clear();
        self.upstream = self.head.clone();
        self.branch = Some(branch.to_owned());
    }

    /// Continue from `commit` on `branch`, which holds what the local commits held under other ids
    /// (`github-push` replays them through GitHub's API): nothing is left unpushed.
    pub fn adopt(&mut self, branch: &str, commit: &str) {
        self.local.clear();
        self.upstream = commit.to_owned();
        self.head = commit.to_owned();
        self.branch = Some(branch.to_owned());
    }

    /// Every file that differs between the remote commit the checkout is based on and its current
    /// head (committed changes only).
    pub fn committed_changes(&self) -> Result<Vec<FileChange>, GitError> {
        let mut out = Vec::new();
        for path in &self.touched {
            let before = self.read_at(&self.upstream, path)?;
            let after = self.read_at(&self.head, path)?;
            if before != after {
                out.push(FileChange {
                    path: path.clone(),
                    before,
                    after,
                });
            }
        }
        Ok(out)
    }

    /// The commit the checkout is based on remotely.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_confines_to_the_tree() {
        assert_eq!(clean_path("./a//b/./c.yaml").unwrap(), "a/b/c.yaml");
        assert_eq!(clean_path(".").unwrap(), "");
        assert!(clean_path("../x").is_err());
        assert!(clean_path("a/../../x").is_err());
        assert!(clean_path("/etc/passwd").is_err());
        assert!(clean_path("a/.git/config").is_err());
    }

    #[test]
    fn parses_tree_objects() {
        let mut data = b"100644 a.txt\0".to_vec();
        data.extend_from_slice(&[0xab; 20]);
        data.extend_from_slice(b"40000 dir\0");
        data.extend_from_slice(&[0x01; 20]);
        let e = parse_tree(&data);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].name, "a.txt");
        assert_eq!(e[0].oid, "ab".repeat(20));
        assert!(e[1].is_dir());
    }
}
