//! A bare mirror of one remote repository in the cache directory, and the git commands run in it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

use sha1::{Digest, Sha1};

use super::{GitError, Oid, Redactor};

/// The Git transports promote allows (`GIT_ALLOW_PROTOCOL`, colon-separated).
pub const ALLOWED_PROTOCOLS: &str = "file:git:http:https:ssh";

/// How mirrors are created and how git is run.
#[derive(Clone, Debug, Default)]
pub struct MirrorOptions {
    /// Directory holding one bare mirror per repository.
    pub cache_root: PathBuf,
    /// Extra environment for every git command (credentials configuration, TLS settings).
    pub env: Vec<(String, String)>,
    /// Masks credentials in anything git prints.
    pub redactor: Redactor,
    /// Skip TLS verification (Kargo's `insecureSkipTLSVerify`).
    pub insecure_skip_tls_verify: bool,
    /// Private key files written for git (deleted when the last copy of the options goes).
    pub key_files: Vec<std::sync::Arc<tempfile::TempPath>>,
    /// Why credentials given for this remote were not handed to git (plain http to another
    /// machine); opening the mirror fails with it.
    pub refused: Option<String>,
    /// Credentials from the environment that were not sent to this remote, and why (a note).
    pub unsent: Option<String>,
}

/// Result of a push.
#[derive(Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// The remote accepted it.
    Pushed,
    /// The remote refused because it moved on (non-fast-forward or a lost ref race).
    Rejected(String),
}

/// A bare repository mirroring one remote, kept across promotions.
pub struct Mirror {
    dir: PathBuf,
    url: String,
    opts: MirrorOptions,
    reader: Mutex<Option<ObjectReader>>,
    /// What the mirror did on its own that the user should hear of (a rebuilt cache).
    notes: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("dir", &self.dir)
            .field("url", &self.display_url())
            .finish()
    }
}

/// A git ref to resolve on the remote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteRef {
    /// The remote's default branch (its `HEAD`).
    Default,
    /// A branch.
    Branch(String),
    /// A tag.
    Tag(String),
    /// A commit SHA.
    Commit(String),
}

/// A mirror's configuration: a blob-less partial clone of `url` that never gcs on its own.
fn mirror_config(url: &str) -> [(&'static str, &str); 7] {
    [
        ("remote.origin.url", url),
        ("core.repositoryformatversion", "1"),
        ("extensions.partialClone", "origin"),
        ("remote.origin.promisor", "true"),
        ("remote.origin.partialclonefilter", "blob:none"),
        ("fetch.writeCommitGraph", "false"),
        ("gc.auto", "0"),
    ]
}

/// Whether git's complaint is about an unreadable repository (as opposed to the remote or the
/// network): the messages git prints for damaged packs, indexes, objects and refs.
fn is_corruption(stderr: &str) -> bool {
    // Only messages about the local object store: a network error ("unable to read from
    // remote") must never cost a rebuild.
    [
        "index file",
        "corrupt",
        "packfile",
        "bad object",
        "inflate",
        "loose object",
        "bad signature",
        "invalid sha1 pointer",
        "missing blob object",
        "missing tree object",
    ]
    .iter()
    .any(|m| stderr.contains(m))
}

/// The git commands that talk to the remote (and get [`network_timeout`]).
/// The `host[:port]` of a URL (without user information), if it has one.
fn authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    Some(authority.rsplit_once('@').map_or(authority, |(_, h)| h))
}

const NETWORK_COMMANDS: &[&str] = &["fetch", "push", "ls-remote"];

/// How long one git command may talk to the remote: `PROMOTE_GIT_TIMEOUT` (`90s`, `10m`, ...),
/// else 10 minutes (a first fetch is shallow and blob-less, so even large repositories take far
/// less).
fn network_timeout() -> std::time::Duration {
    static LIMIT: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var("PROMOTE_GIT_TIMEOUT")
            .ok()
            .and_then(|v| promote_api::duration::parse(&v).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(std::time::Duration::from_secs(600))
    })
}

fn cache_name(url: &str) -> String {
    let norm = promote_api::urls::normalize_git(url);
    let hash = format!("{:x}", Sha1::digest(norm.as_bytes()));
    let base: String = norm
        .rsplit('/')
        .next()
        .unwrap_or("repo")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!("{base}-{}.git", &hash[..16])
}

