//! The Git engine: a bare mirror per repository URL in a cache directory, fetched incrementally
//! (shallow and blob-less when there is no cache yet), files read and written through the object
//! database, commits built from trees, pushes retried on non-fast-forward with a three-way merge
//! of the files we changed. Nothing here checks out a working tree.
//!
//! It drives the `git` CLI (plumbing commands) rather than libgit2: libgit2 cannot do partial
//! clones (`--filter=blob:none`) or lazy blob fetches, which the cold path needs to follow the
//! files a promotion touches instead of the repository's size, and the CLI brings the user's own
//! credential helpers, ssh-agent, `~/.ssh` keys and commit signing configuration for free.

mod mirror;
pub mod redact;
pub mod tree;

pub use mirror::{Mirror, MirrorOptions, PushOutcome, RemoteRef};
pub use redact::Redactor;
pub use tree::{Checkout, FileChange};

/// A Git object id (hex).
pub type Oid = String;

/// What the Git engine can fail with. Messages never contain credentials (see [`Redactor`]).
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The `git` program could not be started.
    #[error(
        "cannot run git: {0}; hint: install git (apt-get install git) and make sure it is on PATH"
    )]
    Spawn(#[source] std::io::Error),
    /// A git command failed.
    #[error("git {command} failed for {repo}: {stderr}")]
    Command {
        command: String,
        repo: String,
        stderr: String,
    },
    /// A command talking to the remote did not finish in time (a stalled server or network).
    #[error(
        "git {command} for {repo} did not finish within {seconds}s and was stopped{outcome}; hint: check that the server answers (git ls-remote {repo}), or allow more time with PROMOTE_GIT_TIMEOUT=20m"
    )]
    Timeout {
        command: String,
        repo: String,
        seconds: u64,
        /// What it means for the remote.
        outcome: &'static str,
    },
    /// A branch, tag or commit does not exist on the remote.
    #[error("{what} does not exist in {repo}{hint}")]
    NotFound {
        what: String,
        repo: String,
        hint: String,
    },
    /// Our change and someone else's change touch the same lines.
    #[error(
        "cannot integrate the remote's new commits on {branch} of {repo}: both changed {path}; hint: resolve it by hand or re-run the promotion once the other change is settled"
    )]
    Conflict {
        repo: String,
        branch: String,
        path: String,
    },
    /// Local I/O on the cache directory failed.
    #[error("cache directory {path}: {source}")]
    Cache {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A path escapes the work tree or is otherwise unusable.
    #[error("invalid path {path:?}: {reason}")]
    Path { path: String, reason: String },
    /// Credentials were given for a remote they may not be sent to.
    #[error(
        "{repo}: {reason}; hint: use the https:// URL of the repository (credentials go over plain http only to loopback addresses)"
    )]
    Credentials { repo: String, reason: String },
}

#[cfg(test)]
pub(crate) mod tests;
