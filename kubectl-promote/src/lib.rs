//! The `kubectl promote` plugin as a library: the binary (`main.rs`) only parses arguments and
//! maps errors to exit codes, so tests drive everything here in-process.
//!
//! | module | owns |
//! |---|---|
//! | `cli` | arguments |
//! | `promote` | the `kubectl promote stage/<name>` command (local or cluster) |
//! | `cluster` | promoting through a cluster: Promotion, claim and lease, progress, records |
//! | `commands` | get, approve, abort, history, freight create, completion |
//! | `kube` | the Kubernetes API (blocking facade over kube-rs, request counting) |
//! | `interrupt` | Ctrl-C and abort requests |
//! | `local` | manifests from `--local DIR`, Freight resolution, task inflation |
//! | `runner` | running steps: config checks, vars, `if`, phases |
//! | `steps/` | one file per promotion step |
//! | `expr` | `${{ }}` expressions |
//! | `git/` | the Git engine (mirror cache, object-database edits, push with retry) |
//! | `credentials` | Git credentials from URLs and the environment |
//! | `yaml_edit` | format-preserving YAML edits |
//! | `output` | progress and results |
//! | `error` | the error type, hints, exit codes |

pub mod cli;
pub mod cluster;
pub mod commands;
pub mod credentials;
pub mod error;
pub mod expr;
pub mod git;
pub mod interrupt;
pub mod kube;
pub mod local;
pub mod output;
pub mod promote;
pub mod runner;
pub mod steps;
pub mod yaml_edit;