impl Mirror {
    /// Open the mirror of `url`, creating an empty one on first use. `url` must not carry
    /// credentials (pass them through `opts.env`).
    pub fn open(url: &str, opts: MirrorOptions) -> Result<Self, GitError> {
        let dir = opts.cache_root.join(cache_name(url));
        let m = Self {
            dir,
            url: url.to_owned(),
            opts,
            reader: Mutex::new(None),
            notes: Mutex::new(Vec::new()),
        };
        std::fs::create_dir_all(&m.opts.cache_root).map_err(|source| GitError::Cache {
            path: m.opts.cache_root.display().to_string(),
            source,
        })?;
        let _lock = m.lock("init")?;
        m.remove_stale_locks();
        if !m.dir.join("HEAD").is_file() {
            let tmp = m
                .opts
                .cache_root
                .join(format!(".init-{}", ulid::Ulid::new()));
            let out = Command::new("git")
                .arg("init")
                .arg("--bare")
                .arg("-q")
                .arg(&tmp)
                .output()
                .map_err(GitError::Spawn)?;
            if !out.status.success() {
                return Err(m.fail("init", &out.stderr));
            }
            std::fs::rename(&tmp, &m.dir).map_err(|source| GitError::Cache {
                path: m.dir.display().to_string(),
                source,
            })?;
        }
        // (Re)state the configuration each time: the URL may have changed form (same normalized
        // repository), and older mirrors may predate a setting.
        // One `git config --list` instead of a read per key: a warm promotion spawns few processes.
        let current = m.git(&["config", "--local", "--list"]).unwrap_or_default();
        // `--list` prints section and key names lowercased.
        let current: std::collections::HashMap<String, &str> = current
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        for (k, v) in mirror_config(url) {
            if current.get(&k.to_ascii_lowercase()).copied() != Some(v) {
                m.git(&["config", k, v])?;
            }
        }
        Ok(m)
    }

    /// The mirror's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The remote URL, safe to print.
    pub fn display_url(&self) -> String {
        self.opts.redactor.clean(&self.url)
    }

    /// Take an exclusive lock on the mirror (or one of its branches) across processes.
    pub fn lock(&self, what: &str) -> Result<std::fs::File, GitError> {
        let name = format!(
            "{}.{}.lock",
            self.dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("repo"),
            what.replace('/', "_")
        );
        let path = self.opts.cache_root.join(name);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| GitError::Cache {
                path: path.display().to_string(),
                source,
            })?;
        f.lock().map_err(|source| GitError::Cache {
            path: path.display().to_string(),
            source,
        })?;
        Ok(f)
    }

    fn command(&self) -> Command {
        let mut c = Command::new("git");
        c.arg("-C").arg(&self.dir);
        c.env("LC_ALL", "C");
        // Only the transports promote supports (SECURITY.md): a repoURL from a Stage can never
        // reach `ext::` (runs a command) or any other remote helper, whatever git's defaults.
        c.env("GIT_ALLOW_PROTOCOL", ALLOWED_PROTOCOLS);
        if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            c.env("GIT_TERMINAL_PROMPT", "0");
        }
        if self.opts.insecure_skip_tls_verify {
            c.env("GIT_SSL_NO_VERIFY", "true");
        }
        for (k, v) in &self.opts.env {
            c.env(k, v);
        }
        c
    }

    fn fail(&self, command: &str, stderr: &[u8]) -> GitError {
        let text = String::from_utf8_lossy(stderr);
        let text: String = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        let mut text = self.opts.redactor.clean(&text);
        let repo = self.display_url();
        // git follows a redirect of its first request to another host, and asks for that
        // host's credentials, which nobody gave it: say so instead of leaving "could not read
        // Username" to be puzzled over.
        if let Some(asked) = text
            .split("could not read Username for '")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            && authority(asked) != authority(&repo)
        {
            text.push_str(&format!(
                "; hint: the server redirected to {asked}, another host, and the credentials given for {} are not sent there; if the repository moved, set repoURL to its new address",
                authority(&repo).unwrap_or("the remote")
            ));
        }
        GitError::Command {
            command: command.to_owned(),
            repo,
            stderr: text,
        }
    }

    /// Run git with `args` in the mirror; stdout on success.
    pub fn git(&self, args: &[&str]) -> Result<String, GitError> {
        self.git_input(args, None)
    }

    /// Run git with `args` and `input` on stdin.
    pub fn git_input(&self, args: &[&str], input: Option<&[u8]>) -> Result<String, GitError> {
        let out = self.git_raw(args, input)?;
        if !out.status.success() {
            return Err(self.fail(args.first().copied().unwrap_or("git"), &out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn git_raw(
        &self,
        args: &[&str],
        input: Option<&[u8]>,
    ) -> Result<std::process::Output, GitError> {
        let mut cmd = self.command();
        cmd.args(args);
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(GitError::Spawn)?;
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(data).map_err(GitError::Spawn)?;
        }
        let command = args.first().copied().unwrap_or("git");
        if !NETWORK_COMMANDS.contains(&command) {
            return child.wait_with_output().map_err(GitError::Spawn);
        }
        // A command that talks to the remote gets a deadline: a server or network that stalls
        // (no byte, no close) would otherwise hold the promotion forever. Its output is read
        // on threads so that a chatty child never blocks on a full pipe while we wait.
        let limit = network_timeout();
        let packs_before = self.temporary_packs();
        let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        };
        let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
        let status = match wait_timeout::ChildExt::wait_timeout(&mut child, limit)
            .map_err(GitError::Spawn)?
        {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                // A fetch killed mid-pack leaves the pack it was writing (a server sending an
                // endless one fills it up to the deadline). Only the files this command started
                // are removed; another process's fetch in the same cache keeps its own.
                for pack in self.temporary_packs() {
                    if !packs_before.contains(&pack) {
                        let _ = std::fs::remove_file(&pack);
                    }
                }
                return Err(GitError::Timeout {
                    command: command.to_owned(),
                    repo: self.display_url(),
                    seconds: limit.as_secs(),
                    outcome: if command == "push" {
                        "; the push may or may not have reached the remote: running the promotion again finds its change there if it landed, and pushes it if not"
                    } else {
                        "; the remote was not changed"
                    },
                });
            }
        };
        Ok(std::process::Output {
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        })
    }

    fn has_commit(&self, rev: &str) -> bool {
        self.git_raw(&["cat-file", "-e", &format!("{rev}^{{commit}}")], None)
            .is_ok_and(|o| o.status.success())
    }

    fn is_empty(&self) -> bool {
        self.git(&["for-each-ref", "--count=1"])
            .map(|s| s.trim().is_empty())
            .unwrap_or(true)
    }

    /// The remote's default branch.
    pub fn default_branch(&self) -> Result<String, GitError> {
        let out = self.git(&["ls-remote", "--symref", "origin", "HEAD"])?;
        out.lines()
            .find_map(|l| {
                l.strip_prefix("ref: refs/heads/")
                    .and_then(|r| r.split('\t').next())
            })
            .map(str::to_owned)
            .ok_or_else(|| GitError::NotFound {
                what: "a default branch (HEAD)".into(),
                repo: self.display_url(),
                hint: "; hint: name the branch in the checkout".into(),
            })
    }

    /// Whether a branch exists on the remote.
    pub fn remote_branch_exists(&self, branch: &str) -> Result<bool, GitError> {
        let out = self.git(&[
            "ls-remote",
            "--heads",
            "origin",
            &format!("refs/heads/{branch}"),
        ])?;
        Ok(!out.trim().is_empty())
    }

    /// Fetch `what` from the remote into the mirror and return the commit it points to. The first
    /// fetch into an empty mirror is shallow and blob-less; later ones are incremental.
    pub fn fetch(&self, what: &RemoteRef) -> Result<Oid, GitError> {
        let _lock = self.lock("fetch")?;
        let what = match what {
            RemoteRef::Default => RemoteRef::Branch(self.default_branch()?),
            other => other.clone(),
        };
        if let Some(bad) = self.damaged_pack() {
            self.rebuild(&format!("{bad} is not a pack file"))?;
        }
        match self.fetch_locked(&what) {
            // A cache that git cannot read (a disk fault, a killed process mid-write, a user's
            // experiment) is only a cache: it is rebuilt from the remote, once.
            Err(GitError::Command { stderr, .. }) if is_corruption(&stderr) => {
                self.rebuild(&stderr)?;
                self.fetch_locked(&what)
            }
            other => other,
        }
    }

    /// The first pack or pack index of the mirror whose header is not what git writes (`PACK`,
    /// `\377tOc`): a cheap look (8 bytes per file) that catches overwritten and truncated packs
    /// before git fails on them halfway through a promotion.
    fn damaged_pack(&self) -> Option<String> {
        let entries = std::fs::read_dir(self.dir.join("objects/pack")).ok()?;
        for entry in entries.flatten() {
            let path = entry.path();
            let magic: &[u8] = match path.extension().and_then(|e| e.to_str()) {
                Some("pack") => b"PACK",
                Some("idx") => b"\xfftOc",
                _ => continue,
            };
            let mut head = [0u8; 4];
            let ok = std::fs::File::open(&path)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
                .is_ok_and(|()| head == magic);
            if !ok {
                return Some(path.display().to_string());
            }
        }
        None
    }

    /// Empty the mirror and make it anew (the caller holds the fetch lock).
    fn rebuild(&self, why: &str) -> Result<(), GitError> {
        let _init = self.lock("init")?;
        if let Ok(mut r) = self.reader.lock() {
            *r = None;
        }
        let cache_err = |source| GitError::Cache {
            path: self.dir.display().to_string(),
            source,
        };
        let trash = self
            .opts
            .cache_root
            .join(format!(".trash-{}", ulid::Ulid::new()));
        std::fs::rename(&self.dir, &trash).map_err(cache_err)?;
        let _ = std::fs::remove_dir_all(&trash);
        let out = Command::new("git")
            .args(["init", "--bare", "-q"])
            .arg(&self.dir)
            .output()
            .map_err(GitError::Spawn)?;
        if !out.status.success() {
            return Err(self.fail("init", &out.stderr));
        }
        for (k, v) in mirror_config(&self.url) {
            self.git(&["config", k, v])?;
        }
        let why: String = why.chars().take(200).collect();
        if let Ok(mut notes) = self.notes.lock() {
            notes.push(format!(
                "the cache of {} could not be read ({why}); rebuilt it from the remote",
                self.display_url()
            ));
        }
        Ok(())
    }

    /// Notes for the user since the last call (see [`Mirror::rebuild`]).
    pub fn take_notes(&self) -> Vec<String> {
        self.notes
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }

    /// The temporary files of packs being written (`objects/pack/tmp_pack_*`, `tmp_idx_*`, ...).
    fn temporary_packs(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.dir.join("objects/pack"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("tmp_"))
            .map(|e| e.path())
            .collect()
    }

    /// Remove git lock files and half-written packs that no live git can hold: older than the
    /// longest a git command of ours may run ([`network_timeout`]) plus a minute. A git killed
    /// mid-command (Ctrl-C twice, OOM, a reboot) leaves them; every later fetch would fail on
    /// the locks, and the packs only take disk. Younger ones are left alone; git's own error
    /// then names them.
    fn remove_stale_locks(&self) {
        let Some(limit) = network_timeout().checked_add(std::time::Duration::from_secs(60)) else {
            return;
        };
        let mut dirs = vec![
            self.dir.clone(),
            self.dir.join("refs"),
            self.dir.join("objects/pack"),
        ];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    if path.starts_with(self.dir.join("refs")) {
                        dirs.push(path);
                    }
                    continue;
                }
                let stale = meta
                    .modified()
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age > limit);
                let temporary_pack = path.parent() == Some(&self.dir.join("objects/pack"))
                    && entry.file_name().to_string_lossy().starts_with("tmp_");
                if stale && (path.extension().is_some_and(|e| e == "lock") || temporary_pack) {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }

    fn fetch_locked(&self, what: &RemoteRef) -> Result<Oid, GitError> {
        if let RemoteRef::Commit(sha) = what
            && self.has_commit(sha)
        {
            return Ok(sha.clone());
        }
        let (spec, local) = refspec(what);
        let mut args = vec![
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--filter=blob:none",
        ];
        if self.is_empty() {
            args.push("--depth=1");
        }
        args.extend(["origin", &spec]);
        let out = self.git_raw(&args, None)?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if err.contains("couldn't find remote ref")
                || err.contains("not our ref")
                || err.contains("no such remote ref")
            {
                let (what, hint) = match what {
                    RemoteRef::Branch(b) => (
                        format!("branch {b:?}"),
                        "; hint: set create: true on the checkout to create it".to_owned(),
                    ),
                    RemoteRef::Tag(t) => (format!("tag {t:?}"), String::new()),
                    RemoteRef::Commit(c) => (format!("commit {c:?}"), String::new()),
                    RemoteRef::Default => ("the default branch".to_owned(), String::new()),
                };
                return Err(GitError::NotFound {
                    what,
                    repo: self.display_url(),
                    hint,
                });
            }
            return Err(self.fail("fetch", &out.stderr));
        }
        match local {
            Some(r) => Ok(self
                .git(&["rev-parse", "--verify", &format!("{r}^{{commit}}")])?
                .trim()
                .to_owned()),
            None => match what {
                RemoteRef::Commit(sha) if self.has_commit(sha) => Ok(sha.clone()),
                _ => Err(GitError::NotFound {
                    what: format!("{what:?}"),
                    repo: self.display_url(),
                    hint: String::new(),
                }),
            },
        }
    }

    /// Fetch whole histories (blob-less) for discovery: `refspecs` as given, the mirror made
    /// complete first when an earlier promotion's fetch left it shallow; `prune` drops local refs
    /// under the refspecs' destinations that the remote no longer has (deleted tags).
    pub fn fetch_history(&self, refspecs: &[&str], prune: bool) -> Result<(), GitError> {
        let _lock = self.lock("fetch")?;
        let mut args = vec![
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--filter=blob:none",
        ];
        if self.dir.join("shallow").exists() {
            args.push("--unshallow");
        }
        if prune {
            args.push("--prune");
        }
        args.push("origin");
        args.extend(refspecs);
        self.git(&args).map(|_| ())
    }

    /// Fetch, in one request, every blob of `commit`'s tree the mirror does not have yet (the
    /// mirror is blob-less; reading them one by one would cost one fetch each). For steps that
    /// hand a whole tree to another program (`kustomize-build`).
    pub fn prefetch_blobs(&self, commit: &str) -> Result<usize, GitError> {
        let listed = self.git(&[
            "rev-list",
            "--objects",
            "--no-walk",
            "--missing=print",
            commit,
        ])?;
        let missing: Vec<&str> = listed.lines().filter_map(|l| l.strip_prefix('?')).collect();
        if missing.is_empty() {
            return Ok(0);
        }
        let _lock = self.lock("fetch")?;
        let mut wanted = missing.join("\n");
        wanted.push('\n');
        self.git_input(
            &[
                "-c",
                "fetch.negotiationAlgorithm=noop",
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--recurse-submodules=no",
                "--filter=blob:none",
                "--stdin",
                "origin",
            ],
            Some(wanted.as_bytes()),
        )?;
        Ok(missing.len())
    }

    /// Record that the remote branch now points at `oid` (after our own push).
    pub fn set_remote_branch(&self, branch: &str, oid: &str) -> Result<(), GitError> {
        self.git(&["update-ref", &format!("refs/remotes/origin/{branch}"), oid])
            .map(|_| ())
    }

    /// Write a blob; returns its id.
    pub fn write_blob(&self, data: &[u8]) -> Result<Oid, GitError> {
        Ok(self
            .git_input(&["hash-object", "-w", "--stdin"], Some(data))?
            .trim()
            .to_owned())
    }

    /// Write a tree from `mktree -z` input; returns its id.
    pub fn write_tree(&self, input: &[u8]) -> Result<Oid, GitError> {
        Ok(self
            .git_input(&["mktree", "-z", "--missing"], Some(input))?
            .trim()
            .to_owned())
    }

    /// Create a commit; `author` is (name, email) or the user's git configuration when `None`.
    pub fn commit_tree(
        &self,
        tree: &str,
        parents: &[&str],
        message: &str,
        author: Option<(&str, &str)>,
        signing_key: Option<&str>,
    ) -> Result<Oid, GitError> {
        let mut args: Vec<String> = vec!["commit-tree".into(), tree.into()];
        for p in parents {
            args.push("-p".into());
            args.push((*p).into());
        }
        if let Some(key) = signing_key {
            args.push(format!("-S{key}"));
        }
        args.push("-F".into());
        args.push("-".into());
        let mut cmd = self.command();
        cmd.args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match author {
            Some((name, email)) => {
                for k in ["GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"] {
                    cmd.env(k, name);
                }
                for k in ["GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"] {
                    cmd.env(k, email);
                }
            }
            None => {
                if self.git(&["config", "user.name"]).is_err() {
                    cmd.env("GIT_AUTHOR_NAME", "kubectl-promote")
                        .env("GIT_COMMITTER_NAME", "kubectl-promote");
                }
                if self.git(&["config", "user.email"]).is_err() {
                    cmd.env("GIT_AUTHOR_EMAIL", "kubectl-promote@localhost")
                        .env("GIT_COMMITTER_EMAIL", "kubectl-promote@localhost");
                }
            }
        }
        let mut child = cmd.spawn().map_err(GitError::Spawn)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(message.as_bytes())
                .map_err(GitError::Spawn)?;
        }
        let out = child.wait_with_output().map_err(GitError::Spawn)?;
        if !out.status.success() {
            return Err(self.fail("commit-tree", &out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Push `commit` to `branch` (forced when `force`).
    pub fn push(&self, commit: &str, branch: &str, force: bool) -> Result<PushOutcome, GitError> {
        let spec = format!(
            "{}{commit}:refs/heads/{branch}",
            if force { "+" } else { "" }
        );
        let out = self.git_raw(&["push", "--porcelain", "--quiet", "origin", &spec], None)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            self.set_remote_branch(branch, commit)?;
            return Ok(PushOutcome::Pushed);
        }
        let text = format!("{stdout}\n{stderr}");
        let rejected = [
            "non-fast-forward",
            "fetch first",
            "cannot lock ref",
            "incorrect old value",
            "stale info",
            "[rejected]",
        ];
        if rejected.iter().any(|r| text.contains(r)) {
            let reason = stdout
                .lines()
                .find(|l| l.starts_with('!'))
                .map_or("non-fast-forward".to_owned(), |l| {
                    l.rsplit('\t').next().unwrap_or(l).to_owned()
                });
            return Ok(PushOutcome::Rejected(self.opts.redactor.clean(&reason)));
        }
        Err(self.fail(
            "push",
            format!(
                "{stderr}{}",
                stdout
                    .lines()
                    .filter(|l| l.starts_with('!'))
                    .collect::<Vec<_>>()
                    .join("\n")
            )
            .as_bytes(),
        ))
    }

    /// Write an annotated tag object `name` for `commit` (no ref is created: the mirror is shared
    /// by concurrent promotions; `git-push` pushes the object).
    pub fn make_tag(
        &self,
        commit: &str,
        name: &str,
        message: &str,
        tagger: Option<(&str, &str)>,
    ) -> Result<Oid, GitError> {
        let config = |k: &str| self.git(&["config", k]).ok().map(|v| v.trim().to_owned());
        let (who, email) = match tagger {
            Some((n, e)) => (n.to_owned(), e.to_owned()),
            None => (
                config("user.name").unwrap_or_else(|| "kubectl-promote".into()),
                config("user.email").unwrap_or_else(|| "kubectl-promote@localhost".into()),
            ),
        };
        let now = jiff::Timestamp::now().as_second();
        let mut text = format!(
            "object {commit}\ntype commit\ntag {name}\ntagger {who} <{email}> {now} +0000\n\n{message}"
        );
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(self
            .git_input(&["mktag"], Some(text.as_bytes()))?
            .trim()
            .to_owned())
    }

    /// Whether tag `name` exists on the remote.
    pub fn remote_tag_exists(&self, name: &str) -> Result<bool, GitError> {
        let out = self.git(&[
            "ls-remote",
            "--tags",
            "origin",
            &format!("refs/tags/{name}"),
        ])?;
        Ok(!out.trim().is_empty())
    }

    /// Push `commit` to a full ref name (tags).
    pub fn push_ref(&self, commit: &str, refname: &str, force: bool) -> Result<(), GitError> {
        let spec = format!("{}{commit}:{refname}", if force { "+" } else { "" });
        self.git(&["push", "--quiet", "origin", &spec]).map(|_| ())
    }

    /// Read an object (`<rev>:<path>` or an id): its type and content, `None` when missing.
    pub fn read(&self, spec: &str) -> Result<Option<(String, Vec<u8>)>, GitError> {
        let mut guard = self.reader.lock().map_err(|_| GitError::Cache {
            path: self.dir.display().to_string(),
            source: std::io::Error::other("object reader poisoned"),
        })?;
        if guard.is_none() {
            *guard = Some(ObjectReader::start(self.command())?);
        }
        let Some(reader) = guard.as_mut() else {
            return Ok(None);
        };
        match reader.read(spec) {
            Ok(r) => Ok(r),
            Err(e) => {
                *guard = None;
                Err(GitError::Command {
                    command: "cat-file".into(),
                    repo: self.display_url(),
                    stderr: self.opts.redactor.clean(&e.to_string()),
                })
            }
        }
    }

    /// Merge three versions of a text file (`git merge-file`); `None` on conflict.
    pub fn merge_file(
        &self,
        ours: &[u8],
        base: &[u8],
        theirs: &[u8],
    ) -> Result<Option<Vec<u8>>, GitError> {
        let tmp = tempfile::tempdir().map_err(|source| GitError::Cache {
            path: "temporary directory".into(),
            source,
        })?;
        let write = |name: &str, data: &[u8]| {
            let p = tmp.path().join(name);
            std::fs::write(&p, data)
                .map(|_| p)
                .map_err(|source| GitError::Cache {
                    path: "temporary directory".into(),
                    source,
                })
        };
        let (o, b, t) = (
            write("ours", ours)?,
            write("base", base)?,
            write("theirs", theirs)?,
        );
        let out = Command::new("git")
            .arg("merge-file")
            .arg("-p")
            .arg(&o)
            .arg(&b)
            .arg(&t)
            .output()
            .map_err(GitError::Spawn)?;
        match out.status.code() {
            Some(0) => Ok(Some(out.stdout)),
            Some(n) if n > 0 && n < 128 => Ok(None),
            _ => Err(self.fail("merge-file", &out.stderr)),
        }
    }
}

fn refspec(what: &RemoteRef) -> (String, Option<String>) {
    match what {
        RemoteRef::Branch(b) => (
            format!("+refs/heads/{b}:refs/remotes/origin/{b}"),
            Some(format!("refs/remotes/origin/{b}")),
        ),
        RemoteRef::Tag(t) => (
            format!("+refs/tags/{t}:refs/tags/{t}"),
            Some(format!("refs/tags/{t}")),
        ),
        RemoteRef::Commit(c) => (c.clone(), None),
        RemoteRef::Default => ("HEAD".to_owned(), None),
    }
}

/// A long-running `git cat-file --batch`: one process serves every read of a promotion.
struct ObjectReader {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl ObjectReader {
    fn start(mut cmd: Command) -> Result<Self, GitError> {
        cmd.args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().map_err(GitError::Spawn)?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(GitError::Spawn(std::io::Error::other(
                "cat-file has no pipes",
            )));
        };
        Ok(Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }

    fn read(&mut self, spec: &str) -> std::io::Result<Option<(String, Vec<u8>)>> {
        if spec.contains('\n') {
            return Ok(None);
        }
        writeln!(self.stdin, "{spec}")?;
        self.stdin.flush()?;
        let mut header = String::new();
        if self.stdout.read_line(&mut header)? == 0 {
            return Err(std::io::Error::other("cat-file ended unexpectedly"));
        }
        let header = header.trim_end();
        if header.ends_with(" missing") || header.ends_with(" ambiguous") {
            return Ok(None);
        }
        let mut parts = header.split(' ');
        let (_oid, kind, size) = (parts.next(), parts.next(), parts.next());
        let (Some(kind), Some(size)) = (kind, size.and_then(|s| s.parse::<usize>().ok())) else {
            return Err(std::io::Error::other(format!(
                "unexpected cat-file header {header:?}"
            )));
        };
        let mut data = vec![0; size + 1];
        self.stdout.read_exact(&mut data)?;
        data.pop();
        Ok(Some((kind.to_owned(), data)))
    }
}

impl Drop for ObjectReader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
